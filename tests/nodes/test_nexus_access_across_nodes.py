"""An endpoint access policy set through one node of a cluster is the policy on the others (it is stored with the
endpoint: cluster/config_watch.py brings it), and a change made through any node is seen on all."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client

from tests.support.nexus_access import endpoint_cli
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="function")
SEEN_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


async def policy_seen(node: ServerProcess, endpoint: str, expected: dict[str, object]) -> dict[str, object]:
    """The policy `show` gives on `node`, once it is `expected` (bounded wait)."""
    deadline = time.monotonic() + SEEN_WITHIN_S
    while True:
        out = endpoint_cli(node, "show", "--name", endpoint, "-o", "json")
        shown: dict[str, object] = json.loads(out.stdout) if out.returncode == 0 else {}
        if shown.get("access", {}) == expected:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{endpoint} on {node.address}: {shown or out.stderr}, not {expected}")
        await asyncio.sleep(0.1)


async def test_a_policy_set_on_one_node_is_the_policy_on_the_other(pg: PostgresServer) -> None:
    with running_nodes(pg.create_database(), ["n1", "n2"]) as (n1, n2):
        client = await Client.connect(n1.address)
        endpoint = f"ep-{uuid.uuid4().hex[:10]}"
        target = EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue="q"))
        await client.operator_service.create_nexus_endpoint(
            CreateNexusEndpointRequest(spec=EndpointSpec(name=endpoint, target=target))
        )
        out = endpoint_cli(n1, "allow", "--name", endpoint, "--caller-namespace", "default")
        assert out.returncode == 0, out.stderr
        shown = await policy_seen(n2, endpoint, {"restricted": True, "allowed": ["default"]})
        assert shown["endpointVersion"] == "2"
        out = endpoint_cli(n2, "open", "--name", endpoint)
        assert out.returncode == 0, out.stderr
        shown = await policy_seen(n1, endpoint, {})
        assert shown["endpointVersion"] == "3"
