"""List / Count / Scan workflow executions, and the deprecated ListOpen / ListClosed, over the
visibility table."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import gojson
from tempyral.common.clock import ts_ns
from tempyral.common.errors import InvalidArgument, Unavailable
from tempyral.namespace.registry import Namespace
from tempyral.persistence.store import Store, VisibilityQuery, VisibilityQueryFailed, VisibilityRow
from tempyral.persistence.visibility_sql import Cursor
from tempyral.visibility.query import STATUS_BY_CODE, compile_query, parse_rfc3339_ns
from tempyral.visibility.records import execution_info, keyword_payload

MAX_PAGE_SIZE = 1000  # the reference's default frontend.visibilityMaxPageSize
GO_ZERO_TIME_SECONDS = -62135596800  # 0001-01-01T00:00:00Z, which the reference treats as unset
LONG_FILTER = 16 * 1024  # characters
RUNNING_CLOSE_TIME = "9999-12-31T23:59:59Z"  # what the reference's page tokens give running workflows


CountResponse = TypeVar(
    "CountResponse",
    ws.CountWorkflowExecutionsResponse,
    ws.CountActivityExecutionsResponse,
    ws.CountNexusOperationExecutionsResponse,
)


def count_response(resp: CountResponse, rows: list[tuple[Any, ...]], group_by: str) -> CountResponse:
    """Fill a Count answer from `Store.count_visibility`'s rows: the total, and with GROUP BY a group per value
    (statuses by their names, as the reference gives them)."""
    if not group_by:
        resp.count = rows[0][0] if rows else 0
        return resp
    for value, count in rows:
        if group_by == "ExecutionStatus":
            text = STATUS_BY_CODE.get(value, str(value))
        else:
            text = "" if value is None else str(value)
        resp.groups.add(group_values=[keyword_payload(text)], count=count)
        resp.count += count
    return resp


class Visibility:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _custom(ns: Namespace) -> dict[str, int]:
        return dict(ns.record.search_attributes)

    async def list(
        self, ns: Namespace, query: str, page_size: int, token: bytes
    ) -> tuple[list[workflow_pb.WorkflowExecutionInfo], bytes]:
        compiled = await compile_filter(query, self._custom(ns))
        compiled.page_size = page_size if 0 < page_size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE
        compiled.cursor = decode_page_token(token, len(compiled.order_by))
        try:
            rows = await self.store.list_visibility(ns.id, compiled)
        except VisibilityQueryFailed as err:
            raise _failed("ListWorkflowExecutions", err) from err
        full_page = rows and len(rows) == compiled.page_size
        next_token = encode_page_token(rows[-1], bool(compiled.order_by)) if full_page else b""
        return [execution_info(r) for r in rows], next_token

    async def count(self, ns: Namespace, query: str) -> ws.CountWorkflowExecutionsResponse:
        compiled = await compile_filter(query, self._custom(ns))
        try:
            rows = await self.store.count_visibility(ns.id, compiled)
        except VisibilityQueryFailed as err:
            raise _failed("CountWorkflowExecutions", err) from err
        return count_response(ws.CountWorkflowExecutionsResponse(), rows, compiled.group_by)

    async def scan(self, ns: Namespace, req: ws.ScanWorkflowExecutionsRequest) -> ws.ScanWorkflowExecutionsResponse:
        executions, token = await self.list(ns, req.query, req.page_size, req.next_page_token)
        return ws.ScanWorkflowExecutionsResponse(executions=executions, next_page_token=token)

    async def list_open(
        self, ns: Namespace, req: ws.ListOpenWorkflowExecutionsRequest
    ) -> ws.ListOpenWorkflowExecutionsResponse:
        """The reference turns the filters into a query: running, started in the time range,
        with the workflow id or type."""
        parts = ["ExecutionStatus = 'Running'", *_time_range("StartTime", req)]
        if req.HasField("execution_filter"):
            parts.append(f"WorkflowId = '{req.execution_filter.workflow_id}'")
        elif req.HasField("type_filter"):
            parts.append(f"WorkflowType = '{req.type_filter.name}'")
        executions, token = await self.list(ns, " AND ".join(parts), req.maximum_page_size, req.next_page_token)
        return ws.ListOpenWorkflowExecutionsResponse(executions=executions, next_page_token=token)

    async def list_closed(
        self, ns: Namespace, req: ws.ListClosedWorkflowExecutionsRequest
    ) -> ws.ListClosedWorkflowExecutionsResponse:
        """Closed runs, closed in the time range, with the workflow id, type or status."""
        parts = ["ExecutionStatus != 'Running'", *_time_range("CloseTime", req)]
        if req.HasField("execution_filter"):
            parts.append(f"WorkflowId = '{req.execution_filter.workflow_id}'")
        elif req.HasField("type_filter"):
            parts.append(f"WorkflowType = '{req.type_filter.name}'")
        elif req.HasField("status_filter"):
            status = req.status_filter.status
            if status in (0, 1):  # unspecified, running
                raise InvalidArgument("StatusFilter must be specified and must be not Running.")
            parts.append(f"ExecutionStatus = '{STATUS_BY_CODE.get(status, str(int(status)))}'")
        executions, token = await self.list(ns, " AND ".join(parts), req.maximum_page_size, req.next_page_token)
        return ws.ListClosedWorkflowExecutionsResponse(executions=executions, next_page_token=token)


async def compile_filter(query: str, custom: dict[str, int]) -> VisibilityQuery:
    """A list filter compiled; a long one (up to the 4 MB a request may hold takes seconds) in a
    thread, so that the server goes on answering everyone else meanwhile."""
    if len(query) < LONG_FILTER:
        return compile_query(query, custom)
    return await asyncio.to_thread(compile_query, query, custom)


def _failed(operation: str, err: VisibilityQueryFailed) -> Unavailable:
    return Unavailable(f"{operation} operation failed.: SQL logic error: {err} (1)")


def _time_range(attribute: str, req: Any) -> list[str]:
    earliest = _set_time(req.start_time_filter, "earliest_time")
    latest = _set_time(req.start_time_filter, "latest_time")
    if earliest is not None and latest is not None:
        if earliest > latest:
            raise InvalidArgument("EarliestTime in StartTimeFilter should not be larger than LatestTime.")
        return [f"{attribute} BETWEEN '{rfc3339_nano(earliest)}' AND '{rfc3339_nano(latest)}'"]
    if earliest is not None:
        return [f"{attribute} >= '{rfc3339_nano(earliest)}'"]
    if latest is not None:
        return [f"{attribute} <= '{rfc3339_nano(latest)}'"]
    return []


def _set_time(time_filter: Any, name: str) -> int | None:
    if not time_filter.HasField(name):
        return None
    ts: Timestamp = getattr(time_filter, name)
    if ts.seconds == GO_ZERO_TIME_SECONDS and ts.nanos == 0:
        return None
    return ts_ns(ts)


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano of a UTC instant (trailing zeros of the fraction dropped)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"  # %Y does not pad years before 1000
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}{'.' + fraction if fraction else ''}Z"


# ---------------------------------------------------------------------- page tokens
def encode_page_token(last: VisibilityRow, ordered: bool = False) -> bytes:
    """Where the page ended, in the reference's token format (a keyset: no row is repeated or
    skipped while the data does not change). A listing with ORDER BY gets the reference's
    Elasticsearch form: the last row's sort values, run id last."""
    if ordered:
        return json.dumps({"SearchAfter": [*last.sort_values, last.run_id]}, separators=(",", ":")).encode()
    close = RUNNING_CLOSE_TIME if last.close_time is None else rfc3339_nano(last.close_time)
    token = {"CloseTime": close, "StartTime": rfc3339_nano(last.start_time), "RunID": last.run_id}
    return json.dumps(token, separators=(",", ":")).encode()


def decode_page_token(token: bytes, sort_keys: int = 0) -> Cursor | None:
    """The cursor of a page token; `sort_keys` is the number of ORDER BY attributes of the query
    the token must belong to."""
    if not token:
        return None
    try:
        data = gojson.loads(token.decode())  # a token nested too deep is just not a token
        if sort_keys:
            values = data["SearchAfter"]
            if not isinstance(values, list) or len(values) != sort_keys + 1 or not isinstance(values[-1], str):
                raise ValueError(values)
            if not all(v is None or isinstance(v, str | int | float) for v in values):
                raise TypeError(values)
            return Cursor(None, 0, values[-1], sort_values=tuple(values[:-1]))
        close_text, start_text, run_id = data["CloseTime"], data["StartTime"], data["RunID"]
        close = None if close_text == RUNNING_CLOSE_TIME else parse_rfc3339_ns(close_text)
        if not isinstance(run_id, str):
            raise TypeError(run_id)
        return Cursor(close, parse_rfc3339_ns(start_text), run_id)
    except (ValueError, TypeError, KeyError) as err:
        raise InvalidArgument("Invalid NextPageToken.") from err
