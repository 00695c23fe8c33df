"""Starting a task whose workflow another node owns: the queue's node hands it to a poller, the shard's node records
it as started (nodes/matching.py implements this; one node alone never needs it)."""

from __future__ import annotations

from typing import Protocol

from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.history.queries import QueryTask
from tempyral.proto.internal_pb2 import Task


class RemoteStarts(Protocol):
    def elsewhere(self, item: Task | QueryTask) -> bool:
        """Whether the item's workflow belongs to a shard another node owns."""
        ...

    async def start_workflow_task(
        self, item: Task | QueryTask, req: ws.PollWorkflowTaskQueueRequest
    ) -> ws.PollWorkflowTaskQueueResponse | None:
        """The poll's answer from the shard's owner; None: the task is stale or moved (skip it)."""
        ...

    async def start_activity_task(
        self, task: Task, req: ws.PollActivityTaskQueueRequest
    ) -> ws.PollActivityTaskQueueResponse | None: ...
