"""The frontend of a cluster where a global namespace is standby (../shared/XDC.md §3): writes refused with
NamespaceNotActive, worker polls that get nothing but queries, and forwarding to the active cluster.

Cluster a forwards the selected APIs (selected-apis-forwarding) and cluster b every API (all-apis-forwarding), so
one pair covers the three policies: a call with `xdc-redirection: false` is answered where it arrives, as under
noop, and worker polls are never forwarded from a.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import grpc
import pytest
from google.rpc import status_pb2
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():  # the workflow sandbox re-imports this module
    from tests.conftest import new_id, within
    from tests.support.clusters import Cluster, connect, new_cluster
    from tests.support.nexus_services import GreeterHandler
    from tests.xdc.conftest import create_global_namespace, failover, wait_until

OPT_OUT = {"xdc-redirection": "false"}


@activity.defn(name="where")
async def where_a() -> str:
    return "a"


@activity.defn(name="where")
async def where_b() -> str:
    return "b"


@workflow.defn
class RunsThenWaits:
    """An activity, then a wait for a signal; a query tells where the activity ran."""

    def __init__(self) -> None:
        self.ran_on = ""
        self.finished = False

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def where(self) -> str:
        return self.ran_on

    @workflow.run
    async def run(self) -> str:
        self.ran_on = await workflow.execute_activity(
            "where", start_to_close_timeout=timedelta(seconds=10), result_type=str
        )
        await workflow.wait_condition(lambda: self.finished)
        return self.ran_on


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[Cluster]]:
    a = new_cluster("a", 1, ["--dc-redirection-policy", "selected-apis-forwarding"])
    b = new_cluster("b", 2, ["--dc-redirection-policy", "all-apis-forwarding"])
    try:
        for c in (a, b):
            c.server.start()
        connect(a, b)
        yield [a, b]
    finally:
        errors: list[BaseException] = []
        for c in (a, b):
            try:
                c.server.stop()
            except BaseException as err:
                errors.append(err)
        if errors:
            raise errors[0]


def worker(client: Client, task_queue: str, cluster: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunsThenWaits],
        activities=[where_a if cluster == "a" else where_b],
        nexus_service_handlers=[GreeterHandler()],
    )


def not_active_message(namespace: str, current: str, active: str) -> str:
    return (
        f"Namespace: {namespace} is active in cluster: {active}, while current cluster {current} is a standby cluster."
    )


def not_active_detail(raw_status: bytes) -> errordetails.NamespaceNotActiveFailure:
    status = status_pb2.Status.FromString(raw_status)
    detail = errordetails.NamespaceNotActiveFailure()
    assert len(status.details) == 1 and status.details[0].Unpack(detail), status
    return detail


def stub(cluster: Cluster, method: str, response: Any) -> Any:
    channel = grpc.aio.insecure_channel(cluster.address)
    return channel, channel.unary_unary(
        f"/temporal.api.workflowservice.v1.WorkflowService/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


async def running(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError:
        return False
    return True


# ---------------------------------------------------------------------- NamespaceNotActive
async def test_writes_on_a_standby_are_refused_with_namespace_not_active(clusters: list[Cluster]) -> None:
    a, _ = clusters
    ns = create_global_namespace(clusters, active="b")
    expected = not_active_message(ns, "a", "b")
    client = await Client.connect(a.address, namespace=ns)
    # through the SDK, opting out of forwarding: answered by a, the standby
    with pytest.raises(RPCError) as info:
        await client.start_workflow(RunsThenWaits.run, id=new_id(), task_queue="tq", rpc_metadata=OPT_OUT)
    assert info.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert info.value.message == expected
    detail = not_active_detail(info.value.raw_grpc_status)
    assert (detail.namespace, detail.current_cluster, detail.active_cluster) == (ns, "a", "b")
    # over raw gRPC: the writes of a workflow, an activity's heartbeat, a workflow task's completion
    wf = WorkflowExecution(workflow_id="w")
    writes: list[tuple[str, Any, Any]] = [
        (
            "SignalWorkflowExecution",
            ws.SignalWorkflowExecutionRequest(namespace=ns, signal_name="s", workflow_execution=wf),
            ws.SignalWorkflowExecutionResponse,
        ),
        (
            "TerminateWorkflowExecution",
            ws.TerminateWorkflowExecutionRequest(namespace=ns, workflow_execution=wf),
            ws.TerminateWorkflowExecutionResponse,
        ),
        (
            "RequestCancelWorkflowExecution",
            ws.RequestCancelWorkflowExecutionRequest(namespace=ns, workflow_execution=wf),
            ws.RequestCancelWorkflowExecutionResponse,
        ),
        (
            "RecordActivityTaskHeartbeatById",
            ws.RecordActivityTaskHeartbeatByIdRequest(namespace=ns, workflow_id="w", activity_id="1"),
            ws.RecordActivityTaskHeartbeatByIdResponse,
        ),
        (
            "RespondWorkflowTaskCompleted",
            ws.RespondWorkflowTaskCompletedRequest(namespace=ns, task_token=b"x"),
            ws.RespondWorkflowTaskCompletedResponse,
        ),
    ]
    for method, request, response in writes:
        channel, call = stub(a, method, response)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=tuple(OPT_OUT.items()), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, method
        assert err.value.details() == expected, method
        trailing: dict[str, Any] = dict(err.value.trailing_metadata() or ())  # type: ignore[arg-type]
        assert not_active_detail(trailing["grpc-status-details-bin"]).active_cluster == "b"
    # reads stay local: a list answers
    assert [e async for e in client.list_workflows(rpc_metadata=OPT_OUT)] == []


# ---------------------------------------------------------------------- pollers and queries on a standby
async def test_a_standby_worker_gets_only_queries_while_the_active_runs_the_workflow(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters, active="b")
    tq = new_id("tq")
    client_a = await Client.connect(a.address, namespace=ns)
    client_b = await Client.connect(b.address, namespace=ns)
    workflow_id = new_id()
    async with worker(client_a, tq, "a"):
        handle_b = await client_b.start_workflow(RunsThenWaits.run, id=workflow_id, task_queue=tq)
        # a raw poll of the standby gets nothing at its deadline, and the task stays pending on b
        channel, poll = stub(a, "PollWorkflowTaskQueue", ws.PollWorkflowTaskQueueResponse)
        async with channel:
            request = ws.PollWorkflowTaskQueueRequest(namespace=ns, task_queue=TaskQueue(name=tq), identity="raw")
            resp = await poll(request, timeout=2.5)
        assert resp == ws.PollWorkflowTaskQueueResponse()
        pending = (await handle_b.describe()).raw_description.pending_workflow_task
        assert pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        async with worker(client_b, tq, "b"):
            await wait_until(lambda: _query(handle_b, "b"), what="the activity ran on b")
            # on the standby, once replication brought the run there, a's worker answers a's query
            handle_a = client_a.get_workflow_handle(workflow_id)
            await wait_until(lambda: _query(handle_a, "b", OPT_OUT), what="a standby query answered on a")
            # a signal sent to the standby reaches the active (selected-apis-forwarding)
            await handle_a.signal(RunsThenWaits.finish)
            assert await within(handle_b.result(), 30) == "b"


async def test_a_worker_polling_the_standby_takes_over_when_the_namespace_fails_over_to_it(
    clusters: list[Cluster],
) -> None:
    """The worker's polls are in flight on a when a becomes active: they go on as ordinary polls and get the
    workflow's tasks (temporalio/temporal#1847: workers on the standby did not pick tasks up after a failover)."""
    a, b = clusters
    ns = create_global_namespace(clusters, active="b")
    tq = new_id("tq")
    client_a = await Client.connect(a.address, namespace=ns)
    client_b = await Client.connect(b.address, namespace=ns)
    async with worker(client_a, tq, "a"):
        handle = await client_b.start_workflow(RunsThenWaits.run, id=new_id(), task_queue=tq)
        await wait_until(lambda: running(client_a.get_workflow_handle(handle.id)), what="the run replicated to a")
        failover(a, ns, "a")
        handle_a = client_a.get_workflow_handle(handle.id)
        await wait_until(lambda: _query(handle_a, "a"), timeout=30, what="the activity ran on a's worker")
        await handle_a.signal(RunsThenWaits.finish)
        assert await within(handle_a.result(), 30) == "a"


