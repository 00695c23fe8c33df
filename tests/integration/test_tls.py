"""TLS and mutual TLS on every port (gRPC, the HTTP API, the Web UI) with certificates generated here: the SDK and
the `temporal` CLI over TLS, plaintext and unsigned clients refused, certificates replaced without a restart."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from cryptography import x509
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from tempyral.common import tls
from tests.conftest import new_id, within
from tests.support.certs import Issued, issue, new_ca
from tests.support.clusters import temporal_cli
from tests.support.servers import ServerProcess, tempyral
from tests.support.workflows import HelloWorkflow, greet

GET_SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
WAIT_S = 30.0


@dataclass
class Pki:
    dir: Path
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued  # signed by a CA the servers do not trust

    @property
    def ca_path(self) -> str:
        return str(self.dir / "ca.pem")

    def path(self, name: str, ext: str = "pem") -> str:
        return str(self.dir / f"{name}.{ext}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = new_ca(), new_ca("someone else's CA")
    pki = Pki(directory, ca, issue(ca, "tempyral"), issue(ca, "client", server=False), issue(other_ca, "stranger"))
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    pki.server.write(directory, "server")
    pki.client.write(directory, "client")
    pki.stranger.write(directory, "stranger")
    return pki


def grpc_call(address: str, credentials: grpc.ChannelCredentials | None) -> GetSystemInfoResponse:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        call = channel.unary_unary(
            GET_SYSTEM_INFO,
            request_serializer=GetSystemInfoRequest.SerializeToString,
            response_deserializer=GetSystemInfoResponse.FromString,
        )
        response: GetSystemInfoResponse = call(GetSystemInfoRequest(), timeout=10)
        return response


def credentials(pki: Pki, client: Issued | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        pki.ca.cert_pem, client.key_pem if client else None, client.cert_pem if client else None
    )


def start_tls_server(server: ServerProcess, pki: Pki, client: Issued | None) -> ServerProcess:
    """Started, and answering over TLS (the shared helper waits with a plaintext channel)."""
    server.start()
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            grpc_call(server.address, credentials(pki, client))
            return server
        except grpc.RpcError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """TLS without client certificates, on copies of the files the rotation test replaces."""
    own = tmp_path_factory.mktemp("rotated")
    pki.server.write(own, "server")
    extra = ["--headless", "--tls-cert-path", str(own / "server.pem"), "--tls-key-path", str(own / "server.key")]
    server = start_tls_server(
        tempyral(extra=[*extra, "--tls-reload-interval", "0.2", "--log-level", "info"]), pki, None
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Iterator[ServerProcess]:
    extra = ["--tls-cert-path", pki.path("server"), "--tls-key-path", pki.path("server", "key")]
    server = start_tls_server(tempyral(extra=[*extra, "--tls-client-ca-path", pki.ca_path]), pki, pki.client)
    yield server
    server.stop()


async def run_hello(client: Client) -> None:
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, workflows=[HelloWorkflow], activities=[greet]):
        result = await within(client.execute_workflow(HelloWorkflow.run, "TLS", id=new_id(), task_queue=tq))
    assert result == "Hello, TLS!"


# ------------------------------------------------------------------------------------------- TLS


async def test_sdk_runs_a_workflow_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    client = await Client.connect(tls_server.address, tls=TLSConfig(server_root_ca_cert=pki.ca.cert_pem))
    await run_hello(client)


def test_plaintext_clients_are_refused(tls_server: ServerProcess, pki: Pki) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        grpc_call(tls_server.address, None)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # a client that does not trust the server's CA is refused too (by itself)
    with pytest.raises(grpc.RpcError):
        grpc_call(tls_server.address, grpc.ssl_channel_credentials(new_ca().cert_pem))


def test_temporal_cli_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    listed = temporal_cli(tls_server.address, "operator", "namespace", "list", "--tls-ca-path", pki.ca_path)
    assert "default" in listed.stdout
    plain = temporal_cli(tls_server.address, "operator", "namespace", "list", check=False)
    assert plain.returncode != 0


def peer_serial(port: int, pki: Pki, alpn: str | None) -> int:
    """The serial number of the certificate a new TLS connection to `port` is shown."""
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.decode())
    if alpn:
        context.set_alpn_protocols([alpn])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def replace(path: Path, data: bytes) -> None:
    """As an operator's tooling replaces a file: written aside, renamed over it."""
    aside = path.with_suffix(f".{uuid.uuid4().hex}")
    aside.write_bytes(data)
    os.replace(aside, path)


