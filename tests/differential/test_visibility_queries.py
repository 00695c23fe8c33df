"""Differential tests of the visibility list-filter language: the same workflows (every closing
status, a child, a continue-as-new chain, search attributes of every type) on the reference server
and on tempyral, then the same List / Count / Scan / ListOpen / ListClosed requests on both must
give the same workflow ids in the same order, the same counts and groups, and the same errors.
tempyral runs twice: on SQLite (the session's server) and on PostgreSQL (a server of this module's; where
PostgreSQL is not installed that side is left out, except in CI)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import workflow
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.filter.v1 import StartTimeFilter, StatusFilter, WorkflowExecutionFilter, WorkflowTypeFilter
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
    ListWorkflowExecutionsRequest,
    ScanWorkflowExecutionsRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.conftest import SEARCH_ATTRIBUTE_FLAGS
from tests.support.ci import cannot_run, in_ci
from tests.support.postgres import PostgresServer, tempyral_on_postgres, why_unavailable
from tests.support.servers import ServerProcess

TQ = f"vis-{uuid.uuid4().hex[:12]}"  # the task queue, and the prefix of every workflow id
SCOPE = f"TaskQueue = '{TQ}'"
TIMEOUT = 60.0
TIMED_OUT_AFTER = timedelta(seconds=2)

KEYWORD = SearchAttributeKey.for_keyword("VisKeyword")
INT = SearchAttributeKey.for_int("VisInt")
DOUBLE = SearchAttributeKey.for_float("VisDouble")
BOOL = SearchAttributeKey.for_bool("VisBool")
TIME = SearchAttributeKey.for_datetime("VisTime")
TAGS = SearchAttributeKey.for_keyword_list("VisTags")
TEXT = SearchAttributeKey.for_text("VisText")


def wid(name: str) -> str:
    return f"{TQ}-{name}"


async def _outcome(outcome: str) -> str:
    if outcome == "fail":
        raise ApplicationError("failed on purpose", non_retryable=True)
    if outcome == "continue":
        workflow.continue_as_new("complete")
    if outcome == "parent":
        await workflow.execute_child_workflow("VisOther", "complete", id=workflow.info().workflow_id + "-child")
    if outcome == "wait":
        await workflow.wait_condition(lambda: False)
    return outcome


@workflow.defn(name="VisOutcome")
class VisOutcome:
    @workflow.run
    async def run(self, outcome: str) -> str:
        return await _outcome(outcome)


@workflow.defn(name="VisOther")
class VisOther:
    @workflow.run
    async def run(self, outcome: str) -> str:
        return await _outcome(outcome)


@dataclass
class Spec:
    name: str
    type: str
    outcome: str  # complete fail continue parent wait cancel terminate timeout run
    attributes: list[SearchAttributePair[Any]] = field(default_factory=list)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Started one after another and closed in that order, so that the listing order (running first by
# start time, then closed by close time) is the same on both servers.
SPECS = [
    Spec("w01", "VisOutcome", "complete", [
        SearchAttributePair(KEYWORD, "alpha"), SearchAttributePair(INT, 1), SearchAttributePair(DOUBLE, 1.5),
        SearchAttributePair(BOOL, True), SearchAttributePair(TIME, _at("2024-01-01T00:00:00")),
        SearchAttributePair(TAGS, ["red", "blue"]), SearchAttributePair(TEXT, "the quick brown fox"),
    ]),
    Spec("w02", "VisOutcome", "fail", [
        SearchAttributePair(KEYWORD, "beta"), SearchAttributePair(INT, 2), SearchAttributePair(DOUBLE, 2.5),
        SearchAttributePair(BOOL, False), SearchAttributePair(TIME, _at("2024-06-01T12:00:00")),
        SearchAttributePair(TAGS, ["green"]), SearchAttributePair(TEXT, "lazy dog sleeps"),
    ]),
    Spec("w03", "VisOther", "cancel", [
        SearchAttributePair(KEYWORD, "alphabet"), SearchAttributePair(INT, 10), SearchAttributePair(DOUBLE, -1.0),
        SearchAttributePair(BOOL, True), SearchAttributePair(TIME, _at("2025-01-01T12:30:00.500000")),
        SearchAttributePair(TAGS, ["red"]), SearchAttributePair(TEXT, "Quick thinking"),
    ]),
    Spec("w04", "VisOther", "terminate"),
    Spec("w05", "VisOutcome", "timeout", [SearchAttributePair(KEYWORD, "gamma"), SearchAttributePair(INT, 3)]),
    Spec("w06", "VisOutcome", "continue", [
        SearchAttributePair(KEYWORD, "delta"), SearchAttributePair(INT, 4), SearchAttributePair(DOUBLE, 0.0),
        SearchAttributePair(TAGS, ["Blue Sky", "x y"]), SearchAttributePair(TEXT, "brown-fox jumps"),
    ]),
    Spec("w07", "VisOutcome", "parent", [SearchAttributePair(KEYWORD, "50%_off!"), SearchAttributePair(INT, 6)]),
    Spec("w08", "VisOutcome", "complete", [
        SearchAttributePair(KEYWORD, "Zeta"), SearchAttributePair(INT, -7), SearchAttributePair(DOUBLE, 3.25),
        SearchAttributePair(BOOL, False), SearchAttributePair(TIME, _at("2023-12-31T23:59:59")),
        SearchAttributePair(TAGS, ["RED"]), SearchAttributePair(TEXT, "Über FOX"),
    ]),
    Spec("w09", "VisOutcome", "run", [
        SearchAttributePair(KEYWORD, "alpha"), SearchAttributePair(INT, 5), SearchAttributePair(DOUBLE, 3.25),
        SearchAttributePair(BOOL, True), SearchAttributePair(TIME, _at("2024-03-01T00:00:00")),
        SearchAttributePair(TAGS, ["red", "green"]), SearchAttributePair(TEXT, "fox"),
    ]),
    Spec("w10", "VisOther", "run", [SearchAttributePair(KEYWORD, "omega")]),
]  # fmt: skip
EXPECTED_STATUSES = {
    "Running": 2,
    "Completed": 5,  # w01, w06's second run, w07 and its child, w08
    "Failed": 1,
    "Canceled": 1,
    "Terminated": 1,
    "ContinuedAsNew": 1,
    "TimedOut": 1,
}


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _call(rpc: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
    """One visibility call; the reference rate-limits them per namespace, so wait and retry then."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        try:
            return await asyncio.wait_for(rpc(request), TIMEOUT)
        except RPCError as err:
            if err.status != RPCStatusCode.RESOURCE_EXHAUSTED or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _ignore_failure(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await asyncio.wait_for(handle.result(), TIMEOUT)
    except TimeoutError:
        raise
    except Exception:
        pass


async def _first_task_done(handle: WorkflowHandle[Any, Any]) -> None:
    async def done() -> bool:
        history = await handle.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events)

    await _until(done, f"the first workflow task of {handle.id}")


