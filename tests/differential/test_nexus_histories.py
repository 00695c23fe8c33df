"""Differential tests of Nexus histories: the same caller and handler workers run the same Nexus
scenarios (sync and workflow-run operations that succeed, fail, are canceled, time out or are
terminated) against the reference server and against tempyral; the caller's history and the
handler workflow's history must agree: event types in order, the values that carry meaning
(failure messages, failure-info kinds and their fields, nested causes, timeouts, links, completion
callbacks) and the shape of every event (its populated fields, two levels deep). Every step waits
until both sides are quiet, so no history depends on which worker is quicker.

What legitimately differs is normalized: run ids become `<caller-run>`/`<handler-run>`, request
ids `<request-N>` (by first appearance, so that SCHEDULED/STARTED/COMPLETED must still share one),
the endpoint ids `<endpoint-id>`/`<idle-endpoint-id>`; timestamps, task ids, stack-trace text and
callback-token contents are reduced to whether they are there. Workflow ids, endpoint names and the
SDK's operation tokens (derived from the handler workflow id) are the same on both servers, so they
are compared as is.

Both servers are started once for the module, with the namespaces `caller-ns` and `handler-ns`,
and every scenario runs concurrently on both."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.differential import nexus_workflows as nw
from tests.differential.test_event_sequences import first_difference, normalize
from tests.support.servers import ServerProcess, reference, tempyral

CALLER_NS = "caller-ns"
HANDLER_NS = "handler-ns"
NAMESPACE_FLAGS = ["--namespace", CALLER_NS, "--namespace", HANDLER_NS]
SUFFIX = uuid.uuid4().hex[:8]  # the same on both servers: workflow ids and tokens then agree
ENDPOINT = f"ep-{SUFFIX}"
IDLE_ENDPOINT = f"ep-idle-{SUFFIX}"  # its task queue has no worker: operations on it are never started
TIMEOUT = 60.0
SCHEDULE_TO_CLOSE_S = 4.0
E = EventType


# ---------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def nexus_servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(reference, tempyral), both with the caller and handler namespaces."""
    ref, ours = reference(extra=NAMESPACE_FLAGS), tempyral(extra=NAMESPACE_FLAGS)
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(ref.start), pool.submit(ours.start)]:
                started.result()
        yield ref, ours
    finally:
        ours.stop()
        ref.stop()


async def _connect(address: str, namespace: str) -> Client:
    client = await Client.connect(address, namespace=namespace)
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # the namespace may not be served the moment the port opens
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
            return client
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


# ---------------------------------------------------------------- scenarios
@dataclass
class Env:
    caller: Client
    handler: Client
    caller_tq: str
    handler_tq: str
    endpoint_id: str = ""
    idle_endpoint_id: str = ""


@dataclass
class Outcome:
    """What a scenario produced on one server: the caller's result and the runs to compare."""

    result: str = ""
    caller: tuple[str, str] = ("", "")  # workflow id, run id
    handler: tuple[str, str] | None = None
    histories: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


Scenario = Callable[[Env, str], Awaitable[Outcome]]


def _describe_error(err: BaseException) -> str:
    """The exception chain, outermost first: type names and messages."""
    parts = []
    cur: Any = err
    while cur is not None:
        parts.append(f"{type(cur).__name__}({cur})")
        cur = getattr(cur, "cause", None) or cur.__cause__
    return " <- ".join(parts)


async def _result(handle: WorkflowHandle[Any, Any]) -> str:
    try:
        return f"ok {await asyncio.wait_for(handle.result(), TIMEOUT)!r}"
    except TimeoutError:
        raise
    except Exception as err:
        return f"error {_describe_error(err)}"


async def _start_caller(
    env: Env, name: str, operation: str, mode: str, timeout: float = 0, endpoint: str = ENDPOINT
) -> WorkflowHandle[Any, Any]:
    return await env.caller.start_workflow(
        nw.NexusCallerWorkflow.run,
        nw.CallerInput(endpoint, operation, name, mode, timeout),
        id=f"caller-{name}",
        task_queue=env.caller_tq,
    )


