"""`tempyral nexus endpoint allow|deny|open|show`: the access policy of a Nexus endpoint (nexus/access.py) on a
running cluster, through its NexusEndpointAccessService (nexus/access_service.py). The `temporal operator nexus
endpoint` commands manage the rest of the endpoint; their messages have no place for the policy."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import grpc
from google.protobuf import json_format

from tempyral import cli_tls
from tempyral.cluster.client import peer_channel
from tempyral.cluster.graceful import call
from tempyral.nexus import access
from tempyral.nexus.access_service import GET_METHOD, UPDATE_METHOD
from tempyral.proto import nexus_replication_pb2 as npb

CHANGES = {
    "allow": npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_ALLOW,
    "deny": npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_DENY,
    "open": npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_OPEN,
}
CALL_TIMEOUT_S = 10.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nexus = commands.add_parser("nexus", help="Nexus endpoint access policies").add_subparsers(
        dest="nexus_command", required=True
    )
    endpoint = nexus.add_parser("endpoint", help="who may call an endpoint").add_subparsers(
        dest="endpoint_command", required=True
    )
    helps = {
        "allow": "restrict the endpoint to its allowed caller namespaces, these among them",
        "deny": "refuse these caller namespaces",
        "open": "let every caller namespace use the endpoint (clears both lists)",
        "show": "print the endpoint's policy",
    }
    for name, what in helps.items():
        command = endpoint.add_parser(name, help=what)
        command.add_argument("--address", required=True, metavar="HOST:PORT", help="the cluster's frontend")
        command.add_argument("--name", required=True, metavar="ENDPOINT", help="the endpoint's name")
        if name in ("allow", "deny"):
            command.add_argument(
                "--caller-namespace", action="append", required=True, metavar="NS", help="a namespace (repeatable)"
            )
        command.add_argument("--output", "-o", choices=["text", "json"], default="text")
        cli_tls.add_client_options(command)


def run(args: argparse.Namespace) -> int:
    problem = cli_tls.configure_client(args)
    if problem is not None:
        print(f"tempyral: error: {problem}", file=sys.stderr)
        return 2
    try:
        answer = asyncio.run(_call(args))
    except grpc.aio.AioRpcError as err:
        print(f"tempyral: error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(json_format.MessageToDict(answer), indent=2))
    else:
        print(
            f"endpoint {answer.endpoint_name} ({answer.endpoint_id}, version {answer.endpoint_version}): "
            f"callable by {access.describe(answer.access)}"
        )
    return 0


async def _call(args: argparse.Namespace) -> npb.NexusEndpointAccessResponse:
    channel = peer_channel(args.address)
    try:
        if args.endpoint_command == "show":
            request = npb.GetNexusEndpointAccessRequest(endpoint_name=args.name)
            return await call(channel, GET_METHOD, request, npb.NexusEndpointAccessResponse, CALL_TIMEOUT_S)
        update = npb.UpdateNexusEndpointAccessRequest(
            endpoint_name=args.name,
            change=CHANGES[args.endpoint_command],
            caller_namespaces=getattr(args, "caller_namespace", None) or [],
        )
        return await call(channel, UPDATE_METHOD, update, npb.NexusEndpointAccessResponse, CALL_TIMEOUT_S)
    finally:
        await channel.close(None)


# ---------------------------------------------------------------------- server flags
def _caller_rps(value: str) -> tuple[tuple[str, str], float]:
    pair, sep, rps = value.rpartition("=")
    endpoint, colon, namespace = pair.partition(":")
    try:
        rate = float(rps)
    except ValueError:
        rate = -1.0
    if not sep or not colon or not endpoint or not namespace or rate < 0:
        raise argparse.ArgumentTypeError(f"expected ENDPOINT:NAMESPACE=RPS with RPS >= 0, got {value!r}")
    return (endpoint, namespace), rate


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Nexus caller limits", "outbound Nexus calls per endpoint and caller namespace")
    group.add_argument(
        "--nexus-caller-rps",
        action="append",
        default=[],
        type=_caller_rps,
        metavar="ENDPOINT:NAMESPACE=RPS",
        help="requests per second that caller namespace NAMESPACE may send to ENDPOINT (repeatable; 0: unlimited); "
        "beside --nexus-endpoint-rps and --nexus-namespace-rps",
    )
