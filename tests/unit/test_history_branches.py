"""History branches (persistence/branches.py): forks of forks, forks inside an ancestor's range, read ranges."""

from __future__ import annotations

import pytest

from tempyral.persistence.branches import current_branch, first_branch, fork, ranges
from tempyral.proto.internal_pb2 import ExecutionState, HistoryBranch, VersionHistories, VersionHistory


def ancestors(branch: HistoryBranch) -> list[tuple[str, int]]:
    return [(a.branch_id, a.end_event_id) for a in branch.ancestors]


def test_first_branch_is_the_run_id_without_ancestors() -> None:
    branch = first_branch("run-1")
    assert branch.branch_id == "run-1" and ancestors(branch) == []
    assert ranges(branch, 1, 10) == [("run-1", 1, 10)]


def test_fork_of_the_first_branch() -> None:
    b = fork(first_branch("r"), 5, "b")
    assert b.branch_id == "b" and ancestors(b) == [("r", 5)]
    assert ranges(b, 1, 9) == [("r", 1, 6), ("b", 6, 9)]


def test_fork_of_a_fork_extends_the_ancestors() -> None:
    c = fork(fork(first_branch("r"), 5, "b"), 7, "c")
    assert ancestors(c) == [("r", 5), ("b", 7)]
    assert ranges(c, 1, 11) == [("r", 1, 6), ("b", 6, 8), ("c", 8, 11)]
    # forking at the end of the branch's last ancestor needs nothing of the branch itself
    assert ancestors(fork(c, 7, "d")) == [("r", 5), ("b", 7)]
    assert ancestors(fork(c, 9, "d")) == [("r", 5), ("b", 7), ("c", 9)]


def test_fork_inside_an_ancestor_range_drops_the_later_ranges() -> None:
    c = fork(fork(first_branch("r"), 5, "b"), 7, "c")
    assert ancestors(fork(c, 3, "d")) == [("r", 3)]
    assert ancestors(fork(c, 5, "d")) == [("r", 5)]
    assert ancestors(fork(c, 6, "d")) == [("r", 5), ("b", 6)]
    assert ancestors(c) == [("r", 5), ("b", 7)]  # the branch forked from is left as it was
    assert ancestors(fork(c, 0, "d")) == []


def test_fork_refuses_bad_arguments() -> None:
    b = fork(first_branch("r"), 5, "b")
    for at, new_id in ((-1, "x"), (3, ""), (3, "b"), (3, "r")):
        with pytest.raises(ValueError):
            fork(b, at, new_id)


def test_ranges_are_clipped_to_the_request() -> None:
    c = fork(fork(first_branch("r"), 5, "b"), 7, "c")
    assert ranges(c, 3, 7) == [("r", 3, 6), ("b", 6, 7)]
    assert ranges(c, 6, 7) == [("b", 6, 7)]
    assert ranges(c, 9, 20) == [("c", 9, 20)]
    assert ranges(c, 2, 3) == [("r", 2, 3)]
    assert ranges(c, 5, 5) == []


def test_current_branch() -> None:
    assert current_branch(ExecutionState(run_id="r")) == first_branch("r")  # a state written before branches
    b = fork(first_branch("r"), 5, "b")
    state = ExecutionState(
        run_id="r",
        version_histories=VersionHistories(
            current_index=1, histories=[VersionHistory(branch=first_branch("r")), VersionHistory(branch=b)]
        ),
    )
    got = current_branch(state)
    assert got == b
    got.ancestors.add(branch_id="x", end_event_id=9)  # a copy: the state is not changed through it
    assert ancestors(state.version_histories.histories[1].branch) == [("r", 5)]
    state.version_histories.current_index = 0
    assert current_branch(state) == first_branch("r")
    state.version_histories.current_index = 2
    with pytest.raises(ValueError):
        current_branch(state)
