"""Standalone activities on tempyral and on the reference: the same raw calls, compared answer by answer (describe
output normalised for run ids, times and sizes; errors by code and message; list and count answers)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.service import RPCError

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
        return f"{err.status.name}: {err.message}"
    return _normalised(json_format.MessageToDict(response))


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
            counted["groups"] = sorted(str(g) for g in counted["groups"])
        out.append((f"count {query}", counted))
    workflows = await _call(
        client,
        "count_workflow_executions",
        ws.CountWorkflowExecutionsRequest(namespace=ns, query=f"TaskQueue = '{queue}'"),
    )
    out.append(("workflows on the queue", workflows))
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
