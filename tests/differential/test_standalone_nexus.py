"""Differential tests of standalone Nexus operations (nexus/standalone.py): the same calls against the reference
server, with standalone operations enabled by its dynamic config (`nexusoperation.enableStandalone`, which also
needs `history.enableChasm`), and against tempyral, which serves them always; the answers must agree: errors
(status code, message, detail types), DescribeNexusOperationExecution and PollNexusOperationExecution (sync and
async operations, failures, a cancel, a terminate), List and Count with queries.

What legitimately differs is normalized: run ids, request ids, times and durations, the state's size, long-poll
tokens and stack traces are reduced to whether they are there, and the reference's internal
`TemporalNamespaceDivision` search attribute on listed operations is dropped. Operation ids, endpoint names and
the SDK's operation tokens (derived from the handler workflow's id) are the same on both servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import NexusOperationIdConflictPolicy as Conflict
from temporalio.api.enums.v1 import NexusOperationIdReusePolicy as Reuse
from temporalio.api.enums.v1 import NexusOperationWaitStage as Stage
from temporalio.api.enums.v1 import PendingNexusOperationState
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.workflowservice.v1 import (
    CountNexusOperationExecutionsRequest,
    DeleteNexusOperationExecutionRequest,
    DescribeNexusOperationExecutionRequest,
    ListNexusOperationExecutionsRequest,
    PollNexusOperationExecutionRequest,
    RequestCancelNexusOperationExecutionRequest,
    StartNexusOperationExecutionRequest,
    TerminateNexusOperationExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.support.nexus_services import GreeterHandler, GreeterWorkflow
from tests.support.servers import ServerProcess, reference, tempyral

SUFFIX = uuid.uuid4().hex[:8]  # the same on both servers
ENDPOINT = f"ep-{SUFFIX}"
IDLE_ENDPOINT = f"ep-idle-{SUFFIX}"  # no worker polls its task queue: operations on it stay scheduled
TASK_QUEUE = f"tq-{SUFFIX}"
REFERENCE_FLAGS = [
    "--dynamic-config-value",
    "nexusoperation.enableStandalone=true",
    "--dynamic-config-value",
    "history.enableChasm=true",
]
# Reduced to whether they are there: what differs between two servers by nature.
VOLATILE = frozenset(
    {
        "runId",
        "requestId",
        "scheduleTime",
        "closeTime",
        "expirationTime",
        "executionDuration",
        "lastAttemptCompleteTime",
        "nextAttemptScheduleTime",
        "stateSizeBytes",
        "longPollToken",
        "stackTrace",
        "identity",
    }
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    ref = reference(extra=REFERENCE_FLAGS).start()
    ours = tempyral().start()
    yield ref, ours
    ref.stop()
    ours.stop()


def _payload(name: str, mode: str = "ok") -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'{{"name":"{name}","mode":"{mode}"}}'.encode())


def normalize(value: Any) -> Any:
    if isinstance(value, Message):
        value = MessageToDict(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in VOLATILE:
                out[key] = "<present>"
            elif key == "indexedFields":
                fields = {k: v for k, v in item.items() if k != "TemporalNamespaceDivision"}
                if fields:
                    out[key] = normalize(fields)
            elif key == "workflowEvent":
                out[key] = normalize({k: v for k, v in item.items() if k != "runId"})
            else:
                out[key] = normalize(item)
        return out
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


async def _answer(call: Any) -> Any:
    """The normalized response, or the error as (code, message, detail types)."""
    try:
        return normalize(await call)
    except RPCError as err:
        details = [d.type_url for d in (err.grpc_status.details or [])]
        message = err.message
        for run_id in _RUN_IDS:
            message = message.replace(run_id, "<run>")
        for request_id in _REQUEST_IDS:
            message = message.replace(request_id, "<request>")
        return ("error", err.status.name, message, details)


# Ids that error messages may name (reduced like the fields).
_RUN_IDS: set[str] = set()
_REQUEST_IDS: set[str] = set()


class Session:
    """The calls of the scenarios, against one server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.svc = client.workflow_service

    def start(self, op_id: str, endpoint: str = ENDPOINT, **kw: Any) -> Any:
        request_id = kw.pop("request_id", None) or str(uuid.uuid4())
        _REQUEST_IDS.add(request_id)
        req = StartNexusOperationExecutionRequest(
            namespace="default",
            identity="differential",
            request_id=request_id,
            operation_id=op_id,
            endpoint=endpoint,
            service=kw.pop("service", "Greeter"),
            operation=kw.pop("operation", "echo"),
            input=kw.pop("input", _payload(op_id)),
            **kw,
        )
        return self._remember(self.svc.start_nexus_operation_execution(req))

    async def _remember(self, call: Any) -> Any:
        resp = await call
        if resp.run_id:
            _RUN_IDS.add(resp.run_id)
        return resp

    def describe(self, op_id: str, **kw: Any) -> Any:
        req = DescribeNexusOperationExecutionRequest(namespace="default", operation_id=op_id, **kw)
        return self.svc.describe_nexus_operation_execution(req)

    def poll(self, op_id: str, stage: int = Stage.NEXUS_OPERATION_WAIT_STAGE_CLOSED, **kw: Any) -> Any:
        req = PollNexusOperationExecutionRequest(namespace="default", operation_id=op_id, wait_stage=stage)  # type: ignore[arg-type]
        return self.svc.poll_nexus_operation_execution(req, **kw)

    def cancel(self, op_id: str, request_id: str = "cancel-1", reason: str = "why") -> Any:
        req = RequestCancelNexusOperationExecutionRequest(
            namespace="default", operation_id=op_id, request_id=request_id, reason=reason
        )
        return self.svc.request_cancel_nexus_operation_execution(req)

    def terminate(self, op_id: str, request_id: str = "terminate-1", reason: str = "stop") -> Any:
        req = TerminateNexusOperationExecutionRequest(
            namespace="default", operation_id=op_id, request_id=request_id, reason=reason
        )
        return self.svc.terminate_nexus_operation_execution(req)

    def delete(self, op_id: str) -> Any:
        return self.svc.delete_nexus_operation_execution(
            DeleteNexusOperationExecutionRequest(namespace="default", operation_id=op_id)
        )

    async def until_started(self, op_id: str) -> None:
        started = PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
        for _ in range(600):
            if (await self.describe(op_id)).info.state == started:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{op_id} never started")


