"""Standalone activities on tempyral and on the reference: the same raw calls, compared answer by answer (describe
output normalised for run ids, times and sizes; errors by code and message; list and count answers)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.support.servers import ServerProcess

# What must differ between two servers: ids they make, instants, and their own bookkeeping sizes.
VARIABLE = {
    "runId",
    "scheduleTime",
    "executionTime",
    "closeTime",
    "executionDuration",
    "stateSizeBytes",
    "longPollToken",
    "lastAttemptCompleteTime",
    "expirationTime",
    "lastStartedTime",
    "lastHeartbeatTime",
    "nextAttemptScheduleTime",
}


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<set>" if k in VARIABLE else _normalised(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


async def _call(client: Client, method: str, request: Message) -> Any:
    try:  # one attempt: errors must show as the server gives them
        response = await getattr(client.workflow_service, method)(request, retry=False)
    except RPCError as err:
        details = [d.type_url.rsplit(".", 1)[-1] for d in err.grpc_status.details]
        return f"{err.status.name}: {err.message} {details}"
    return _normalised(json_format.MessageToDict(response))


async def _listed(client: Client, ns: str, query: str, count: int) -> None:
    """Until `query` lists `count` activities, within a bound: the reference's visibility trails its writes (when the
    bound passes, the comparison that follows shows what differs)."""
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        listed = await client.workflow_service.list_activity_executions(
            ws.ListActivityExecutionsRequest(namespace=ns, query=query)
        )
        if len(listed.executions) >= count:
            return
        await asyncio.sleep(0.2)


async def _scenario(address: str, tag: str) -> list[tuple[str, Any]]:
    client = await Client.connect(address)
    ns = "default"
    queue = f"sa-diff-{tag}"
    p, q = f"p-{tag}", f"q-{tag}"

    def start(activity_id: str, request_id: str, **fields: Any) -> ws.StartActivityExecutionRequest:
        req = ws.StartActivityExecutionRequest(namespace=ns, activity_id=activity_id, request_id=request_id, **fields)
        if "activity_type" not in fields:
            req.activity_type.name = "Unpolled"
        if "task_queue" not in fields:
            req.task_queue.name = queue
        if "start_to_close_timeout" not in fields and "schedule_to_close_timeout" not in fields:
            req.start_to_close_timeout.seconds = 30
        return req

    def describe(activity_id: str, **fields: Any) -> ws.DescribeActivityExecutionRequest:
        return ws.DescribeActivityExecutionRequest(namespace=ns, activity_id=activity_id, **fields)

    out: list[tuple[str, Any]] = []

    async def record(what: str, method: str, request: Message) -> None:
        out.append((what, await _call(client, method, request)))

    await record("start", "start_activity_execution", start(p, "r1"))
    await record("same request id", "start_activity_execution", start(p, "r1"))
    await record("running id", "start_activity_execution", start(p, "r2"))
    await record("use existing", "start_activity_execution", start(p, "r3", id_conflict_policy=2))
    await record("bad conflict policy", "start_activity_execution", start(p, "r4", id_conflict_policy=3))
    no_timeouts = start(p, "r5")
    no_timeouts.ClearField("start_to_close_timeout")
    await record("no timeouts", "start_activity_execution", no_timeouts)
    await record("no id", "start_activity_execution", start("", "r6"))
    no_type = start(p, "r7")
    no_type.ClearField("activity_type")
    await record("no type", "start_activity_execution", no_type)
    no_queue = start(p, "r8")
    no_queue.ClearField("task_queue")
    await record("no task queue", "start_activity_execution", no_queue)
    negative = start(p, "r9")
    negative.start_to_close_timeout.seconds = -5
    await record("negative timeout", "start_activity_execution", negative)
    await record("describe unknown", "describe_activity_execution", describe(f"none-{tag}"))
    await record("describe bad run id", "describe_activity_execution", describe(p, run_id="bad"))
    await record("describe other run", "describe_activity_execution", describe(p, run_id=str(uuid.uuid4())))
    for method, cls in (
        ("poll_activity_execution", ws.PollActivityExecutionRequest),
        ("request_cancel_activity_execution", ws.RequestCancelActivityExecutionRequest),
        ("terminate_activity_execution", ws.TerminateActivityExecutionRequest),
        ("delete_activity_execution", ws.DeleteActivityExecutionRequest),
    ):
        await record(f"{method} unknown", method, cls(namespace=ns, activity_id=f"none-{tag}"))
    await record("describe scheduled", "describe_activity_execution", describe(p, include_input=True))
    cancel = ws.RequestCancelActivityExecutionRequest(namespace=ns, activity_id=p, reason="why", request_id="c1")
    await record("cancel scheduled", "request_cancel_activity_execution", cancel)
    await record("describe canceled", "describe_activity_execution", describe(p, include_outcome=True))
    cancel.request_id = "c2"
    await record("cancel again", "request_cancel_activity_execution", cancel)
    terminate = ws.TerminateActivityExecutionRequest(namespace=ns, activity_id=p, reason="bye")
    await record("terminate closed", "terminate_activity_execution", terminate)
    await record(
        "poll canceled", "poll_activity_execution", ws.PollActivityExecutionRequest(namespace=ns, activity_id=p)
    )
    await record("start q", "start_activity_execution", start(q, "s1", schedule_to_close_timeout=_seconds(60)))
    terminate.activity_id = q
    await record("terminate running", "terminate_activity_execution", terminate)
    await record("describe terminated", "describe_activity_execution", describe(q, include_outcome=True))
    await record("reject duplicate", "start_activity_execution", start(p, "r10", id_reuse_policy=3))
    await record("failed only", "start_activity_execution", start(p, "r11", id_reuse_policy=2))
    await record(
        "terminate new run",
        "terminate_activity_execution",
        ws.TerminateActivityExecutionRequest(namespace=ns, activity_id=p),
    )
    await _listed(client, ns, f"TaskQueue = '{queue}' AND ExecutionStatus != 'Running'", 3)
    for query in (
        f"TaskQueue = '{queue}'",
        f"TaskQueue = '{queue}' AND ActivityId = '{q}'",
        f"TaskQueue = '{queue}' AND ActivityType = 'Unpolled'",
        f"TaskQueue = '{queue}' AND ExecutionStatus = 'Canceled'",
        f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'",
        f"TaskQueue = '{queue}' AND WorkflowId = '{p}'",
        f"TaskQueue = '{queue}' AND ScheduleTime > '2020-01-01T00:00:00Z'",
        f"TaskQueue = '{queue}' ORDER BY CloseTime",
        "Nope = 'x'",
    ):
        listed = await _call(
            client, "list_activity_executions", ws.ListActivityExecutionsRequest(namespace=ns, query=query)
        )
        if isinstance(listed, dict):
            listed = sorted((e["activityId"], e["status"]) for e in listed.get("executions", []))
        out.append((f"list {query}", listed))
    for query in (f"TaskQueue = '{queue}'", f"TaskQueue = '{queue}' GROUP BY ExecutionStatus", "GROUP BY ActivityType"):
        counted = await _call(
            client, "count_activity_executions", ws.CountActivityExecutionsRequest(namespace=ns, query=query)
        )
        if isinstance(counted, dict) and "groups" in counted:
            counted["groups"] = sorted(json.dumps(g, sort_keys=True) for g in counted["groups"])
        out.append((f"count {query}", counted))
    workflows = await _call(
        client,
        "count_workflow_executions",
        ws.CountWorkflowExecutionsRequest(namespace=ns, query=f"TaskQueue = '{queue}'"),
    )
    out.append(("workflows on the queue", workflows))
    delayed = start(f"d-{tag}", "d1", start_delay=_seconds(30), schedule_to_close_timeout=_seconds(100))
    delayed.user_metadata.summary.metadata["encoding"] = b"json/plain"
    delayed.user_metadata.summary.data = b'"a summary"'
    await record("start delayed", "start_activity_execution", delayed)
    await record("describe delayed", "describe_activity_execution", describe(f"d-{tag}"))
    negative_delay = start(f"n-{tag}", "n1", start_delay=_seconds(-1))
    await record("negative delay", "start_activity_execution", negative_delay)
    first = await client.workflow_service.describe_activity_execution(describe(f"d-{tag}"))
    await record(
        "long poll without run id",
        "describe_activity_execution",
        describe(f"d-{tag}", long_poll_token=first.long_poll_token),
    )
    await record(
        "bad long poll token",
        "describe_activity_execution",
        describe(f"d-{tag}", long_poll_token=b"x", run_id=first.run_id),
    )
    terminate.activity_id = f"d-{tag}"
    await record("terminate delayed", "terminate_activity_execution", terminate)
    await record(
        "long poll of a closed one",
        "describe_activity_execution",
        describe(f"d-{tag}", long_poll_token=first.long_poll_token, run_id=first.run_id),
    )
    tagged = start(f"sa-{tag}", "t1")
    tagged.search_attributes.indexed_fields["CustomerId"].CopyFrom(
        common.Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=b'"acme"')
    )
    tagged.search_attributes.indexed_fields["VisInt"].CopyFrom(
        common.Payload(metadata={"encoding": b"json/plain", "type": b"Int"}, data=b"7")
    )
    await record("start with search attributes", "start_activity_execution", tagged)
    await record("describe with search attributes", "describe_activity_execution", describe(f"sa-{tag}"))
    await _listed(client, ns, f"ActivityId = 'sa-{tag}'", 1)
    for query in (f"CustomerId = 'acme' AND TaskQueue = '{queue}'", f"VisInt > 5 AND TaskQueue = '{queue}'"):
        listed = await _call(
            client, "list_activity_executions", ws.ListActivityExecutionsRequest(namespace=ns, query=query)
        )
        out.append((f"list {query}", listed))
    unstarted = f"u-{tag}"
    await record("start unstarted", "start_activity_execution", start(unstarted, "u1"))
    for method, by_id in (
        ("respond_activity_task_failed_by_id", ws.RespondActivityTaskFailedByIdRequest),
        ("respond_activity_task_canceled_by_id", ws.RespondActivityTaskCanceledByIdRequest),
        ("record_activity_task_heartbeat_by_id", ws.RecordActivityTaskHeartbeatByIdRequest),
        ("respond_activity_task_completed_by_id", ws.RespondActivityTaskCompletedByIdRequest),
    ):
        await record(f"{method} unstarted", method, by_id(namespace=ns, activity_id=unstarted))
    await record(
        "poll completed by id",
        "poll_activity_execution",
        ws.PollActivityExecutionRequest(namespace=ns, activity_id=unstarted),
    )
    await record("delete", "delete_activity_execution", ws.DeleteActivityExecutionRequest(namespace=ns, activity_id=q))
    await record("describe deleted", "describe_activity_execution", describe(q))
    return out


def _seconds(n: int) -> Duration:
    return Duration(seconds=n)


async def test_standalone_activity_answers_match_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    tag = uuid.uuid4().hex[:8]
    ours, theirs = await asyncio.gather(_scenario(server.address, tag), _scenario(reference_server.address, tag))
    assert [what for what, _ in ours] == [what for what, _ in theirs]
    for (what, mine), (_, reference) in zip(ours, theirs, strict=True):
        assert mine == reference, what


@activity.defn
async def work(mode: str) -> str:
    """What each worker scenario's activity does, by its input."""
    info = activity.info()
    if mode == "flaky" and info.attempt < 3:
        raise ApplicationError(f"attempt {info.attempt}", "d", type="Flaky")
    if mode == "fail":
        raise ApplicationError("nope", non_retryable=True)
    if mode == "heartbeat":
        activity.heartbeat("beat")
        await asyncio.sleep(30)  # its heartbeat timeout (1s) ends it
    if mode == "backoff":
        raise ApplicationError("boom")
    if mode == "cancel":
        while True:  # until the cancellation arrives with a heartbeat's answer
            activity.heartbeat("c")
            await asyncio.sleep(0.2)
    return "ok"


