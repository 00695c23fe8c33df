"""History replication and failover between two tempyral clusters, driven by the SDK and the `temporal` CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.clusters import Cluster
from tests.support.clusters import connect as connect_clusters
from tests.xdc.conftest import (
    connect,
    create_global_namespace,
    events,
    failover,
    hold_workflow_task,
    wait_for_events,
    wait_for_namespace,
    wait_until,
)
from tests.xdc.workflows import ActivityAcrossFailover, OneActivity, SignalTimerActivity


def where_on(label: str) -> Callable[[str], Awaitable[str]]:
    @activity.defn(name="where")
    async def where(_: str) -> str:
        return label

    return where


async def test_history_and_visibility_equal_on_the_standby(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    async with Worker(client_a, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("a")]):
        handle = await client_a.start_workflow(SignalTimerActivity.run, 0.1, id=wid, task_queue=tq)
        await handle.signal(SignalTimerActivity.go, "1")
        await handle.signal(SignalTimerActivity.go, "2")
        assert await within(handle.result()) == "a:1,2"
    on_a = await events(client_a, wid)
    assert {version for _, _, version in on_a} == {1}  # written by cluster a (initial failover version 1)
    await within(wait_for_events(client_b, wid, on_a))
    # the standby's visibility and describe show the replicated run
    described = await client_b.get_workflow_handle(wid).describe()
    assert described.status == Status.COMPLETED
    listed = [w async for w in client_b.list_workflows(f'WorkflowId = "{wid}"')]
    assert [w.status for w in listed] == [Status.COMPLETED]
    assert (await client_b.count_workflows(f'WorkflowId = "{wid}"')).count == 1


async def test_failover_carries_a_signal_a_timer_and_an_activity(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    async with Worker(client_a, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("a")]):
        handle = await client_a.start_workflow(SignalTimerActivity.run, 3.0, id=wid, task_queue=tq)
        await handle.signal(SignalTimerActivity.go, "1")
        # the timer is started on a and replicated to b before the failover
        await within(
            wait_until(
                lambda: _has_event(client_b, wid, "EVENT_TYPE_TIMER_STARTED"), what="TimerStarted replicated to b"
            )
        )
    failover(b, ns, "b")  # issued on the standby: b is active at once
    async with Worker(client_b, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("b")]):
        handle_b = client_b.get_workflow_handle(wid)
        # the timer fires on b, the activity runs on b's worker, and the second signal goes to b
        await within(wait_until(lambda: _has_event(client_b, wid, "EVENT_TYPE_ACTIVITY_TASK_COMPLETED")))
        await handle_b.signal(SignalTimerActivity.go, "2")
        assert await within(handle_b.result()) == "b:1,2"
    on_b = await events(client_b, wid)
    fired = [version for _, kind, version in on_b if kind == "EVENT_TYPE_TIMER_FIRED"]
    assert fired == [2]  # fired by b after the failover (version 2 = b's initial failover version)
    await within(wait_for_events(client_a, wid, on_b))
    # a learned of the failover from b: writes there are refused now
    wait_for_namespace(a, ns, "b")
    with pytest.raises(RPCError) as refused:
        await client_a.start_workflow(SignalTimerActivity.run, 0.1, id=new_id(), task_queue=tq)
    assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert (
        refused.value.message
        == f"Namespace: {ns} is active in cluster: b, while current cluster a is a standby cluster."
    )


async def _has_event(client: Client, workflow_id: str, kind: str) -> bool:
    try:
        return any(k == kind for _, k, _ in await events(client, workflow_id))
    except RPCError:
        return False


async def test_an_activity_pending_at_failover_runs_again_on_the_new_active(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    started = asyncio.Event()

    @activity.defn(name="stuck_or_where")
    async def stuck() -> str:
        started.set()
        await asyncio.sleep(3600)  # the old active's worker never finishes it
        return "a"

    @activity.defn(name="stuck_or_where")
    async def on_b() -> str:
        return "b"

    async with Worker(client_a, task_queue=tq, workflows=[ActivityAcrossFailover], activities=[stuck]):
        await client_a.start_workflow(ActivityAcrossFailover.run, id=wid, task_queue=tq)
        await within(started.wait())

        async def started_on_b() -> bool:
            try:
                pending = (await client_b.get_workflow_handle(wid).describe()).raw_description.pending_activities
            except RPCError:
                return False
            return bool(pending) and pending[0].state == 2  # STARTED: the attempt state was replicated

        await within(wait_until(started_on_b, what="the started attempt replicated to b"))
        failover(a, ns, "b")  # issued on the active: b takes over once it has pulled the change
        wait_for_namespace(b, ns, "b")
    async with Worker(client_b, task_queue=tq, workflows=[ActivityAcrossFailover], activities=[on_b]):
        assert await within(client_b.get_workflow_handle(wid).result()) == "b"
    history = await events(client_b, wid)
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" in {k for _, k, _ in history}
    await within(wait_for_events(client_a, wid, history))


async def test_the_standby_killed_and_restarted_catches_up(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    tq = new_id("tq")
    b.server.kill()
    try:
        async with Worker(client_a, task_queue=tq, workflows=[OneActivity], activities=[where_on("a")]):
            handles = [
                await client_a.start_workflow(OneActivity.run, "x", id=new_id(), task_queue=tq) for _ in range(20)
            ]
            for handle in handles:
                assert await within(handle.result()) == "a"
    finally:
        b.server.start()
    client_b = await connect(b, ns)
    for handle in handles:
        await within(wait_for_events(client_b, handle.id, await events(client_a, handle.id)), 60)


async def test_the_active_killed_right_after_a_failover_was_requested_on_the_standby(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    wid, tq = new_id(), new_id("tq")
    async with Worker(client_a, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("a")]):
        await client_a.start_workflow(SignalTimerActivity.run, 0.5, id=wid, task_queue=tq)
        client_b0 = await connect(b, ns)
        await within(wait_until(lambda: _has_event(client_b0, wid, "EVENT_TYPE_WORKFLOW_TASK_COMPLETED")))
    failover(b, ns, "b")
    a.server.kill()
    try:
        client_b = await connect(b, ns)
        async with Worker(client_b, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("b")]):
            handle = client_b.get_workflow_handle(wid)
            await handle.signal(SignalTimerActivity.go, "1")
            await handle.signal(SignalTimerActivity.go, "2")
            assert await within(handle.result()) == "b:1,2"
    finally:
        a.server.start()
    # a comes back, learns it is standby now, and catches up
    wait_for_namespace(a, ns, "b")
    client_a = await connect(a, ns)
    await within(wait_for_events(client_a, wid, await events(client_b, wid)), 60)


async def test_a_disabled_connection_pauses_replication_and_enabling_it_resumes(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    tq = new_id("tq")
    connect_clusters(a, b, enable=False)
    try:
        async with Worker(client_a, task_queue=tq, workflows=[OneActivity], activities=[where_on("a")]):
            handle = await client_a.start_workflow(OneActivity.run, "x", id=new_id(), task_queue=tq)
            assert await within(handle.result()) == "a"
        await asyncio.sleep(3)  # the pause holds: nothing of the new run reaches b
        with pytest.raises(RPCError) as missing:
            await client_b.get_workflow_handle(handle.id).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND
    finally:
        connect_clusters(a, b, enable=True)
    await within(wait_for_events(client_b, handle.id, await events(client_a, handle.id)))


async def test_a_stream_from_a_cluster_that_is_not_connected_is_refused(clusters: list[Cluster]) -> None:
    from tempyral.cluster.client import ReplicationClient
    from tempyral.proto import replication_pb2 as rpb

    a, _ = clusters
    client = ReplicationClient(a.address)

    async def requests() -> AsyncIterator[rpb.ReplicationStreamRequest]:
        yield rpb.ReplicationStreamRequest(cluster_name="stranger", shard_id=0, acked_task_id=0)
        await asyncio.sleep(10)

    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in client.stream(requests()):
                pass
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "stranger" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as refused_ns:
            await client.namespace_messages("stranger", 0)
        assert refused_ns.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await client.close()


async def test_a_workflow_task_started_on_the_old_active_fails_with_failover_close_command(
    clusters: list[Cluster],
) -> None:
    from temporalio.api.enums.v1 import WorkflowTaskFailedCause
    from temporalio.api.workflowservice.v1 import RespondWorkflowTaskCompletedRequest

    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    await client_a.start_workflow(OneActivity.run, "x", id=wid, task_queue=tq)
    # a worker of the old active takes the workflow task and never answers
    token = await hold_workflow_task(client_a, ns, tq)
    await within(wait_until(lambda: _has_event(client_b, wid, "EVENT_TYPE_WORKFLOW_TASK_STARTED")))
    failover(a, ns, "b")
    wait_for_namespace(b, ns, "b")

    async def failed_on_b() -> bool:
        history = await client_b.get_workflow_handle(wid).fetch_history()
        return any(
            e.workflow_task_failed_event_attributes.cause
            == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND
            for e in history.events
        )

    await within(wait_until(failed_on_b, what="the started workflow task failed on b with FAILOVER_CLOSE_COMMAND"))
    kinds = [(k, v) for _, k, v in await events(client_b, wid)]
    assert kinds[-2:] == [("EVENT_TYPE_WORKFLOW_TASK_FAILED", 2), ("EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", 2)]
    # the old worker's answer is refused on the old active, and stale on the new one
    respond = RespondWorkflowTaskCompletedRequest(namespace=ns, task_token=token, identity="old-worker")
    with pytest.raises(RPCError) as on_a:
        await client_a.workflow_service.respond_workflow_task_completed(respond)
    assert on_a.value.status == RPCStatusCode.FAILED_PRECONDITION
    with pytest.raises(RPCError) as on_b:
        await client_b.workflow_service.respond_workflow_task_completed(respond)
    assert on_b.value.status == RPCStatusCode.NOT_FOUND
    async with Worker(client_b, task_queue=tq, workflows=[OneActivity], activities=[where_on("b")]):
        assert await within(client_b.get_workflow_handle(wid).result()) == "b"


async def test_activity_attempt_state_and_heartbeat_details_reach_the_standby(clusters: list[Cluster]) -> None:
    from temporalio.converter import DataConverter

    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    beat = asyncio.Event()

    @activity.defn(name="stuck_or_where")
    async def heartbeating() -> str:
        activity.heartbeat("progress-7")
        beat.set()
        await asyncio.sleep(3600)
        return "a"

    async with Worker(client_a, task_queue=tq, workflows=[ActivityAcrossFailover], activities=[heartbeating]):
        handle = await client_a.start_workflow(ActivityAcrossFailover.run, id=wid, task_queue=tq)
        await within(beat.wait())

        async def details_on_b() -> bool:
            try:
                pending = (await client_b.get_workflow_handle(wid).describe()).raw_description.pending_activities
            except RPCError:
                return False
            if not pending or not pending[0].heartbeat_details.payloads:
                return False
            (detail,) = await DataConverter.default.decode(pending[0].heartbeat_details.payloads)
            return bool(detail == "progress-7" and pending[0].attempt == 1 and pending[0].HasField("last_started_time"))

        await within(wait_until(details_on_b, what="heartbeat details and attempt replicated to b"))
        await handle.terminate("done")


async def test_a_signal_buffered_behind_a_started_workflow_task_survives_a_planned_failover(
    clusters: list[Cluster],
) -> None:

    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    wid, tq = new_id(), new_id("tq")
    await client_a.start_workflow(SignalTimerActivity.run, 0.1, id=wid, task_queue=tq)
    # a worker of a holds the first workflow task; a signal arrives meanwhile: a accepts it, buffered
    await hold_workflow_task(client_a, ns, tq)
    await client_a.get_workflow_handle(wid).signal(SignalTimerActivity.go, "1")
    failover(a, ns, "b")  # planned: a hands its buffered events over before b takes the namespace
    wait_for_namespace(b, ns, "b")
    async with Worker(client_b, task_queue=tq, workflows=[SignalTimerActivity], activities=[where_on("b")]):
        handle = client_b.get_workflow_handle(wid)
        await handle.signal(SignalTimerActivity.go, "2")
        assert await within(handle.result()) == "b:1,2"
    await within(wait_for_events(client_a, wid, await events(client_b, wid)))
