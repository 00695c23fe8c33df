"""List and Count of standalone activities, over the visibility rows their executions write (records.activity_row).

The filter language is the workflows' with the reference's differences: ActivityId and ActivityType name the
activity's id and type (WorkflowId is the id too, as on the reference), ORDER BY is refused, and only the rows of the
standalone-activity namespace division are seen (workflow lists see none of them).
"""

from __future__ import annotations

import asyncio

from temporalio.api.activity.v1 import message_pb2 as activity_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.clock import duration, timestamp
from tempyral.common.errors import InvalidArgument
from tempyral.common.standalone import FROM_WORKFLOW_STATUS, NAMESPACE_DIVISION
from tempyral.namespace.registry import Namespace
from tempyral.persistence.store import Store, VisibilityQuery, VisibilityQueryFailed, VisibilityRow
from tempyral.persistence.visibility_sql import And, Compare, Field
from tempyral.visibility.query import NAMESPACE_DIVISION as DIVISION_ATTRIBUTE
from tempyral.visibility.query import NOT_SUPPORTED, Compiler, QueryError
from tempyral.visibility.service import (
    LONG_FILTER,
    MAX_PAGE_SIZE,
    _failed,
    count_response,
    decode_page_token,
    encode_page_token,
)

ALIASES = {"ActivityId": ("WorkflowId", "Keyword"), "ActivityType": ("WorkflowType", "Keyword")}


class ActivityCompiler(Compiler):
    def __init__(self, custom: dict[str, int]) -> None:
        super().__init__(custom)
        self.seen_namespace_division = True  # the listing's own division is added below, whatever the filter says

    def resolve(self, name: str) -> tuple[str, str]:
        if name in ALIASES:
            return ALIASES[name]
        return super().resolve(name)

    def compile(self, query: str) -> VisibilityQuery:
        compiled = super().compile(query)
        if compiled.order_by:
            raise QueryError(f"{NOT_SUPPORTED}: 'ORDER BY' clause")
        division = Compare(Field(DIVISION_ATTRIBUTE, "Keyword"), "=", NAMESPACE_DIVISION)
        where = division if compiled.filter is None else And((compiled.filter, division))
        return VisibilityQuery(filter=where, group_by=compiled.group_by, order_by=())


def compile_activity_query(query: str, custom: dict[str, int]) -> VisibilityQuery:
    try:
        return ActivityCompiler(custom).compile(query)
    except QueryError as err:
        raise InvalidArgument(f"invalid query: {err}") from None


async def _compile(query: str, custom: dict[str, int]) -> VisibilityQuery:
    if len(query) < LONG_FILTER:
        return compile_activity_query(query, custom)
    return await asyncio.to_thread(compile_activity_query, query, custom)


class ActivityVisibility:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(self, ns: Namespace, req: ws.ListActivityExecutionsRequest) -> ws.ListActivityExecutionsResponse:
        compiled = await _compile(req.query, dict(ns.record.search_attributes))
        compiled.page_size = req.page_size if 0 < req.page_size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE
        compiled.cursor = decode_page_token(req.next_page_token)
        try:
            rows = await self.store.list_visibility(ns.id, compiled)
        except VisibilityQueryFailed as err:
            raise _failed("ListActivityExecutions", err) from err
        full_page = rows and len(rows) == compiled.page_size
        return ws.ListActivityExecutionsResponse(
            executions=[list_info(r) for r in rows],
            next_page_token=encode_page_token(rows[-1]) if full_page else b"",
        )

    async def count(self, ns: Namespace, req: ws.CountActivityExecutionsRequest) -> ws.CountActivityExecutionsResponse:
        compiled = await _compile(req.query, dict(ns.record.search_attributes))
        try:
            rows = await self.store.count_visibility(ns.id, compiled)
        except VisibilityQueryFailed as err:
            raise _failed("CountActivityExecutions", err) from err
        return count_response(ws.CountActivityExecutionsResponse(), rows, compiled.group_by)


def list_info(row: VisibilityRow) -> activity_pb.ActivityExecutionListInfo:
    info = activity_pb.ActivityExecutionListInfo(
        activity_id=row.workflow_id,
        run_id=row.run_id,
        activity_type=common.ActivityType(name=row.workflow_type),
        status=FROM_WORKFLOW_STATUS.get(row.status, 0),  # type: ignore[arg-type]
        search_attributes=common.SearchAttributes.FromString(row.search_attributes),
        task_queue=row.task_queue,
        state_transition_count=row.state_transition_count,
    )
    info.schedule_time.CopyFrom(timestamp(row.start_time))
    info.execution_time.CopyFrom(timestamp(row.execution_time))
    if row.close_time:
        info.close_time.CopyFrom(timestamp(row.close_time))
        info.execution_duration.CopyFrom(duration(max(row.close_time - row.start_time, 0)))
    return info
