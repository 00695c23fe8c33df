"""The README's global-namespace example, run exactly as printed: two clusters on the default ports (7233 and
7234), so this runs in a module of its own, after test_readme's server on 7233 has stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_readme import run, section, shell_lines
from tests.support.servers import ServerProcess


def test_the_global_namespace_example(tmp_path: Path) -> None:
    """Two clusters started, connected, given a global namespace and failed over, exactly as the README prints it."""
    text = section("Global namespaces over several clusters")
    servers = [line.split() for line in shell_lines(text, "tempyral server")]
    commands = [
        line.strip()
        for line in text.splitlines()
        if line.startswith("    temporal ") or (line.startswith("    tempyral ") and "tempyral server" not in line)
    ]
    assert len(servers) == 2 and len(commands) == 10
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
            if "namespace failover" in line:  # b has taken over (it first applies what a wrote)
                describe_namespace("127.0.0.1:7234", "orders", tmp_path, until="b")
            # an endpoint created on a reaches b within about a second
            done = run_until_ok(line, tmp_path) if "endpoint get" in line else run(line, tmp_path, shell=True)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            if "replication status" in line:
                assert "a" in done.stdout and "orders" in done.stdout, done.stdout
            if "endpoint get" in line:
                assert "jobs" in done.stdout and "orders" in done.stdout, done.stdout
        # failed over to b, then gracefully back to a; opted in to automatic failover
        for address in ("127.0.0.1:7233", "127.0.0.1:7234"):
            describe_namespace(address, "orders", tmp_path, until="a")
            describe_until(address, "orders", tmp_path, "tempyral.auto-failover.window")
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


def run_until_ok(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 30
    while True:
        done = run(line, cwd, shell=True)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def describe_until(address: str, name: str, cwd: Path, text: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        done = run(f"temporal --address {address} operator namespace describe -n {name} -o json", cwd, shell=True)
        if done.returncode == 0 and text in done.stdout:
            return done.stdout
        assert time.monotonic() < deadline, f"{name} on {address}: {done.stdout}{done.stderr}"
        time.sleep(0.2)


def wait_for_namespace_on(address: str, name: str, cwd: Path) -> None:
    describe_namespace(address, name, cwd, until="a")
