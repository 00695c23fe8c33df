"""History branches: where a run's events are stored (docs/DESIGN.md §4). Pure functions, no I/O, shared by
the stores (which read through ancestors) and the history engine (which forks and picks the current branch).

A run's first branch has the run id as its branch id and no ancestors. A fork is a new branch whose
`ancestors` say where its shared prefix is read from: events [previous range's end + 1, end_event_id]
come from the ancestor's `branch_id`, and the events after the last ancestor's end come from the
branch's own rows.
"""

from __future__ import annotations

from temporalio.api.history.v1 import message_pb2 as history_pb

from tempyral.proto.internal_pb2 import ExecutionState, HistoryBranch, HistoryBranchRange

# (branch id, first event id, next event id): events [first, next) are read from that branch's own rows.
Range = tuple[str, int, int]


def first_branch(run_id: str) -> HistoryBranch:
    """The branch a run's history starts on: the run id, no ancestors."""
    return HistoryBranch(branch_id=run_id)


def own_branch_id(run_id: str, branch_id: str) -> str:
    """The branch whose own rows a write or read names: "" is the run's first branch."""
    return branch_id or run_id


def fork(branch: HistoryBranch, at_event_id: int, new_branch_id: str) -> HistoryBranch:
    """A new branch `new_branch_id` that shares events 1..at_event_id with `branch` (0: shares nothing).

    Forking inside an ancestor's range keeps the ancestors before it, ends that ancestor's range at
    `at_event_id` and drops the later ones; forking past the last ancestor adds `branch` itself as the last
    range. The caller knows that `branch` has events up to `at_event_id`."""
    if at_event_id < 0:
        raise ValueError(f"cannot fork a history branch at event {at_event_id}")
    if not new_branch_id:
        raise ValueError("a forked history branch needs an id")
    if new_branch_id == branch.branch_id or any(a.branch_id == new_branch_id for a in branch.ancestors):
        raise ValueError(f"history branch {new_branch_id} would be its own ancestor")
    new = HistoryBranch(branch_id=new_branch_id)
    if at_event_id == 0:
        return new
    for ancestor in branch.ancestors:
        if ancestor.end_event_id >= at_event_id:
            new.ancestors.append(HistoryBranchRange(branch_id=ancestor.branch_id, end_event_id=at_event_id))
            return new
        new.ancestors.append(HistoryBranchRange(branch_id=ancestor.branch_id, end_event_id=ancestor.end_event_id))
    new.ancestors.append(HistoryBranchRange(branch_id=branch.branch_id, end_event_id=at_event_id))
    return new


def ranges(branch: HistoryBranch, first_event_id: int, next_event_id: int) -> list[Range]:
    """Where events [first_event_id, next_event_id) of `branch` are stored: non-empty (branch id, first, next)
    pieces in event order, each clipped to the request. Only the last piece may be the branch's own rows."""
    out: list[Range] = []
    start = 1  # the first event id of the next piece
    for ancestor in branch.ancestors:
        end = ancestor.end_event_id + 1  # exclusive
        lo, hi = max(start, first_event_id), min(end, next_event_id)
        if lo < hi:
            out.append((ancestor.branch_id, lo, hi))
        start = max(start, end)
    lo = max(start, first_event_id)
    if lo < next_event_id:
        out.append((branch.branch_id, lo, next_event_id))
    return out


def _current_branch(state: ExecutionState) -> HistoryBranch | None:
    """The branch of the run's current version history, as stored; None when the state has no version histories
    (states written before they existed)."""
    histories = state.version_histories.histories
    if not histories:
        return None
    index = state.version_histories.current_index
    if not 0 <= index < len(histories):
        raise ValueError(f"run {state.run_id}: current version history {index} of {len(histories)} does not exist")
    return histories[index].branch


def current_branch_id(state: ExecutionState) -> str:
    """The id of `current_branch(state)`, without copying the branch (every commit asks)."""
    stored = _current_branch(state)
    # a version history written without its branch is on the first one
    return own_branch_id(state.run_id, stored.branch_id if stored is not None else "")


def current_branch(state: ExecutionState) -> HistoryBranch:
    """The branch the run's reads and new events use: that of its current version history, or the run's first
    branch when the state has none."""
    stored = _current_branch(state)
    if stored is None:
        return first_branch(state.run_id)
    branch = HistoryBranch()
    branch.CopyFrom(stored)
    branch.branch_id = current_branch_id(state)
    return branch


def trimmed(first_event_id: int, last_event_id: int, data: bytes, lo: int, hi: int) -> bytes:
    """A stored batch of events [first, last] as read for events [lo, hi) of a branch: as stored when it lies
    inside, else only its events in [lo, hi) (b"" for none). A batch of an ancestor can straddle the fork point,
    and its events past it belong to another branch."""
    if lo <= first_event_id and last_event_id < hi:
        return data
    kept = [e for e in history_pb.History.FromString(data).events if lo <= e.event_id < hi]
    return history_pb.History(events=kept).SerializeToString() if kept else b""
