"""TLS settings (common/tls.py): what start-up refuses, the outbound defaults, the reload of certificate files, and
the https callback URL a TLS server gives Nexus handlers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tempyral.common import tls
from tempyral.common.errors import StartupError
from tempyral.config import ServerConfig
from tempyral.server import Server
from tests.support.certs import issue, new_ca
from tests.support.servers import free_port


@pytest.fixture
def files(tmp_path: Path) -> Path:
    ca = new_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    issue(ca, "server").write(tmp_path, "server")
    issue(ca, "other").write(tmp_path, "other")
    return tmp_path


def test_start_up_refuses_what_cannot_work(files: Path) -> None:
    cert, key, ca = str(files / "server.pem"), str(files / "server.key"), str(files / "ca.pem")
    cases = [
        (tls.TlsSettings(cert_path=cert), "--tls-cert-path and --tls-key-path go together"),
        (tls.TlsSettings(key_path=key), "--tls-cert-path and --tls-key-path go together"),
        (tls.TlsSettings(client_ca_path=ca), "--tls-client-ca-path needs --tls-cert-path"),
        (tls.TlsSettings(outbound_cert_path=cert), "--tls-outbound-cert-path and --tls-outbound-key-path go together"),
        (tls.TlsSettings(cert_path=cert, key_path=str(files / "missing.key")), "missing.key: No such file"),
        (tls.TlsSettings(cert_path=cert, key_path=str(files / "other.key")), "KEY_VALUES_MISMATCH"),
        (tls.TlsSettings(outbound_ca_path=str(files / "none.pem")), "none.pem: No such file"),
    ]
    for settings, message in cases:
        with pytest.raises(StartupError) as refused:
            settings.check()
        assert message in str(refused.value)
    tls.TlsSettings(cert_path=cert, key_path=key, client_ca_path=ca).check()
    tls.TlsSettings().check()


def test_the_command_says_it_in_one_line() -> None:
    command = [sys.executable, "-m", "tempyral", "server", "start-dev", "--headless", "--tls-cert-path", "x.pem"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "tempyral: error: --tls-cert-path and --tls-key-path go together: give both or neither"
    )


def test_outbound_tls_defaults_to_the_server_s_own_identity_and_client_ca() -> None:
    assert tls.outbound_of(tls.TlsSettings()) is None
    served = tls.TlsSettings(cert_path="s.pem", key_path="s.key", client_ca_path="ca.pem")
    assert tls.outbound_of(served) == tls.OutboundTls("s.pem", "s.key", "ca.pem", None)
    own = tls.TlsSettings(
        cert_path="s.pem",
        key_path="s.key",
        client_ca_path="ca.pem",
        outbound_cert_path="o.pem",
        outbound_key_path="o.key",
        outbound_ca_path="peers.pem",
        outbound_server_name="peer.example",
    )
    assert tls.outbound_of(own) == tls.OutboundTls("o.pem", "o.key", "peers.pem", "peer.example")
    # a cluster that serves plaintext may still dial TLS peers
    assert tls.outbound_of(tls.TlsSettings(outbound_ca_path="peers.pem")) == tls.OutboundTls(
        None, None, "peers.pem", None
    )


def test_reload_takes_valid_files_only_and_hands_them_to_grpc_once(files: Path) -> None:
    settings = tls.TlsSettings(cert_path=str(files / "server.pem"), key_path=str(files / "server.key"))
    certificates = tls.ServerCertificates(settings)
    assert not certificates.reload_if_changed()  # nothing changed
    assert certificates._fetch() is None

    (files / "server.pem").write_bytes(b"garbage")
    assert not certificates.reload_if_changed()
    assert not certificates.reload_if_changed()  # the same bad files are not tried again
    assert certificates._fetch() is None and certificates.reloads == 0

    renewed = issue(new_ca(), "renewed")
    renewed.write(files, "server")
    assert certificates.reload_if_changed()
    assert certificates.reloads == 1
    assert certificates._fetch() is not None  # the next handshake takes the new configuration
    assert certificates._fetch() is None  # and the ones after it keep it


async def test_a_tls_server_gives_handlers_an_https_callback_url(files: Path) -> None:
    settings = tls.TlsSettings(cert_path=str(files / "server.pem"), key_path=str(files / "server.key"))
    server = Server(ServerConfig(port=free_port(), http_port=free_port(), headless=True, tls=settings))
    try:
        server._listen()
        server._set_callback_base_url()
        assert server.nexus_invoker.callback_base_url.startswith("https://127.0.0.1:")
        assert tls.http_scheme() == "https"  # and it calls other clusters' HTTP APIs over TLS
    finally:
        await server.stop(grace=0)
        tls.configure_outbound(None)
