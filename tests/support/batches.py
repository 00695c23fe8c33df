"""What the batch operation tests share: workflows to act on, a job started and awaited, and describe output with
what must differ between servers (ids, times) taken out."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from google.protobuf import json_format
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import BatchOperationState, EventType
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

DEADLINE_S = 60.0
RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING


async def until(check: Any, what: str, timeout: float = DEADLINE_S, pause: float = 0.1) -> Any:
    """Poll `check()` until it gives something true, within a bound."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(pause)


async def start_idle(client: Client, count: int, task_queue: str, prefix: str = "bt") -> list[str]:
    """`count` workflows on a queue no worker polls (they stay running), listed by visibility before returning."""
    ids = [f"{prefix}-{uuid.uuid4().hex[:8]}-{i}" for i in range(count)]
    for workflow_id in ids:
        await client.start_workflow("BatchTarget", id=workflow_id, task_queue=task_queue)
    await wait_listed(client, f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'", count)
    return ids


async def wait_listed(client: Client, query: str, count: int) -> None:
    async def listed() -> bool:
        return (await client.count_workflows(query)).count == count

    await until(listed, f"{count} workflows listed by {query!r}")


async def start(client: Client, **fields: Any) -> str:
    """Start a job in the client's namespace (a fresh job id unless given); its job id."""
    fields.setdefault("job_id", f"job-{uuid.uuid4().hex[:10]}")
    fields.setdefault("reason", "batch test")
    req = ws.StartBatchOperationRequest(namespace=client.namespace, **fields)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            await client.workflow_service.start_batch_operation(req)
            return str(req.job_id)
        except RPCError as err:
            # The reference counts a namespace's open jobs in its visibility store, which learns a moment after a
            # job closes that it did: a job started right after another one closed may be refused for a moment.
            if err.status != RPCStatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_list_closed(client: Client, job_id: str) -> None:
    """Until ListBatchOperations shows the job closed (the reference lists from visibility, a moment behind)."""

    async def closed() -> bool:
        token = b""
        while True:
            page = await client.workflow_service.list_batch_operations(
                ws.ListBatchOperationsRequest(namespace=client.namespace, next_page_token=token)
            )
            for info in page.operation_info:
                if info.job_id == job_id:
                    return bool(info.state != RUNNING)
            token = page.next_page_token
            if not token:
                return False

    await until(closed, f"batch operation {job_id} listed as closed")


async def describe(client: Client, job_id: str) -> ws.DescribeBatchOperationResponse:
    return await client.workflow_service.describe_batch_operation(
        ws.DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
    )


async def wait_closed(client: Client, job_id: str) -> ws.DescribeBatchOperationResponse:
    async def closed() -> ws.DescribeBatchOperationResponse | None:
        found = await describe(client, job_id)
        return None if found.state == RUNNING else found

    result: ws.DescribeBatchOperationResponse = await until(closed, f"batch operation {job_id} to close")
    return result


async def signals(client: Client, workflow_id: str) -> list[Any]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]


async def status(client: Client, workflow_id: str) -> int | None:
    """The workflow's status, None when it is gone."""
    try:
        found = await client.workflow_service.describe_workflow_execution(
            ws.DescribeWorkflowExecutionRequest(
                namespace=client.namespace, execution=common.WorkflowExecution(workflow_id=workflow_id)
            )
        )
    except RPCError:
        return None
    return int(found.workflow_execution_info.status)


def signal_op(name: str = "batch-signal", identity: str = "batch-tester") -> batch.BatchOperationSignal:
    payload = common.Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')
    return batch.BatchOperationSignal(signal=name, identity=identity, input=common.Payloads(payloads=[payload]))


def normalised(resp: ws.DescribeBatchOperationResponse, replace: dict[str, str] | None = None) -> dict[str, Any]:
    """Describe output without what differs between servers and runs: the job id, times, and the given names."""
    data = json_format.MessageToDict(resp)
    data.pop("jobId", None)
    for key in ("startTime", "closeTime"):
        if key in data:
            data[key] = "<time>"
    for old, new in (replace or {}).items():
        data = _replaced(data, old, new)
    return data


def _replaced(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, old, new) for v in value]
    return value


async def error_of(call: Any) -> tuple[str, str, list[str]]:
    """(status name, message, detail type names) of a call that must fail."""
    try:
        await call
    except RPCError as err:
        details = [d.type_url.rsplit(".", 1)[-1] for d in (err.grpc_status.details if err.grpc_status else [])]
        return err.status.name, err.message, details
    raise AssertionError("the call should have failed")
