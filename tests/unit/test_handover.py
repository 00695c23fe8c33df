"""HANDOVER (graceful failover): the frontend's hold (frontend/handover.py), the registry's wait, and the check at
commit (Executions.commit) that refuses every active write of a namespace in handover and leaves nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import ReplicationState
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import Unavailable
from tempyral.frontend.handover import ALLOWED_DURING_HANDOVER, HandoverGate, hold_time
from tempyral.namespace.registry import NAMESPACE_HANDOVER, Namespace
from tempyral.proto.internal_pb2 import NamespaceRecord
from tests.support.xdc_pair import NAMESPACE, Cluster, open_pair, replicate

pytestmark = pytest.mark.asyncio(loop_scope="function")
HANDOVER = ReplicationState.REPLICATION_STATE_HANDOVER
NORMAL = ReplicationState.REPLICATION_STATE_NORMAL


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[tuple[Cluster, Cluster]]:
    async with open_pair() as clusters:
        yield clusters


async def set_state(c: Cluster, state: int) -> Namespace:
    record = NamespaceRecord()
    record.CopyFrom(c.ns.record)
    record.replication_config.state = state  # type: ignore[assignment]
    record.config_version += 1
    return await c.namespaces.save(record)


class _Ctx:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


def Ctx(remaining: float | None) -> Any:
    return _Ctx(remaining)


async def answer(request: Any, context: Any) -> ws.SignalWorkflowExecutionResponse:
    return ws.SignalWorkflowExecutionResponse()


async def test_a_held_call_is_answered_a_little_before_its_deadline() -> None:
    assert hold_time(5.0) == pytest.approx(4.9)
    assert hold_time(0.05) == 0.0
    assert hold_time(None, max_wait=7.0) == 7.0
    assert {"DescribeNamespace", "UpdateNamespace", "ListWorkflowExecutions"} <= ALLOWED_DURING_HANDOVER
    assert not {"SignalWorkflowExecution", "PollWorkflowTaskQueue", "QueryWorkflow"} & ALLOWED_DURING_HANDOVER


async def test_a_call_in_handover_is_held_then_refused_unavailable(pair: tuple[Cluster, Cluster]) -> None:
    a, _ = pair
    await set_state(a, HANDOVER)
    gate = HandoverGate(a.namespaces)
    signal = gate.wrap("SignalWorkflowExecution", answer)
    with pytest.raises(Unavailable, match=f"^{NAMESPACE_HANDOVER}$"):
        await signal(ws.SignalWorkflowExecutionRequest(namespace=NAMESPACE), Ctx(0.3))
    assert (gate.held, gate.refused) == (1, 1)
    # allowed methods and other namespaces pass at once
    describe = gate.wrap("DescribeNamespace", answer)
    await describe(ws.DescribeNamespaceRequest(namespace=NAMESPACE), Ctx(0.3))
    await signal(ws.SignalWorkflowExecutionRequest(namespace="other"), Ctx(0.3))
    assert gate.held == 1


async def test_a_held_call_goes_on_when_the_handover_ends(pair: tuple[Cluster, Cluster]) -> None:
    a, _ = pair
    await set_state(a, HANDOVER)
    gate = HandoverGate(a.namespaces)
    signal = gate.wrap("SignalWorkflowExecution", answer)

    async def call() -> Any:
        return await signal(ws.SignalWorkflowExecutionRequest(namespace=NAMESPACE), Ctx(30.0))

    held = asyncio.create_task(call())
    await asyncio.sleep(0.05)
    assert not held.done()
    await set_state(a, NORMAL)
    assert isinstance(await asyncio.wait_for(held, 5), ws.SignalWorkflowExecutionResponse)
    assert gate.refused == 0


async def test_a_write_in_handover_is_refused_at_commit_and_changes_nothing(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    await a.h.start("wf")
    before = await a.h.event_types("wf")
    await set_state(a, HANDOVER)
    commits = len(a.h.store.committed)
    with pytest.raises(Unavailable, match=NAMESPACE_HANDOVER):
        await a.h.signal("wf")
    with pytest.raises(Unavailable, match=NAMESPACE_HANDOVER):
        await a.h.start("wf2")
    assert len(a.h.store.committed) == commits
    assert await a.h.event_types("wf") == before
    # the state is this cluster's own business: the standby's record takes the configuration but not the state
    assert await b.namespaces.apply_replicated(a.ns.record)
    assert not b.namespaces.in_handover(b.ns)
    await replicate(a, b)
    await set_state(a, NORMAL)
    await a.h.signal("wf")
    assert len(await a.h.event_types("wf")) > len(before)
