"""The `tempyral` command."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from temporalio.api.enums.v1 import IndexedValueType

from tempyral import SERVER_VERSION, __version__, cli_namespace, cli_nexus, cli_replication, cli_tls
from tempyral.auth.authorizer import AuthSettings
from tempyral.cluster.metadata import ClusterIdentity
from tempyral.common import log_format
from tempyral.common.dynamic_config import DynamicConfigSettings, parse_value_flag
from tempyral.common.errors import StartupError
from tempyral.config import NexusLimits, NodeSettings, ServerConfig
from tempyral.frontend.admission import AdmissionLimits
from tempyral.metrics.http import MetricsSettings
from tempyral.nexus.addresses import AddressRule
from tempyral.persistence.sqlite import check_pragma
from tempyral.server import Server
from tempyral.ui.options import UiOptions, normalize_public_path

ATTRIBUTE_TYPES = {
    "text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "keywordlist": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


def _search_attribute(value: str) -> tuple[str, int]:
    name, sep, kind = value.partition("=")
    if not sep or not name or kind.lower() not in ATTRIBUTE_TYPES:
        raise argparse.ArgumentTypeError(
            f"expected KEY=TYPE with TYPE one of {', '.join(ATTRIBUTE_TYPES)}, got {value!r}"
        )
    return name, ATTRIBUTE_TYPES[kind.lower()]


def _pragma(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid pragma: missing expected '=' in {value!r}")
    try:
        check_pragma(name.strip(), setting.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return name.strip(), setting.strip()


def _flag(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempyral", description="A Temporal-compatible server.")
    parser.add_argument(
        "--version", action="version", version=f"tempyral {__version__} (Temporal server {SERVER_VERSION} API)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="run the server").add_subparsers(dest="server_command", required=True)
    dev = server.add_parser("start-dev", help="start a development server on embedded SQLite")
    _add_server_options(dev)
    dev.add_argument(
        "--db",
        default=None,
        metavar="URL|FILE",
        help="database: postgresql://USER@HOST:PORT/DB or a SQLite file (default: in-memory SQLite, lost at exit)",
    )
    node = server.add_parser(
        "start", help="start one node of a cluster; nodes started with the same PostgreSQL --db form one cluster"
    )
    _add_server_options(node)
    node.add_argument(
        "--db", required=True, metavar="URL|FILE", help="database: postgresql://USER@HOST:PORT/DB or a SQLite file"
    )
    cli_namespace.add_commands(commands)
    cli_replication.add_commands(commands)
    cli_nexus.add_commands(commands)
    return parser


def _add_server_options(dev: argparse.ArgumentParser) -> None:
    dev.add_argument("--port", "-p", type=int, default=7233, help="gRPC port (default 7233)")
    dev.add_argument("--ip", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    dev.add_argument(
        "--http-port", type=int, default=None, help="port of the Nexus HTTP API (default: gRPC port + 10; 0: any free)"
    )
    dev.add_argument(
        "--ui-port", type=int, default=None, help="port of the Web UI (default: gRPC port + 1000; 0: any free)"
    )
    dev.add_argument(
        "--headless",
        nargs="?",
        const=True,
        default=False,
        type=_flag,
        metavar="true|false",
        help="do not serve the Web UI (--headless=false, as the reference accepts, keeps it)",
    )
    dev.add_argument(
        "--db-filename", "-f", default=None, help="SQLite file to persist to (default: in-memory, lost at exit)"
    )
    dev.add_argument("--namespace", "-n", action="append", default=[], help="namespace to create at start (repeatable)")
    dev.add_argument(
        "--search-attribute",
        action="append",
        default=[],
        type=_search_attribute,
        help="custom search attribute KEY=TYPE to register (repeatable)",
    )
    dev.add_argument("--log-level", default="info", choices=log_format.LEVELS, help="never: no log at all")
    dev.add_argument("--shards", type=int, default=4, help="number of history shards (default 4)")
    dev.add_argument(
        "--history-cache-mb",
        type=int,
        default=128,
        metavar="MB",
        help="memory for cached workflow state and histories (default 128); the rest is read from the database",
    )
    dev.add_argument(
        "--sqlite-sync", default="NORMAL", choices=["OFF", "NORMAL", "FULL"], help="SQLite synchronous mode"
    )
    dev.add_argument(
        "--sqlite-pragma",
        action="append",
        default=[],
        type=_pragma,
        metavar="PRAGMA=VALUE",
        help="SQLite pragma for every connection, as the reference's start-dev (repeatable)",
    )
    _add_cluster_options(dev)
    _add_nodes_options(dev)
    _add_nexus_options(dev)
    cli_nexus.add_server_options(dev)
    _add_admission_options(dev)
    cli_tls.add_server_options(dev)
    _add_auth_options(dev)
    _add_observability_options(dev)
    _add_dynamic_config_options(dev)


def _dynamic_value(value: str) -> tuple[str, object]:
    try:
        return parse_value_flag(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _add_dynamic_config_options(parser: argparse.ArgumentParser) -> None:
    """Dynamic config and the remaining flags of the reference's start-dev (UI placement, --log-config)."""
    group = parser.add_argument_group(
        "Dynamic config",
        "settings under the reference's key names, changeable without a restart; where a key is given, it wins "
        "over the flag that sets the same thing (see README)",
    )
    group.add_argument(
        "--dynamic-config-value",
        action="append",
        default=[],
        type=_dynamic_value,
        metavar="KEY=JSON",
        help="dynamic config value, as the reference's start-dev: KEY=JSON, e.g. limit.blobSize.error=1048576 or "
        "KEY='\"string\"' (repeatable; wins over the file for that key)",
    )
    group.add_argument(
        "--dynamic-config-path",
        default=None,
        metavar="FILE",
        help="YAML file of the reference's format (key: [{value, constraints}]), reloaded when it changes",
    )
    group.add_argument(
        "--dynamic-config-poll-interval",
        type=float,
        default=DynamicConfigSettings().poll_interval_s,
        metavar="SECONDS",
        help="how often the file is looked at (default %(default)s, the reference's)",
    )
    ui = parser.add_argument_group("Web UI")
    ui.add_argument("--ui-ip", default=None, help="IP address bound to the Web UI (default: the same as --ip)")
    ui.add_argument(
        "--ui-public-path", default="/", metavar="/PATH", help="the public base path of the Web UI (default /)"
    )
    ui.add_argument("--ui-codec-endpoint", default="", metavar="URL", help="the remote codec endpoint the UI calls")
    parser.add_argument(
        "--log-config", action="store_true", help="log the server's effective configuration at start (stderr)"
    )