async def _start_all(client: Client) -> None:
    async with Worker(
        client, task_queue=TQ, workflows=[VisOutcome, VisOther], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        for spec in SPECS:
            outcome = {"cancel": "wait", "terminate": "wait", "timeout": "wait", "run": "wait"}.get(
                spec.outcome, spec.outcome
            )
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                spec.type,
                outcome,
                id=wid(spec.name),
                task_queue=TQ,
                search_attributes=TypedSearchAttributes(spec.attributes),
                execution_timeout=TIMED_OUT_AFTER if spec.outcome == "timeout" else None,
            )
            if spec.outcome in ("cancel", "terminate", "run"):
                await _first_task_done(handle)
            if spec.outcome == "cancel":
                await handle.cancel()
            elif spec.outcome == "terminate":
                await handle.terminate("terminated on purpose")
            if spec.outcome != "run":
                await _ignore_failure(handle)


async def _statuses(client: Client) -> dict[str, int]:
    response = await _call(
        client.workflow_service.count_workflow_executions,
        CountWorkflowExecutionsRequest(namespace="default", query=f"{SCOPE} GROUP BY ExecutionStatus"),
    )
    return {g.group_values[0].data.decode().strip('"'): g.count for g in response.groups}


@dataclass
class Side:
    client: Client
    started_before: datetime


TEMPYRAL_SIDES = ("tempyral", "postgres")


@pytest.fixture(scope="module")
def postgres_node() -> Iterator[ServerProcess | None]:
    """tempyral on PostgreSQL; None where PostgreSQL is not installed (outside CI)."""
    reason = why_unavailable()
    if reason is not None:
        if in_ci():
            cannot_run(reason)
        yield None
        return
    database = PostgresServer()
    database.start()
    proc = tempyral_on_postgres(database.create_database(), extra=SEARCH_ATTRIBUTE_FLAGS).start()
    yield proc
    proc.stop()
    database.stop()


