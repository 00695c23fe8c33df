"""A run's version histories: which failover version each of its events was written under.

Temporal gives every event the failover version of the cluster that wrote it (0 for a local
namespace). A version history lists, for one branch of the run's history, the contiguous runs of
events written under one version: item {event_id: 7, version: 0} says that the events up to 7 (and
after the previous item's) carry version 0. Replication and conflict resolution compare these
lists; task processors compare an entity's version with the version of the task serving it.

Pure functions over ExecutionState (docs/DESIGN.md §4). An event is recorded when it gets its real
id: in `MutableState._event`, when buffered events are flushed, and by `rebuild.apply_events`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tempyral.proto.internal_pb2 import ExecutionState, VersionHistories, VersionHistory, VersionHistoryItem


class VersionHistoryError(ValueError):
    """An event does not fit the version history (a lower version, or an id out of order)."""


def _first(state: ExecutionState) -> VersionHistory:
    first = VersionHistory()
    first.branch.branch_id = state.run_id
    if state.next_event_id > 1:
        first.items.add(event_id=state.next_event_id - 1, version=0)
    return first


def ensure(state: ExecutionState) -> VersionHistories:
    """The run's version histories, created if it has none: one history on the run's first branch
    (branch id = run id, no ancestors). A state from an older database that already has events gets
    one item covering them at version 0 (every event was written at version 0 then)."""
    histories = state.version_histories
    if not histories.histories:
        histories.histories.add().CopyFrom(_first(state))
        histories.current_index = 0
    return histories


def current(state: ExecutionState) -> VersionHistory:
    """The history new events go to. Reading does not change the state: without version histories
    this is the history `ensure` would create."""
    histories = state.version_histories
    if not histories.histories:
        return _first(state)
    return histories.histories[histories.current_index]


def record(state: ExecutionState, event_id: int, version: int) -> None:
    """Event `event_id`, written at `version`, is the current branch's newest event.

    Call it before `state.next_event_id` moves past the event (so that `ensure` does not count the
    event among the old ones of a state that has no version history yet)."""
    histories = ensure(state)
    history = histories.histories[histories.current_index]
    if event_id <= 0:
        raise VersionHistoryError(f"event id {event_id} is not a real event id")
    if history.items:
        last = history.items[-1]
        if event_id <= last.event_id:
            raise VersionHistoryError(f"event id {event_id} is not after the last recorded event {last.event_id}")
        if version < last.version:
            raise VersionHistoryError(
                f"event {event_id} has version {version}, lower than the last recorded version {last.version}"
            )
        if version == last.version:
            last.event_id = event_id
            return
    history.items.add(event_id=event_id, version=version)


def last_version(state: ExecutionState) -> int:
    """The version of the newest recorded event (0 before any event)."""
    items = current(state).items
    return items[-1].version if items else 0


def last_event_id(state: ExecutionState) -> int:
    """The id of the newest recorded event (0 before any event)."""
    items = current(state).items
    return items[-1].event_id if items else 0


def version_at(state: ExecutionState, event_id: int) -> int:
    """The version of the event `event_id` of the current branch."""
    for item in current(state).items:
        if event_id <= item.event_id:
            if event_id <= 0:
                break
            return item.version
    raise VersionHistoryError(f"event {event_id} is not in the version history")


# ------------------------------------------------------------------ comparing two histories (conflict resolution)
def find(state: ExecutionState, branch_id: str) -> VersionHistory | None:
    """The version history of the run's branch `branch_id` ("" or the run id: the run's first branch)."""
    histories = state.version_histories.histories
    if not histories:
        return _first(state) if branch_id in ("", state.run_id) else None
    for candidate in histories:
        if (candidate.branch.branch_id or state.run_id) == (branch_id or state.run_id):
            return candidate
    return None


def truncated(items: Sequence[VersionHistoryItem], last_event_id: int) -> list[VersionHistoryItem]:
    """The items of a history that cover its events up to `last_event_id`."""
    out: list[VersionHistoryItem] = []
    for item in items:
        if item.event_id >= last_event_id:
            if last_event_id > (out[-1].event_id if out else 0):
                out.append(VersionHistoryItem(event_id=last_event_id, version=item.version))
            break
        out.append(VersionHistoryItem(event_id=item.event_id, version=item.version))
    return out


def common_ancestor(a: Sequence[VersionHistoryItem], b: Sequence[VersionHistoryItem]) -> int:
    """The last event two branches of a run share (0: none). A version is owned by one cluster, which writes each
    event id once under it, so two histories agree up to the end of the last version they both hold, as far as
    both reach."""
    i, j = len(a) - 1, len(b) - 1
    while i >= 0 and j >= 0:
        if a[i].version == b[j].version:
            return min(a[i].event_id, b[j].event_id)
        if a[i].version > b[j].version:
            i -= 1
        else:
            j -= 1
    return 0


def last_item_version(items: Sequence[VersionHistoryItem]) -> int:
    return items[-1].version if items else 0