async def _sessions(servers: tuple[ServerProcess, ServerProcess]) -> list[Session]:
    sessions = []
    for proc in servers:
        client = await Client.connect(proc.address)
        for endpoint, queue in ((ENDPOINT, TASK_QUEUE), (IDLE_ENDPOINT, f"idle-{SUFFIX}")):
            spec = EndpointSpec(
                name=endpoint,
                target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=queue)),
            )
            try:
                await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
            except RPCError:
                pass  # made by an earlier test of this module
        sessions.append(Session(client))
    return sessions


def _spec(endpoint: str, task_queue: str) -> EndpointSpec:
    target = EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))
    return EndpointSpec(name=endpoint, target=target)


def _worker(session: Session) -> Worker:
    return Worker(
        session.client, task_queue=TASK_QUEUE, workflows=[GreeterWorkflow], nexus_service_handlers=[GreeterHandler()]
    )


async def _both(sessions: list[Session], scenario: Any) -> None:
    ref, ours = await asyncio.gather(*(scenario(s) for s in sessions))
    assert len(ref) == len(ours)
    for (label, want), (_, got) in zip(ref, ours, strict=True):
        assert got == want, f"{label}:\nreference {want}\ntempyral  {got}"


async def test_errors(servers: tuple[ServerProcess, ServerProcess]) -> None:
    async def scenario(s: Session) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        out.append(("no id", await _answer(s.start(""))))
        out.append(("no endpoint", await _answer(s.start("e1", endpoint=""))))
        out.append(("unknown endpoint", await _answer(s.start("e1", endpoint="nope"))))
        out.append(("no service", await _answer(s.start("e1", service=""))))
        out.append(("no operation", await _answer(s.start("e1", operation=""))))
        out.append(("long id", await _answer(s.start("x" * 1001))))
        out.append(("describe unknown", await _answer(s.describe("nope"))))
        out.append(("describe no id", await _answer(s.describe(""))))
        out.append(("poll unknown", await _answer(s.poll("nope"))))
        out.append(("cancel unknown", await _answer(s.cancel("nope"))))
        out.append(("terminate unknown", await _answer(s.terminate("nope"))))
        out.append(("delete unknown", await _answer(s.delete("nope"))))
        op = f"dup-{SUFFIX}"
        request_id = str(uuid.uuid4())
        out.append(("start", await _answer(s.start(op, endpoint=IDLE_ENDPOINT, request_id=request_id))))
        out.append(("same request", await _answer(s.start(op, endpoint=IDLE_ENDPOINT, request_id=request_id))))
        out.append(("running, FAIL", await _answer(s.start(op, endpoint=IDLE_ENDPOINT))))
        conflict = Conflict.NEXUS_OPERATION_ID_CONFLICT_POLICY_USE_EXISTING
        out.append(("USE_EXISTING", await _answer(s.start(op, endpoint=IDLE_ENDPOINT, id_conflict_policy=conflict))))
        out.append(("cancel", await _answer(s.cancel(op))))
        out.append(("cancel again", await _answer(s.cancel(op, request_id="cancel-2"))))
        out.append(("terminate", await _answer(s.terminate(op))))
        out.append(("terminate again", await _answer(s.terminate(op, request_id="terminate-2"))))
        out.append(("cancel closed", await _answer(s.cancel(op, request_id="cancel-3"))))
        reject = Reuse.NEXUS_OPERATION_ID_REUSE_POLICY_REJECT_DUPLICATE
        out.append(("REJECT_DUPLICATE", await _answer(s.start(op, endpoint=IDLE_ENDPOINT, id_reuse_policy=reject))))
        for query in ("Foo = 1", "ScheduleTime > '2020-01-01T00:00:00Z'", "OperationId = 'x' ORDER BY StartTime"):
            req = ListNexusOperationExecutionsRequest(namespace="default", query=query)
            out.append((f"list {query}", await _answer(s.svc.list_nexus_operation_executions(req))))
        return out

    await _both(await _sessions(servers), scenario)


