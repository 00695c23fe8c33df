"""The TLS options of the `tempyral` command: the server's (`server start-dev|start`), and those of the commands
that call a running cluster (`tempyral namespace|replication ...`, named as the `temporal` CLI's)."""

from __future__ import annotations

import argparse

from tempyral.common import tls


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "TLS",
        "TLS of the gRPC API, the HTTP API (Temporal and Nexus) and the Web UI; certificate files are reloaded "
        "when they change",
    )
    group.add_argument("--tls-cert-path", metavar="PEM", help="the server's certificate (chain), with --tls-key-path")
    group.add_argument("--tls-key-path", metavar="PEM", help="the private key of --tls-cert-path")
    group.add_argument(
        "--tls-client-ca-path", metavar="PEM", help="require client certificates signed by this CA (mutual TLS)"
    )
    group.add_argument(
        "--tls-outbound-cert-path",
        metavar="PEM",
        help="certificate this server presents to the clusters and nodes it calls (default: --tls-cert-path)",
    )
    group.add_argument("--tls-outbound-key-path", metavar="PEM", help="the private key of --tls-outbound-cert-path")
    group.add_argument(
        "--tls-outbound-ca-path",
        metavar="PEM",
        help="CA that verifies the clusters and nodes this server calls (default: --tls-client-ca-path, else the "
        "system's); setting any --tls-outbound-* option (or serving TLS) makes those calls use TLS",
    )
    group.add_argument(
        "--tls-outbound-server-name",
        metavar="NAME",
        help="the name their certificates must carry (default: the host of the address dialled)",
    )
    group.add_argument(
        "--tls-reload-interval",
        type=float,
        default=tls.DEFAULT_RELOAD_INTERVAL_S,
        metavar="SECONDS",
        help="how often the certificate files are checked for changes (default %(default)s)",
    )


def server_settings(args: argparse.Namespace) -> tls.TlsSettings:
    return tls.TlsSettings(
        cert_path=args.tls_cert_path,
        key_path=args.tls_key_path,
        client_ca_path=args.tls_client_ca_path,
        outbound_cert_path=args.tls_outbound_cert_path,
        outbound_key_path=args.tls_outbound_key_path,
        outbound_ca_path=args.tls_outbound_ca_path,
        outbound_server_name=args.tls_outbound_server_name,
        reload_interval_s=args.tls_reload_interval,
    )


def add_client_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS", "how to reach a cluster that serves TLS (as the temporal CLI's options)")
    group.add_argument("--tls", action="store_true", help="use TLS (implied by any other --tls-* option)")
    group.add_argument("--tls-cert-path", metavar="PEM", help="client certificate, for a cluster requiring mTLS")
    group.add_argument("--tls-key-path", metavar="PEM", help="the private key of --tls-cert-path")
    group.add_argument("--tls-ca-path", metavar="PEM", help="CA that verifies the cluster (default: the system's)")
    group.add_argument("--tls-server-name", metavar="NAME", help="the name the cluster's certificate must carry")
    parser.add_argument(
        "--api-key", metavar="TOKEN", help="sent as 'authorization: Bearer TOKEN' (a cluster with --auth-jwks-*)"
    )


def configure_client(args: argparse.Namespace) -> str | None:
    """Outbound TLS for this command's connections; an error message for options that do not fit together."""
    if (args.tls_cert_path is None) != (args.tls_key_path is None):
        return "--tls-cert-path and --tls-key-path go together"
    used = args.tls or any(v is not None for v in (args.tls_cert_path, args.tls_ca_path, args.tls_server_name))
    tls.configure_outbound(
        tls.OutboundTls(args.tls_cert_path, args.tls_key_path, args.tls_ca_path, args.tls_server_name) if used else None
    )
    tls.configure_api_key(args.api_key)
    return None
