"""The README's operations examples (TLS, authorization, metrics and logs, dynamic config), run exactly as printed:
each section's `tempyral server start-dev ...` line starts the server (on the default ports the examples name), in
a directory holding the files the line names, then the section's client lines run against it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_readme import DEFAULT_PORT, run, section
from tests.support.certs import issue, new_ca
from tests.support.ci import cannot_run
from tests.support.jwt_tokens import SigningKey, write_jwks
from tests.support.servers import START_TIMEOUT_S, reference_binary

METRICS_PORT = 9090  # what the metrics example names


def example_lines(title: str) -> list[str]:
    """The section's indented command lines, a line continued with a backslash joined to the next."""
    lines: list[str] = []
    pending = ""
    for line in section(title).splitlines():
        if not line.startswith("    ") or line.startswith("     "):
            if pending and line.startswith("     "):
                pending += " " + line.strip()
                if not pending.endswith("\\"):
                    lines.append(pending)
                    pending = ""
            continue
        text = line.strip()
        if text.endswith("\\"):
            pending = text
        else:
            lines.append(text)
    return [re.sub(r"\s*\\\s+", " ", line) for line in lines]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def started(line: str, cwd: Path, wait_port: int) -> Iterator[Path]:
    """The README's server line, run by a shell in `cwd`, until the block ends; its output goes to a file."""
    assert line.startswith("tempyral server start-dev"), line
    if _listening(DEFAULT_PORT):
        pytest.fail(f"the README's examples need the default port {DEFAULT_PORT} free")
    log = cwd / "server.log"
    env = {**os.environ, "PATH": f"{Path(reference_binary()).parent}{os.pathsep}{os.environ['PATH']}"}
    with log.open("w") as out:
        proc = subprocess.Popen(line, cwd=cwd, env=env, shell=True, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(DEFAULT_PORT) and _listening(wait_port)):
            assert proc.poll() is None, f"{line} exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{line} did not listen: {log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield log
    finally:
        # The shell and the server it started: the server may outlive the shell by its graceful stop, so the
        # ports are waited on too (the next example takes them).
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _listening(DEFAULT_PORT) or _listening(wait_port):
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
            time.sleep(0.1)
        proc.wait(timeout=30)


def test_tls_example(tmp_path: Path) -> None:
    server_line, client_line = example_lines("TLS and mutual TLS")
    ca = new_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    issue(ca, "tempyral", server=True, client=False).write(tmp_path, "server")  # server.pem, server.key
    issue(ca, "operator", server=False, client=True).write(tmp_path, "client")  # client.pem, client.key
    with started(server_line, tmp_path, DEFAULT_PORT):
        done = run(client_line, tmp_path, shell=True)
        assert done.returncode == 0, done.stderr
        # Without its client certificate the same command is refused (mTLS).
        refused = run(client_line.split(" --tls-cert-path")[0], tmp_path, shell=True)
        assert refused.returncode != 0


def test_authorization_example(tmp_path: Path) -> None:
    server_line, client_line = example_lines("Authorization (JWT)")
    key = SigningKey.ec("readme")
    write_jwks(tmp_path / "jwks.json", [key])
    with started(server_line, tmp_path, DEFAULT_PORT):
        os.environ["TOKEN"] = key.token(["default:read"])
        try:
            done = run(client_line, tmp_path, shell=True)
            assert done.returncode == 0, done.stderr
            os.environ["TOKEN"] = key.token(["other:read"])
            refused = run(client_line, tmp_path, shell=True)
            assert refused.returncode != 0 and "Request unauthorized." in refused.stderr
        finally:
            del os.environ["TOKEN"]


def test_metrics_and_logs_example(tmp_path: Path) -> None:
    server_line, curl = example_lines("Metrics and logs")
    if shutil.which("curl") is None:
        cannot_run("curl is not installed: the README's metrics example needs it (scripts/test installs it as root)")
    with started(server_line, tmp_path, METRICS_PORT) as log:
        listed = run([reference_binary(), "workflow", "list"], tmp_path)
        assert listed.returncode == 0, listed.stderr
        done = run(curl, tmp_path, shell=True)
        assert done.returncode == 0, done.stderr
        assert "# TYPE service_requests counter" in done.stdout
        assert 'operation="ListWorkflowExecutions"' in done.stdout
        request_lines = [json.loads(line) for line in log.read_text().splitlines() if '"tempyral.requests"' in line]
        assert any(r.get("method") == "ListWorkflowExecutions" for r in request_lines), log.read_text()[-3000:]


def test_dynamic_config_example(tmp_path: Path) -> None:
    (server_line,) = [line for line in example_lines("Dynamic config") if line.startswith("tempyral ")]
    (yaml_block,) = re.findall(r"```yaml\n(.*?)```", section("Dynamic config"), re.S)
    (tmp_path / "dynamic.yaml").write_text(yaml_block)
    with started(server_line, tmp_path, DEFAULT_PORT) as log:
        start = [reference_binary(), "workflow", "start", "--type", "Any", "--task-queue", "readme"]
        small = run([*start, "--workflow-id", "small", "--input", json.dumps("x" * 100)], tmp_path)
        assert small.returncode == 0, small.stderr
        # limit.blobSize.error=1000 (with the warning limit below it, as the reference needs): refused.
        large = run([*start, "--workflow-id", "large", "--input", json.dumps("x" * 2000)], tmp_path)
        assert large.returncode != 0 and "Blob data size exceeds limit." in large.stderr
        assert "unregistered key" not in log.read_text()  # every key the example uses is one tempyral honours
