"""Conflict resolution between two in-process clusters (history/replication.py, history/reapply.py,
tests/support/xdc_pair.py): a and b both write the same run, as after a forced failover during a partition
(b takes the namespace over while a still thinks it is active). When the histories meet, the branch whose last
version is higher wins on both clusters, and the losing branch's signals (and cancel requests, terminations,
updates) are re-applied once by the namespace's active cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.errors import NamespaceNotActive
from tempyral.history import events as ev
from tempyral.history import reapply, rebuild, task_generator, version_history
from tempyral.persistence.branches import current_branch
from tempyral.persistence.store import Transaction
from tempyral.proto.internal_pb2 import ExecutionState
from tests.support.history_harness import complete_workflow, start_timer
from tests.support.xdc_pair import Cluster, continue_as_new, open_pair, replicate, without_task_ids

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[tuple[Cluster, Cluster]]:
    async with open_pair() as clusters:
        yield clusters


def signals(events: list[history.HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in events
        if e.workflow_execution_signaled_event_attributes.signal_name
    ]


async def partitioned(a: Cluster, b: Cluster) -> str:
    """A run both clusters have; then b is failed over to on b alone (forced: a still thinks it is active)."""
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    await replicate(a, b)
    await b.fail_over("b")  # version 2 on b; a stays active under version 1
    return run_id


async def heal(a: Cluster, b: Cluster) -> None:
    """a learns of the failover (namespace replication), and both streams deliver what they hold, twice over."""
    await a.fail_over("b")
    for _ in range(2):
        await replicate(a, b)
        await replicate(b, a)


async def assert_same(a: Cluster, b: Cluster, workflow_id: str, run_id: str = "") -> None:
    events_a, events_b = await a.h.events(workflow_id, run_id), await b.h.events(workflow_id, run_id)
    assert without_task_ids(events_a) == without_task_ids(events_b)
    state_a, state_b = await a.h.state(workflow_id, run_id), await b.h.state(workflow_id, run_id)
    assert rebuild.comparable(state_a).SerializeToString() != b""  # both load
    assert list(version_history.current(state_a).items) == list(version_history.current(state_b).items)


async def test_the_higher_version_wins_everywhere_and_the_losers_signal_is_reapplied_once(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "to-a", request_id="req-a")  # version 1, on a only
    await b.h.signal("wf", "to-b", request_id="req-b")  # version 2, on b only
    await heal(a, b)
    await assert_same(a, b, "wf", run_id)
    events = await b.h.events("wf", run_id)
    assert sorted(signals(events)) == ["to-a", "to-b"]
    # every event after the fork is b's, under version 2: the re-applied signal too
    assert {e.version for e in events[5:]} == {2}
    state = await a.h.state("wf", run_id)
    assert len(state.version_histories.histories) == 2  # a keeps its losing branch, not current
    assert version_history.last_version(state) == 2
    # a's losing branch is still readable: the run has both
    loser = state.version_histories.histories[0]
    assert version_history.last_item_version(loser.items) == 1
    # nothing more happens when everything is sent again
    before = len(await b.h.events("wf", run_id))
    a.sent = b.sent = 0
    await replicate(a, b)
    await replicate(b, a)
    assert len(await b.h.events("wf", run_id)) == before
    await assert_same(a, b, "wf", run_id)


async def test_a_signal_already_in_the_winner_by_request_id_is_not_reapplied(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    # the client retried the same request on both clusters: one signal
    await a.h.signal("wf", "same", request_id="req-1")
    await b.h.signal("wf", "same", request_id="req-1")
    await heal(a, b)
    await assert_same(a, b, "wf", run_id)
    assert signals(await b.h.events("wf", run_id)) == ["same"]


async def test_a_standby_that_meets_a_losing_branch_sends_it_to_the_active_cluster(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "to-a")
    await b.h.signal("wf", "to-b")
    await a.fail_over("b")
    # a gets b's branch first: it wins there; a, standby now, writes nothing itself but sends its losing signal to
    # b (ReapplyEvents), where the namespace is active: no cluster needs to meet the loser while active
    await replicate(b, a)
    assert sorted(signals(await b.h.events("wf", run_id))) == ["to-a", "to-b"]
    await replicate(a, b)  # b meets a's losing branch itself too: already re-applied, nothing doubles
    await replicate(b, a)
    await assert_same(a, b, "wf", run_id)
    assert sorted(signals(await a.h.events("wf", run_id))) == ["to-a", "to-b"]


async def test_a_cluster_behind_on_the_failover_sends_losers_to_the_winners_cluster(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "to-a")
    await b.h.signal("wf", "to-b")
    # a still thinks itself active, but b's branch carries a newer version: b's cluster re-applies a's signal
    await replicate(b, a)
    assert sorted(signals(await b.h.events("wf", run_id))) == ["to-a", "to-b"]
    await heal(a, b)
    await assert_same(a, b, "wf", run_id)
    assert sorted(signals(await a.h.events("wf", run_id))) == ["to-a", "to-b"]


async def test_a_winner_that_closed_is_reset_with_reason_events_reapplication(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "late")  # accepted on a, lost on b unless re-applied
    await b.h.signal("wf", "finish")
    await b.h.run_workflow_task(complete_workflow())  # b's run closes
    await heal(a, b)
    current = await b.h.current("wf")
    assert current is not None and current.run_id != run_id  # reset into a new run
    new_events = await b.h.events("wf", current.run_id)
    failed = [e for e in new_events if e.workflow_task_failed_event_attributes.failure.message]
    assert failed[0].workflow_task_failed_event_attributes.failure.message == "events-reapplication"
    assert signals(new_events)[-1] == "late"
    await assert_same(a, b, "wf", current.run_id)
    a_current = await a.h.current("wf")
    assert a_current is not None and a_current.run_id == current.run_id


async def test_a_run_the_loser_continued_into_is_a_zombie_on_both_clusters(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "to-a")
    await a.h.run_workflow_task(continue_as_new())  # on a, the run continues as a new one
    a_next = await a.h.current("wf")
    assert a_next is not None and a_next.run_id != run_id
    await b.h.signal("wf", "to-b")  # on b, the first run goes on under version 2
    await heal(a, b)
    for cluster in (a, b):
        current = await cluster.h.current("wf")
        assert current is not None and current.run_id == run_id, cluster.name
        zombie = await cluster.h.state("wf", a_next.run_id)
        assert zombie.zombie, cluster.name
    await assert_same(a, b, "wf", run_id)
    assert sorted(signals(await b.h.events("wf", run_id))) == ["to-a", "to-b"]


async def test_a_losers_cancel_request_and_termination_are_reapplied_on_the_winner(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.request_cancel("wf")
    await a.h.terminate("wf", reason="stop it")
    await b.h.signal("wf", "to-b")
    await heal(a, b)
    await assert_same(a, b, "wf", run_id)
    types = await b.h.event_types("wf", run_id)
    assert types.count("WORKFLOW_EXECUTION_CANCEL_REQUESTED") == 1
    assert types[-1] == "WORKFLOW_EXECUTION_TERMINATED"
    events = await b.h.events("wf", run_id)
    assert events[-1].workflow_execution_terminated_event_attributes.reason == "stop it"
    assert events[-1].version == 2


async def test_a_losing_timer_task_dies_by_the_version_check(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "to-a")
    await a.h.run_workflow_task(start_timer("only-on-a"))  # a's branch alone has this timer
    (timer_task,) = [t for t in a.h.handed_timers(workflow_id="wf") if t.timer_id == "only-on-a"]
    await b.h.signal("wf", "to-b")
    await heal(a, b)
    state = await a.h.state("wf", run_id)
    assert "only-on-a" not in state.timers
    assert not task_generator.task_is_current(state, timer_task)
    await assert_same(a, b, "wf", run_id)


def _admitted(update_id: str, event_id: int = 7, version: int = 1) -> history.HistoryEvent:
    event = history.HistoryEvent(event_id=event_id, version=version, event_type=ev.UPDATE_ADMITTED)
    event.workflow_execution_update_admitted_event_attributes.request.meta.update_id = update_id
    return event


async def test_updates_dedupe_by_update_id_and_the_servers_own_terminations_are_not_reapplied() -> None:
    state = ExecutionState(run_id="r")
    state.updates["known"].update_id = "known"
    losing = [_admitted("known", 7), _admitted("new", 8), _admitted("new", 9)]
    terminated = history.HistoryEvent(event_id=10, version=1, event_type=ev.WORKFLOW_EXECUTION_TERMINATED)
    terminated.workflow_execution_terminated_event_attributes.identity = "history-service"
    assert reapply.reapplicable([*losing, terminated]) == losing
    assert [e.event_id for e in reapply.pending(state, "r", losing)] == [8]
    state.reapplied_events.append(reapply.mark("r", losing[1]))
    assert reapply.pending(state, "r", losing) == []
    state.cancel_requested = True
    cancel = history.HistoryEvent(event_id=11, version=1, event_type=ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert reapply.pending(state, "r", [cancel]) == []


async def test_a_signal_buffered_on_the_loser_is_written_there_first_and_reapplied_by_the_active(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await partitioned(a, b)
    await a.h.signal("wf", "first-on-a")
    await a.h.next_workflow_task()  # a worker of a holds the workflow task that signal scheduled
    await a.h.signal("wf", "buffered-on-a", request_id="req-buf")  # buffered behind it, in no event yet
    await b.h.signal("wf", "to-b")
    await replicate(b, a)  # b's branch wins on a before a hears of the failover
    state = await a.h.state("wf", run_id)
    assert not state.buffered_events and version_history.last_version(state) == 2
    # a, still believing itself active, cannot write under its older version: NamespaceNotActive, not a crash
    with pytest.raises(NamespaceNotActive):
        await a.h.signal("wf", "late-on-a")
    await heal(a, b)
    await assert_same(a, b, "wf", run_id)
    assert sorted(signals(await b.h.events("wf", run_id))) == ["buffered-on-a", "first-on-a", "to-b"]


CommitFn = Callable[[Transaction], Awaitable[None]]


class Killed(BaseException):
    """A SIGKILL (or a cancellation at shutdown) in the middle of an apply: no handler catches it."""


async def test_losers_reapplied_here_survive_a_crash_at_any_commit_of_the_apply() -> None:
    """a is active again (a newer version than b's) before b's branch reaches it: b's branch wins there and a
    re-applies its own losing signal itself. Whichever commit of that apply fails (a SIGKILL at that moment), the
    replication task sent again leaves the signal in the winning history: the losing branch never stops being
    current without its events being re-applied in the same transaction."""
    fail_at = 1
    while True:
        async with open_pair() as (a, b):
            run_id = await partitioned(a, b)
            await a.h.signal("wf", "to-a", request_id="req-a")  # version 1, acknowledged by a alone
            await b.h.signal("wf", "to-b", request_id="req-b")  # version 2, on b alone
            await a.fail_over("b")  # a hears of the forced failover...
            await a.fail_over("a")  # ...and is active again (version 11) before b's branch reached it
            commits = 0
            real_commit = a.h.store.commit

            async def commit(txn: Transaction, real: CommitFn = real_commit, at: int = fail_at) -> None:
                nonlocal commits
                commits += 1
                if commits == at:
                    raise Killed  # the process dies: nothing after it runs
                await real(txn)

            a.h.store.commit = commit  # type: ignore[method-assign]
            try:
                await replicate(b, a)
                failed = False
            except Killed:
                failed = True
            a.h.store.commit = real_commit  # type: ignore[method-assign]
            if failed:
                b.sent = 0  # the stream had not stored its watermark: the task comes again
                await replicate(b, a)
            events = await a.h.events("wf", run_id)
            assert sorted(signals(events)) == ["to-a", "to-b"], f"commit {fail_at} failed"
            for _ in range(2):
                await replicate(a, b)
                await replicate(b, a)
            await assert_same(a, b, "wf", run_id)
            assert sorted(signals(await b.h.events("wf", run_id))) == ["to-a", "to-b"], f"commit {fail_at} failed"
            if not failed:
                break
        fail_at += 1


async def test_a_switch_whose_caller_is_cancelled_while_the_database_commits_leaves_a_true_cache() -> None:
    """The replication stream that applies the winning branch is cancelled (a partition, a stream restart) while the
    database commits the switch: the commit lands all the same, and the run's cached history must be the winning
    branch's, not the losing one's with the winner's events added, or the next apply (a later conflict's shared
    events, a duplicate check) works from events the run does not have (chaos seed 314027: a state that its own
    history no longer explains)."""
    async with open_pair() as (a, b):
        run_id = await partitioned(a, b)
        for n in range(3):  # a's branch is longer than b's: its cached events run past the fork and b's events
            await a.h.signal("wf", f"to-a-{n}", request_id=f"req-a-{n}")
        await b.h.signal("wf", "to-b", request_id="req-b")
        await a.fail_over("b")
        committing, release = asyncio.Event(), asyncio.Event()
        real_commit = a.h.store.commit

        async def commit(txn: Transaction) -> None:
            if not committing.is_set():  # the switch: a's first commit of b's branch
                committing.set()
                await release.wait()
            await real_commit(txn)

        a.h.store.commit = commit  # type: ignore[method-assign]
        applying = asyncio.create_task(replicate(b, a))
        await committing.wait()
        applying.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await applying
        a.h.store.commit = real_commit  # type: ignore[method-assign]
        state = await a.h.stored_state("wf", run_id)
        assert version_history.last_version(state) == 2  # the switch committed
        stored = await a.h.store.read_history(a.ns.id, run_id, 1, state.next_event_id, branch=current_branch(state))
        on_branch = [e for blob in stored for e in history.History.FromString(blob).events]
        assert without_task_ids(await a.h.events("wf", run_id)) == without_task_ids(on_branch)
        b.sent = 0  # the stream had not stored its watermark: the task comes again
        await heal(a, b)
        await assert_same(a, b, "wf", run_id)
        assert sorted(signals(await a.h.events("wf", run_id))) == ["to-a-0", "to-a-1", "to-a-2", "to-b"]
