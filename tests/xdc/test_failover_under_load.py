"""Failover under load: 200 workflows in flight on the active cluster, a failover half-way; every workflow completes
exactly once, the ones still running at the failover on the new active, and both clusters end with equal histories."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from temporalio import activity
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.clusters import Cluster
from tests.xdc.conftest import connect, create_global_namespace, events, failover, wait_for_events
from tests.xdc.workflows import SlowActivity

WORKFLOWS = 200


def slow_where(label: str) -> object:
    @activity.defn(name="slow_where")
    async def run(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return label

    return run


@pytest.mark.timeout(240)
async def test_failover_half_way_through_200_workflows(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    tq = new_id("tq")
    worker_a = Worker(client_a, task_queue=tq, workflows=[SlowActivity], activities=[slow_where("a")])  # type: ignore[list-item]
    worker_b = Worker(client_b, task_queue=tq, workflows=[SlowActivity], activities=[slow_where("b")])  # type: ignore[list-item]
    async with worker_a, worker_b:  # b's worker polls the standby: it gets nothing until the failover
        ids = [new_id("load") for _ in range(WORKFLOWS)]
        # activities of 0.5 s to 4.5 s: when half the workflows are done, the other half are in flight
        handles = await asyncio.gather(
            *(
                client_a.start_workflow(SlowActivity.run, 0.5 + 4.0 * i / WORKFLOWS, id=wid, task_queue=tq)
                for i, wid in enumerate(ids)
            )
        )
        done_on_a = 0
        for handle in asyncio.as_completed([h.result() for h in handles]):
            await within(handle)
            done_on_a += 1
            if done_on_a == WORKFLOWS // 2:
                break
        # a planned failover, issued on the active: a stops writing at once, and b takes over once it has applied
        # everything a wrote (no conflicting writes)
        failover(a, ns, "b")
        results = await within(asyncio.gather(*(client_b.get_workflow_handle(wid).result() for wid in ids)), 180)
    ran_on = Counter(results)
    assert set(ran_on) <= {"a", "b"} and sum(ran_on.values()) == WORKFLOWS
    assert ran_on["b"] > 0, f"no workflow finished on the new active: {ran_on}"
    for wid in ids:
        on_b = await events(client_b, wid)
        kinds = Counter(kind for _, kind, _ in on_b)
        assert kinds["EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"] == 1, (wid, on_b)
        assert not {k for k in kinds if k.endswith(("EXECUTION_FAILED", "EXECUTION_TERMINATED", "TIMED_OUT"))} - {
            "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT",
            "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT",
        }
        await within(wait_for_events(client_a, wid, on_b), 60)
