"""A workflow id can be started again at once, as on the reference, whose dev server leaves its
minimal-reuse-interval check off (history.enableWorkflowIdReuseStartTimeValidation): tempyral refused
a start within a second of the last one with RESOURCE_EXHAUSTED, which the SDK retried for a second."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.servers import ServerProcess

TERMINATE_EXISTING = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING


async def _starts_at_once(address: str) -> list[str]:
    client = await Client.connect(address)
    workflow_id = f"reuse-{uuid.uuid4().hex}"

    async def start(**fields: object) -> str:
        request = StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Unpolled"),
            task_queue=TaskQueue(name="nobody-polls"),
            request_id=str(uuid.uuid4()),
            **fields,  # type: ignore[arg-type]
        )
        try:  # one attempt, no SDK retries: a refusal must show
            await client.workflow_service.start_workflow_execution(request)
        except RPCError as err:
            return f"{err.status.name}: {err.message}"
        return "started"

    outcomes = [await start()]
    await client.get_workflow_handle(workflow_id).terminate("closed for the test")
    outcomes.append(await start())  # the id of a closed run, milliseconds after its start
    outcomes.append(await start(workflow_id_conflict_policy=TERMINATE_EXISTING))  # a running one
    return outcomes


async def test_an_id_is_started_again_at_once_as_on_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(_starts_at_once(server.address), _starts_at_once(reference_server.address))
    assert ours == theirs == ["started", "started", "started"]
