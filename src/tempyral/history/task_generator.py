"""The transfer and timer tasks an execution's state needs.

The active path (an event was just applied) and a rebuild (regenerate every task of a state
read from events) both get their tasks here.
"""

from __future__ import annotations

from tempyral.proto.internal_pb2 import ExecutionState, Task


def regenerate(state: ExecutionState, now: int) -> list[Task]:
    """Every task the pending work of `state` needs (a state rebuilt from events)."""
    from tempyral.history.mutable_state import MutableState

    ms = MutableState(state, now)
    ms.begin(now)
    ms.regenerate_tasks()
    return ms.new_tasks