@pytest_asyncio.fixture(scope="module")
async def sides(
    server: ServerProcess, reference_server: ServerProcess, postgres_node: ServerProcess | None
) -> AsyncIterator[dict[str, Side]]:
    """The servers with the workflows started, closed, and visible in their visibility stores."""

    async def seed(address: str) -> Side:
        client = await Client.connect(address)
        side = Side(client, datetime.now(UTC) - timedelta(seconds=1))
        await _start_all(client)

        async def visible() -> bool:
            return await _statuses(client) == EXPECTED_STATUSES

        await _until(visible, f"the workflows to be visible on {address}")
        return side

    addresses = {"reference": reference_server.address, "tempyral": server.address}
    if postgres_node is not None:
        addresses["postgres"] = postgres_node.address
    seeded = await asyncio.gather(*(seed(address) for address in addresses.values()))
    yield dict(zip(addresses, seeded, strict=True))


def ours(sides: dict[str, Side]) -> list[tuple[str, Side]]:
    """The tempyral sides: on SQLite, and on PostgreSQL where it runs."""
    return [(name, sides[name]) for name in TEMPYRAL_SIDES if name in sides]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fill(query: str, side: Side) -> str:
    return query.format(
        scope=SCOPE,
        p=TQ,
        t0=_rfc3339(side.started_before),
        later=_rfc3339(side.started_before + timedelta(hours=1)),
    )


async def _listing(side: Side, query: str, page_size: int = 0) -> Any:
    """Every page of a listing as (workflow id, status) pairs per page, or the error."""
    pages: list[list[tuple[str, str]]] = []
    token = b""
    try:
        for _ in range(100):
            response = await _call(
                side.client.workflow_service.list_workflow_executions,
                ListWorkflowExecutionsRequest(
                    namespace="default", query=_fill(query, side), page_size=page_size, next_page_token=token
                ),
            )
            pages.append(
                [(e.execution.workflow_id, WorkflowExecutionStatus.Name(e.status)[26:]) for e in response.executions]
            )
            token = response.next_page_token
            if not token:
                return pages
    except RPCError as err:
        return ("error", err.status.name, err.message)
    raise AssertionError(f"{query!r}: more than 100 pages")


async def _count(side: Side, query: str) -> Any:
    try:
        response = await _call(
            side.client.workflow_service.count_workflow_executions,
            CountWorkflowExecutionsRequest(namespace="default", query=_fill(query, side)),
        )
    except RPCError as err:
        return ("error", err.status.name, err.message)
    groups = [
        ([(dict(v.metadata), v.data) for v in g.group_values], g.count) for g in response.groups
    ]  # in the order given
    return response.count, groups


