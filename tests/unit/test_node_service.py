"""Work on another node's shard (nodes/service.py, nodes/client.py, nodes/routed_ops.py): two nodes in one process,
each a HistoryEngine over ONE shared MemoryStore with its own NodeService on a loopback gRPC port, joined in one
membership. Node a holds shards 0 and 1, node b shards 2 and 3; transfer tasks use RoutedWorkflowOps, so a child,
a signal or a cancel for a workflow of the other node's shard goes there over NodeService. Also the mapping of a
remote's gRPC status back to tempyral's exceptions (`error_from_status`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType, EventType, SignalExternalWorkflowExecutionFailedCause
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import (
    Internal,
    InvalidArgument,
    NamespaceNotActive,
    NamespaceNotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    ShardNotHere,
    StorageUnavailable,
    Unavailable,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.config import NexusLimits, NodeSettings
from tempyral.history.engine import EngineConfig, HistoryEngine
from tempyral.history.executions import shard_id_for
from tempyral.matching.service import Matching
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.operations import NexusOperations, OperationNotFound
from tempyral.nodes.client import NodeClient
from tempyral.nodes.membership import Membership
from tempyral.nodes.ownership import Ownership
from tempyral.nodes.routed_ops import RoutedNexusCompletion, RoutedWorkflowOps, Router
from tempyral.nodes.service import SERVICE, NodeService, node_handler
from tempyral.proto import nodes_pb2 as npb
from tempyral.proto.internal_pb2 import NexusCallbackToken
from tests.support.history_harness import ENDPOINT, ENDPOINT_ID, command, complete_workflow
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
SHARDS = 4
HOLDERS = {0: "a", 1: "a", 2: "b", 3: "b"}
NAMESPACE = "default"
TQ = "tq"
WAIT_S = 10.0  # bound of every wait for background work


# ---------------------------------------------------------------------------------------------------- two nodes
@dataclass
class Node:
    name: str
    namespaces: NamespaceRegistry
    engine: HistoryEngine
    nexus: NexusOperations
    service: NodeService
    server: grpc.aio.Server
    membership: Membership
    ownership: Ownership
    router: Router
    client: NodeClient

    @property
    def ns(self) -> Namespace:
        return self.namespaces.get(NAMESPACE)

    def owns(self, workflow_id: str) -> bool:
        return self.engine.shards[shard_id_for(self.ns.id, workflow_id, SHARDS)].owned


@dataclass
class Cluster:
    store: MemoryStore
    a: Node
    b: Node

    def workflow_id(self, prefix: str, node: Node) -> str:
        """A fresh workflow id whose shard `node` holds."""
        for i in range(1000):
            wid = f"{prefix}-{i}"
            if HOLDERS[shard_id_for(node.ns.id, wid, SHARDS)] == node.name:
                return wid
        raise AssertionError("no workflow id found")


async def _node(store: MemoryStore, name: str) -> Node:
    namespaces = NamespaceRegistry(store, "active")
    await namespaces.load()
    await namespaces.ensure(NAMESPACE)  # created by the first node, loaded by the second
    engine = HistoryEngine(store, namespaces, Matching(), EngineConfig(num_shards=SHARDS, owner=name))
    nexus = NexusOperations(engine.executions, NexusLimits())
    engine.tasks.timer_handlers.update(nexus.timer_handlers())
    engine.find_endpoint_id = lambda endpoint: ENDPOINT_ID if endpoint == ENDPOINT else None
    service = NodeService(namespaces, engine, nexus.complete)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((node_handler(service),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    membership = Membership(store, NodeSettings(), name)
    await membership.join(f"127.0.0.1:{port}", "")
    ownership = Ownership(membership, SHARDS)
    ownership.shard_owners = dict(HOLDERS)  # as nodes/shards.py would read them from the shards table
    router = Router(ownership, lambda shard_id: engine.shards[shard_id].owned)
    client = NodeClient(ownership)
    engine.tasks.workflows = RoutedWorkflowOps(engine, router, client)
    await engine.start(acquire_all=False)
    for shard_id, holder in HOLDERS.items():
        if holder == name:
            await engine.acquire_shard(shard_id)
    return Node(name, namespaces, engine, nexus, service, server, membership, ownership, router, client)


@pytest_asyncio.fixture(loop_scope="function")
async def cluster() -> AsyncIterator[Cluster]:
    store = MemoryStore()
    await store.open()
    a = await _node(store, "a")
    b = await _node(store, "b")
    await a.membership.refresh()  # a joined first: now it sees b
    assert a.ownership.view.names == b.ownership.view.names == ("a", "b")
    try:
        yield Cluster(store, a, b)
    finally:
        for node in (a, b):
            await node.engine.stop()
            await node.server.stop(None)
            await node.ownership.close()
        await store.close()


# ---------------------------------------------------------------------------------------------------- helpers
async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (at most WAIT_S) until `check` holds: the background transfer tasks do the work."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def events(node: Node, workflow_id: str) -> list[history.HistoryEvent]:
    executions = node.engine.executions
    async with executions.locked(node.ns.id, workflow_id) as (shard, entry, ms):
        return await executions.events(shard, entry, ms, 1, ms.state.next_event_id)


async def event_types(node: Node, workflow_id: str) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in await events(node, workflow_id)]


def has(node: Node, workflow_id: str, event_type: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return event_type in await event_types(node, workflow_id)

    return check


def start_request(workflow_id: str, task_queue: str = TQ) -> ws.StartWorkflowExecutionRequest:
    return ws.StartWorkflowExecutionRequest(
        namespace=NAMESPACE,
        workflow_id=workflow_id,
        workflow_type=common.WorkflowType(name="W"),
        task_queue=taskqueue.TaskQueue(name=task_queue),
        identity="test",
        request_id=str(uuid.uuid4()),
    )


async def start(node: Node, workflow_id: str, task_queue: str = TQ) -> str:
    assert node.owns(workflow_id)
    return (await node.engine.start_workflow(node.ns, start_request(workflow_id, task_queue))).run_id


async def run_workflow_task(
    node: Node, workflow_id: str, *commands: command_pb.Command, task_queue: str = TQ
) -> ws.PollWorkflowTaskQueueResponse:
    """Poll `node` for the workflow's next task (it must come within WAIT_S) and complete it with `commands`."""
    poll = ws.PollWorkflowTaskQueueRequest(
        namespace=NAMESPACE, task_queue=taskqueue.TaskQueue(name=task_queue), identity="worker"
    )
    task = await node.engine.workflow_tasks.poll(node.ns, poll, WAIT_S)
    assert task.task_token, f"no workflow task on node {node.name}"
    assert task.workflow_execution.workflow_id == workflow_id
    await node.engine.workflow_tasks.respond_completed(
        node.ns,
        ws.RespondWorkflowTaskCompletedRequest(
            namespace=NAMESPACE, task_token=task.task_token, commands=list(commands), identity="worker"
        ),
    )
    return task


def start_child(workflow_id: str) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=command_pb.StartChildWorkflowExecutionCommandAttributes(
            namespace=NAMESPACE,
            workflow_id=workflow_id,
            workflow_type=common.WorkflowType(name="Child"),
            task_queue=taskqueue.TaskQueue(name="ctq"),
        ),
    )


def signal_external(workflow_id: str) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        signal_external_workflow_execution_command_attributes=command_pb.SignalExternalWorkflowExecutionCommandAttributes(
            namespace=NAMESPACE,
            execution=common.WorkflowExecution(workflow_id=workflow_id),
            signal_name="hello",
            input=common.Payloads(payloads=[common.Payload(data=b"hi")]),
        ),
    )


def cancel_external(workflow_id: str) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
        request_cancel_external_workflow_execution_command_attributes=(
            command_pb.RequestCancelExternalWorkflowExecutionCommandAttributes(
                namespace=NAMESPACE, workflow_id=workflow_id, reason="stop"
            )
        ),
    )


def signal_request(workflow_id: str) -> ws.SignalWorkflowExecutionRequest:
    return ws.SignalWorkflowExecutionRequest(
        namespace=NAMESPACE,
        workflow_execution=common.WorkflowExecution(workflow_id=workflow_id),
        signal_name="s",
        identity="test",
        request_id=str(uuid.uuid4()),
    )


