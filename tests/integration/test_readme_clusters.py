"""The README's global-namespace example, run exactly as printed: two clusters on the default ports (7233 and
7234), so this runs in a module of its own, after test_readme's server on 7233 has stopped."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.integration.test_readme import run, section, shell_lines
from tests.support.servers import ServerProcess


def test_the_global_namespace_example(tmp_path: Path) -> None:
    """Two clusters started, connected, given a global namespace and failed over, exactly as the README prints it."""
    text = section("Global namespaces over several clusters")
    servers = [line.split() for line in shell_lines(text, "tempyral")]
    commands = shell_lines(text, "temporal")
    assert len(servers) == 2 and len(commands) == 4
    venv_bin = Path(sys.executable).parent
    processes = []
    try:
        for argv in servers:
            port = int(argv[argv.index("--port") + 1])
            command = [str(venv_bin / "tempyral"), *argv[1:], "--log-level", "warn"]
            proc = ServerProcess(command, port, f"tempyral-readme-{port}")
            proc.replay_check_db = str(tmp_path / argv[argv.index("--db-filename") + 1])
            proc.wait_until_serving = True
            proc.cwd = str(tmp_path)  # the example's database files are relative to where it runs
            processes.append(proc)
            proc.start()
        for line in commands:
            if "namespace update" in line:  # the namespace reaches b within about a second
                wait_for_namespace_on("127.0.0.1:7234", "orders", tmp_path)
            done = run(line, tmp_path, shell=True)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        for address in ("127.0.0.1:7233", "127.0.0.1:7234"):
            assert '"activeClusterName": "b"' in describe_namespace(address, "orders", tmp_path, until="b")
    finally:
        for proc in processes:
            proc.stop()


def describe_namespace(address: str, name: str, cwd: Path, until: str = "") -> str:
    deadline = time.monotonic() + 30
    while True:
        done = run(f"temporal --address {address} operator namespace describe -n {name} -o json", cwd, shell=True)
        if done.returncode == 0 and f'"activeClusterName": "{until}"' in done.stdout:
            return done.stdout
        assert time.monotonic() < deadline, f"{name} on {address}: {done.stdout}{done.stderr}"
        time.sleep(0.2)


def wait_for_namespace_on(address: str, name: str, cwd: Path) -> None:
    describe_namespace(address, name, cwd, until="a")