async def test_describe_and_poll(servers: tuple[ServerProcess, ServerProcess]) -> None:
    async def scenario(s: Session) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        outcome = {"include_input": True, "include_outcome": True}
        async with _worker(s):
            # a sync operation that completes
            op = f"sync-{SUFFIX}"
            await s.start(op, schedule_to_close_timeout=timedelta(seconds=30))
            out.append(("sync poll", await _answer(s.poll(op))))
            out.append(("sync describe", await _answer(s.describe(op, **outcome))))
            # a sync operation that fails
            op = f"fail-{SUFFIX}"
            await s.start(op, input=_payload(op, "operation-error"))
            out.append(("failed poll", await _answer(s.poll(op))))
            out.append(("failed describe", await _answer(s.describe(op, **outcome))))
            # an async operation that completes through its handler workflow's callback
            op = f"async-{SUFFIX}"
            await s.start(op, operation="hello")
            out.append(("async poll", await _answer(s.poll(op))))
            out.append(("async describe", await _answer(s.describe(op, **outcome))))
            # an async operation canceled once started
            op = f"cancel-{SUFFIX}"
            await s.start(op, operation="hello", input=_payload(op, "hang"))
            await s.until_started(op)
            out.append(("started poll", await _answer(s.poll(op, Stage.NEXUS_OPERATION_WAIT_STAGE_STARTED))))
            await s.cancel(op, reason="bye")
            out.append(("canceled poll", await _answer(s.poll(op))))
            out.append(("canceled describe", await _answer(s.describe(op, **outcome))))
        # an operation no worker starts: its cancel waits, then it is terminated
        op = f"idle-{SUFFIX}"
        await s.start(op, endpoint=IDLE_ENDPOINT, schedule_to_close_timeout=timedelta(seconds=60))
        out.append(("scheduled describe", await _answer(s.describe(op, include_input=True))))
        await s.cancel(op)
        out.append(("cancel requested describe", await _answer(s.describe(op))))
        await s.terminate(op)
        out.append(("terminated poll", await _answer(s.poll(op))))
        out.append(("terminated describe", await _answer(s.describe(op, **outcome))))
        return out

    await _both(await _sessions(servers), scenario)


