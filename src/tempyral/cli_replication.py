"""`tempyral replication status` and `tempyral replication dlq list|reapply|purge`: where replication stands on a
running cluster (cluster/status.py) and its replication DLQ (cluster/receiver.py), over the internal
ReplicationService on the cluster's frontend port."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from tempyral import cli_tls
from tempyral.cluster.client import ReplicationClient
from tempyral.cluster.status import fetch_status, json_status
from tempyral.proto import replication_pb2 as rpb


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("replication", help="history replication between clusters").add_subparsers(
        dest="replication_command", required=True
    )
    status = group.add_parser("status", help="lag, backlog, last applied task and DLQ size, per peer and namespace")
    _common(status)
    status.add_argument("--namespace", "-n", default="", help="one global namespace (default: all)")
    dlq = group.add_parser("dlq", help="replication tasks this cluster gave up applying").add_subparsers(
        dest="dlq_command", required=True
    )
    listing = dlq.add_parser("list", help="the DLQ's tasks from a source cluster")
    _common(listing, source=True)
    listing.add_argument("--namespace", "-n", default="", help="one namespace's tasks (default: all)")
    for name, what in (("reapply", "apply tasks again (those that apply leave the DLQ)"), ("purge", "drop tasks")):
        command = dlq.add_parser(name, help=what)
        _common(command, source=True)
        command.add_argument(
            "--task-id", type=int, action="append", default=[], metavar="ID", help="this task (repeatable; default all)"
        )


def _common(parser: argparse.ArgumentParser, source: bool = False) -> None:
    parser.add_argument("--address", required=True, metavar="HOST:PORT", help="the cluster's frontend")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text")
    cli_tls.add_client_options(parser)
    if source:
        parser.add_argument("--cluster", required=True, metavar="SRC", help="the source cluster of the tasks")


def run(args: argparse.Namespace) -> int:
    problem = cli_tls.configure_client(args)
    if problem:
        print(f"tempyral: error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.replication_command == "status":
            status = asyncio.run(fetch_status(args.address, args.namespace))
            print(json.dumps(json_status(status), indent=2) if args.output == "json" else status_text(status))
            return 0
        return asyncio.run(_dlq(args))
    except grpc.aio.AioRpcError as err:
        print(f"tempyral: error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1


async def _dlq(args: argparse.Namespace) -> int:
    client = ReplicationClient(args.address)
    try:
        if args.dlq_command == "list":
            tasks: list[rpb.ReplicationDlqTask] = []
            token = b""
            while True:
                request = rpb.ListReplicationDlqRequest(
                    source_cluster=args.cluster, namespace=args.namespace, next_page_token=token
                )
                page = await client.call("ListReplicationDlq", request, rpb.ListReplicationDlqResponse)
                tasks += page.tasks
                if not (token := page.next_page_token):
                    break
            if args.output == "json":
                print(json.dumps([_dict(t) for t in tasks], indent=2))
            else:
                print(dlq_text(tasks))
            return 0
        if args.dlq_command == "reapply":
            reapply = rpb.ReapplyReplicationDlqRequest(source_cluster=args.cluster, task_ids=args.task_id)
            answer = await client.call("ReapplyReplicationDlq", reapply, rpb.ReapplyReplicationDlqResponse)
            if args.output == "json":
                print(json.dumps(_dict(answer), indent=2))
            else:
                print(f"Re-applied {len(answer.applied)} task(s); {len(answer.failed)} failed again and stay.")
                if answer.failed:
                    print(dlq_text(list(answer.failed)))
            return 1 if answer.failed else 0
        purge = rpb.PurgeReplicationDlqRequest(source_cluster=args.cluster, task_ids=args.task_id)
        purged = await client.call("PurgeReplicationDlq", purge, rpb.PurgeReplicationDlqResponse)
        print(json.dumps(_dict(purged)) if args.output == "json" else f"Purged {purged.purged} task(s).")
        return 0
    finally:
        await client.close()


def _dict(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = json_format.MessageToDict(message)
    return result


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def status_text(status: rpb.GetReplicationStatusResponse) -> str:
    """The status as tables: what this cluster committed, what it receives from and sends to each peer, and per
    namespace and peer."""
    lines = [f"Cluster {status.cluster_name}", ""]
    lines.append(_table(["SHARD", "LAST TASK ID"], [[str(s.shard_id), str(s.last_task_id)] for s in status.shards]))
    lines.append("")
    inbound = [
        [
            p.cluster_name,
            "yes" if p.connected else "no",
            str(p.tasks_lag),
            f"{p.lag_seconds:.3f}",
            " ".join(f"{shard}:{task}" for shard, task in sorted(p.applied_task_id.items())),
            p.last_applied_time.ToJsonString() if p.HasField("last_applied_time") else "-",
            str(p.dlq_size),
        ]
        for p in status.inbound
    ]
    header = ["FROM", "CONNECTED", "TASKS LAG", "LAG (S)", "APPLIED (SHARD:TASK)", "LAST APPLIED", "DLQ"]
    lines.append(_table(header, inbound))
    lines.append("")
    outbound = [
        [p.cluster_name, str(p.backlog), " ".join(f"{s}:{t}" for s, t in sorted(p.acked_task_id.items()))]
        for p in status.outbound
    ]
    lines.append(_table(["TO", "BACKLOG", "ACKNOWLEDGED (SHARD:TASK)"], outbound))
    lines.append("")
    namespaces = [
        [
            n.namespace,
            n.active_cluster,
            n.replication_state,
            n.peer_cluster,
            f"{n.lag_seconds:.3f}",
            str(n.tasks_lag),
            str(n.backlog),
            str(n.last_applied_task_id),
            str(n.dlq_size),
        ]
        for n in status.namespaces
    ]
    header = ["NAMESPACE", "ACTIVE", "STATE", "PEER", "LAG (S)", "TASKS LAG", "BACKLOG", "LAST APPLIED TASK", "DLQ"]
    lines.append(_table(header, namespaces))
    return "\n".join(lines)


def dlq_text(tasks: list[rpb.ReplicationDlqTask]) -> str:
    if not tasks:
        return "No tasks."
    rows = [
        [
            t.source_cluster,
            str(t.source_shard),
            str(t.task_id),
            t.namespace or t.namespace_id,
            t.workflow_id,
            t.run_id,
            t.task_type,
            str(t.attempts),
            t.enqueue_time.ToJsonString(),
            t.error,
        ]
        for t in tasks
    ]
    header = ["SOURCE", "SHARD", "TASK ID", "NAMESPACE", "WORKFLOW", "RUN", "TYPE", "ATTEMPTS", "ENQUEUED", "ERROR"]
    return _table(header, rows)
