"""Workflow queries: answered by a worker, either inside the next workflow task or as a query task.

A query on a workflow with a workflow task pending waits for that task, so that the answer
reflects every event before the query (the reference's consistent query). Otherwise it goes
to a worker as a query task: to the sticky worker that has the workflow cached, or to any
worker with the whole history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import QueryResultType
from temporalio.api.query.v1 import message_pb2 as query_pb

from tempyral.common import ids
from tempyral.common.errors import DeadlineExceeded, QueryFailed
from tempyral.history.shard import ExecutionEntry
from tempyral.matching.service import WORKFLOW, Matching, QueueKey


@dataclass(slots=True)
class QueryTask:
    """A query handed to a worker on its own, outside a workflow task."""

    query_id: str
    namespace_id: str
    workflow_id: str
    run_id: str
    query: query_pb.WorkflowQuery


class QueryRegistry:
    def __init__(self, matching: Matching) -> None:
        self._matching = matching
        self._pending: dict[str, asyncio.Future[query_pb.WorkflowQueryResult]] = {}

    def new(self) -> tuple[str, asyncio.Future[query_pb.WorkflowQueryResult]]:
        query_id = ids.new_id()
        fut: asyncio.Future[query_pb.WorkflowQueryResult] = asyncio.get_running_loop().create_future()
        self._pending[query_id] = fut
        return query_id, fut

    def buffer(self, entry: ExecutionEntry, query: query_pb.WorkflowQuery) -> str:
        query_id, _ = self.new()
        entry.buffered_queries[query_id] = query
        return query_id

    def dispatch(
        self, entry: ExecutionEntry, query: query_pb.WorkflowQuery, queue: str, sticky_normal_name: str = ""
    ) -> str:
        query_id, _ = self.new()
        namespace_id, workflow_id, run_id = entry.key
        task = QueryTask(query_id, namespace_id, workflow_id, run_id, query)
        self._matching.add(QueueKey(namespace_id, queue, WORKFLOW), task, sticky_normal_name=sticky_normal_name)
        return query_id

    def attach(self, entry: ExecutionEntry) -> dict[str, query_pb.WorkflowQuery]:
        """Move the buffered queries onto the workflow task that is starting."""
        queries = dict(entry.buffered_queries)
        entry.buffered_queries.clear()
        entry.inflight_queries.update(queries)
        return queries

    def requeue_inflight(self, entry: ExecutionEntry) -> None:
        """The workflow task failed: its queries wait for the next one."""
        entry.buffered_queries.update(entry.inflight_queries)
        entry.inflight_queries.clear()

    def resolve(self, query_id: str, result: query_pb.WorkflowQueryResult) -> bool:
        fut = self._pending.get(query_id)
        if fut is None or fut.done():
            return False
        fut.set_result(result)
        return True

    def fail(self, query_id: str, error: Exception) -> None:
        """The query cannot be answered here (its workflow moved to another node): its caller gets `error`."""
        fut = self._pending.get(query_id)
        if fut is not None and not fut.done():
            fut.set_exception(error)

    def complete_inflight(self, entry: ExecutionEntry, results: dict[str, query_pb.WorkflowQueryResult]) -> None:
        for query_id, result in results.items():
            entry.inflight_queries.pop(query_id, None)
            self.resolve(query_id, result)
        # Queries the worker did not answer wait for the next task.
        self.requeue_inflight(entry)

    def redirect_buffered(self, entry: ExecutionEntry, queue: str, sticky_normal_name: str = "") -> None:
        """No workflow task will come: send the waiting queries to workers as query tasks."""
        namespace_id, workflow_id, run_id = entry.key
        for query_id, query in list(entry.buffered_queries.items()):
            task = QueryTask(query_id, namespace_id, workflow_id, run_id, query)
            self._matching.add(QueueKey(namespace_id, queue, WORKFLOW), task, sticky_normal_name=sticky_normal_name)
        entry.buffered_queries.clear()

    async def wait(self, query_id: str, timeout: float) -> query_pb.WorkflowQueryResult:
        fut = self._pending[query_id]
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError as err:
            raise DeadlineExceeded("query timed out before a worker could process it") from err
        if result.result_type == QueryResultType.QUERY_RESULT_TYPE_FAILED:
            raise QueryFailed(result.error_message, result.failure if result.HasField("failure") else None)
        return result

    def forget(self, entry: ExecutionEntry, query_id: str) -> None:
        """The caller stopped waiting: drop the query wherever it still is."""
        self._pending.pop(query_id, None)
        entry.buffered_queries.pop(query_id, None)
        entry.inflight_queries.pop(query_id, None)
