"""ORDER BY in list filters, seen through the SDK. The reference's SQLite visibility refuses the
clause; tempyral sorts as its Elasticsearch visibility does (unset values last, run id descending
on ties), so these runs are checked against that rule rather than against the dev server."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from tests.conftest import new_id, within
from tests.support.workflows import SleepWorkflow

PRIORITY = SearchAttributeKey.for_int("Priority")
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
# (priority, customer) of each run; None: the attribute is not set
RUNS = [(3, "b"), (1, "a"), (None, "c"), (2, None), (1, "z"), (3, "a"), (None, None)]


async def _list_all(client: Client, query: str, page_size: int) -> list[str]:
    ids: list[str] = []
    token = b""
    for _ in range(50):
        response = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", query=query, page_size=page_size, next_page_token=token)
        )
        ids += [e.execution.workflow_id for e in response.executions]
        token = response.next_page_token
        if not token:
            return ids
    raise AssertionError("paging did not end")


def _expected(ids: list[str], run_ids: list[str], key: list[tuple[object, bool]]) -> list[str]:
    """The Elasticsearch order: by each (value, descending) key with unset values last, then run
    id descending."""
    order = list(range(len(ids)))
    order.sort(key=lambda i: run_ids[i], reverse=True)
    for position in reversed(range(len(key))):
        values, descending = key[position]
        assert isinstance(values, list)
        present = sorted((i for i in order if values[i] is not None), key=lambda i: values[i], reverse=descending)
        order = present + [i for i in order if values[i] is None]
    return [ids[i] for i in order]


async def test_order_by_sorts_and_pages(client: Client, task_queue: str) -> None:
    handles = []
    for priority, customer in RUNS:
        pairs: list[SearchAttributePair[Any]] = []
        if priority is not None:
            pairs.append(SearchAttributePair(PRIORITY, priority))
        if customer is not None:
            pairs.append(SearchAttributePair(CUSTOMER, customer))
        handles.append(
            await client.start_workflow(
                SleepWorkflow.run,
                60.0,
                id=new_id("order"),
                task_queue=task_queue,
                search_attributes=TypedSearchAttributes(pairs),
            )
        )
    ids = [h.id for h in handles]
    run_ids = [h.result_run_id or "" for h in handles]
    priorities = [p for p, _ in RUNS]
    customers = [c for _, c in RUNS]
    scope = f"TaskQueue = '{task_queue}'"
    cases: dict[str, list[tuple[object, bool]]] = {
        f"{scope} ORDER BY Priority": [(priorities, False)],
        f"{scope} ORDER BY Priority DESC, CustomerId": [(priorities, True), (customers, False)],
        f"{scope} order by CustomerId desc": [(customers, True)],
    }
    try:
        for query, key in cases.items():
            expected = _expected(ids, run_ids, key)
            for page_size in (2, 3, 100):
                assert await within(_list_all(client, query, page_size)) == expected, (query, page_size)
        # A page token of an ordered listing does not fit the listing without the order.
        first = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", query=f"{scope} ORDER BY Priority", page_size=2)
        )
        try:
            await client.workflow_service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace="default", query=scope, page_size=2, next_page_token=first.next_page_token
                )
            )
            raise AssertionError("a foreign page token was accepted")
        except RPCError as err:
            assert err.status == RPCStatusCode.INVALID_ARGUMENT
    finally:
        await asyncio.gather(*(h.terminate() for h in handles))
