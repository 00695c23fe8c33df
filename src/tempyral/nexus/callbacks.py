"""Completion callbacks: when a run that was started with completion callbacks (the handler
workflow of a workflow-run operation) closes, its outcome is delivered to each callback.

The internal callback (`temporal://system`) names the caller's operation through the token the
caller's server issued; delivery applies the outcome to the caller's run directly, when the caller's
namespace is active here; else it goes to the HTTP callback URL of the cluster where it is active, looked
up again on every attempt (so a failover of the caller's namespace loses no completion). Other URLs
get the Nexus completion over HTTP. A delivery that fails for a reason that may pass is retried
with backoff; the caller's side ignores repeats, so the operation completes once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common import xdc
from tempyral.common.clock import ts_ns
from tempyral.common.errors import NamespaceNotActive, NotFound
from tempyral.history import events as ev
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.addresses import INTERNAL_CALLBACK_URL, SYSTEM_CALLBACK_URL
from tempyral.nexus.forwarding import ForwardingError, cluster_base_url
from tempyral.nexus.invoker import CALLBACK_TOKEN_HEADER, OPERATION_TOKEN_HEADER, decode_callback_token
from tempyral.nexus.machinery import Machinery, backoff_s
from tempyral.nexus.metrics import NexusMetrics
from tempyral.nexus.operations import CompleteOperation, NexusOperations, OperationNotFound
from tempyral.proto.internal_pb2 import Task

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """A closed run's outcome, as an operation's result."""

    operation_token: str
    start_link: common.Link
    start_time_ns: int
    close_time_ns: int = 0
    result: common.Payload | None = None
    failure: failure_pb.Failure | None = None
    canceled: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


ExternalDelivery = Callable[[str, Completion], Awaitable[None]]
# (another cluster's callback URL, the completion, headers to add)
ClusterDelivery = Callable[[str, Completion, dict[str, str]], Awaitable[None]]


def completion_from_close(
    namespace: str,
    workflow_id: str,
    run_id: str,
    start_time_ns: int,
    close: history.HistoryEvent,
    headers: dict[str, str],
) -> Completion:
    link = common.Link(
        workflow_event=common.Link.WorkflowEvent(
            namespace=namespace,
            workflow_id=workflow_id,
            run_id=run_id,
            event_ref=common.Link.WorkflowEvent.EventReference(
                event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
            ),
        )
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    done = Completion(
        lowered.get(OPERATION_TOKEN_HEADER, ""), link, start_time_ns, ts_ns(close.event_time), headers=lowered
    )
    t = close.event_type
    if t == ev.WORKFLOW_EXECUTION_COMPLETED:
        payloads = close.workflow_execution_completed_event_attributes.result.payloads
        done.result = payloads[0] if payloads else None
    elif t == ev.WORKFLOW_EXECUTION_FAILED:
        done.failure = close.workflow_execution_failed_event_attributes.failure
    elif t == ev.WORKFLOW_EXECUTION_CANCELED:
        done.failure = failure_pb.Failure(message="operation canceled")
        done.failure.canceled_failure_info.SetInParent()
        details = close.workflow_execution_canceled_event_attributes
        if details.HasField("details"):
            done.failure.canceled_failure_info.details.CopyFrom(details.details)
        done.canceled = True
    elif t == ev.WORKFLOW_EXECUTION_TERMINATED:
        done.failure = failure_pb.Failure(message="operation terminated")
        done.failure.terminated_failure_info.SetInParent()
    else:
        done.failure = failure_pb.Failure(message="operation exceeded internal timeout")
        done.failure.timeout_failure_info.SetInParent()
    return done


class CallbackDelivery:
    def __init__(
        self, operations: NexusOperations, namespaces: NamespaceRegistry, machinery: Machinery, metrics: NexusMetrics
    ) -> None:
        self.operations = operations
        self.executions = operations.executions
        self.namespaces = namespaces
        self.machinery = machinery
        self.metrics = metrics
        self.external: ExternalDelivery | None = None  # set by the HTTP module
        self.other_cluster: ClusterDelivery | None = None  # likewise
        # Where a completion for a caller of this cluster goes (with several nodes: to the node of its shard).
        self.complete_operation: CompleteOperation = operations.complete

    async def deliver(self, task: Task) -> None:
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms = change.ms
                s = ms.state
                index = task.callback_index
                if index >= len(s.start.completion_callbacks) or not ms.callback_due(index, task.attempt):
                    return
                callback = common.Callback()
                callback.CopyFrom(s.start.completion_callbacks[index])
                close_events = await change.events(s.completion_event_id, s.completion_event_id + 1)
                namespace = self.namespaces.find_by_id(task.namespace_id)
                if not close_events or namespace is None:
                    return
                done = completion_from_close(
                    namespace.name,
                    s.workflow_id,
                    s.run_id,
                    ts_ns(s.start_time),
                    close_events[0],
                    dict(callback.nexus.header),
                )
        except NotFound:
            return
        try:
            await self._send(callback, done)
            outcome: DeliveryError | None = None
        except DeliveryError as err:
            outcome = err
        self.metrics.callback(namespace.name, "ok" if outcome is None else ("retry" if outcome.retryable else "failed"))
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms = change.ms
                if not ms.callback_due(task.callback_index, task.attempt):
                    return
                if outcome is None:
                    ms.callback_succeeded(task.callback_index)
                else:
                    failure = failure_pb.Failure(message=str(outcome))
                    failure.application_failure_info.non_retryable = not outcome.retryable
                    retry_at = ms.now + int(backoff_s(self.machinery.limits, task.attempt) * 1e9)
                    if outcome.retryable:
                        log.info("completion callback of %s failed, will retry: %s", task.workflow_id, outcome)
                    ms.callback_failed(task.callback_index, failure, retry_at if outcome.retryable else 0)
                await change.commit()
        except NotFound:
            return

    async def _send(self, callback: common.Callback, done: Completion) -> None:
        url = callback.nexus.url
        if url == SYSTEM_CALLBACK_URL:
            token = decode_callback_token(done.headers.get(CALLBACK_TOKEN_HEADER, ""))
            if token is None:
                raise DeliveryError("invalid callback token", retryable=False)
            caller = self.namespaces.find_by_id(token.namespace_id)
            if caller is None:  # not replicated here yet, or gone: it may come
                raise DeliveryError(f"caller namespace {token.namespace_id} not known here", retryable=True)
            if not self.namespaces.is_active(caller):
                await self._to_active_cluster(caller, done)
                return
            try:
                await self.complete_operation(
                    token,
                    done.operation_token,
                    [done.start_link],
                    done.start_time_ns,
                    done.result,
                    done.failure,
                    done.canceled,
                )
            except OperationNotFound as err:
                raise DeliveryError(str(err), retryable=False) from err
            except NamespaceNotActive as err:  # the caller's namespace failed over meanwhile: next attempt goes there
                raise DeliveryError(str(err), retryable=True) from err
            return
        if url == INTERNAL_CALLBACK_URL:
            # accepted on start as the reference accepts it, but no handler of tempyral's serves it
            raise DeliveryError(f"unsupported callback URL {url}", retryable=False)
        if self.external is None:
            raise DeliveryError(f"cannot deliver to {url}: no HTTP client", retryable=True)
        await self.external(url, done)

    async def _to_active_cluster(self, caller: Namespace, done: Completion) -> None:
        """To the HTTP API of the cluster where the caller's namespace is active, marked as forwarded (that
        cluster applies it or refuses it as inactive, and never sends it on)."""
        try:
            base = cluster_base_url(self.namespaces.clusters, caller.active_cluster)
        except ForwardingError as err:
            raise DeliveryError(str(err), retryable=True) from err
        if self.other_cluster is None:
            raise DeliveryError("no HTTP client for other clusters", retryable=True)
        url = f"{base}/namespaces/{quote(caller.name, safe='')}/nexus/callback"
        await self.other_cluster(url, done, dict(xdc.forwarded_headers(self.namespaces.clusters.name)))
