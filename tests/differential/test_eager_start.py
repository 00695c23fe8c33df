"""Eager workflow start (StartWorkflowExecution with request_eager_execution): the start response carries the
run's first workflow task, already started, so a worker in the caller's process runs it without polling. The
same requests go to tempyral and the reference, and the answers' shapes are compared."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    StartWorkflowExecutionRequest,
    StartWorkflowExecutionResponse,
)
from temporalio.client import Client

from tests.support.servers import ServerProcess

USE_EXISTING = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
TIME_FIELDS = ("eventTime", "scheduledTime", "startedTime")


def _shape(value: Any, run_id: str, workflow_id: str) -> Any:
    """The answer with what must differ between servers (ids, times, task ids, tokens) replaced by markers."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in TIME_FIELDS:
                out[key] = "<time>"
            elif key in ("taskId", "requestId", "taskToken"):
                out[key] = f"<{key}>"
            else:
                out[key] = _shape(item, run_id, workflow_id)
        return out
    if isinstance(value, list):
        return [_shape(item, run_id, workflow_id) for item in value]
    if value == run_id:
        return "<run id>"
    if value == workflow_id:
        return "<workflow id>"
    return value


async def _starts(address: str) -> dict[str, Any]:
    client = await Client.connect(address)
    workflow_id = f"eager-{uuid.uuid4().hex}"

    async def start(**fields: Any) -> StartWorkflowExecutionResponse:
        request = StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=fields.pop("workflow_id", workflow_id),
            workflow_type=WorkflowType(name="Eager"),
            task_queue=TaskQueue(name="eager-nobody-polls"),
            identity="eager-starter",
            request_id=fields.pop("request_id", str(uuid.uuid4())),
            request_eager_execution=True,
            **fields,
        )
        return await client.workflow_service.start_workflow_execution(request)

    first_request = str(uuid.uuid4())
    first = await start(request_id=first_request)
    eager = MessageToDict(first.eager_workflow_task)
    answers: dict[str, Any] = {
        "eager task": _shape(eager, first.run_id, workflow_id),
        "started": first.started,
        # the same request again, and a use-existing start of the running run: answered without a task
        "retried": _shape(MessageToDict(await start(request_id=first_request)), first.run_id, workflow_id),
        "use existing": (await start(workflow_id_conflict_policy=USE_EXISTING)).HasField("eager_workflow_task"),
    }
    # no eager task for a run whose first workflow task is not due now
    delayed = await start(workflow_id=f"eager-delay-{uuid.uuid4().hex}", workflow_start_delay={"seconds": 30})
    cron = await start(workflow_id=f"eager-cron-{uuid.uuid4().hex}", cron_schedule="0 0 1 1 *")
    answers["delayed"] = delayed.HasField("eager_workflow_task")
    answers["cron"] = cron.HasField("eager_workflow_task")
    history = await client.get_workflow_handle(workflow_id, run_id=first.run_id).fetch_history()
    answers["history"] = [_shape(MessageToDict(event), first.run_id, workflow_id) for event in history.events]
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    answers["system capability"] = info.capabilities.eager_workflow_start
    namespace = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    answers["namespace capability"] = namespace.namespace_info.capabilities.eager_workflow_start
    await client.get_workflow_handle(workflow_id).terminate("test over")
    return answers


async def test_eager_start_answers_as_the_reference(server: ServerProcess, reference_server: ServerProcess) -> None:
    ours, theirs = await asyncio.gather(_starts(server.address), _starts(reference_server.address))
    assert theirs["eager task"]["startedEventId"] == "3"  # the reference does answer with a task
    for key in theirs:
        assert ours[key] == theirs[key], (key, ours[key], theirs[key])