def _add_nodes_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Nodes", "several server processes sharing one PostgreSQL database")
    group.add_argument(
        "--node-name", default=None, help="this node's name, unique among the cluster's live nodes (default IP:PORT)"
    )
    group.add_argument(
        "--membership-timeout",
        type=float,
        default=NodeSettings().member_timeout_s,
        metavar="SECONDS",
        help="a node silent this long is taken for dead and its shards move (default %(default)s)",
    )
    group.add_argument(
        "--db-connect-timeout",
        type=float,
        default=NodeSettings().connect_timeout_s,
        metavar="SECONDS",
        help="how long a start keeps trying to reach the database before it gives up (default %(default)s)",
    )


REDIRECTION_POLICIES = ("noop", "selected-apis-forwarding", "all-apis-forwarding")


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Cluster", "global namespaces over several clusters; stored in the database on first start"
    )
    group.add_argument("--cluster-name", default=None, help="this cluster's name (default active)")
    group.add_argument(
        "--initial-failover-version",
        type=int,
        default=None,
        metavar="N",
        help="the failover versions this cluster owns are N modulo the increment (default 1)",
    )
    group.add_argument(
        "--failover-version-increment",
        type=int,
        default=None,
        metavar="N",
        help="the same on every connected cluster (default 10)",
    )
    group.add_argument(
        "--dc-redirection-policy",
        default="noop",
        choices=REDIRECTION_POLICIES,
        help="which calls a standby cluster forwards to the namespace's active cluster (default noop)",
    )


