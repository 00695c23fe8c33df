"""Nexus across clusters (issue 13 part 5, ../shared/XDC.md §7): the endpoint registry replicated to every
connected cluster, a caller in a namespace active on one cluster reaching a handler namespace active on the other,
and failovers of either namespace while an operation is in flight losing no completion. The clusters run with the
default --dc-redirection-policy (noop): Nexus traffic between clusters does not depend on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from tempyral.proto import nexus_replication_pb2 as npb
from tests.conftest import new_id, within
from tests.support.clusters import Cluster, connect, eventually, temporal_cli
from tests.xdc.conftest import create_global_namespace, events, failover, wait_for_namespace, wait_until
from tests.xdc.nexus_workflows import JobsHandler, JobWorkflow, Order, OrderWorkflow, job_workflow_id

RESULT_S = 60.0


# ---------------------------------------------------------------------- endpoints with the CLI
def create_endpoint(cluster: Cluster, name: str, namespace: str, task_queue: str) -> None:
    temporal_cli(
        cluster.address,
        *("operator", "nexus", "endpoint", "create", "--name", name),
        *("--target-namespace", namespace, "--target-task-queue", task_queue),
    )


def get_endpoint(cluster: Cluster, name: str) -> dict[str, Any] | None:
    result = temporal_cli(
        cluster.address, "operator", "nexus", "endpoint", "get", "--name", name, "-o", "json", check=False
    )
    if result.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def endpoint_names(cluster: Cluster) -> list[str]:
    result = temporal_cli(cluster.address, "operator", "nexus", "endpoint", "list", "-o", "json")
    listed = json.loads(result.stdout) if result.stdout.strip() else []
    return sorted(e["spec"]["name"] for e in listed)


def wait_for_endpoint(cluster: Cluster, name: str, version: int = 1) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        endpoint = get_endpoint(cluster, name)
        return endpoint if endpoint is not None and int(endpoint["version"]) == version else None

    return eventually(found, timeout=30, what=f"endpoint {name} at version {version} on {cluster.name}")


# ---------------------------------------------------------------------- workers and handles
@asynccontextmanager
async def workers(
    clusters: list[Cluster], caller_ns: str, handler_ns: str, queues: tuple[str, str]
) -> AsyncIterator[dict[tuple[str, str], Client]]:
    """A caller worker and a handler worker on every cluster (those polling a standby get nothing but queries);
    the clients by (cluster, namespace)."""
    caller_tq, handler_tq = queues
    clients: dict[tuple[str, str], Client] = {}
    async with AsyncExitStack() as stack:
        for c in clusters:
            for ns in (caller_ns, handler_ns):
                clients[(c.name, ns)] = await Client.connect(c.address, namespace=ns)
            await stack.enter_async_context(
                Worker(clients[(c.name, caller_ns)], task_queue=caller_tq, workflows=[OrderWorkflow])
            )
            await stack.enter_async_context(
                Worker(
                    clients[(c.name, handler_ns)],
                    task_queue=handler_tq,
                    workflows=[JobWorkflow],
                    nexus_service_handlers=[JobsHandler()],
                )
            )
        yield clients


async def operation_started(client: Client, workflow_id: str) -> bool:
    try:
        return any(name == "EVENT_TYPE_NEXUS_OPERATION_STARTED" for _, name, _ in await events(client, workflow_id))
    except RPCError:
        return False


async def finish_job(client: Client, name: str) -> None:
    """Signal the handler workflow once it is there (it is started by the handler's worker)."""
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(job_workflow_id(name))

    async def signalled() -> bool:
        try:
            await handle.signal(JobWorkflow.finish)
            return True
        except RPCError:
            return False

    await wait_until(signalled, timeout=30, what=f"the handler workflow of {name} took a signal")


def namespaces(clusters: list[Cluster], caller_active: str, handler_active: str) -> tuple[str, str]:
    return create_global_namespace(clusters, active=caller_active), create_global_namespace(
        clusters, active=handler_active
    )


# ---------------------------------------------------------------------- the registry
async def test_endpoints_created_updated_and_deleted_on_one_cluster_are_everywhere(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    name = new_id("ep").replace("_", "-")
    create_endpoint(a, name, ns, "q1")
    created = get_endpoint(a, name)
    assert created is not None
    on_b = wait_for_endpoint(b, name)
    assert on_b["id"] == created["id"]  # one endpoint, one id everywhere
    assert on_b["spec"]["target"]["worker"] == {"namespace": ns, "taskQueue": "q1"}

    # changed on b, seen on a
    temporal_cli(
        b.address,
        *("operator", "nexus", "endpoint", "update", "--name", name, "--target-task-queue", "q2"),
    )
    assert wait_for_endpoint(a, name, version=2)["spec"]["target"]["worker"]["taskQueue"] == "q2"

    # deleted on a, gone on b; created again on b (a new endpoint), seen on a and not the old one
    temporal_cli(a.address, "operator", "nexus", "endpoint", "delete", "--name", name)
    eventually(lambda: get_endpoint(b, name) is None, timeout=30, what="the deletion reached b")
    create_endpoint(b, name, ns, "q3")
    again = wait_for_endpoint(a, name)
    assert again["id"] != created["id"]
    assert again["spec"]["target"]["worker"]["taskQueue"] == "q3"


async def test_one_name_created_on_two_clusters_apart_settles_on_the_first(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    name = new_id("dup").replace("_", "-")
    connect(a, b, enable=False)
    try:
        create_endpoint(a, name, ns, "first")
        create_endpoint(b, name, ns, "second")
    finally:
        connect(a, b)
    first = get_endpoint(a, name)
    assert first is not None

    def settled() -> bool:
        on_a, on_b = get_endpoint(a, name), get_endpoint(b, name)
        return on_a is not None and on_b is not None and on_a["id"] == on_b["id"] == first["id"]

    eventually(settled, timeout=30, what="both clusters keep the endpoint created first")
    assert name in endpoint_names(b) and endpoint_names(a).count(name) == endpoint_names(b).count(name) == 1


async def test_only_connected_clusters_get_the_endpoint_changes(clusters: list[Cluster]) -> None:
    a, _ = clusters
    async with grpc.aio.insecure_channel(a.address) as channel:
        changes = channel.unary_unary(
            "/tempyral.internal.v1.NexusEndpointReplicationService/GetNexusEndpointChanges",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=npb.GetNexusEndpointChangesResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await changes(npb.GetNexusEndpointChangesRequest(cluster_name="stranger"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        answer = await changes(npb.GetNexusEndpointChangesRequest(cluster_name="b"), timeout=10)
        assert answer.last_sequence >= len(answer.endpoints)


# ---------------------------------------------------------------------- calls across clusters
async def test_a_caller_on_one_cluster_reaches_a_handler_active_on_the_other(clusters: list[Cluster]) -> None:
    a, b = clusters
    caller_ns, handler_ns = namespaces(clusters, caller_active="a", handler_active="b")
    queues = (new_id("caller"), new_id("handler"))
    endpoint = new_id("jobs").replace("_", "-")
    create_endpoint(b, endpoint, handler_ns, queues[1])  # made on the handler's side, used on the caller's
    wait_for_endpoint(a, endpoint)
    async with workers(clusters, caller_ns, handler_ns, queues) as clients:
        caller = clients[("a", caller_ns)]
        echoed = await within(
            caller.execute_workflow(OrderWorkflow.run, Order(endpoint, "echo", "x"), id=new_id(), task_queue=queues[0]),
            RESULT_S,
        )
        assert echoed == "echo x"
        job = new_id("j")
        handle = await caller.start_workflow(
            OrderWorkflow.run, Order(endpoint, "run_job", job), id=new_id(), task_queue=queues[0]
        )
        await finish_job(clients[("b", handler_ns)], job)  # the handler workflow runs on b
        assert await within(handle.result(), RESULT_S) == f"done {job}"


async def test_a_caller_namespace_failing_over_mid_operation_gets_the_completion(clusters: list[Cluster]) -> None:
    a, b = clusters
    caller_ns, handler_ns = namespaces(clusters, caller_active="b", handler_active="b")
    queues = (new_id("caller"), new_id("handler"))
    endpoint = new_id("jobs").replace("_", "-")
    create_endpoint(b, endpoint, handler_ns, queues[1])
    wait_for_endpoint(a, endpoint)
    async with workers(clusters, caller_ns, handler_ns, queues) as clients:
        job, workflow_id = new_id("j"), new_id()
        await clients[("b", caller_ns)].start_workflow(
            OrderWorkflow.run, Order(endpoint, "run_job", job), id=workflow_id, task_queue=queues[0]
        )
        await wait_until(
            lambda: operation_started(clients[("b", caller_ns)], workflow_id), what="the operation started on b"
        )
        failover(b, caller_ns, "a")
        for c in clusters:
            wait_for_namespace(c, caller_ns, "a")
        # the handler completes on b; its completion goes to the caller's new active, a
        await finish_job(clients[("b", handler_ns)], job)
        result = clients[("a", caller_ns)].get_workflow_handle(workflow_id).result()
        assert await within(result, RESULT_S) == f"done {job}"


async def test_a_handler_namespace_failing_over_mid_operation_completes_on_its_new_active(
    clusters: list[Cluster],
) -> None:
    a, b = clusters
    caller_ns, handler_ns = namespaces(clusters, caller_active="a", handler_active="b")
    queues = (new_id("caller"), new_id("handler"))
    endpoint = new_id("jobs").replace("_", "-")
    create_endpoint(a, endpoint, handler_ns, queues[1])
    wait_for_endpoint(b, endpoint)
    async with workers(clusters, caller_ns, handler_ns, queues) as clients:
        job, workflow_id = new_id("j"), new_id()
        handle = await clients[("a", caller_ns)].start_workflow(
            OrderWorkflow.run, Order(endpoint, "run_job", job), id=workflow_id, task_queue=queues[0]
        )
        await wait_until(
            lambda: operation_started(clients[("a", caller_ns)], workflow_id), what="the operation started on b"
        )
        failover(b, handler_ns, "a")
        for c in clusters:
            wait_for_namespace(c, handler_ns, "a")
        # the handler workflow goes on, and completes, on a; the completion reaches the caller
        await finish_job(clients[("a", handler_ns)], job)
        assert await within(handle.result(), RESULT_S) == f"done {job}"