async def _until(client: Client, workflow_id: str, settled: Callable[[list[HistoryEvent]], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            events = list((await client.get_workflow_handle(workflow_id).fetch_history()).events)
        except Exception:  # not there yet
            events = []
        if settled(events):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{workflow_id} never settled"
        await asyncio.sleep(0.1)


def _started_and_quiet(events: list[HistoryEvent]) -> bool:
    """The operation started and the workflow task that saw it completed: nothing in flight."""
    kinds = [e.event_type for e in events]
    return E.EVENT_TYPE_NEXUS_OPERATION_STARTED in kinds and kinds[-1] == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


def _handler_quiet(events: list[HistoryEvent]) -> bool:
    return bool(events) and events[-1].event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


def _cancel_answered_and_quiet(events: list[HistoryEvent]) -> bool:
    """The caller saw its cancel request answered, and the workflow task that saw it completed."""
    kinds = [e.event_type for e in events]
    answered = E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED in kinds
    return answered and kinds[-1] == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


def _cancel_seen_and_quiet(events: list[HistoryEvent]) -> bool:
    kinds = [e.event_type for e in events]
    return E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in kinds and _handler_quiet(events)


async def _release_handler(env: Env, name: str) -> None:
    """Let the handler workflow close (nexus_workflows.NexusHandlerWorkflow)."""
    await env.handler.get_workflow_handle(f"handler-{name}").signal(nw.NexusHandlerWorkflow.release)


async def _finish(env: Env, handle: WorkflowHandle[Any, Any], name: str, with_handler: bool) -> Outcome:
    outcome = Outcome(result=await _result(handle), caller=(handle.id, handle.first_execution_run_id or ""))
    if with_handler:
        handler = env.handler.get_workflow_handle(f"handler-{name}")
        outcome.handler = (handler.id, (await handler.describe()).run_id)
    return outcome


def _operation(operation: str, mode: str, with_handler: bool) -> Scenario:
    async def scenario(env: Env, name: str) -> Outcome:
        handle = await _start_caller(env, name, operation, mode)
        if with_handler:  # the outcome comes only once both sides are quiet
            await _until(env.caller, handle.id, _started_and_quiet)
            await _until(env.handler, f"handler-{name}", _handler_quiet)
            await _release_handler(env, name)
        outcome = await _finish(env, handle, name, with_handler)
        if mode == "retry-once":  # the first attempt failed and the server did retry it
            outcome.result += f" attempts={nw.ATTEMPTS.get((env.handler_tq, name))}"
        return outcome

    return scenario


async def cancel_async(env: Env, name: str) -> Outcome:
    handle = await env.caller.start_workflow(
        nw.NexusCancelCallerWorkflow.run,
        nw.CallerInput(ENDPOINT, "hello", name),
        id=f"caller-{name}",
        task_queue=env.caller_tq,
    )
    # each step waits until both sides are quiet: no event arrives while a workflow task runs
    await _until(env.caller, handle.id, _started_and_quiet)
    await _until(env.handler, f"handler-{name}", _handler_quiet)
    await handle.signal(nw.NexusCancelCallerWorkflow.cancel)
    await _until(env.caller, handle.id, _cancel_answered_and_quiet)
    await _until(env.handler, f"handler-{name}", _cancel_seen_and_quiet)
    await _release_handler(env, name)
    return await _finish(env, handle, name, True)


async def handler_terminated(env: Env, name: str) -> Outcome:
    handle = await _start_caller(env, name, "hello", "hang")
    await _until(env.caller, handle.id, _started_and_quiet)
    await _until(env.handler, f"handler-{name}", _handler_quiet)
    await env.handler.get_workflow_handle(f"handler-{name}").terminate("terminated by test")
    return await _finish(env, handle, name, True)


async def never_started(env: Env, name: str) -> Outcome:
    """The schedule-to-close timeout of an operation no handler picks up. (Timing out a started one
    would race the timeout against the caller's workflow task that sees it start, whose outcome
    changes the history.)"""
    handle = await _start_caller(env, name, "hello", "ok", SCHEDULE_TO_CLOSE_S, endpoint=IDLE_ENDPOINT)
    return await _finish(env, handle, name, False)


SCENARIOS: dict[str, Scenario] = {
    "sync_success": _operation("echo", "ok", False),
    "sync_operation_error": _operation("echo", "operation-error", False),
    "sync_bad_request": _operation("echo", "bad-request", False),
    "sync_retried_once": _operation("echo", "retry-once", False),
    "async_success": _operation("hello", "ok", True),
    "async_handler_fails": _operation("hello", "fail", True),
    "async_canceled": cancel_async,
    "schedule_to_close_timeout_never_started": never_started,
    "async_handler_terminated": handler_terminated,
}


# ---------------------------------------------------------------- normalization
class Ids:
    """Replaces what each server makes up (run ids, request ids, the endpoint id) with labels."""

    def __init__(self, known: dict[str, str]) -> None:
        self.known = {value: label for value, label in known.items() if value}
        self.requests = 0

    def request(self, request_id: str) -> str:
        if not request_id:
            return ""
        if request_id not in self.known:
            self.requests += 1
            self.known[request_id] = f"<request-{self.requests}>"
        return self.known[request_id]

    def sub(self, text: str) -> str:
        for value, label in self.known.items():
            text = text.replace(value, label)
        return text

    def message(self, message: Message) -> str:
        return self.sub(json.dumps(MessageToDict(message), sort_keys=True))


def describe_failure(failure: Failure, ids: Ids) -> str:
    """A failure and its causes: messages, failure-info kinds with their fields, which fields are
    set (stack traces, details, sources count only as being there)."""
    if not failure.ByteSize():
        return "-"
    kind = failure.WhichOneof("failure_info") or ""
    info = ids.message(getattr(failure, kind)) if kind else ""
    fields = sorted(d.name for d, _ in failure.ListFields() if d.name not in ("cause", kind))
    text = f"[{failure.message!r} {kind}{info} fields={fields}"
    if failure.HasField("cause"):
        text += " cause=" + describe_failure(failure.cause, ids)
    return text + "]"


EVENT_FIELDS_IGNORED = {"event_id", "event_time", "event_type", "task_id"}


def _event_level(event: HistoryEvent, ids: Ids) -> tuple[str, ...]:
    """HistoryEvent fields outside the attributes: links, worker_may_ignore, ..."""
    attributes = event.WhichOneof("attributes")
    names = sorted(d.name for d, _ in event.ListFields() if d.name not in EVENT_FIELDS_IGNORED | {attributes})
    out = [f"event_fields={names}"]
    if event.links:
        out.append("links=" + ",".join(ids.message(link) for link in event.links))
    if event.worker_may_ignore:
        out.append("worker_may_ignore=True")
    return tuple(out)


def _callback(callback: Any, ids: Ids) -> str:
    nexus = callback.nexus
    header = dict(nexus.header)
    token = header.get("temporal-callback-token", "")
    try:  # the callback token is the server's own: only its outer JSON keys are compared
        token_shape = f"json{sorted(json.loads(token))}"
    except (ValueError, TypeError):
        token_shape = "opaque" if token else "-"
    links = ",".join(ids.message(link) for link in callback.links)
    return (
        f"url={nexus.url} header_keys={sorted(header)} operation_token={header.get('nexus-operation-token', '')}"
        f" callback_token={token_shape} links={links} fields={sorted(d.name for d, _ in callback.ListFields())}"
    )


def _nexus_values(event: HistoryEvent, ids: Ids) -> tuple[str, ...]:
    t = event.event_type
    if t == E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED:
        scheduled = event.nexus_operation_scheduled_event_attributes
        timeout = (
            scheduled.schedule_to_close_timeout.ToMilliseconds()
            if scheduled.HasField("schedule_to_close_timeout")
            else None
        )
        return (
            f"endpoint={scheduled.endpoint}",
            f"service={scheduled.service}",
            f"operation={scheduled.operation}",
            f"input={ids.message(scheduled.input)}",
            f"schedule_to_close_ms={timeout}",
            f"wft={scheduled.workflow_task_completed_event_id}",
            f"request={ids.request(scheduled.request_id)}",
            f"endpoint_id={ids.sub(scheduled.endpoint_id)}",
            f"header={dict(scheduled.nexus_header)}",
        )
    if t == E.EVENT_TYPE_NEXUS_OPERATION_STARTED:
        started = event.nexus_operation_started_event_attributes
        return (
            f"scheduled={started.scheduled_event_id}",
            f"operation_id={started.operation_id}",
            f"operation_token={started.operation_token}",
            f"request={ids.request(started.request_id)}",
        )
    if t == E.EVENT_TYPE_NEXUS_OPERATION_COMPLETED:
        completed = event.nexus_operation_completed_event_attributes
        return (
            f"scheduled={completed.scheduled_event_id}",
            f"result={ids.message(completed.result)}",
            f"request={ids.request(completed.request_id)}",
        )
    closed = {
        E.EVENT_TYPE_NEXUS_OPERATION_FAILED: "nexus_operation_failed_event_attributes",
        E.EVENT_TYPE_NEXUS_OPERATION_CANCELED: "nexus_operation_canceled_event_attributes",
        E.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT: "nexus_operation_timed_out_event_attributes",
    }
    if t in closed:
        closed_attrs = getattr(event, closed[t])
        return (
            f"scheduled={closed_attrs.scheduled_event_id}",
            f"failure={describe_failure(closed_attrs.failure, ids)}",
            f"request={ids.request(closed_attrs.request_id)}",
        )
    if t == E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
        cancel_requested = event.nexus_operation_cancel_requested_event_attributes
        return (
            f"scheduled={cancel_requested.scheduled_event_id}",
            f"wft={cancel_requested.workflow_task_completed_event_id}",
        )
    if t == E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED:
        cancel_completed = event.nexus_operation_cancel_request_completed_event_attributes
        return f"scheduled={cancel_completed.scheduled_event_id}", f"requested={cancel_completed.requested_event_id}"
    if t == E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_FAILED:
        cancel_failed = event.nexus_operation_cancel_request_failed_event_attributes
        return (
            f"scheduled={cancel_failed.scheduled_event_id}",
            f"requested={cancel_failed.requested_event_id}",
            f"failure={describe_failure(cancel_failed.failure, ids)}",
        )
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        run_started = event.workflow_execution_started_event_attributes
        return tuple(f"callback={_callback(cb, ids)}" for cb in run_started.completion_callbacks)
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return (f"failure={describe_failure(event.workflow_execution_failed_event_attributes.failure, ids)}",)
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        return (f"details={ids.message(event.workflow_execution_terminated_event_attributes.details)}",)
    return ()


def normalize_nexus(event: HistoryEvent, ids: Ids) -> tuple[str, ...]:
    """The event as test_event_sequences compares it, plus the Nexus values and event-level fields."""
    return (*normalize(event), *_nexus_values(event, ids), *_event_level(event, ids))


# ---------------------------------------------------------------- running
async def _run_scenario(env: Env, scenario: str) -> Outcome:
    name = f"{scenario.replace('_', '-')}-{SUFFIX}"
    try:
        return await _histories(env, await asyncio.wait_for(SCENARIOS[scenario](env, name), TIMEOUT))
    except Exception as err:  # reported by the scenario's test, not by the whole module
        return Outcome(result=f"scenario raised {_describe_error(err)}")


async def _histories(env: Env, outcome: Outcome) -> Outcome:
    ids = Ids(
        {
            outcome.caller[1]: "<caller-run>",
            env.endpoint_id: "<endpoint-id>",
            env.idle_endpoint_id: "<idle-endpoint-id>",
        }
    )
    if outcome.handler:
        ids.known[outcome.handler[1]] = "<handler-run>"
    for label, client, (workflow_id, run_id) in (
        ("caller", env.caller, outcome.caller),
        ("handler", env.handler, outcome.handler or ("", "")),
    ):
        if workflow_id:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
            outcome.histories[label] = [normalize_nexus(e, ids) for e in history.events]
    return outcome


async def _run_all(address: str) -> dict[str, Outcome]:
    caller = await _connect(address, CALLER_NS)
    handler = await _connect(address, HANDLER_NS)
    handler_tq, caller_tq = f"nexus-handler-{uuid.uuid4().hex[:8]}", f"nexus-caller-{uuid.uuid4().hex[:8]}"
    created = await caller.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=ENDPOINT,
                target=EndpointTarget(worker=EndpointTarget.Worker(namespace=HANDLER_NS, task_queue=handler_tq)),
            )
        )
    )
    idle = await caller.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=IDLE_ENDPOINT,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(namespace=HANDLER_NS, task_queue=f"{handler_tq}-idle")
                ),
            )
        )
    )
    env = Env(caller, handler, caller_tq, handler_tq, created.endpoint.id, idle.endpoint.id)
    async with (
        Worker(
            handler,
            task_queue=handler_tq,
            workflows=[nw.NexusHandlerWorkflow],
            activities=[nw.greet],
            nexus_service_handlers=[nw.GreetingServiceHandler()],
        ),
        Worker(caller, task_queue=caller_tq, workflows=[nw.NexusCallerWorkflow, nw.NexusCancelCallerWorkflow]),
    ):
        outcomes = await asyncio.gather(*(_run_scenario(env, s) for s in SCENARIOS))
    return dict(zip(SCENARIOS, outcomes, strict=True))


@pytest_asyncio.fixture(scope="module")
async def outcomes(
    nexus_servers: tuple[ServerProcess, ServerProcess],
) -> AsyncIterator[tuple[dict[str, Outcome], dict[str, Outcome]]]:
    """Every scenario, run once on each server (concurrently): (reference, tempyral)."""
    ref, ours = nexus_servers
    yield await asyncio.gather(_run_all(ref.address), _run_all(ours.address))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_same_nexus_histories_as_reference(
    scenario: str, outcomes: tuple[dict[str, Outcome], dict[str, Outcome]]
) -> None:
    reference_outcome, our_outcome = outcomes[0][scenario], outcomes[1][scenario]
    assert not reference_outcome.result.startswith("scenario raised"), reference_outcome.result
    assert our_outcome.result == reference_outcome.result
    assert set(our_outcome.histories) == set(reference_outcome.histories)
    for label in ("caller", "handler"):
        reference_history, ours = reference_outcome.histories.get(label), our_outcome.histories.get(label)
        if reference_history is None or ours is None or ours == reference_history:
            continue
        raise AssertionError(first_difference(label, reference_history, ours))
