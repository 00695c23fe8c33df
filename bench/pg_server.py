"""tempyral on a throwaway PostgreSQL, as ONE process tree: a candidate command for ../shared/bench/compare.py.

    python ../shared/bench/compare.py \\
        --candidate "python bench/pg_server.py --port {port}" \\
        --workloads one_activity,latency,nexus_async --rounds 1

It initdb's a PostgreSQL cluster in a temporary directory, runs `postgres -D ...` in the foreground as its own
child (as the `postgres` user when run as root: the child gets that uid directly, no `pg_ctl` daemon, so it stays in
this process tree and compare.py's CPU and memory figures include PostgreSQL's), on a free loopback port with its
unix socket in that directory, creates the database `tempyral`, then runs

    tempyral server start-dev --db postgresql://postgres@127.0.0.1:PGPORT/tempyral --port PORT --headless
        --log-level warn

or, with `--nodes N`, N nodes of one cluster on that database, `tempyral server start --db URL --ip 127.0.0.1
--port P_i --http-port H_i --node-name node-i` (node 0 on `--port`, the others on `--node-ports` or free ports;
each node is started once the one before serves). Arguments after `--` go to every tempyral command (`-- --shards 8`).

Durability: PostgreSQL's defaults, fsync=on, synchronous_commit=on, full_page_writes=on (a commit is on disk before
it is acknowledged, as a production database is run). `--no-durable` turns all three off.

SIGTERM or SIGINT stops the tempyral nodes (SIGTERM, they hand their shards over and close their connections),
then PostgreSQL (fast shutdown), and removes the directory. If a node or PostgreSQL exits on its own, everything
else is stopped too and the exit status is 1. `--info-file F` writes, once every node serves, a JSON file with the
database URL, the PostgreSQL pid and each node's name, address, HTTP address and pid (nodes.py reads it).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from benchlib import LocalPostgres, PostgresSettings, free_port, stop_process, tempyral_command, wait_port

DATABASE = "tempyral"


@dataclass
class Node:
    name: str
    port: int
    http_port: int
    pid: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"


def node_command(node: Node, url: str, several: bool, log_level: str, extra: list[str]) -> list[str]:
    common = ["--db", url, "--ip", "127.0.0.1", "--port", str(node.port), "--http-port", str(node.http_port)]
    common += ["--headless", "--log-level", log_level]
    if several:
        return tempyral_command("server", "start", *common, "--node-name", node.name, *extra)
    return tempyral_command("server", "start-dev", *common, *extra)


class Stop(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="gRPC port of the (first) node")
    ap.add_argument("--nodes", type=int, default=1, help="tempyral nodes on the one database (default 1: start-dev)")
    ap.add_argument("--node-ports", default="", help="gRPC ports of nodes 2..N, comma-separated (default: free ones)")
    ap.add_argument("--no-durable", action="store_true", help="fsync, synchronous_commit, full_page_writes off")
    ap.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"])
    ap.add_argument("--info-file", help="write the database URL and the nodes' addresses and pids here, as JSON")
    ap.add_argument("extra", nargs="*", help="after --: more arguments for every tempyral command")
    args = ap.parse_args()
    if args.nodes < 1:
        ap.error("--nodes must be at least 1")
    more_ports = [int(p) for p in args.node_ports.split(",") if p]
    ports = [args.port, *more_ports, *(free_port() for _ in range(args.nodes - 1 - len(more_ports)))][: args.nodes]
    nodes = [Node(f"node-{i}", port, free_port()) for i, port in enumerate(ports)]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    # Set before anything starts: a signal during start-up cleans up as well.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    pg = LocalPostgres(PostgresSettings(durable=not args.no_durable))
    procs: list[subprocess.Popen[bytes]] = []
    status = 0
    try:
        pg.start()
        url = pg.create_database(DATABASE)
        for node in nodes:
            proc = subprocess.Popen(
                node_command(node, url, args.nodes > 1, args.log_level, args.extra), stdin=subprocess.DEVNULL
            )
            procs.append(proc)
            node.pid = proc.pid
            wait_port(node.port, proc, f"tempyral {node.name}")
        durability = "durable" if not args.no_durable else "not durable"
        print(
            f"pg_server: {len(nodes)} node(s) serving on {', '.join(n.address for n in nodes)}, "
            f"PostgreSQL {url} (pid {pg.pid}, {durability})",
            flush=True,
        )
        if args.info_file:
            info = {"db_url": url, "postgres_pid": pg.pid, "nodes": [asdict(n) | {"address": n.address} for n in nodes]}
            Path(args.info_file).write_text(json.dumps(info))
        while True:
            for proc, node in zip(procs, nodes, strict=True):
                if proc.poll() is not None:
                    print(f"pg_server: tempyral {node.name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
            assert pg.proc is not None
            if pg.proc.poll() is not None:
                print(f"pg_server: PostgreSQL exited with {pg.proc.returncode}: {pg.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    except Stop:
        status = 0
    except Exception as err:
        print(f"pg_server: {err}", file=sys.stderr)
        status = 1
    finally:
        # Signals from here on would interrupt the clean-up: it is bounded anyway.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # all at once: the nodes stop in parallel
        for proc in procs:
            stop_process(proc)
        pg.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
