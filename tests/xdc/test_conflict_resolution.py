"""Conflict resolution between two tempyral processes (docs/DESIGN.md §11): a forced failover during a partition
lets both clusters write the same workflows; when they reconnect, the branch with the higher last version wins
on both, the loser's signals are re-applied once, a run closed on the winning side is reset (reason
`events-reapplication`), and every workflow goes on. Driven with the official CLI and SDK only."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from tests.support.clusters import Cluster, temporal_cli
from tests.xdc.conftest import connect, create_global_namespace, events, wait_for_namespace, wait_until
from tests.xdc.workflows import Gather

pytestmark = pytest.mark.asyncio(loop_scope="module")


def set_connection(a: Cluster, b: Cluster, enabled: bool) -> None:
    flag = "--enable-connection" if enabled else "--enable-connection=false"
    temporal_cli(a.address, "operator", "cluster", "upsert", "--frontend-address", b.address, flag)
    temporal_cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, flag)


async def signals_of(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    out = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payload = e.workflow_execution_signaled_event_attributes.input.payloads[0].data
            out.append(payload.decode().strip('"'))
    return out


async def converged(client_a: Client, client_b: Client, workflow_id: str) -> bool:
    try:
        return await events(client_a, workflow_id) == await events(client_b, workflow_id)
    except Exception:
        return False


async def test_a_forced_failover_during_a_partition_loses_no_signal(clusters: list[Cluster]) -> None:
    a, b = clusters
    name = create_global_namespace(clusters)
    client_a, client_b = await connect(a, name), await connect(b, name)
    tq = f"tq-{uuid.uuid4()}"
    ids = [f"wf-{i}" for i in range(4)]
    async with Worker(client_a, task_queue=tq, workflows=[Gather]):
        for wid in ids:
            await client_a.start_workflow(Gather.run, id=wid, task_queue=tq)
        for wid in ids:
            await wait_until(lambda wid=wid: converged(client_a, client_b, wid), what=f"{wid} replicated")
        set_connection(a, b, enabled=False)
        try:
            # b takes the namespace over on its own; a, cut off, still thinks it is active
            temporal_cli(b.address, "operator", "namespace", "update", "-n", name, "--active-cluster", "b")
            wait_for_namespace(b, name, "b")
            async with Worker(client_b, task_queue=tq, workflows=[Gather]):
                for wid in ids:
                    await client_a.get_workflow_handle(wid).signal(Gather.add, f"on-a-{wid}")
                    await client_b.get_workflow_handle(wid).signal(Gather.add, f"on-b-{wid}")
                # the last workflow finishes on b: its run is closed on the winning branch
                await client_b.get_workflow_handle(ids[-1]).signal(Gather.add, "finish")
                assert await client_b.get_workflow_handle(ids[-1]).result() == [f"on-b-{ids[-1]}", "finish"]
                for wid in ids:  # a's worker took a's signals too, on a's own branch
                    await wait_until(
                        lambda wid=wid: _has_completed_task_after_signal(client_a, wid), what=f"{wid} ran on a"
                    )
        finally:
            set_connection(a, b, enabled=True)
    wait_for_namespace(a, name, "b")
    last = ids[-1]
    async with Worker(client_b, task_queue=tq, workflows=[Gather]):
        # the run b had closed is reset to take a's signal (reason events-reapplication), and finishes again
        await wait_until(lambda: _was_reset(client_b, last), timeout=30, what=f"{last} reset")
        for wid in ids:
            await wait_until(lambda wid=wid: converged(client_a, client_b, wid), timeout=30, what=f"{wid} converged")
        for wid in ids[:-1]:
            await client_b.get_workflow_handle(wid).signal(Gather.add, "finish")
        results = {wid: await client_b.get_workflow_handle(wid).result() for wid in ids}
        for wid in ids:
            await wait_until(lambda wid=wid: converged(client_a, client_b, wid), timeout=30, what=f"{wid} converged")
    for wid in ids[:-1]:
        # each signal accepted on either side, once; those after the fork under the winner's version
        assert sorted(results[wid]) == sorted([f"on-a-{wid}", f"on-b-{wid}", "finish"]), wid
        assert sorted(await signals_of(client_a, wid)) == sorted(results[wid])
        assert {v for (_, _, v) in (await events(client_b, wid))[-3:]} == {2}
    assert results[last] == [f"on-b-{last}", "finish", f"on-a-{last}"]
    assert sorted(await signals_of(client_a, last)) == sorted(results[last])


async def _was_reset(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(
        e.workflow_task_failed_event_attributes.failure.message == "events-reapplication"
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )


async def _has_completed_task_after_signal(client: Client, workflow_id: str) -> bool:
    keys = await events(client, workflow_id)
    signaled = [i for i, k in enumerate(keys) if k[1] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
    completed = [i for i, k in enumerate(keys) if k[1] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
    return bool(signaled) and bool(completed) and completed[-1] > signaled[-1]