WORKER_SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("flaky", {"retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0)}),
    ("fail", {}),
    ("heartbeat", {"heartbeat_timeout": timedelta(seconds=1), "retry_policy": RetryPolicy(maximum_attempts=1)}),
    ("cancel", {"heartbeat_timeout": timedelta(seconds=5)}),
    ("backoff", {"retry_policy": RetryPolicy(initial_interval=timedelta(seconds=20))}),
]


def _heartbeating(d: ws.DescribeActivityExecutionResponse) -> bool:
    return d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and d.info.total_heartbeat_count > 0


def _second_attempt(d: ws.DescribeActivityExecutionResponse) -> bool:
    return d.info.attempt == 2


def _cancel_requested(d: ws.DescribeActivityExecutionResponse) -> bool:
    return d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED


def _uncounted(described: Any) -> Any:
    """How many heartbeats a worker sent before its cancellation depends on timing (the SDK throttles them): those
    counts must be there, their values may differ."""
    info = described["info"]
    for key in ("totalHeartbeatCount", "stateTransitionCount"):
        assert int(info[key]) > 0
        info[key] = "<counted>"
    return described


async def _until(
    client: Client, activity_id: str, ready: Callable[[ws.DescribeActivityExecutionResponse], bool], **fields: Any
) -> Any:
    """The activity's describe answer once `ready` holds (bounded)."""
    request = ws.DescribeActivityExecutionRequest(namespace="default", activity_id=activity_id, **fields)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        d = await client.workflow_service.describe_activity_execution(request)
        if ready(d):
            return _normalised(json_format.MessageToDict(d))
        assert asyncio.get_running_loop().time() < deadline, f"{activity_id} never got there"
        await asyncio.sleep(0.05)


async def _worker_scenario(address: str, tag: str) -> list[tuple[str, Any]]:
    client = await Client.connect(address)
    queue = f"sa-worker-{tag}"
    out: list[tuple[str, Any]] = []
    async with Worker(client, task_queue=queue, activities=[work]):
        for mode, options in WORKER_SCENARIOS:
            activity_id = f"{mode}-{tag}"
            handle = await client.start_activity(
                work, mode, id=activity_id, task_queue=queue, start_to_close_timeout=timedelta(seconds=20), **options
            )
            if mode == "cancel":
                out.append(("started", _uncounted(await _until(client, activity_id, _heartbeating))))
                cancel = ws.RequestCancelActivityExecutionRequest(
                    namespace="default", activity_id=activity_id, reason="stop", request_id="c1", identity="test"
                )
                out.append(("cancel", await _call(client, "request_cancel_activity_execution", cancel)))
                out.append(("cancel requested", _uncounted(await _until(client, activity_id, _cancel_requested))))
                out.append(("same cancel", await _call(client, "request_cancel_activity_execution", cancel)))
                cancel.request_id = "c2"
                out.append(("another cancel", await _call(client, "request_cancel_activity_execution", cancel)))
            if mode == "backoff":  # its second attempt waits out 20s: describe it meanwhile, then end it
                out.append(
                    ("backing off", await _until(client, activity_id, _second_attempt, include_last_failure=True))
                )
                await handle.terminate(reason="enough")
            poll = ws.PollActivityExecutionRequest(namespace="default", activity_id=activity_id)
            out.append((f"{mode} outcome", await _call(client, "poll_activity_execution", poll)))
            full = ws.DescribeActivityExecutionRequest(
                namespace="default",
                activity_id=activity_id,
                include_input=True,
                include_outcome=True,
                include_heartbeat_details=True,
                include_last_failure=True,
            )
            described = await _call(client, "describe_activity_execution", full)
            out.append((f"{mode} described", _uncounted(described) if mode == "cancel" else described))
    closed = f"fail-{tag}"
    for method, request in (
        (
            "respond_activity_task_completed_by_id",
            ws.RespondActivityTaskCompletedByIdRequest(namespace="default", activity_id=closed),
        ),
        (
            "respond_activity_task_canceled_by_id",
            ws.RespondActivityTaskCanceledByIdRequest(namespace="default", activity_id=closed),
        ),
        (
            "respond_activity_task_failed_by_id",
            ws.RespondActivityTaskFailedByIdRequest(namespace="default", activity_id=closed),
        ),
        (
            "record_activity_task_heartbeat_by_id",
            ws.RecordActivityTaskHeartbeatByIdRequest(namespace="default", activity_id=closed),
        ),
        (
            "record_activity_task_heartbeat_by_id",
            ws.RecordActivityTaskHeartbeatByIdRequest(namespace="default", activity_id=f"none-{tag}"),
        ),
    ):
        out.append((f"{method} {request.activity_id}", await _call(client, method, request)))
    return out


async def test_worker_side_answers_match_the_reference(server: ServerProcess, reference_server: ServerProcess) -> None:
    """Retries, a non-retryable failure, a heartbeat timeout and a cancellation the worker sees: describe and the
    outcome as on the reference (heartbeat counts and state transitions included)."""
    tag = uuid.uuid4().hex[:8]
    ours, theirs = await asyncio.gather(
        _worker_scenario(server.address, tag), _worker_scenario(reference_server.address, tag)
    )
    assert [what for what, _ in ours] == [what for what, _ in theirs]
    for (what, mine), (_, reference) in zip(ours, theirs, strict=True):
        assert mine == reference, what
