"""One run's history on four branches, written through any Store, for the store tests that read by branch.

The run's first branch r1 has events 1..9 (mark 1) in batches 1..3, 4..7, 8..9: the second straddles event 5.
b forks r1 at 5 and has 6..8 (mark 2) in one batch, which straddles event 7; c forks b at 7 and has 8..10
(mark 3); d forks c at 3 (inside r1's range) and has 4..5 (mark 4). An event's mark is its task id.
"""

from __future__ import annotations

from temporalio.api.history.v1 import message_pb2 as history

from tempyral.persistence.branches import first_branch, fork
from tempyral.persistence.store import HistoryWrite, Store, Transaction
from tempyral.proto.internal_pb2 import HistoryBranch

R1 = [(i, 1) for i in range(1, 10)]
B_BRANCH = fork(first_branch("r1"), 5, "b")
C_BRANCH = fork(B_BRANCH, 7, "c")
D_BRANCH = fork(C_BRANCH, 3, "d")
B = [*R1[:5], (6, 2), (7, 2), (8, 2)]
C = [*R1[:5], (6, 2), (7, 2), (8, 3), (9, 3), (10, 3)]
D = [*R1[:3], (4, 4), (5, 4)]


def batch(first: int, last: int, mark: int = 1) -> bytes:
    """Events first..last; `mark` (as the task id) says which branch wrote them."""
    return history.History(
        events=[history.HistoryEvent(event_id=i, task_id=mark) for i in range(first, last + 1)]
    ).SerializeToString()


def write(first: int, last: int, mark: int, branch_id: str = "", run_id: str = "r1") -> HistoryWrite:
    return HistoryWrite("ns", run_id, first, last, batch(first, last, mark), branch_id=branch_id)


async def write_branches(store: Store) -> int:
    """Write the four branches of r1 on shard 0; the shard's range id."""
    range_id = await store.acquire_shard(0, "me")
    rows = [write(1, 3, 1), write(4, 7, 1), write(8, 9, 1)]
    rows += [write(6, 8, 2, "b"), write(8, 10, 3, "c"), write(4, 5, 4, "d")]
    await store.commit(Transaction(0, range_id, history=rows))
    return range_id


async def events(
    store: Store, first: int, next_: int, branch: HistoryBranch | None = None, run_id: str = "r1"
) -> list[tuple[int, int]]:
    """(event id, mark) of the events in [first, next_), filtered by id as the engine's callers do."""
    out: list[tuple[int, int]] = []
    for blob in await store.read_history("ns", run_id, first, next_, branch):
        out.extend((e.event_id, e.task_id) for e in history.History.FromString(blob).events)
    return [(i, mark) for i, mark in out if first <= i < next_]
