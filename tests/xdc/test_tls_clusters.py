"""Two clusters serving mutual TLS, connected with the `temporal` CLI over TLS: they dial each other with TLS (the
CA of --tls-client-ca-path verifies the peer, their own certificate is their client certificate), and a global
namespace and a workflow's history replicate."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from temporalio.client import Client
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.integration.test_tls import Pki, start_tls_server
from tests.integration.test_tls import pki as pki  # the fixture, re-exported for pytest
from tests.support.clusters import INCREMENT, temporal_cli
from tests.support.servers import ServerProcess, tempyral
from tests.support.workflows import HelloWorkflow, greet

WAIT_S = 30.0


@pytest.fixture(scope="module")
def tls_clusters(pki: Pki) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for i, name in enumerate(["a", "b"]):
            extra = ["--headless", "--cluster-name", name, "--initial-failover-version", str(i + 1)]
            extra += ["--failover-version-increment", str(INCREMENT)]
            extra += ["--tls-cert-path", pki.path("server"), "--tls-key-path", pki.path("server", "key")]
            extra += ["--tls-client-ca-path", pki.ca_path]
            started.append(start_tls_server(tempyral(extra=extra), pki, pki.client))
        yield started
    finally:
        for server in started:
            server.stop()


def cli(pki: Pki, server: ServerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    tls = ["--tls-ca-path", pki.ca_path, "--tls-cert-path", pki.path("client"), "--tls-key-path"]
    return temporal_cli(server.address, *args, *tls, pki.path("client", "key"), check=check)


def wait_for_namespace(pki: Pki, server: ServerProcess, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        described = cli(pki, server, "operator", "namespace", "describe", "-n", name, "-o", "json", check=False)
        if described.returncode == 0 and '"activeClusterName": "a"' in described.stdout:
            return
        assert time.monotonic() < deadline, f"namespace {name} not replicated: {described}"
        time.sleep(0.2)


async def test_clusters_over_mtls_replicate_a_global_namespace(tls_clusters: list[ServerProcess], pki: Pki) -> None:
    a, b = tls_clusters
    for here, there in ((a, b), (b, a)):
        upsert = ["operator", "cluster", "upsert", "--frontend-address", there.address, "--enable-connection"]
        await asyncio.to_thread(cli, pki, here, *upsert)
    ns = new_id("g")
    create = ["operator", "namespace", "create", "-n", ns, "--global", "--active-cluster", "a"]
    await asyncio.to_thread(cli, pki, a, *create, "--cluster", "a", "--cluster", "b")
    await asyncio.to_thread(wait_for_namespace, pki, b, ns)

    tls = TLSConfig(
        server_root_ca_cert=pki.ca.cert_pem, client_cert=pki.client.cert_pem, client_private_key=pki.client.key_pem
    )
    client_a = await Client.connect(a.address, namespace=ns, tls=tls)
    client_b = await Client.connect(b.address, namespace=ns, tls=tls)
    wid, tq = new_id(), new_id("tq")
    async with Worker(client_a, task_queue=tq, workflows=[HelloWorkflow], activities=[greet]):
        assert await within(client_a.execute_workflow(HelloWorkflow.run, "b", id=wid, task_queue=tq)) == "Hello, b!"
    deadline = time.monotonic() + WAIT_S
    while True:  # the history reaches b over the TLS stream
        try:
            if (await client_b.get_workflow_handle(wid).describe()).status == Status.COMPLETED:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "the run did not replicate to b"
        await asyncio.sleep(0.2)

    # tempyral's own commands reach a TLS cluster with the temporal CLI's options
    status = [sys.executable, "-m", "tempyral", "replication", "status", "--address", a.address, "-n", ns]
    client_tls = ["--tls-ca-path", pki.ca_path, "--tls-cert-path", pki.path("client")]
    client_tls += ["--tls-key-path", pki.path("client", "key")]
    done = await asyncio.to_thread(subprocess.run, status + client_tls, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "b" in done.stdout
    refused = await asyncio.to_thread(subprocess.run, status, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout
