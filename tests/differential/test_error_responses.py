"""Bad input: the same malformed request on the reference server and on tempyral must get the
same gRPC status code, the same error-detail type and (ids aside) the same message; and the
server must stay up and keep its data."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import ActivityType, Payload, Payloads, SearchAttributes, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, HistoryEventFilterType, WorkflowIdReusePolicy
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
    GetWorkerBuildIdCompatibilityRequest,
    GetWorkerTaskReachabilityRequest,
    GetWorkerVersioningRulesRequest,
    GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    QueryWorkflowRequest,
    RecordActivityTaskHeartbeatByIdRequest,
    RecordActivityTaskHeartbeatRequest,
    RegisterNamespaceRequest,
    RequestCancelWorkflowExecutionRequest,
    RespondActivityTaskCompletedByIdRequest,
    RespondActivityTaskCompletedRequest,
    RespondActivityTaskFailedRequest,
    RespondQueryTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
    SignalWithStartWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.support.servers import ServerProcess
from tests.support.workflows import HelloWorkflow, greet

BIG = Payloads(payloads=[Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * (2 * 1024 * 1024 + 10))])
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Ctx:
    """Per-server fixtures of the cases: a running and a closed workflow."""

    client: Client
    running: str
    closed: str
    spare: str  # a running workflow that cases may change

    @property
    def ws(self) -> Any:
        return self.client.workflow_service


def start(**overrides: Any) -> StartWorkflowExecutionRequest:
    fields: dict[str, Any] = dict(
        namespace="default",
        workflow_id=f"bad-{uuid.uuid4().hex}",
        workflow_type=WorkflowType(name="T"),
        task_queue=TaskQueue(name="bad-input-queue"),
        request_id=str(uuid.uuid4()),
    )
    fields.update(overrides)
    return StartWorkflowExecutionRequest(**fields)


def signal(workflow_id: str, **overrides: Any) -> SignalWorkflowExecutionRequest:
    fields: dict[str, Any] = dict(
        namespace="default", workflow_execution=WorkflowExecution(workflow_id=workflow_id), signal_name="s"
    )
    fields.update(overrides)
    return SignalWorkflowExecutionRequest(**fields)


def search_attributes(**values: Any) -> SearchAttributes:
    sa = SearchAttributes()
    for name, value in values.items():
        sa.indexed_fields[name].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode()))
    return sa


def raw_search_attribute(name: str, data: bytes) -> SearchAttributes:
    """A search attribute whose JSON text is given as is."""
    sa = SearchAttributes()
    sa.indexed_fields[name].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=data))
    return sa


def list_query(c: Ctx, query: str) -> Awaitable[Any]:
    return c.client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query=query)
    )


def execution(workflow_id: str, run_id: str = "") -> WorkflowExecution:
    return WorkflowExecution(workflow_id=workflow_id, run_id=run_id)


Case = Callable[[Ctx], Awaitable[Any]]
CASES: dict[str, Case] = {
    # empty and oversized ids
    "start: empty workflow id": lambda c: c.ws.start_workflow_execution(start(workflow_id="")),
    "start: workflow id too long": lambda c: c.ws.start_workflow_execution(start(workflow_id="x" * 1001)),
    "start: empty workflow type": lambda c: c.ws.start_workflow_execution(start(workflow_type=WorkflowType())),
    "start: empty task queue": lambda c: c.ws.start_workflow_execution(start(task_queue=TaskQueue())),
    "signal: empty workflow id": lambda c: c.ws.signal_workflow_execution(signal("")),
    "signal: empty signal name": lambda c: c.ws.signal_workflow_execution(signal(c.running, signal_name="")),
    "signal-with-start: empty signal name": lambda c: c.ws.signal_with_start_workflow_execution(
        SignalWithStartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=f"bad-{uuid.uuid4().hex}",
            workflow_type=WorkflowType(name="T"),
            task_queue=TaskQueue(name="q"),
        )
    ),
    "describe: run id not a uuid": lambda c: c.ws.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=execution(c.running, "not-a-uuid"))
    ),
    "poll: empty task queue": lambda c: c.ws.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue())
    ),
    "complete by id: empty activity id": lambda c: c.ws.respond_activity_task_completed_by_id(
        RespondActivityTaskCompletedByIdRequest(namespace="default", workflow_id=c.running, activity_id="")
    ),
    # over-long namespace names: refused before any lookup, never echoed (the limit counts bytes)
    "start: namespace name over 1000 bytes": lambda c: c.ws.start_workflow_execution(start(namespace="n" * 1001)),
    "describe namespace: name of 10,000 characters": lambda c: c.ws.describe_namespace(
        DescribeNamespaceRequest(namespace="n" * 10_000)
    ),
    # the SDK also sends the name as a header: past gRPC's own 16 KiB metadata limit
    "describe namespace: name of 100,000 characters": lambda c: c.ws.describe_namespace(
        DescribeNamespaceRequest(namespace="n" * 100_000)
    ),
    "register namespace: 501 two-byte characters": lambda c: c.ws.register_namespace(
        RegisterNamespaceRequest(namespace="é" * 501, workflow_execution_retention_period=Duration(seconds=86400))
    ),
    "start: over-long namespace comes before an empty workflow id": lambda c: c.ws.start_workflow_execution(
        start(namespace="n" * 1001, workflow_id="")
    ),
    # unknown namespace
    "start: unknown namespace": lambda c: c.ws.start_workflow_execution(start(namespace="no-such-namespace")),
    "signal: unknown namespace": lambda c: c.ws.signal_workflow_execution(signal(c.running, namespace="nope-ns")),
    "describe namespace: unknown": lambda c: c.ws.describe_namespace(DescribeNamespaceRequest(namespace="nope-ns")),
    "update namespace: unknown": lambda c: c.ws.update_namespace(UpdateNamespaceRequest(namespace="nope-ns")),
    "poll activities: unknown namespace": lambda c: c.ws.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="nope-ns", task_queue=TaskQueue(name="q"))
    ),
    "history: unknown namespace": lambda c: c.ws.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace="nope-ns", execution=execution(c.running))
    ),
    # unknown or garbage task tokens
    "complete activity: empty token": lambda c: c.ws.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(namespace="default")
    ),
    "complete activity: garbage token": lambda c: c.ws.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(namespace="default", task_token=b"garbage")
    ),
    "fail activity: failure without application info": lambda c: c.ws.respond_activity_task_failed(
        RespondActivityTaskFailedRequest(namespace="default", task_token=b"garbage", failure=Failure(message="m"))
    ),
    "fail activity: garbage token": lambda c: c.ws.respond_activity_task_failed(
        RespondActivityTaskFailedRequest(namespace="default", task_token=b"garbage")
    ),
    "heartbeat: garbage token": lambda c: c.ws.record_activity_task_heartbeat(
        RecordActivityTaskHeartbeatRequest(namespace="default", task_token=b"garbage")
    ),
    "complete workflow task: garbage token": lambda c: c.ws.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=b"garbage")
    ),
    "fail workflow task: garbage token": lambda c: c.ws.respond_workflow_task_failed(
        RespondWorkflowTaskFailedRequest(namespace="default", task_token=b"garbage")
    ),
    "complete query task: garbage token": lambda c: c.ws.respond_query_task_completed(
        RespondQueryTaskCompletedRequest(namespace="default", task_token=b"garbage")
    ),
    # wrong enum values (the reference accepts these)
    "start: reuse policy 99": lambda c: c.ws.start_workflow_execution(start(workflow_id_reuse_policy=99)),
    "start: conflict policy 99": lambda c: c.ws.start_workflow_execution(start(workflow_id_conflict_policy=99)),
    "history: filter type 99": lambda c: c.ws.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace="default",
            execution=execution(c.closed),
            history_event_filter_type=HistoryEventFilterType.ValueType(99),
        )
    ),
    # negative timeouts
    "start: negative execution timeout": lambda c: c.ws.start_workflow_execution(
        start(workflow_execution_timeout=Duration(seconds=-5))
    ),
    "start: negative run timeout": lambda c: c.ws.start_workflow_execution(
        start(workflow_run_timeout=Duration(seconds=-5))
    ),
    "start: negative task timeout": lambda c: c.ws.start_workflow_execution(
        start(workflow_task_timeout=Duration(seconds=-5))
    ),
    "register namespace: no retention": lambda c: c.ws.register_namespace(
        RegisterNamespaceRequest(namespace=f"ns-{uuid.uuid4().hex[:8]}")
    ),
    # oversized payloads
    "start: input over the blob limit": lambda c: c.ws.start_workflow_execution(start(input=BIG)),
    "signal: input over the blob limit": lambda c: c.ws.signal_workflow_execution(signal(c.running, input=BIG)),
    "signal-with-start: input over the blob limit": lambda c: c.ws.signal_with_start_workflow_execution(
        SignalWithStartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=c.running,
            workflow_type=WorkflowType(name="T"),
            task_queue=TaskQueue(name="q"),
            signal_name="s",
            signal_input=BIG,
        )
    ),
    "query: args over the blob limit": lambda c: c.ws.query_workflow(
        QueryWorkflowRequest(
            namespace="default", execution=execution(c.running), query=WorkflowQuery(query_type="q", query_args=BIG)
        )
    ),
    "heartbeat by id: details over the blob limit, unknown activity": lambda c: (
        c.ws.record_activity_task_heartbeat_by_id(
            RecordActivityTaskHeartbeatByIdRequest(
                namespace="default", workflow_id=c.running, activity_id="nope", details=BIG
            )
        )
    ),
    "terminate: details over the blob limit": lambda c: c.ws.terminate_workflow_execution(
        TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=execution(c.spare), details=BIG)
    ),
    # unknown and closed workflows
    "signal: unknown workflow": lambda c: c.ws.signal_workflow_execution(signal("no-such-workflow")),
    "describe: unknown workflow": lambda c: c.ws.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=execution("no-such-workflow"))
    ),
    "describe: unknown run of a known workflow": lambda c: c.ws.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=execution(c.running, str(uuid.uuid4())))
    ),
    "history: unknown workflow": lambda c: c.ws.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution("no-such-workflow"))
    ),
    "history: bad page token": lambda c: c.ws.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution(c.closed), next_page_token=b"zzz")
    ),
    "terminate: unknown workflow": lambda c: c.ws.terminate_workflow_execution(
        TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=execution("no-such-workflow"))
    ),
    "cancel: unknown workflow": lambda c: c.ws.request_cancel_workflow_execution(
        RequestCancelWorkflowExecutionRequest(namespace="default", workflow_execution=execution("no-such-workflow"))
    ),
    "query: unknown workflow": lambda c: c.ws.query_workflow(
        QueryWorkflowRequest(
            namespace="default", execution=execution("no-such-workflow"), query=WorkflowQuery(query_type="q")
        )
    ),
    "complete by id: unknown workflow": lambda c: c.ws.respond_activity_task_completed_by_id(
        RespondActivityTaskCompletedByIdRequest(namespace="default", workflow_id="no-such-workflow", activity_id="1")
    ),
    "signal: closed workflow": lambda c: c.ws.signal_workflow_execution(signal(c.closed)),
    "terminate: closed workflow": lambda c: c.ws.terminate_workflow_execution(
        TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=execution(c.closed))
    ),
    "cancel: closed workflow": lambda c: c.ws.request_cancel_workflow_execution(
        RequestCancelWorkflowExecutionRequest(namespace="default", workflow_execution=execution(c.closed))
    ),
    # duplicates
    "start: id of a running workflow": lambda c: c.ws.start_workflow_execution(start(workflow_id=c.running)),
    "start: reject duplicate of a closed workflow": lambda c: c.ws.start_workflow_execution(
        start(
            workflow_id=c.closed,
            workflow_id_reuse_policy=WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
        )
    ),
    "register namespace: duplicate": lambda c: c.ws.register_namespace(
        RegisterNamespaceRequest(namespace="default", workflow_execution_retention_period=Duration(seconds=86400))
    ),
    # visibility
    "list: malformed query": lambda c: c.ws.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query="WorkflowType = ")
    ),
    "list: unknown search attribute": lambda c: c.ws.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query="NoSuchAttribute = 'x'")
    ),
    # filters nested past the reference parser's limits (200 open levels, a tree 1000 deep)
    "list: 5,000 nested parentheses": lambda c: list_query(c, "(" * 5000 + "WorkflowId = 'a'" + ")" * 5000),
    "count: 5,000 nested parentheses": lambda c: c.ws.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace="default", query="(" * 5000 + "WorkflowId = 'a'" + ")" * 5000)
    ),
    "list: NOT 200 times": lambda c: list_query(c, "NOT " * 200 + "WorkflowId = 'a'"),
    "list: 300 minus signs": lambda c: list_query(c, "Priority = " + "- " * 300 + "1"),
    "list: a function nested 300 deep": lambda c: list_query(c, "lower(" * 300 + "x" + ")" * 300 + " = 'a'"),
    "list: 20,000 ORs": lambda c: list_query(c, " OR ".join(["WorkflowId = 'a'"] * 20_000)),
    "list: 996 ORs": lambda c: list_query(c, " OR ".join(["WorkflowId = 'a'"] * 996)),
    "list: 5,000 additions": lambda c: list_query(c, "Priority = " + " + ".join(["1"] * 5000)),
    "list: a 990-term sum under a minus sign": lambda c: list_query(c, "Priority = -(" + "+".join(["1"] * 990) + ")"),
    # and just within them
    "list: 199 nested parentheses": lambda c: list_query(c, "(" * 199 + "WorkflowId = 'a'" + ")" * 199),
    "list: NOT 199 times": lambda c: list_query(c, "NOT " * 199 + "WorkflowId = 'a'"),
    "list: 995 ORs": lambda c: list_query(c, " OR ".join(["WorkflowId = 'a'"] * 995)),
    # search attributes set at start
    "start: unknown search attribute": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=search_attributes(NoSuchAttribute="x"))
    ),
    "start: search attribute of the wrong type": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=search_attributes(Priority="high"))
    ),
    "start: a system search attribute": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=search_attributes(WorkflowType="Mine"))
    ),
    # values Go's JSON decoder reads differently from Python's: nesting to 10,000 levels, NaN, lone surrogates
    "start: search attribute nested 10,000 levels deep": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("CustomerId", b"[" * 10_000 + b"]" * 10_000))
    ),
    "start: search attribute of objects nested 10,000 levels deep": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("CustomerId", b'{"a":' * 10_000 + b"1" + b"}" * 10_000))
    ),
    "start: search attribute NaN": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("VisDouble", b"NaN"))
    ),
    "start: search attribute beyond float64": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("VisDouble", b"1e400"))
    ),
    "start: search attribute that is not JSON": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("CustomerId", b'[1] "\\\x01\xff'))
    ),
    "start: Int search attribute in a nested list": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("Priority", b"[[1]]"))
    ),
    "start: search attribute with a lone surrogate escape": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=raw_search_attribute("Priority", b'"\\ud800x"'))
    ),
    # a message over 4000 bytes is cut short, as the reference cuts it
    "start: search attribute of the wrong type, 5000 characters": lambda c: c.ws.start_workflow_execution(
        start(search_attributes=search_attributes(Priority="é" * 5000))
    ),
    # task queues
    "describe task queue: no name": lambda c: c.ws.describe_task_queue(
        DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue())
    ),
    "describe task queue: unknown namespace": lambda c: c.ws.describe_task_queue(
        DescribeTaskQueueRequest(namespace="no-such-namespace", task_queue=TaskQueue(name="q"))
    ),
    # the deprecated worker-versioning APIs, refused by the reference's dev server
    "versioning: build id compatibility": lambda c: c.ws.get_worker_build_id_compatibility(
        GetWorkerBuildIdCompatibilityRequest(namespace="default", task_queue="q")
    ),
    "versioning: rules": lambda c: c.ws.get_worker_versioning_rules(
        GetWorkerVersioningRulesRequest(namespace="default", task_queue="q")
    ),
    "versioning: reachability": lambda c: c.ws.get_worker_task_reachability(
        GetWorkerTaskReachabilityRequest(namespace="default", build_ids=["b1"])
    ),
}


def _normalize(message: str, ctx: Ctx) -> str:
    # Go's protobuf errors put a space or, at random per build, a no-break space after "proto:";
    # its text format separates fields with one or (again at random) two spaces.
    message = message.replace("\xa0", " ")
    message = re.sub(r"value from <.*>", lambda m: re.sub(r"([}\"])  ", r"\1 ", m[0]), message)
    message = message.replace(ctx.running, "<running>").replace(ctx.closed, "<closed>").replace(ctx.spare, "<spare>")
    message = re.sub(r"bad-[0-9a-f]{32}", "<new>", message)
    return UUID.sub("<uuid>", message)


async def _outcome(ctx: Ctx, case: Case) -> tuple[str, str, list[str]]:
    try:
        await asyncio.wait_for(case(ctx), 30)
    except RPCError as err:
        details = [d.type_url.rsplit("/", 1)[-1] for d in (err.grpc_status.details if err.grpc_status else [])]
        return err.status.name, _normalize(err.message, ctx), details
    return "OK", "", []


async def _context(address: str) -> Ctx:
    client = await Client.connect(address)
    running = f"bad-running-{uuid.uuid4().hex[:8]}"
    closed = f"bad-closed-{uuid.uuid4().hex[:8]}"
    spare = f"bad-spare-{uuid.uuid4().hex[:8]}"
    for workflow_id in (running, closed, spare):
        await client.workflow_service.start_workflow_execution(start(workflow_id=workflow_id))
    await client.get_workflow_handle(closed).terminate("closed for the test")
    return Ctx(client, running, closed, spare)


@pytest.fixture(scope="module")
async def contexts(server: ServerProcess, reference_server: ServerProcess) -> tuple[Ctx, Ctx]:
    return await _context(reference_server.address), await _context(server.address)


@pytest.mark.parametrize("name", list(CASES))
async def test_same_error_as_reference(name: str, contexts: tuple[Ctx, Ctx]) -> None:
    reference, ours = contexts
    expected = await _outcome(reference, CASES[name])
    got = await _outcome(ours, CASES[name])
    assert got == expected


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: bodies that the SDK's message classes would not build."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _nested_failure(depth: int) -> bytes:
    failure = _field(1, b"m")  # Failure.message
    for _ in range(depth):
        failure = _field(1, b"m") + _field(4, failure)  # Failure.cause
    return failure


async def test_search_attribute_nested_too_deep_for_go_like_the_reference(contexts: tuple[Ctx, Ctx]) -> None:
    """Past 10,000 levels Go's decoder gives up: the message shows the payload (cut at 4000 bytes,
    where the reference's random spacing shifts the cut by a few characters)."""
    deep = raw_search_attribute("CustomerId", b"[" * 10_001 + b"]" * 10_001)

    async def outcome(ctx: Ctx) -> tuple[str, str]:
        status, message, _ = await _outcome(ctx, lambda c: c.ws.start_workflow_execution(start(search_attributes=deep)))
        return status, message[:3900]

    reference, ours = contexts
    assert await outcome(ours) == await outcome(reference)


# Request bodies that do not decode: grpc-go answers them before the reference's handlers run.
UNDECODABLE: dict[str, tuple[str, bytes]] = {
    "garbage bytes": ("StartWorkflowExecution", b"\xff" * 5),
    "a truncated field": ("DescribeNamespace", b"\x0a\x05ab"),
    "a string that is not UTF-8": ("DescribeNamespace", _field(1, b"\xff\xfe")),
    "a failure with 10,000 nested causes": (
        "RespondActivityTaskFailed",
        _field(1, b"token") + _field(2, _nested_failure(10_000)) + _field(4, b"default"),
    ),
}


@pytest.mark.parametrize("name", list(UNDECODABLE))
async def test_undecodable_request_like_the_reference(name: str, contexts: tuple[Ctx, Ctx]) -> None:
    method, body = UNDECODABLE[name]

    async def outcome(ctx: Ctx) -> tuple[str, str]:
        async with grpc.aio.insecure_channel(ctx.client.service_client.config.target_host) as channel:
            call = channel.unary_unary(
                f"/temporal.api.workflowservice.v1.WorkflowService/{method}",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            try:
                await call(body, timeout=30)
            except grpc.aio.AioRpcError as err:
                return err.code().name, _normalize(err.details() or "", ctx)
        return "OK", ""

    reference, ours = contexts
    assert await outcome(ours) == await outcome(reference)


async def _manual_activity_token(client: Client) -> tuple[bytes, str]:
    """Drive one workflow by hand up to a started activity, and return the activity's token."""
    ws = client.workflow_service
    queue = f"manual-{uuid.uuid4().hex[:8]}"
    workflow_id = f"manual-{uuid.uuid4().hex[:8]}"
    await ws.start_workflow_execution(start(workflow_id=workflow_id, task_queue=TaskQueue(name=queue)))
    task = await ws.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue), identity="t"),
        timeout=timedelta(seconds=20),
    )
    command = Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="a1",
            activity_type=ActivityType(name="A"),
            task_queue=TaskQueue(name=queue),
            start_to_close_timeout=Duration(seconds=30),
        ),
    )
    await ws.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=task.task_token, commands=[command])
    )
    activity = await ws.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue), identity="t"),
        timeout=timedelta(seconds=20),
    )
    return activity.task_token, workflow_id


async def _complete_twice(client: Client) -> tuple[str, str]:
    token, _ = await _manual_activity_token(client)
    req = RespondActivityTaskCompletedRequest(namespace="default", task_token=token)
    await client.workflow_service.respond_activity_task_completed(req)
    try:
        await client.workflow_service.respond_activity_task_completed(req)
    except RPCError as err:
        return err.status.name, err.message
    return "OK", ""


async def test_activity_failure_with_a_long_cause_chain_like_the_reference(contexts: tuple[Ctx, Ctx]) -> None:
    """98 causes, the most protobuf's decoder reads in this request: both servers take it. The
    reference stores them all, so deep that the SDK cannot read the history back ("recursion limit
    reached"); tempyral, which could not read such events back either, keeps 64 and says so."""
    non_retryable = _field(5, b"\x10\x01")  # application_failure_info.non_retryable
    failure = _field(1, b"m") + non_retryable
    for _ in range(98):
        failure = _field(1, b"m") + _field(4, failure) + non_retryable

    async def fail(ctx: Ctx) -> tuple[str, str]:
        token, workflow_id = await _manual_activity_token(ctx.client)
        async with grpc.aio.insecure_channel(ctx.client.service_client.config.target_host) as channel:
            call = channel.unary_unary(
                "/temporal.api.workflowservice.v1.WorkflowService/RespondActivityTaskFailed",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            try:
                await call(_field(1, token) + _field(2, failure) + _field(4, b"default"), timeout=30)
            except grpc.aio.AioRpcError as err:
                return f"{err.code().name}: {err.details()}", workflow_id
        return "OK", workflow_id

    reference, ours = contexts
    assert (await fail(reference))[0] == "OK"
    answer, workflow_id = await fail(ours)
    assert answer == "OK"
    events = (await ours.client.get_workflow_handle(workflow_id).fetch_history()).events
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    chain = [failed[0].activity_task_failed_event_attributes.failure]
    while chain[-1].HasField("cause"):
        chain.append(chain[-1].cause)
    assert len(chain) == 65
    assert chain[-1].message == "Failure causes exceed depth limit."


async def test_token_of_a_finished_task_is_not_found_like_the_reference(contexts: tuple[Ctx, Ctx]) -> None:
    reference, ours = contexts
    assert await _complete_twice(ours.client) == await _complete_twice(reference.client)


OVERSIZED_ACTIVITY_CALLS: dict[str, Callable[[Any, bytes], Awaitable[Any]]] = {
    "result": lambda ws, token: ws.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(namespace="default", task_token=token, result=BIG)
    ),
    "failure": lambda ws, token: ws.respond_activity_task_failed(
        RespondActivityTaskFailedRequest(
            namespace="default",
            task_token=token,
            failure=Failure(
                message="x" * (2 * 1024 * 1024 + 10), application_failure_info=ApplicationFailureInfo(type="Big")
            ),
        )
    ),
    "heartbeat details": lambda ws, token: ws.record_activity_task_heartbeat(
        RecordActivityTaskHeartbeatRequest(namespace="default", task_token=token, details=BIG)
    ),
}


@pytest.mark.parametrize("what", list(OVERSIZED_ACTIVITY_CALLS))
async def test_oversized_activity_payload_like_the_reference(what: str, contexts: tuple[Ctx, Ctx]) -> None:
    async def outcome(client: Client) -> tuple[str, str, list[str]]:
        token, workflow_id = await _manual_activity_token(client)
        try:
            response = await OVERSIZED_ACTIVITY_CALLS[what](client.workflow_service, token)
            answer = str([f.message for f in getattr(response, "failures", [])]) + str(
                getattr(response, "cancel_requested", "")
            )
        except RPCError as err:
            answer = f"{err.status.name}: {err.message}"
        events = (await client.get_workflow_handle(workflow_id).fetch_history()).events
        closing = [
            f"{EventType.Name(e.event_type)} {e.activity_task_failed_event_attributes.failure.message}"
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        ]
        return answer, str([EventType.Name(e.event_type) for e in events]), closing

    reference, ours = contexts
    assert await outcome(ours.client) == await outcome(reference.client)


async def test_server_is_healthy_after_bad_input(contexts: tuple[Ctx, Ctx]) -> None:
    _, ours = contexts
    client = ours.client
    queue = f"after-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[HelloWorkflow], activities=[greet]):
        result = await client.execute_workflow(HelloWorkflow.run, "still here", id=f"after-{queue}", task_queue=queue)
    assert result == "Hello, still here!"
    # the workflows the cases targeted are intact
    running = await client.get_workflow_handle(ours.running).describe()
    closed = await client.get_workflow_handle(ours.closed).describe()
    assert running.status is not None and running.status.name == "RUNNING"
    assert closed.status is not None and closed.status.name == "TERMINATED"