def _add_admission_options(parser: argparse.ArgumentParser) -> None:
    defaults = AdmissionLimits()
    group = parser.add_argument_group("Overload", "beyond these, requests get RESOURCE_EXHAUSTED, which clients retry")
    group.add_argument(
        "--max-inflight-requests",
        type=int,
        default=defaults.max_requests,
        metavar="N",
        help=f"client requests worked on at once, long polls aside (default {defaults.max_requests})",
    )
    group.add_argument(
        "--max-inflight-mb",
        type=int,
        default=defaults.max_bytes // (1024 * 1024),
        metavar="MB",
        help=f"their size together (default {defaults.max_bytes // (1024 * 1024)})",
    )


def _add_auth_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Authorization",
        "JWT bearer tokens, as the reference's default claim mapper and authorizer (off without a JWKS source)",
    )
    group.add_argument(
        "--auth-jwks-path",
        default=None,
        metavar="FILE",
        help="JWKS file of the keys tokens are signed with (re-read on change)",
    )
    group.add_argument(
        "--auth-jwks-url",
        default=None,
        metavar="URL",
        help="JWKS URL of those keys (fetched at start, then every minute and on an unknown key id)",
    )
    group.add_argument(
        "--auth-permissions-claim",
        default="permissions",
        metavar="NAME",
        help="the claim listing NAMESPACE:ROLE permissions (default %(default)s)",
    )


def auth_settings(args: argparse.Namespace) -> AuthSettings:
    return AuthSettings(args.auth_jwks_path, args.auth_jwks_url, args.auth_permissions_claim)


def _add_observability_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Observability", "Prometheus metrics and the log's format")
    group.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of GET /metrics (Prometheus text), on --ip; default any free port, printed at start, as the "
        "reference's start-dev; -1: none (the HTTP API port serves /metrics too)",
    )
    group.add_argument(
        "--log-format",
        default="pretty",
        choices=log_format.FORMATS,
        help="json: one object per line (time, level, logger, msg, fields); pretty (or text, the reference's "
        "name): one line of text (default pretty)",
    )


def _allowed_callers(value: str) -> tuple[str, frozenset[str]]:
    endpoint, sep, namespaces = value.partition("=")
    callers = frozenset(n.strip() for n in namespaces.split(",") if n.strip())
    if not sep or not endpoint or not callers:
        raise argparse.ArgumentTypeError(f"expected ENDPOINT=NAMESPACE[,NAMESPACE...], got {value!r}")
    return endpoint, callers


def _allowed_address(value: str) -> AddressRule:
    pattern, sep, flag = value.partition(",")
    if not pattern or (sep and flag != "allow-insecure"):
        raise argparse.ArgumentTypeError(
            f"expected HOST[:PORT] pattern, optionally followed by ,allow-insecure, got {value!r}"
        )
    return AddressRule(pattern, allow_insecure=bool(sep))


def _add_nexus_options(parser: argparse.ArgumentParser) -> None:
    defaults = NexusLimits()
    group = parser.add_argument_group("Nexus", "outbound Nexus calls (defaults are the reference server's)")
    group.add_argument(
        "--callback-allowed-address",
        action="append",
        default=[],
        type=_allowed_address,
        metavar="PATTERN[,allow-insecure]",
        help="host[:port] ('*' matches anything) that completion callbacks and external endpoints may call, "
        "https only unless ,allow-insecure (repeatable; default: only tempyral's own callback URL)",
    )
    group.add_argument(
        "--nexus-allow",
        action="append",
        default=[],
        type=_allowed_callers,
        metavar="ENDPOINT=NS[,NS...]",
        help="at start, and when an endpoint of that name is created, make its access policy: only these caller "
        "namespaces (repeatable; as `tempyral nexus endpoint allow`, which manages the policy of a running server)",
    )
    group.add_argument("--nexus-request-timeout", type=float, default=defaults.request_timeout_s, metavar="SECONDS")
    group.add_argument("--nexus-retry-initial", type=float, default=defaults.retry_initial_s, metavar="SECONDS")
    group.add_argument("--nexus-retry-max", type=float, default=defaults.retry_max_s, metavar="SECONDS")
    group.add_argument(
        "--nexus-breaker-failures",
        type=int,
        default=defaults.breaker_failures,
        help="the circuit breaker of a destination opens after more than this many consecutive failures",
    )
    group.add_argument("--nexus-breaker-open", type=float, default=defaults.breaker_open_s, metavar="SECONDS")
    group.add_argument(
        "--nexus-endpoint-rps", type=float, default=0.0, help="requests per second per endpoint (0: unlimited)"
    )
    group.add_argument(
        "--nexus-namespace-rps", type=float, default=0.0, help="requests per second per caller namespace (0: unlimited)"
    )
    group.add_argument("--nexus-max-pending", type=int, default=defaults.max_pending_operations)


