"""Two nodes of one cluster serving mutual TLS dial each other with TLS (their own certificate as client certificate,
the client CA verifying the other): a worker on one node runs the workflows whose shards the other node owns."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from tempyral.history.executions import shard_id_for
from tests.conftest import within
from tests.integration.test_tls import Pki, start_tls_server
from tests.integration.test_tls import pki as pki  # the fixture, re-exported for pytest
from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support.nodes import postgres, tempyral_node
from tests.support.workflows import HelloWorkflow, greet

pytestmark = pytest.mark.asyncio(loop_scope="function")
SHARDS = 8


async def test_nodes_over_mtls_pass_work_to_each_other(pki: Pki) -> None:
    tls_flags = ["--tls-cert-path", pki.path("server"), "--tls-key-path", pki.path("server", "key")]
    tls_flags += ["--tls-client-ca-path", pki.ca_path]
    with postgres() as pg:
        url = pg.create_database()
        nodes = []
        try:
            for name in ("t1", "t2"):
                node = tempyral_node(url, name, tls_flags, shards=SHARDS)
                node.wait_until_serving = False  # its wait dials plaintext: start_tls_server waits over TLS
                nodes.append(start_tls_server(node, pki, pki.client))
            database = url.rsplit("/", 1)[1]
            await wait_for(lambda: set(shard_owners(pg, database).values()) == {"t1", "t2"}, "shards spread", 30)
            owners = shard_owners(pg, database)
            tls = TLSConfig(
                server_root_ca_cert=pki.ca.cert_pem,
                client_cert=pki.client.cert_pem,
                client_private_key=pki.client.key_pem,
            )
            client = await Client.connect(nodes[0].address, tls=tls)
            namespace_id = (
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
            ).namespace_info.id
            # four workflows on each node's shards; the worker polls t1 only
            per_node: dict[str, list[str]] = {"t1": [], "t2": []}
            while min(len(v) for v in per_node.values()) < 4:
                wid = f"wf-{uuid.uuid4().hex}"
                per_node[owners[shard_id_for(namespace_id, wid, SHARDS)]].append(wid)
            ids = per_node["t1"][:4] + per_node["t2"][:4]
            queue = f"tq-{uuid.uuid4().hex[:8]}"
            async with Worker(client, task_queue=queue, workflows=[HelloWorkflow], activities=[greet]):
                handles = [await client.start_workflow(HelloWorkflow.run, wid, id=wid, task_queue=queue) for wid in ids]
                assert [await within(h.result()) for h in handles] == [f"Hello, {wid}!" for wid in ids]
        finally:
            for node in nodes:
                node.stop()