async def _query(handle: WorkflowHandle[Any, Any], expected: str, metadata: dict[str, str] | None = None) -> bool:
    try:
        answer = await handle.query(RunsThenWaits.where, rpc_metadata=metadata or {}, rpc_timeout=timedelta(seconds=5))
    except RPCError:
        return False
    return bool(answer == expected)


# ---------------------------------------------------------------------- forwarding
async def test_selected_apis_forward_starts_and_signals_from_the_standby(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters, active="b")
    tq = new_id("tq")
    client_a = await Client.connect(a.address, namespace=ns)
    client_b = await Client.connect(b.address, namespace=ns)
    async with worker(client_b, tq, "b"):
        handle = await client_a.start_workflow(RunsThenWaits.run, id=new_id(), task_queue=tq)
        assert await running(client_b.get_workflow_handle(handle.id))  # it was started on b at once
        await handle.signal(RunsThenWaits.finish)
        assert await within(client_b.get_workflow_handle(handle.id).result(), 30) == "b"


async def test_all_apis_a_worker_polling_the_standby_works_for_the_active(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters, active="a")
    tq = new_id("tq")
    client_a = await Client.connect(a.address, namespace=ns)
    client_b = await Client.connect(b.address, namespace=ns)
    async with worker(client_b, tq, "b"):  # b is standby and forwards polls, completions and heartbeats to a
        handle = await client_a.start_workflow(RunsThenWaits.run, id=new_id(), task_queue=tq)
        await wait_until(lambda: _query(handle, "b"), what="the activity ran on b's worker")
        await handle.signal(RunsThenWaits.finish)
        assert await within(handle.result(), 30) == "b"


async def test_nexus_requests_to_the_standby_reach_the_active_clusters_workers(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters, active="b")
    tq = new_id("tq")
    client_b = await Client.connect(b.address, namespace=ns)
    url = f"http://127.0.0.1:{a.server.http_port}/namespaces/{ns}/task-queues/{tq}/nexus-services/Greeter/echo"
    body = json.dumps({"name": "xdc"}).encode()
    headers = {"Content-Type": "application/json", "Nexus-Request-Id": str(uuid.uuid4())}
    async with worker(client_b, tq, "b"), aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert json.loads(await resp.read()) == {"message": "echo xdc"}
        async with http.post(url, data=body, headers={**headers, **OPT_OUT}) as resp:
            assert resp.status == 503
            assert json.loads(await resp.read())["message"] == "cluster inactive"