# ---------------------------------------------------------------------------------------------- across nodes
async def test_a_child_on_the_other_node_is_started_given_its_first_task_and_reported_closed(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    parent, child = cluster.workflow_id("parent", a), cluster.workflow_id("child", b)
    parent_run = await start(a, parent)
    await run_workflow_task(a, parent, start_child(child))

    await until(has(a, parent, "CHILD_WORKFLOW_EXECUTION_STARTED"), "the parent records the child started")
    assert not a.owns(child) and b.owns(child)
    started = (await events(b, child))[0].workflow_execution_started_event_attributes
    assert started.parent_workflow_execution == common.WorkflowExecution(workflow_id=parent, run_id=parent_run)
    assert started.parent_initiated_event_id == 5
    assert started.root_workflow_execution == common.WorkflowExecution(workflow_id=parent, run_id=parent_run)
    recorded = next(
        e.child_workflow_execution_started_event_attributes
        for e in await events(a, parent)
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    )
    assert recorded.workflow_execution.run_id == started.first_execution_run_id

    # the child's first task (ScheduleFirstTask on b) reaches b's workers; its close reaches the parent on a
    await run_workflow_task(b, child, complete_workflow(), task_queue="ctq")
    await until(has(a, parent, "CHILD_WORKFLOW_EXECUTION_COMPLETED"), "the parent records the child's close")
    assert (await event_types(a, parent)).count("CHILD_WORKFLOW_EXECUTION_COMPLETED") == 1


async def test_signal_and_cancel_of_a_workflow_on_the_other_node(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    sender, target, missing = (
        cluster.workflow_id("sender", a),
        cluster.workflow_id("target", b),
        cluster.workflow_id("missing", b),
    )
    sender_run = await start(a, sender)
    await start(b, target)
    await run_workflow_task(a, sender, signal_external(target), cancel_external(target), signal_external(missing))

    await until(has(b, target, "WORKFLOW_EXECUTION_CANCEL_REQUESTED"), "the target is asked to cancel")
    await until(has(b, target, "WORKFLOW_EXECUTION_SIGNALED"), "the target is signaled")
    by_type = {e.event_type: e for e in await events(b, target)}
    signaled = by_type[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED].workflow_execution_signaled_event_attributes
    assert signaled.signal_name == "hello" and signaled.input.payloads[0].data == b"hi"
    assert signaled.external_workflow_execution == common.WorkflowExecution(workflow_id=sender, run_id=sender_run)
    cancel = by_type[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED]
    assert cancel.workflow_execution_cancel_requested_event_attributes.external_workflow_execution.workflow_id == (
        sender
    )

    for outcome in (
        "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED",
        "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
    ):
        await until(has(a, sender, outcome), f"the sender records {outcome}")
    failed = next(
        e.signal_external_workflow_execution_failed_event_attributes
        for e in await events(a, sender)
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED
    )
    # b's WorkflowNotFound came back as a NotFound, which the transfer task records as the target missing
    assert failed.workflow_execution.workflow_id == missing
    assert failed.cause == (
        SignalExternalWorkflowExecutionFailedCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
    )


async def test_a_nexus_completion_reaches_a_caller_on_the_other_node_once(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    caller = cluster.workflow_id("caller", a)
    run_id = await start(a, caller)
    attrs = command_pb.ScheduleNexusOperationCommandAttributes(endpoint=ENDPOINT, service="svc", operation="op")
    await run_workflow_task(
        a,
        caller,
        command(CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION, schedule_nexus_operation_command_attributes=attrs),
    )
    scheduled = (await event_types(a, caller)).index("NEXUS_OPERATION_SCHEDULED") + 1
    request_id = (await a.engine.executions.read_state(a.ns.id, caller)).state.nexus_operations[scheduled].request_id
    token = NexusCallbackToken(
        namespace_id=a.ns.id, workflow_id=caller, run_id=run_id, scheduled_event_id=scheduled, request_id=request_id
    )
    complete = RoutedNexusCompletion(b.nexus.complete, b.router, b.client)  # delivered on b, the caller is on a

    await complete(token, "op-token", [], 0, common.Payload(data=b"done"), None, False)
    last = (await events(a, caller))[-3:]
    assert [e.event_type for e in last] == [
        EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED,
        EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ]
    assert last[0].nexus_operation_started_event_attributes.operation_token == "op-token"
    assert last[1].nexus_operation_completed_event_attributes.result.data == b"done"
    count = len(await events(a, caller))
    with pytest.raises(OperationNotFound):  # a repeated delivery, answered as NexusOperations.complete answers it
        await complete(token, "op-token", [], 0, common.Payload(data=b"done"), None, False)
    with pytest.raises(OperationNotFound):  # the same on the caller's own node
        await RoutedNexusCompletion(a.nexus.complete, a.router, a.client)(token, "t", [], 0, None, None, False)
    assert len(await events(a, caller)) == count


async def test_a_failed_nexus_operation_keeps_its_failure_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    caller = cluster.workflow_id("caller", a)
    run_id = await start(a, caller)
    attrs = command_pb.ScheduleNexusOperationCommandAttributes(endpoint=ENDPOINT, service="svc", operation="op")
    await run_workflow_task(
        a,
        caller,
        command(CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION, schedule_nexus_operation_command_attributes=attrs),
    )
    info = next(iter((await a.engine.executions.read_state(a.ns.id, caller)).state.nexus_operations.values()))
    token = NexusCallbackToken(
        namespace_id=a.ns.id,
        workflow_id=caller,
        run_id=run_id,
        scheduled_event_id=info.scheduled_event_id,
        request_id=info.request_id,
    )
    failure = failure_pb.Failure(message="it broke")
    failure.application_failure_info.type = "Broken"
    await RoutedNexusCompletion(b.nexus.complete, b.router, b.client)(token, "t", [], 0, None, failure, False)
    failed = next(
        e.nexus_operation_failed_event_attributes
        for e in await events(a, caller)
        if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED
    )
    assert failed.failure.cause.message == "it broke"
    assert failed.failure.cause.application_failure_info.type == "Broken"


# ---------------------------------------------------------------------------------------------- moving shards
async def test_a_call_while_the_shard_moves_is_asked_again_where_it_went(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    target = cluster.workflow_id("target", b)
    await start(b, target)
    shard_id = shard_id_for(a.ns.id, target, SHARDS)

    # b gives the shard up; a's view still names b, which answers ShardNotHere until a takes the shard
    b.engine.release_shard(shard_id)
    call = asyncio.create_task(a.engine.tasks.workflows.signal(a.ns, signal_request(target)))

    async def refused() -> bool:
        return a.router.moved >= 1

    await until(refused, "b refuses the call")
    assert not call.done()
    await a.engine.acquire_shard(shard_id)
    await asyncio.wait_for(call, WAIT_S)
    assert "WORKFLOW_EXECUTION_SIGNALED" in await event_types(a, target)
    for node in (a, b):
        node.ownership.shard_owners[shard_id] = "a"  # the views catch up

    # and back: a gives it up while the views still name a (a refuses itself), then b takes it
    moved = a.router.moved
    a.engine.release_shard(shard_id)
    call = asyncio.create_task(a.engine.tasks.workflows.signal(a.ns, signal_request(target)))

    async def refused_here() -> bool:
        return a.router.moved > moved

    await until(refused_here, "a finds the shard gone")
    await b.engine.acquire_shard(shard_id)
    for node in (a, b):
        node.ownership.shard_owners[shard_id] = "b"
    await asyncio.wait_for(call, WAIT_S)
    assert (await event_types(b, target)).count("WORKFLOW_EXECUTION_SIGNALED") == 2


async def test_a_shard_that_stays_away_ends_in_unavailable(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    target = cluster.workflow_id("target", b)
    await start(b, target)
    b.engine.release_shard(shard_id_for(a.ns.id, target, SHARDS))
    router = Router(a.ownership, lambda shard_id: a.engine.shards[shard_id].owned, budget_s=0.5, first_wait_s=0.01)
    with pytest.raises(Unavailable) as raised:
        await RoutedWorkflowOps(a.engine, router, a.client).signal(a.ns, signal_request(target))
    # not ShardNotHere: the transfer task would take that for its own shard being gone
    assert not isinstance(raised.value, ShardNotHere)
    assert router.moved >= 1


# ---------------------------------------------------------------------------------------------- errors over the wire
async def test_errors_of_the_remote_engine_come_back_as_the_same_exceptions(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    wid = cluster.workflow_id("w", b)
    first = start_request(wid)
    run_id = (await b.engine.start_workflow(b.ns, first)).run_id

    # the same request again: the run it started; another request: already started, with its detail
    again = await a.client.start_workflow("b", a.ns.id, first, None)
    assert (again.run_id, again.started) == (run_id, True)
    with pytest.raises(WorkflowAlreadyStarted) as already:
        await a.client.start_workflow("b", a.ns.id, start_request(wid), None)
    assert already.value.details == errordetails.WorkflowExecutionAlreadyStartedFailure(
        start_request_id=first.request_id, run_id=run_id
    )
    with pytest.raises(WorkflowNotFound):
        await a.client.signal("b", a.ns.id, signal_request(cluster.workflow_id("nobody", b)), None, None)
    with pytest.raises(NamespaceNotFound):
        await a.client.signal("b", "no-such-namespace-id", signal_request(wid), None, None)
    # ShardNotHere: b does not hold a's shards
    with pytest.raises(ShardNotHere) as moved:
        await a.client.signal("b", a.ns.id, signal_request(cluster.workflow_id("x", a)), None, None)
    assert moved.value.shard_id in (0, 1)

    terminate = ws.TerminateWorkflowExecutionRequest(
        namespace=NAMESPACE, workflow_execution=common.WorkflowExecution(workflow_id=wid), reason="test"
    )
    await a.client.terminate("b", a.ns.id, terminate)
    with pytest.raises(WorkflowCompleted):
        await a.client.signal("b", a.ns.id, signal_request(wid), None, None)
    assert (await event_types(b, wid))[-1] == "WORKFLOW_EXECUTION_TERMINATED"


class Raising:
    """WorkflowOps whose signal raises `error` (the other operations are not called here)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def signal(self, *args: Any, **kwargs: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        NamespaceNotActive(NAMESPACE, "here", "there"),
        InvalidArgument("bad request"),
        ResourceExhausted("too many"),
        PermissionDenied("no", "because"),
        StorageUnavailable("the database cannot take writes"),
        Internal("broken"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_service_errors_keep_their_code_message_and_details(cluster: Cluster, error: ServiceError) -> None:
    cluster.b.service.workflows = Raising(error)  # type: ignore[assignment]
    with pytest.raises(ServiceError) as raised:
        await cluster.a.client.signal("b", cluster.a.ns.id, signal_request("w"), None, None)
    got = raised.value
    assert (got.code, got.message, got.details) == (error.code, error.message, error.details)
    expected = Unavailable if isinstance(error, StorageUnavailable) else type(error)
    assert isinstance(got, expected)
    if isinstance(error, NamespaceNotActive):
        assert isinstance(got, NamespaceNotActive)
        assert (got.namespace, got.current_cluster, got.active_cluster) == (NAMESPACE, "here", "there")


async def test_a_bug_on_the_remote_is_internal_and_an_unreachable_node_unavailable(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    b.service.workflows = Raising(RuntimeError("oops"))  # type: ignore[assignment]
    with pytest.raises(Internal, match="oops"):
        await a.client.signal("b", a.ns.id, signal_request("w"), None, None)
    with pytest.raises(Unavailable, match="not a live member"):
        await a.client.signal("c", a.ns.id, signal_request("w"), None, None)
    await b.server.stop(None)
    with pytest.raises(Unavailable) as raised:
        await a.client.signal("b", a.ns.id, signal_request("w"), None, None)
    assert not isinstance(raised.value, ShardNotHere)


async def test_the_matching_calls_go_to_the_callables_given_else_unimplemented(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    channel = a.ownership.channel("b")
    assert channel is not None

    async def call(method: str, request: Message, response: Any) -> Any:
        fn = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return await fn(request, timeout=WAIT_S)

    for method, request, response in [
        ("AddTask", npb.AddTaskRequest(task_queue="q"), npb.Empty),
        ("RecordTaskStarted", npb.RecordTaskStartedRequest(), npb.RecordTaskStartedResponse),
        ("DispatchNexusTask", npb.DispatchNexusTaskRequest(), npb.DispatchNexusTaskResponse),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(method, request, response)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED, method

    added: list[npb.AddTaskRequest] = []

    async def record_task_started(request: npb.RecordTaskStartedRequest) -> bytes:
        return b"poll-response:" + request.poll_request

    async def dispatch(request: npb.DispatchNexusTaskRequest) -> npb.DispatchNexusTaskResponse:
        return npb.DispatchNexusTaskResponse(completed=request.request)

    b.service.add_task = added.append  # a plain function, as MatchingRouter.add_task is
    b.service.record_task_started = record_task_started
    b.service.dispatch_nexus_task = dispatch
    await call("AddTask", npb.AddTaskRequest(task_queue="q", hops=1), npb.Empty)
    assert added == [npb.AddTaskRequest(task_queue="q", hops=1)]
    started = await call(
        "RecordTaskStarted", npb.RecordTaskStartedRequest(poll_request=b"p"), npb.RecordTaskStartedResponse
    )
    assert started.poll_response == b"poll-response:p"
    dispatched = await call(
        "DispatchNexusTask", npb.DispatchNexusTaskRequest(request=b"r"), npb.DispatchNexusTaskResponse
    )
    assert dispatched.completed == b"r"