LIST_QUERIES = [
    "{scope}",
    "{scope} AND WorkflowType = 'VisOther'",
    "{scope} AND WorkflowId = '{p}-w01'",
    '{scope} AND WorkflowId = "{p}-w06"',
    "{scope} AND WorkflowId IN ('{p}-w01', '{p}-w03', '{p}-nope')",
    "{scope} AND WorkflowId NOT IN ('{p}-w01', '{p}-w03')",
    "{scope} AND WorkflowId STARTS_WITH '{p}-w0'",
    "{scope} AND WorkflowId NOT STARTS_WITH '{p}-w0'",
    "{scope} AND WorkflowId > '{p}-w05'",
    "{scope} AND ExecutionStatus = 'Running'",
    "{scope} AND ExecutionStatus != 'Running'",
    "{scope} AND ExecutionStatus IN ('Failed', 'Canceled', 'Terminated', 'TimedOut')",
    "{scope} AND ExecutionStatus = 'ContinuedAsNew'",
    "{scope} AND ExecutionStatus = 2",
    "{scope} AND CloseTime IS NULL",
    "{scope} AND CloseTime IS NOT NULL",
    "{scope} AND CloseTime > '{t0}'",
    "{scope} AND StartTime >= '{t0}'",
    "{scope} AND StartTime < '{t0}'",
    "{scope} AND StartTime BETWEEN '{t0}' AND '{later}'",
    "{scope} AND ExecutionTime >= '{t0}' AND ExecutionTime < '{later}'",
    # not '2s': the run that times out after 2 s closes a little after, by how much depends on the machine's load
    "{scope} AND ExecutionDuration >= '1m'",
    "{scope} AND ExecutionDuration < '1h'",
    "{scope} AND ExecutionDuration < 3600000000000",
    "{scope} AND ExecutionDuration IS NULL",
    "{scope} AND HistoryLength > 0",
    "{scope} AND HistoryLength IS NULL",
    "{scope} AND HistoryLength = 5",
    "{scope} AND HistoryLength > 5",
    "{scope} AND HistorySizeBytes IS NOT NULL",
    "{scope} AND StateTransitionCount IS NULL",
    "{scope} AND ExecutionStatus BETWEEN 'Completed' AND 'Terminated'",
    "{scope} AND ParentWorkflowId IS NULL",
    "{scope} AND ParentWorkflowId = '{p}-w07'",
    "{scope} AND RootWorkflowId = '{p}-w07'",
    "{scope} AND VisKeyword = 'alpha'",
    "{scope} AND VisKeyword != 'alpha'",
    "{scope} AND VisKeyword IS NULL",
    "{scope} AND VisKeyword > 'b'",
    "{scope} AND VisKeyword BETWEEN 'alpha' AND 'beta'",
    "{scope} AND VisKeyword STARTS_WITH 'alp'",
    "{scope} AND VisKeyword STARTS_WITH '50%_'",
    "{scope} AND VisKeyword IN ('beta', 'Zeta')",
    "{scope} AND VisKeyword NOT IN ('beta', 'Zeta')",
    "{scope} AND VisInt >= 3",
    "{scope} AND VisInt BETWEEN 2 AND 5",
    "{scope} AND VisInt NOT BETWEEN 2 AND 5",
    "{scope} AND VisInt IN (1, 10, -7)",
    "{scope} AND VisInt = 1.0",
    "{scope} AND VisDouble > 1",
    "{scope} AND VisDouble <= -1",
    "{scope} AND VisDouble > -1.5",
    "{scope} AND VisBool = true",
    "{scope} AND VisBool != true",
    "{scope} AND VisTime > '2024-03-01T00:00:00Z'",
    "{scope} AND VisTime BETWEEN '2024-01-01T00:00:00Z' AND '2024-12-31T23:59:59+02:00'",
    "{scope} AND VisTime >= '2024-01-01T00:00:00Z'",
    "{scope} AND VisTime = '2024-01-01T00:00:00Z'",
    "{scope} AND VisTime < 1704067200000000000",
    "{scope} AND VisTags = 'red'",
    "{scope} AND VisTags = 'RED'",
    "{scope} AND VisTags != 'red'",
    "{scope} AND VisTags IN ('green', 'x y')",
    "{scope} AND VisTags NOT IN ('red', 'green')",
    "{scope} AND VisText = 'fox'",
    "{scope} AND VisText = 'QUICK dog'",
    "{scope} AND VisText = 'brown-fox'",
    "{scope} AND VisText = 'uber'",
    "{scope} AND VisText != 'fox'",
    "{scope} AND (VisInt > 3 OR VisKeyword = 'beta') AND NOT VisBool = false",
    "{scope} AND NOT (VisKeyword = 'alpha' OR VisTags = 'red')",
    "{scope} AND CustomerId IS NULL",
    "{scope} AND TemporalNamespaceDivision IS NULL",
    "{scope} GROUP BY ExecutionStatus",
    "{scope};",
    # nested and chained as deep as the reference's parser takes (SQLite's parser takes far less)
    "{scope} AND " + "NOT " * 198 + "VisKeyword = 'alpha'",
    "{scope} AND " + "NOT " * 197 + "VisKeyword = 'alpha'",
    "(" * 198 + "{scope} AND VisInt > 3" + ")" * 198,
    "{scope} AND " + "(VisInt > 100 OR (VisKeyword IS NOT NULL AND " * 95 + "VisBool = true" + "))" * 95,
    "{scope} AND NOT " + "(VisInt > 3 OR (VisKeyword = 'alpha' AND " * 60 + "NOT VisBool = true" + "))" * 60,
    "{scope} AND (" + " OR ".join(f"VisInt = {n}" for n in range(990)) + ")",
    "{scope} AND (" + " AND ".join(["VisTags != 'nope'"] * 900) + ")",
    # an IN list longer than SQLite takes parameters for (32,766 in its default build)
    "{scope} AND WorkflowId IN ('{p}-w01', " + ", ".join(f"'{{p}}-x{n}'" for n in range(40_000)) + ", '{p}-w03')",
    "{scope} AND VisInt NOT IN (" + ", ".join(str(n) for n in range(5, 40_000)) + ")",
]
COUNT_QUERIES = [
    "{scope}",
    "{scope} GROUP BY ExecutionStatus",
    "{scope} AND VisKeyword IS NOT NULL GROUP BY ExecutionStatus",
    "{scope} AND ExecutionStatus = 'Running' GROUP BY ExecutionStatus",
    "{scope} AND WorkflowId = 'no such workflow' GROUP BY ExecutionStatus",
    "{scope} AND VisTags = 'red'",
    "{scope} AND VisText = 'fox'",
    "{scope} GROUP BY TemporalNamespaceDivision",
    "{scope} AND "
    + "(VisInt > 100 OR (VisKeyword IS NOT NULL AND " * 95
    + "VisBool = true"
    + "))" * 95
    + " GROUP BY ExecutionStatus",
]
INVALID_LIST_QUERIES = [
    "WorkflowType = ",
    "NoSuchAttribute = 'x'",
    "{scope} AND WorkflowId = 'a' 'b'",
    "{scope} LIMIT 5",
    "VisInt = 'abc'",
    "VisKeyword = 5",
    "VisBool = 1",
    "VisTags > 'a'",
    "VisText STARTS_WITH 'a'",
    "VisText = '   '",
    "VisBool BETWEEN true AND false",
    "ExecutionStatus = 'Sleeping'",
    "StartTime > 'yesterday'",
    "ExecutionDuration > 'forever'",
    "WorkflowId = WorkflowType",
    "lower(WorkflowId) = 'a'",
    "'a' = WorkflowId",
    "WorkflowId IS TRUE",
    "When = 'x'",
    "WorkflowId = 'a' AND (WorkflowType = 'b'",
    "WorkflowId = 'αβγ' AND é = 'x'",
    "VisDouble = - -1.5",
    "VisTags = ('a', 'b')",
    "WorkflowId IN (SELECT 1)",
]
INVALID_COUNT_QUERIES = [
    "{scope} GROUP BY WorkflowType",
    "{scope} GROUP BY ExecutionStatus, WorkflowType",
    "{scope} GROUP BY NoSuchAttribute",
]


