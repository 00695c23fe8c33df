"""HANDOVER compared with the reference made global-capable (XDC.md §9): a start in a namespace in handover is
answered UNAVAILABLE `Namespace replication in Handover state.` on both, and goes through once it is NORMAL again."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import ReplicationState
from temporalio.api.replication.v1 import NamespaceReplicationConfig
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.differential.test_global_namespaces import Session, reference_xdc, tempyral_xdc
from tests.support.clusters import Cluster
from tests.support.servers import ServerProcess

__all__ = ["reference_xdc", "tempyral_xdc"]  # the fixtures, shared with the namespace comparisons


async def _start(s: Session, base: str) -> str:
    request = StartWorkflowExecutionRequest(
        namespace=s.name(base),
        workflow_id=f"wf-{uuid.uuid4().hex}",
        workflow_type=WorkflowType(name="W"),
        task_queue=TaskQueue(name="q"),
        request_id=str(uuid.uuid4()),
    )
    try:
        await s.ws.start_workflow_execution(request, retry=False, timeout=timedelta(seconds=2))
    except RPCError as err:
        return s.clean(f"error {err.status.name}: {err.message}")
    return "started"


async def _until(s: Session, base: str, wanted: str) -> str:
    """The reference's namespace cache takes a moment to see a change: ask until the answer is `wanted` (20 s)."""
    deadline = time.monotonic() + 20
    outcome = await _start(s, base)
    while outcome != wanted and time.monotonic() < deadline:
        outcome = await _start(s, base)
    return outcome


async def _handover_script(address: str, suffix: str) -> list[str]:
    s = Session(await Client.connect(address), suffix)
    out = [await s.call(s.register("ho", "active", "standby", active="active"))]
    handover = NamespaceReplicationConfig(state=ReplicationState.REPLICATION_STATE_HANDOVER)
    out.append(await s.call(s.update("ho", replication_config=handover)))
    out.append(await s.call(s.describe("ho")))
    out.append(await _until(s, "ho", "error UNAVAILABLE: Namespace replication in Handover state."))
    normal = NamespaceReplicationConfig(state=ReplicationState.REPLICATION_STATE_NORMAL)
    out.append(await s.call(s.update("ho", replication_config=normal)))
    out.append(await _until(s, "ho", "started"))
    return out


async def test_a_start_in_handover_is_refused_like_the_reference(
    reference_xdc: ServerProcess,
    tempyral_xdc: list[Cluster],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    expected = await _handover_script(reference_xdc.address, suffix)
    ours = await _handover_script(tempyral_xdc[0].address, suffix)
    print(expected)
    assert ours == expected
    assert expected[3] == "error UNAVAILABLE: Namespace replication in Handover state."
    assert expected[5] == "started"