async def test_list_and_count(servers: tuple[ServerProcess, ServerProcess]) -> None:
    endpoint = f"ep-list-{SUFFIX}"

    async def scenario(s: Session) -> list[tuple[str, Any]]:
        spec = EndpointSpec(
            name=endpoint,
            target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=TASK_QUEUE)),
        )
        await s.client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
        async with _worker(s):
            for i in range(3):
                await s.start(f"list-{i}-{SUFFIX}", endpoint=endpoint)
                await s.poll(f"list-{i}-{SUFFIX}")
            await s.start(f"list-f-{SUFFIX}", endpoint=endpoint, input=_payload("f", "operation-error"))
            await s.poll(f"list-f-{SUFFIX}")
            await s.start(f"list-h-{SUFFIX}", endpoint=endpoint, operation="hello", input=_payload("lh"))
            await s.poll(f"list-h-{SUFFIX}")
        await s.start(f"list-t-{SUFFIX}", endpoint=endpoint, input=_payload("t", "hang"), operation="hello")
        await s.terminate(f"list-t-{SUFFIX}")
        await _settled(s, f"Endpoint = '{endpoint}'", 6)
        out: list[tuple[str, Any]] = []
        for query in (
            f"Endpoint = '{endpoint}'",
            f"Endpoint = '{endpoint}' AND ExecutionStatus = 'Completed'",
            f"Endpoint = '{endpoint}' AND Operation = 'hello'",
            f"OperationId = 'list-f-{SUFFIX}'",
            f"Endpoint = '{endpoint}' AND Service = 'Greeter' AND ExecutionStatus != 'Failed'",
        ):
            resp = await s.svc.list_nexus_operation_executions(
                ListNexusOperationExecutionsRequest(namespace="default", query=query)
            )
            ops = sorted((normalize(op) for op in resp.operations), key=lambda op: op["operationId"])
            out.append((f"list {query}", ops))
            count = await s.svc.count_nexus_operation_executions(
                CountNexusOperationExecutionsRequest(namespace="default", query=query)
            )
            out.append((f"count {query}", normalize(count)))
        grouped = await s.svc.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(
                namespace="default", query=f"Endpoint = '{endpoint}' GROUP BY ExecutionStatus"
            )
        )
        groups = sorted((MessageToDict(g) for g in grouped.groups), key=lambda g: [v["data"] for v in g["groupValues"]])
        out.append(("count group by", (grouped.count, groups)))
        await s.delete(f"list-0-{SUFFIX}")
        count = await s.svc.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(namespace="default", query=f"Endpoint = '{endpoint}'")
        )
        await _settled(s, f"Endpoint = '{endpoint}'", 5)
        count = await s.svc.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(namespace="default", query=f"Endpoint = '{endpoint}'")
        )
        out.append(("count after delete", count.count))
        return out

    await _both(await _sessions(servers), scenario)


async def _settled(s: Session, query: str, count: int) -> None:
    """Until the list shows `count` operations, all closed: the reference's visibility trails its writes."""
    for _ in range(100):
        everything = await s.svc.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(namespace="default", query=query)
        )
        running = await s.svc.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(namespace="default", query=f"{query} AND ExecutionStatus = 'Running'")
        )
        if everything.count == count and running.count == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the list never settled at {count} closed operations")
