"""Work on another workflow, done where that workflow's shard is: here when this node holds the shard, else on its
owner over NodeService (nodes/client.py).

`RoutedWorkflowOps` is the `WorkflowOps` the transfer tasks use on a node of a multi-node cluster, and
`RoutedNexusCompletion` stands in for `NexusOperations.complete` for callback deliveries and HTTP completions. A
shard that is moving answers ShardNotHere (here, or from the node asked); the call is then asked again, where the
ownership view says the shard is now, after a short wait, until `budget_s` is spent: then Unavailable, and the
transfer task retries with its own backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import ShardNotHere, Unavailable
from tempyral.history.starts import ParentInfo, StartResult
from tempyral.history.tasks import WorkflowOps
from tempyral.namespace.registry import Namespace
from tempyral.nexus.operations import CompleteOperation
from tempyral.nexus.standalone import operations_namespace_id
from tempyral.nodes.client import NodeClient
from tempyral.nodes.ownership import Ownership
from tempyral.proto.internal_pb2 import NexusCallbackToken

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long a call keeps asking while the shard moves: a move takes a membership refresh and a lease (a second or
# two); a node that died is only declared gone after the membership timeout, which the transfer task's own retries
# cover.
RETRY_BUDGET_S = 10.0
FIRST_WAIT_S = 0.05
MAX_WAIT_S = 1.0


class Router:
    """Runs a call where the workflow's shard is, asking again while the shard moves."""

    def __init__(
        self,
        ownership: Ownership,
        owned: Callable[[int], bool],
        budget_s: float = RETRY_BUDGET_S,
        first_wait_s: float = FIRST_WAIT_S,
    ) -> None:
        """`owned(shard_id)`: whether this node holds the shard's lease now (`HistoryEngine.shards[i].owned`)."""
        self.ownership = ownership
        self.owned = owned
        self.budget_s = budget_s
        self.first_wait_s = first_wait_s
        self.moved = 0  # ShardNotHere answers met, for tests and logs

    async def call(
        self,
        namespace_id: str,
        workflow_id: str,
        here: Callable[[], Awaitable[T]],
        there: Callable[[str], Awaitable[T]],
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget_s
        wait = self.first_wait_s
        while True:
            shard_id = self.ownership.shard_of(namespace_id, workflow_id)
            # A lease held here is good until a write finds it fenced off, whatever the view says meanwhile.
            owner = self.ownership.node if self.owned(shard_id) else self.ownership.shard_owner(shard_id)
            try:
                if owner == self.ownership.node:
                    return await here()  # ShardNotHere at once if the shard is not held here (yet)
                return await there(owner)
            except ShardNotHere as err:
                self.moved += 1
                left = deadline - loop.time()
                if left <= 0:
                    raise Unavailable(
                        f"shard {shard_id} of workflow {workflow_id} is moving between nodes "
                        f"(last asked: node {owner}): {err.message}"
                    ) from None
                log.debug("shard %d not on node %s, asking again in %.2f s", shard_id, owner, wait)
                await asyncio.sleep(min(wait, left))
                wait = min(wait * 2, MAX_WAIT_S)


class RoutedWorkflowOps:
    """`WorkflowOps` over the cluster: `local` (this node's HistoryEngine) for shards held here, else the owner."""

    def __init__(self, local: WorkflowOps, router: Router, client: NodeClient) -> None:
        self.local = local
        self.router = router
        self.client = client

    async def start_workflow(
        self, ns: Namespace, req: ws.StartWorkflowExecutionRequest, *, parent: ParentInfo | None = None
    ) -> StartResult:
        return await self.router.call(
            ns.id,
            req.workflow_id,
            lambda: self.local.start_workflow(ns, req, parent=parent),
            lambda node: self.client.start_workflow(node, ns.id, req, parent),
        )

    async def signal(
        self,
        ns: Namespace,
        req: ws.SignalWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        child_of: common.WorkflowExecution | None = None,
    ) -> None:
        await self.router.call(
            ns.id,
            req.workflow_execution.workflow_id,
            lambda: self.local.signal(ns, req, external, child_of),
            lambda node: self.client.signal(node, ns.id, req, external, child_of),
        )

    async def request_cancel(
        self,
        ns: Namespace,
        req: ws.RequestCancelWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        external_initiated_event_id: int = 0,
        child_of: common.WorkflowExecution | None = None,
    ) -> None:
        await self.router.call(
            ns.id,
            req.workflow_execution.workflow_id,
            lambda: self.local.request_cancel(ns, req, external, external_initiated_event_id, child_of),
            lambda node: self.client.request_cancel(node, ns.id, req, external, external_initiated_event_id, child_of),
        )

    async def terminate(self, ns: Namespace, req: ws.TerminateWorkflowExecutionRequest) -> None:
        await self.router.call(
            ns.id,
            req.workflow_execution.workflow_id,
            lambda: self.local.terminate(ns, req),
            lambda node: self.client.terminate(node, ns.id, req),
        )

    async def schedule_first_task(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        await self.router.call(
            namespace_id,
            workflow_id,
            lambda: self.local.schedule_first_task(namespace_id, workflow_id, run_id),
            lambda node: self.client.schedule_first_task(node, namespace_id, workflow_id, run_id),
        )

    async def record_child_closed(
        self,
        parent_namespace_id: str,
        parent: common.WorkflowExecution,
        initiated_event_id: int,
        first_execution_run_id: str,
        run_id: str,
        close: history.HistoryEvent,
    ) -> None:
        await self.router.call(
            parent_namespace_id,
            parent.workflow_id,
            lambda: self.local.record_child_closed(
                parent_namespace_id, parent, initiated_event_id, first_execution_run_id, run_id, close
            ),
            lambda node: self.client.record_child_closed(
                node, parent_namespace_id, parent, initiated_event_id, first_execution_run_id, run_id, close
            ),
        )


class RoutedNexusCompletion:
    """`NexusOperations.complete` over the cluster: the completion goes to the node holding the caller's shard (the
    caller's workflow is named by the callback token). Raises OperationNotFound as the local one does."""

    def __init__(self, local: CompleteOperation, router: Router, client: NodeClient) -> None:
        self.local = local
        self.router = router
        self.client = client

    async def __call__(
        self,
        token: NexusCallbackToken,
        operation_token: str,
        start_links: list[common.Link],
        start_time_ns: int,
        result: common.Payload | None,
        failure: failure_pb.Failure | None,
        canceled: bool,
    ) -> None:
        # a standalone operation's row is keyed by its own id space (nexus/standalone.py)
        shard_key = operations_namespace_id(token.namespace_id) if token.standalone else token.namespace_id
        await self.router.call(
            shard_key,
            token.workflow_id,
            lambda: self.local(token, operation_token, start_links, start_time_ns, result, failure, canceled),
            lambda node: self.client.complete_nexus_operation(
                node, token, operation_token, start_links, start_time_ns, result, failure, canceled
            ),
        )
