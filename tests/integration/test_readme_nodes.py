"""The README's several-nodes example, run exactly as printed: a PostgreSQL of the test's own on 127.0.0.1:5432
with a database `tempyral`, two nodes on the default ports, a workflow started through one and described through
the other (a module of its own: it needs ports 7233 and 5432 free)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from tests.integration.test_readme import run, section, shell_lines
from tests.support.ci import cannot_run
from tests.support.postgres import PostgresServer, why_unavailable
from tests.support.servers import ServerProcess


def test_the_several_nodes_example(tmp_path: Path) -> None:
    text = section("Several nodes on PostgreSQL")
    servers = [line.split() for line in shell_lines(text, "tempyral server")]
    commands = shell_lines(text, "temporal")
    assert len(servers) == 2 and len(commands) == 2
    reason = why_unavailable()
    if reason is not None:
        cannot_run(reason)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 5432)) == 0:
            cannot_run("the README's example needs port 5432 free for its PostgreSQL")
    pg = PostgresServer()
    pg.start(port=5432)
    processes: list[ServerProcess] = []
    try:
        pg.psql("CREATE DATABASE tempyral")
        venv_bin = Path(sys.executable).parent
        for argv in servers:
            port = int(argv[argv.index("--port") + 1])
            proc = ServerProcess([str(venv_bin / "tempyral"), *argv[1:], "--headless"], port, f"readme-{port}")
            proc.wait_until_serving = True
            processes.append(proc)
            proc.start()
        started = run(commands[0], tmp_path, shell=True)
        assert started.returncode == 0, started.stderr
        described = run(commands[1], tmp_path, shell=True)
        assert described.returncode == 0, described.stderr
        run_id = next(line.split()[-1] for line in started.stdout.splitlines() if "RunId" in line)
        assert f"RunId                 {run_id}" in described.stdout, (started.stdout, described.stdout)
    finally:
        for proc in processes:
            proc.stop()
        pg.stop()
