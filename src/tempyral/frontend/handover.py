"""Calls of a namespace in HANDOVER (a graceful failover under way) wait, as the reference's
NamespaceHandoverInterceptor (common/rpc/interceptor/namespace_handover.go) has them wait.

A WorkflowService call on a global namespace whose replication state is HANDOVER here is held until the state
changes (then it goes on: answered here, or refused with NamespaceNotActive if the namespace failed over away)
or until a little before the caller's deadline (100 ms), or HANDOVER_MAX_WAIT_S when the caller set none; then it
gets UNAVAILABLE `Namespace replication in Handover state.`, which SDK clients retry. Worker polls are held like
the rest (the reference allows none of them). The methods of ALLOWED_DURING_HANDOVER pass at once. The history
side refuses writes of a handover namespace at commit too (Executions.commit), so nothing slips past the hold.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from tempyral.common.errors import Unavailable
from tempyral.namespace.registry import NAMESPACE_HANDOVER, NamespaceRegistry

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Message | bytes]]

# The reference's allowedMethodsDuringHandover (the WorkflowService ones; the rest are its admin methods).
ALLOWED_DURING_HANDOVER = frozenset(
    {
        "GetSystemInfo",
        "GetSearchAttributes",
        "GetClusterInfo",
        "DeprecateNamespace",
        "DescribeNamespace",
        "UpdateNamespace",
        "ListNamespaces",
        "RegisterNamespace",
        "GetReplicationMessages",
        "ReplicateEventsV2",
        "GetWorkflowExecutionRawHistory",
        "GetWorkflowExecutionRawHistoryV2",
        "ListTaskQueuePartitions",
        "ListWorkflowExecutions",
        "ScanWorkflowExecutions",
        "CountWorkflowExecutions",
        "ListArchivedWorkflowExecutions",
        "ListOpenWorkflowExecutions",
        "ListClosedWorkflowExecutions",
        "ListSchedules",
        "ListBatchOperations",
        "ShutdownWorker",
    }
)
DEADLINE_MARGIN_S = 0.1  # answered this long before the caller's deadline, as the reference
HANDOVER_MAX_WAIT_S = 10.0  # a call without deadline waits this long (the reference's namespace cache refresh)


def hold_time(time_remaining: float | None, max_wait: float = HANDOVER_MAX_WAIT_S) -> float:
    """How long a call may be held: until a little before its deadline, or `max_wait` without one."""
    if time_remaining is None:
        return max_wait
    return max(time_remaining - DEADLINE_MARGIN_S, 0.0)


class HandoverGate:
    def __init__(self, namespaces: NamespaceRegistry, max_wait: float = HANDOVER_MAX_WAIT_S) -> None:
        self.namespaces = namespaces
        self.max_wait = max_wait
        self.held = 0  # calls held so far
        self.refused = 0  # calls answered UNAVAILABLE after their hold

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler`, held while its namespace is in HANDOVER (itself for the allowed methods)."""
        if method in ALLOWED_DURING_HANDOVER:
            return handler

        async def holding(request: Any, context: Context) -> Message | bytes:
            ns = self.namespaces.find(getattr(request, "namespace", "") or "")
            if ns is not None and self.namespaces.in_handover(ns):
                self.held += 1
                if not await self.namespaces.wait_handover_ends(
                    ns.id, hold_time(context.time_remaining(), self.max_wait)
                ):
                    self.refused += 1
                    log.debug("%s on namespace %s: still in handover, refused", method, ns.name)
                    raise Unavailable(NAMESPACE_HANDOVER)
            return await handler(request, context)

        return holding