def wait_for(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        time.sleep(0.1)


def test_certificate_files_are_reloaded_without_a_restart(tls_server: ServerProcess, pki: Pki) -> None:
    cert_path = Path(tls_server.command[tls_server.command.index("--tls-cert-path") + 1])
    key_path = Path(tls_server.command[tls_server.command.index("--tls-key-path") + 1])
    http_port = tls_server.http_port
    assert http_port is not None
    assert peer_serial(tls_server.port, pki, "h2") == pki.server.serial
    assert peer_serial(http_port, pki, None) == pki.server.serial
    log_start = Path(tls_server.log_path).stat().st_size

    def logged_since() -> str:  # the log file may hold an earlier run's lines (it is named by port)
        with open(tls_server.log_path, "rb") as log:
            log.seek(log_start)
            return log.read().decode(errors="replace")

    # Files that cannot be used are logged; the server keeps its certificate and keeps serving.
    replace(cert_path, b"not a certificate")
    wait_for(lambda: "cannot be used, keeping the current ones" in logged_since(), "the refusal logged")
    assert peer_serial(tls_server.port, pki, "h2") == pki.server.serial
    grpc_call(tls_server.address, credentials(pki, None))

    renewed = issue(pki.ca, "tempyral renewed")
    replace(key_path, renewed.key_pem)
    replace(cert_path, renewed.cert_pem)
    wait_for(lambda: peer_serial(tls_server.port, pki, "h2") == renewed.serial, "gRPC shows the new certificate")
    wait_for(lambda: peer_serial(http_port, pki, None) == renewed.serial, "the HTTP API shows it")
    assert "TLS certificate reloaded" in logged_since()
    grpc_call(tls_server.address, credentials(pki, None))  # and serves with it


# ------------------------------------------------------------------------------------------- mTLS


def test_mtls_refuses_clients_without_a_certificate_or_with_a_stranger_s(mtls_server: ServerProcess, pki: Pki) -> None:
    assert grpc_call(mtls_server.address, credentials(pki, pki.client)).server_version
    for client in (None, pki.stranger):
        with pytest.raises(grpc.RpcError) as refused:
            grpc_call(mtls_server.address, credentials(pki, client))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError):
        grpc_call(mtls_server.address, None)


async def test_sdk_and_cli_with_a_client_certificate(mtls_server: ServerProcess, pki: Pki) -> None:
    tls = TLSConfig(
        server_root_ca_cert=pki.ca.cert_pem, client_cert=pki.client.cert_pem, client_private_key=pki.client.key_pem
    )
    await run_hello(await Client.connect(mtls_server.address, tls=tls))
    with pytest.raises(RuntimeError):  # no certificate: the handshake fails
        await within(Client.connect(mtls_server.address, tls=TLSConfig(server_root_ca_cert=pki.ca.cert_pem)))
    args = ["operator", "namespace", "describe", "-n", "default", "--tls-ca-path", pki.ca_path]
    described = await asyncio.to_thread(
        temporal_cli,
        mtls_server.address,
        *args,
        "--tls-cert-path",
        pki.path("client"),
        "--tls-key-path",
        pki.path("client", "key"),
    )
    assert "default" in described.stdout
    without = await asyncio.to_thread(temporal_cli, mtls_server.address, *args, check=False)
    assert without.returncode != 0


def client_context(pki: Pki, client: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.decode())
    if client is not None:
        context.load_cert_chain(pki.path("client"), pki.path("client", "key"))
    return context


async def test_http_api_and_web_ui_over_mtls(mtls_server: ServerProcess, pki: Pki) -> None:
    http = f"127.0.0.1:{mtls_server.http_port}"
    ui = f"127.0.0.1:{mtls_server.ui_port}"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        good = client_context(pki, pki.client)
        async with session.get(f"https://{http}/api/v1/namespaces/default", ssl=good) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["namespaceInfo"]["name"] == "default"
        async with session.get(f"https://{ui}/", ssl=good) as resp:
            assert resp.status == 200
        async with session.get(f"https://{ui}/api/v1/namespaces/default", ssl=good) as resp:
            assert resp.status == 200
        for url in (f"https://{http}/api/v1/namespaces", f"https://{ui}/"):
            with pytest.raises(aiohttp.ClientError):  # no client certificate
                async with session.get(url, ssl=client_context(pki, None)):
                    pass
        for url in (f"http://{http}/api/v1/namespaces", f"http://{ui}/"):
            with pytest.raises(aiohttp.ClientError):  # plaintext
                async with session.get(url):
                    pass


# ------------------------------------------------------------------------------------------- dialling


async def test_outbound_channels_and_http_calls_verify_the_server_and_its_name(
    tls_server: ServerProcess, pki: Pki
) -> None:
    """What the server uses to dial clusters and nodes (common/tls.py), against a TLS server: the CA verifies it,
    the name override is checked against its certificate, and plaintext settings do not reach it."""

    async def system_info(channel: grpc.aio.Channel) -> GetSystemInfoResponse:
        async with channel:
            call = channel.unary_unary(
                GET_SYSTEM_INFO,
                request_serializer=GetSystemInfoRequest.SerializeToString,
                response_deserializer=GetSystemInfoResponse.FromString,
            )
            response: GetSystemInfoResponse = await call(GetSystemInfoRequest(), timeout=10)
            return response

    url = f"{{scheme}}://127.0.0.1:{tls_server.http_port}/api/v1/namespaces/default"
    try:
        for name in (None, "localhost"):
            tls.configure_outbound(tls.OutboundTls(ca_path=pki.ca_path, server_name=name))
            assert (await system_info(tls.channel(tls_server.address, []))).server_version
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    url.format(scheme=tls.http_scheme()),
                    ssl=tls.cluster_ssl(),
                    server_hostname=tls.cluster_server_hostname(),
                ) as resp,
            ):
                assert resp.status == 200
        tls.configure_outbound(tls.OutboundTls(ca_path=pki.ca_path, server_name="not-this-server.example"))
        with pytest.raises(grpc.aio.AioRpcError):
            await system_info(tls.channel(tls_server.address, []))
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.get(
                    url.format(scheme="https"), ssl=tls.cluster_ssl(), server_hostname=tls.cluster_server_hostname()
                ):
                    pass
        tls.configure_outbound(None)
        with pytest.raises(grpc.aio.AioRpcError):
            await system_info(tls.channel(tls_server.address, []))
    finally:
        tls.configure_outbound(None)
