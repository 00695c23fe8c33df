"""The README's examples, run exactly as printed against a server started as the README starts it (on the
default ports, which the examples name), so that the README cannot rot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ci import cannot_run
from tests.support.servers import REPO, ServerProcess, reference_binary

README = (REPO / "README.md").read_text()
DEFAULT_PORT = 7233  # what the examples connect to


# Runs the file as `python hello.py` does (as __main__, its errors its exit status), then leaves without the
# interpreter's finalization: the SDK's Rust threads may still call into Python there, which aborts a few
# runs in a hundred after the work is done (against the reference server too), whatever the code did.
RUN_AS_MAIN_THEN_EXIT = (
    "import os, runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(0)"
)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def shell_lines(text: str, program: str) -> list[str]:
    """The indented (code-block) lines of `text` that run `program`."""
    return [line.strip() for line in text.splitlines() if line.startswith(f"    {program} ")]


@pytest.fixture(scope="module")
def default_port_server() -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "tempyral", "server", "start-dev", "--headless", "--log-level", "warn"]
    proc = ServerProcess(command, DEFAULT_PORT, "tempyral-readme")
    try:
        proc.start()
    except RuntimeError as err:
        pytest.fail(f"the README's examples need the default ports {DEFAULT_PORT} and 7243 free: {err}")
    yield proc
    proc.stop()


def run(command: list[str] | str, cwd: Path, shell: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(reference_binary()).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, timeout=120)


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(python_blocks()) == 1
    assert len(shell_lines(section("Operating it with the `temporal` CLI"), "temporal")) >= 6
    assert len(shell_lines(section("The HTTP API"), "curl")) == 1


def test_quick_start_then_cli_then_http_examples(default_port_server: ServerProcess, tmp_path: Path) -> None:
    (hello,) = python_blocks()
    (tmp_path / "hello.py").write_text(hello)
    done = run([sys.executable, "-c", RUN_AS_MAIN_THEN_EXIT, "hello.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello, World!\n"  # as the README says

    for line in shell_lines(section("Operating it with the `temporal` CLI"), "temporal"):
        done = run(line, tmp_path, shell=True)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if line.startswith("temporal workflow describe"):
            assert "hello-1" in done.stdout and "COMPLETED" in done.stdout

    (curl,) = shell_lines(section("The HTTP API"), "curl")
    if shutil.which("curl") is None:
        cannot_run("curl is not installed: the README's HTTP example needs it (scripts/test installs it as root)")
    done = run(curl, tmp_path, shell=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout).get("executions", []) == []  # no workflow runs: hello-1 has completed
