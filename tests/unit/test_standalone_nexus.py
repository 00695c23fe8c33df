"""nexus/standalone.py without a server: list filters over the operations' own fields, and the describe info."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import NexusOperationCancellationState, PendingNexusOperationState

from tempyral.common.errors import InvalidArgument
from tempyral.nexus.standalone import (
    OPERATION_ID_KEY,
    Watchers,
    compile_operations_query,
    execution_info,
    is_operations_namespace_id,
    operations_namespace_id,
)
from tempyral.persistence.visibility_sql import Compare, Field
from tempyral.proto.internal_pb2 import ExecutionState


def test_operation_rows_have_their_own_namespace_id() -> None:
    key = operations_namespace_id("ns-id")
    assert key != "ns-id" and is_operations_namespace_id(key) and not is_operations_namespace_id("ns-id")


ALIASES = [
    ("OperationId", "WorkflowId"),
    ("Endpoint", "TaskQueue"),
    ("Operation", "WorkflowType"),
    ("Service", "ParentWorkflowId"),
]


@pytest.mark.parametrize(("alias", "column"), ALIASES)
def test_filters_name_the_operation_fields(alias: str, column: str) -> None:
    compiled = compile_operations_query(f"{alias} = 'x'", {})
    assert compiled.filter is not None
    found = [node for node in _walk(compiled.filter) if isinstance(node, Compare)]
    assert [(c.field, c.value) for c in found] == [(Field(column, "Keyword"), "x")]


def test_filters_refuse_what_the_reference_refuses() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid query: operation is not supported: 'ORDER BY' clause$"):
        compile_operations_query("OperationId = 'x' ORDER BY StartTime", {})
    with pytest.raises(InvalidArgument, match=r"^invalid query: invalid search attribute: ScheduleTime$"):
        compile_operations_query("ScheduleTime > '2020-01-01T00:00:00Z'", {})


def test_a_cancel_waiting_for_the_start_shows_no_state() -> None:
    s = ExecutionState(workflow_id="op", run_id="run", status=1)
    s.standalone_nexus.status = 1
    s.standalone_nexus.cancel_reason = "why"
    info = s.nexus_operations[OPERATION_ID_KEY]
    info.state = PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
    info.cancellation.state = NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
    info.cancellation.requested_time.FromNanoseconds(1)
    out = execution_info(s, now=10)
    assert out.cancellation_info.reason == "why"
    assert out.cancellation_info.state == 0
    assert not out.cancellation_info.HasField("requested_time")  # the reference shows none
    info.state = PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
    assert execution_info(s, now=10).cancellation_info.state == info.cancellation.state


def _walk(node: object) -> list[object]:
    out = [node]
    for child in getattr(node, "items", ()):
        out += _walk(child)
    return out


async def test_watchers_leave_nothing_behind() -> None:
    watchers = Watchers()
    with watchers.watch(("ns", "a")) as first, watchers.watch(("ns", "a")) as second:
        assert first is second and len(watchers) == 1
    assert len(watchers) == 0  # the last watcher left
    with watchers.watch(("ns", "a")) as changed:
        watchers.notify(("ns", "a"))
        assert changed.is_set() and len(watchers) == 0
    watchers.notify(("ns", "b"))  # nobody watches: nothing to do
    assert len(watchers) == 0
