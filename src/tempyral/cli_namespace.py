"""`tempyral namespace failover` (graceful failover, cluster/graceful.py) and `tempyral namespace auto-failover`
(the opt-in automatic failover settings, cluster/auto_failover.py), against a running cluster's frontend."""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral import cli_tls
from tempyral.cluster.auto_failover import PREFERRED_KEY, WINDOW_KEY, format_duration, parse_duration
from tempyral.cluster.client import peer_channel
from tempyral.cluster.graceful import WORKFLOW_SERVICE, FailoverError, call, graceful_failover


def duration(value: str) -> float:
    """Seconds of a duration such as 5s, 500ms, 1m, 1.5h."""
    seconds = parse_duration(value)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}: expected a number and ms, s, m or h (e.g. 5s)")
    return seconds


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("namespace", help="global namespace operations").add_subparsers(
        dest="namespace_command", required=True
    )
    failover = group.add_parser("failover", help="fail a global namespace over gracefully (no event lost)")
    failover.add_argument("--namespace", "-n", required=True)
    failover.add_argument("--to", required=True, metavar="CLUSTER", help="the cluster to make active")
    failover.add_argument("--max-lag", type=duration, default=5.0, help="start once the target is this close (5s)")
    failover.add_argument("--timeout", type=duration, default=30.0, help="give up and roll back after this (30s)")
    failover.add_argument("--address", required=True, metavar="HOST:PORT", help="any cluster of the namespace")
    cli_tls.add_client_options(failover)
    auto = group.add_parser("auto-failover", help="opt a global namespace in or out of automatic failover")
    auto.add_argument("--namespace", "-n", required=True)
    choice = auto.add_mutually_exclusive_group(required=True)
    choice.add_argument("--window", type=duration, help="fail over when the active is unreachable this long")
    choice.add_argument("--disable", action="store_true", help="no automatic failover")
    auto.add_argument("--preferred", metavar="CLUSTER", default="", help="the cluster to fail back to when healthy")
    auto.add_argument("--address", required=True, metavar="HOST:PORT")
    cli_tls.add_client_options(auto)


def run(args: argparse.Namespace) -> int:
    problem = cli_tls.configure_client(args)
    if problem:
        print(f"tempyral: error: {problem}", file=sys.stderr)
        return 2
    if args.namespace_command == "failover":
        return asyncio.run(_failover(args))
    if args.disable and args.preferred:
        print("tempyral: error: --preferred goes with --window", file=sys.stderr)
        return 2
    return asyncio.run(_auto_failover(args))


async def _failover(args: argparse.Namespace) -> int:
    try:
        result = await graceful_failover(
            args.address,
            args.namespace,
            args.to,
            max_lag=args.max_lag,
            timeout=args.timeout,
            say=lambda line: print(line, flush=True),
        )
    except FailoverError as err:
        print(f"tempyral: failover failed: {err}", file=sys.stderr, flush=True)
        return 1
    print(
        f"namespace {result.namespace} failed over from {result.source} to {result.target} "
        f"in {result.seconds:.3f}s (writes held {result.handover_seconds:.3f}s)",
        flush=True,
    )
    return 0


async def _auto_failover(args: argparse.Namespace) -> int:
    data = (
        {WINDOW_KEY: "off", PREFERRED_KEY: ""}
        if args.disable
        else {
            WINDOW_KEY: format_duration(args.window),
            PREFERRED_KEY: args.preferred,
        }
    )
    if not args.disable and args.window <= 0:
        print("tempyral: error: --window must be positive", file=sys.stderr)
        return 2
    channel = peer_channel(args.address)
    try:
        info = namespace_pb.UpdateNamespaceInfo(data=data)
        request = ws.UpdateNamespaceRequest(namespace=args.namespace, update_info=info)
        await call(channel, f"/{WORKFLOW_SERVICE}/UpdateNamespace", request, ws.UpdateNamespaceResponse, 10.0)
    except grpc.aio.AioRpcError as err:
        print(f"tempyral: error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    finally:
        await channel.close(None)
    if args.disable:
        print(f"automatic failover of {args.namespace}: disabled")
    else:
        preferred = f", preferred cluster {args.preferred}" if args.preferred else ""
        print(f"automatic failover of {args.namespace}: after {format_duration(args.window)} unreachable{preferred}")
    return 0