def nexus_limits(args: argparse.Namespace) -> NexusLimits:
    return NexusLimits(
        request_timeout_s=args.nexus_request_timeout,
        retry_initial_s=args.nexus_retry_initial,
        retry_max_s=args.nexus_retry_max,
        breaker_failures=args.nexus_breaker_failures,
        breaker_open_s=args.nexus_breaker_open,
        endpoint_rps=args.nexus_endpoint_rps,
        namespace_rps=args.nexus_namespace_rps,
        max_pending_operations=args.nexus_max_pending,
        allowed_callers=dict(args.nexus_allow),
        caller_rps=dict(args.nexus_caller_rps),
    )


async def _serve(config: ServerConfig) -> None:
    server = Server(config)
    await server.start()
    print(f"tempyral server listening on {server.address} (HTTP API: {server.http_address})", flush=True)
    if server.ui_address:
        print(f"Web UI at {server.http_scheme}://{server.ui_address}{config.ui.public_path}", flush=True)
    if server.metrics_endpoint.address:
        print(f"Metrics at http://{server.metrics_endpoint.address}/metrics", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "namespace":
        sys.exit(cli_namespace.run(args))
    if args.command == "replication":
        sys.exit(cli_replication.run(args))
    if args.command == "nexus":
        sys.exit(cli_nexus.run(args))
    log_format.configure(args.log_level, args.log_format)
    config = ServerConfig(
        ip=args.ip,
        port=args.port,
        http_port=args.http_port,
        ui_port=args.ui_port,
        headless=args.headless,
        db_filename=args.db_filename,
        db=args.db,
        nodes=NodeSettings(
            name=args.node_name, member_timeout_s=args.membership_timeout, connect_timeout_s=args.db_connect_timeout
        ),
        namespaces=args.namespace,
        search_attributes=dict(args.search_attribute),
        log_level=args.log_level,
        num_shards=args.shards,
        history_cache_bytes=args.history_cache_mb * 1024 * 1024,
        sqlite_synchronous=args.sqlite_sync,
        sqlite_pragmas=dict(args.sqlite_pragma),
        nexus=nexus_limits(args),
        callback_allowed_addresses=args.callback_allowed_address,
        admission=AdmissionLimits(args.max_inflight_requests, args.max_inflight_mb * 1024 * 1024),
        cluster=ClusterIdentity(args.cluster_name, args.initial_failover_version, args.failover_version_increment),
        dc_redirection_policy=args.dc_redirection_policy,
        tls=cli_tls.server_settings(args),
        auth=auth_settings(args),
        metrics=MetricsSettings(args.metrics_port),
        dynamic_config=DynamicConfigSettings(
            tuple(args.dynamic_config_value), args.dynamic_config_path, args.dynamic_config_poll_interval
        ),
        ui=UiOptions(args.ui_ip, normalize_public_path(args.ui_public_path), args.ui_codec_endpoint),
        log_config=args.log_config,
    )
    try:
        asyncio.run(_serve(config))
    except StartupError as err:
        # Something the operator must fix: say what, in one line, without a traceback.
        print(f"tempyral: error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