def _ts(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


@pytest.mark.parametrize("query", LIST_QUERIES)
async def test_listings_match_the_reference(sides: dict[str, Side], query: str) -> None:
    reference = await _listing(sides["reference"], query)
    for name, side in ours(sides):
        tempyral = await _listing(side, query)
        assert tempyral == reference, f"{query!r}\nreference: {reference}\n{name}:  {tempyral}"


@pytest.mark.parametrize("query", COUNT_QUERIES)
async def test_counts_match_the_reference(sides: dict[str, Side], query: str) -> None:
    reference = await _count(sides["reference"], query)
    for name, side in ours(sides):
        tempyral = await _count(side, query)
        assert tempyral == reference, f"{query!r}\nreference: {reference}\n{name}:  {tempyral}"


@pytest.mark.parametrize("query", INVALID_LIST_QUERIES)
async def test_invalid_queries_get_the_reference_errors(sides: dict[str, Side], query: str) -> None:
    reference = await _listing(sides["reference"], query)
    assert reference[:2] == ("error", grpc.StatusCode.INVALID_ARGUMENT.name)
    for name, side in ours(sides):
        assert await _listing(side, query) == reference, name
        assert await _count(side, query) == await _count(sides["reference"], query), name


async def test_row_values_fail_in_the_database_as_in_the_reference(sides: dict[str, Side]) -> None:
    for query in ("{scope} AND WorkflowId = ('a', 'b')", "{scope} AND VisInt BETWEEN (1, 2) AND 3"):
        reference = await _listing(sides["reference"], query)
        assert reference[:2] == ("error", grpc.StatusCode.UNAVAILABLE.name)
        for name, side in ours(sides):
            assert await _listing(side, query) == reference, name
            assert await _count(side, query) == await _count(sides["reference"], query), name


@pytest.mark.parametrize("query", INVALID_COUNT_QUERIES)
async def test_invalid_counts_get_the_reference_errors(sides: dict[str, Side], query: str) -> None:
    reference = await _count(sides["reference"], query)
    assert reference[:2] == ("error", grpc.StatusCode.INVALID_ARGUMENT.name)
    for name, side in ours(sides):
        assert await _count(side, query) == reference, name


async def test_the_workflows_are_listed_as_expected(sides: dict[str, Side]) -> None:
    """The fixture is what the other tests assume: every status, running ones first."""
    (page,) = await _listing(sides["reference"], "{scope}")
    assert [s for _, s in page][:2] == ["RUNNING", "RUNNING"]
    assert sorted(w for w, _ in page) == sorted([wid(s.name) for s in SPECS] + [wid("w06"), wid("w07") + "-child"])


@pytest.mark.parametrize("page_size", [1, 3, 4])
async def test_pages_do_not_repeat_or_skip(sides: dict[str, Side], page_size: int) -> None:
    (everything,) = await _listing(sides["tempyral"], "{scope}")
    for name, side in sides.items():
        pages = await _listing(side, "{scope}", page_size)
        assert all(len(p) == page_size for p in pages[:-1]), name
        assert [row for p in pages for row in p] == everything, name
    for name, side in ours(sides):
        assert await _listing(side, "{scope}", page_size) == await _listing(sides["reference"], "{scope}", page_size), (
            name
        )


async def _deprecated(side: Side, call: str, **fields: Any) -> Any:
    service = side.client.workflow_service
    requests: dict[str, tuple[Any, Any]] = {
        "open": (service.list_open_workflow_executions, ListOpenWorkflowExecutionsRequest),
        "closed": (service.list_closed_workflow_executions, ListClosedWorkflowExecutionsRequest),
        "scan": (service.scan_workflow_executions, ScanWorkflowExecutionsRequest),
    }
    rpc, request_type = requests[call]
    ids: list[str] = []
    token = b""
    try:
        for _ in range(100):
            response = await _call(rpc, request_type(namespace="default", next_page_token=token, **fields))
            ids += [e.execution.workflow_id for e in response.executions if e.execution.workflow_id.startswith(TQ)]
            token = response.next_page_token
            if not token:
                return ids
    except RPCError as err:
        return ("error", err.status.name, err.message)
    raise AssertionError("more than 100 pages")


async def test_deprecated_listings_match_the_reference(sides: dict[str, Side]) -> None:
    def since(side: Side) -> StartTimeFilter:
        return StartTimeFilter(earliest_time=_ts(side.started_before))

    def window(side: Side) -> StartTimeFilter:
        return StartTimeFilter(
            earliest_time=_ts(side.started_before), latest_time=_ts(side.started_before + timedelta(hours=1))
        )

    cases: list[tuple[str, Callable[[Side], dict[str, Any]]]] = [
        ("open", lambda s: {"start_time_filter": since(s)}),
        ("open", lambda s: {"start_time_filter": window(s), "type_filter": WorkflowTypeFilter(name="VisOther")}),
        ("open", lambda s: {"execution_filter": WorkflowExecutionFilter(workflow_id=wid("w09"))}),
        ("open", lambda s: {"execution_filter": WorkflowExecutionFilter(workflow_id=wid("w01"))}),
        ("open", lambda s: {"maximum_page_size": 1, "start_time_filter": since(s)}),
        ("closed", lambda s: {"start_time_filter": since(s)}),
        ("closed", lambda s: {"start_time_filter": window(s), "maximum_page_size": 2}),
        ("closed", lambda s: {"execution_filter": WorkflowExecutionFilter(workflow_id=wid("w06"))}),
        ("closed", lambda s: {"start_time_filter": since(s), "type_filter": WorkflowTypeFilter(name="VisOther")}),
        (
            "closed",
            lambda s: {
                "start_time_filter": since(s),
                "status_filter": StatusFilter(status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED),
            },
        ),
        ("scan", lambda s: {"query": _fill("{scope} AND VisKeyword = 'alpha'", s)}),
        ("scan", lambda s: {"query": _fill("{scope}", s), "page_size": 3}),
        # errors
        (
            "open",
            lambda s: {
                "start_time_filter": StartTimeFilter(
                    earliest_time=_ts(s.started_before), latest_time=_ts(s.started_before - timedelta(days=1))
                )
            },
        ),
        (
            "closed",
            lambda s: {"status_filter": StatusFilter(status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)},
        ),
        ("closed", lambda s: {"status_filter": StatusFilter()}),
        ("closed", lambda s: {"execution_filter": WorkflowExecutionFilter(workflow_id="it's")}),
        ("scan", lambda s: {"query": "NoSuchAttribute = 1"}),
    ]
    for call, fields in cases:
        reference = await _deprecated(sides["reference"], call, **fields(sides["reference"]))
        for name, side in ours(sides):
            tempyral = await _deprecated(side, call, **fields(side))
            assert tempyral == reference, f"{name}: {call} {fields(sides['reference'])}"
