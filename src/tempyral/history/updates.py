"""Workflow updates: admitted in memory, sent to the worker with a workflow task, accepted or
rejected by it (protocol messages), then completed. Acceptance and completion are events;
an update that was only admitted lives in memory, and its caller retries if it is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from google.protobuf import any_pb2
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    ResourceExhaustedCause,
    ResourceExhaustedScope,
    UpdateWorkflowExecutionLifecycleStage,
    WorkflowTaskFailedCause,
)
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.protocol.v1 import message_pb2 as protocol
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import NotFound, ResourceExhausted, WorkflowCompleted
from tempyral.history.commands import WorkflowTaskFailure
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import ExecutionEntry
from tempyral.history.update_record import UpdateRecord
from tempyral.namespace.registry import Namespace

Stage = UpdateWorkflowExecutionLifecycleStage
ADMITTED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
ACCEPTED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
COMPLETED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
BAD_MESSAGE = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE
Effect = Callable[[], None]


def _failure(message: str, failure_type: str) -> failure_pb.Failure:
    f = failure_pb.Failure(message=message, source="Server")
    f.application_failure_info.type = failure_type
    f.application_failure_info.non_retryable = True
    return f


UNPROCESSED = _failure(
    "Workflow Update is rejected because it wasn't processed by worker. "
    "Probably, Workflow Update is not supported by the worker.",
    "UnprocessedUpdate",
)
WORKFLOW_COMPLETED_FIRST = _failure(
    "Workflow Update failed because the Workflow completed before the Update completed.",
    "AcceptedUpdateCompletedWorkflow",
)


class UpdateHandler:
    def __init__(self, executions: Executions) -> None:
        self.executions = executions

    # ------------------------------------------------------------------ API
    async def update(
        self, ns: Namespace, req: ws.UpdateWorkflowExecutionRequest, timeout: float
    ) -> ws.UpdateWorkflowExecutionResponse:
        ex = req.workflow_execution
        update_id = req.request.meta.update_id
        async with self.executions.update(ns.id, ex.workflow_id, ex.run_id) as change:
            ms, entry = change.ms, change.entry
            if req.first_execution_run_id and ms.state.start.first_execution_run_id != req.first_execution_run_id:
                raise NotFound(f"workflow execution not found for workflow ID {ex.workflow_id!r}")
            run = common.WorkflowExecution(workflow_id=ms.workflow_id, run_id=ms.run_id)
            done = await self._completed_outcome(change, update_id)
            if done is not None:
                return _response(run, update_id, COMPLETED, done)
            record = self._record(entry, ms, update_id)
            if record is None:
                if not ms.running:
                    raise WorkflowCompleted()
                record = UpdateRecord(update_id, req.request)
                if not ms.wft_pending:
                    ms.schedule_speculative_workflow_task()
                    await change.commit()
                # held only once its workflow task is committed: a retry after a failed commit admits it again
                entry.updates[update_id] = record
        stage, outcome = await _wait(record, req.wait_policy.lifecycle_stage or ACCEPTED, timeout)
        return _response(run, update_id, stage, outcome)

    async def poll(
        self, ns: Namespace, req: ws.PollWorkflowExecutionUpdateRequest, timeout: float
    ) -> ws.PollWorkflowExecutionUpdateResponse:
        ref = req.update_ref
        update_id = ref.update_id
        execution = ref.workflow_execution
        async with self.executions.update(ns.id, execution.workflow_id, execution.run_id) as change:
            ms, entry = change.ms, change.entry
            done = await self._completed_outcome(change, update_id)
            if done is not None:
                return ws.PollWorkflowExecutionUpdateResponse(outcome=done, stage=COMPLETED, update_ref=ref)
            record = self._record(entry, ms, update_id)
            if record is None:
                raise NotFound(f'update "{update_id}" not found')
        stage, outcome = await _wait(record, req.wait_policy.lifecycle_stage or ACCEPTED, timeout)
        resp = ws.PollWorkflowExecutionUpdateResponse(stage=stage, update_ref=ref)  # type: ignore[arg-type]
        if outcome is not None:
            resp.outcome.CopyFrom(outcome)
        return resp

    @staticmethod
    async def _completed_outcome(change: Change, update_id: str) -> update_pb.Outcome | None:
        info = change.ms.state.updates.get(update_id)
        if info is None or not info.completed_event_id:
            return None
        events = await change.events(info.completed_event_id, info.completed_event_id + 1)
        return events[0].workflow_execution_update_completed_event_attributes.outcome if events else None

    @staticmethod
    def _record(entry: ExecutionEntry, ms: MutableState, update_id: str) -> UpdateRecord | None:
        record = entry.updates.get(update_id)
        info = ms.state.updates.get(update_id)
        if (
            record is None
            and info is not None
            and info.accepted_event_id
            and not info.completed_event_id
            and ms.running
        ):
            # accepted before a restart: the worker will still complete it
            record = UpdateRecord(update_id, update_pb.Request(), "accepted", info.accepted_event_id)
            record.accepted.set_result(None)
            entry.updates[update_id] = record
        elif record is None and info is not None and not info.accepted_event_id and ms.running:
            # admitted durably (re-applied by a reset): the worker finds it in history, so it is
            # waited on, never sent again
            record = UpdateRecord(update_id, update_pb.Request(), "sent")
            entry.updates[update_id] = record
        return record

    # ------------------------------------------------------------------ workflow tasks
    @staticmethod
    def messages_for_task(entry: ExecutionEntry, ms: MutableState) -> list[protocol.Message]:
        """Hand the admitted updates to the workflow task that is starting."""
        out = []
        wt = ms.state.workflow_task
        for record in entry.updates.values():
            if record.state != "admitted":
                continue
            record.state = "sent"
            record.sent_with_stamp = wt.stamp
            body = any_pb2.Any()
            body.Pack(record.request, type_url_prefix="type.googleapis.com/")
            out.append(
                protocol.Message(
                    id=f"{record.update_id}/request",
                    protocol_instance_id=record.update_id,
                    event_id=wt.scheduled_event_id,
                    body=body,
                )
            )
        return out

    @staticmethod
    def _resurrect(entry: ExecutionEntry, ms: MutableState, message: protocol.Message) -> UpdateRecord | None:
        """An update the worker answers that this server no longer holds in memory (it restarted):
        an admitted one comes back from the request its acceptance carries (the reference's
        TryResurrect), an accepted one from the execution's state."""
        update_id = message.protocol_instance_id
        if message.body.Is(update_pb.Acceptance.DESCRIPTOR):
            acceptance = update_pb.Acceptance()
            message.body.Unpack(acceptance)
            info = ms.state.updates.get(update_id)
            if (info is not None and info.accepted_event_id) or not acceptance.HasField("accepted_request"):
                return None
            record = UpdateRecord(update_id, acceptance.accepted_request, "sent")
            entry.updates[update_id] = record
            return record
        if message.body.Is(update_pb.Response.DESCRIPTOR):
            return UpdateHandler._record(entry, ms, update_id)
        return None

    @staticmethod
    def only_rejections(req: ws.RespondWorkflowTaskCompletedRequest) -> bool:
        return not req.commands and all(m.body.Is(update_pb.Rejection.DESCRIPTOR) for m in req.messages)

    @staticmethod
    def apply_message(
        entry: ExecutionEntry, ms: MutableState, message: protocol.Message, effects: list[Effect]
    ) -> None:
        """Turn one message of the worker into events (and effects that run after the commit)."""
        update_id = message.protocol_instance_id
        record = entry.updates.get(update_id) or UpdateHandler._resurrect(entry, ms, message)
        if message.body.Is(update_pb.Acceptance.DESCRIPTOR):
            acceptance = update_pb.Acceptance()
            message.body.Unpack(acceptance)
            if record is None or record.state == "accepted":
                raise WorkflowTaskFailure(BAD_MESSAGE, f"invalid acceptance of update {update_id}")
            attrs = history.WorkflowExecutionUpdateAcceptedEventAttributes(
                protocol_instance_id=update_id,
                accepted_request_message_id=acceptance.accepted_request_message_id,
                accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
            )
            if update_id not in ms.state.updates:  # a durably admitted update has its request in history already
                attrs.accepted_request.CopyFrom(acceptance.accepted_request)
            record.accepted_event_id = ms.add_update_accepted(attrs)
            record.state = "accepted"
            effects.append(lambda: None if record.accepted.done() else record.accepted.set_result(None))
        elif message.body.Is(update_pb.Rejection.DESCRIPTOR):
            rejection = update_pb.Rejection()
            message.body.Unpack(rejection)
            if record is None:
                return  # a retried rejection of an update already answered
            entry.updates.pop(update_id, None)
            effects.append(lambda: record.resolve(update_pb.Outcome(failure=rejection.failure)))
        elif message.body.Is(update_pb.Response.DESCRIPTOR):
            response = update_pb.Response()
            message.body.Unpack(response)
            if record is None or record.state != "accepted":
                raise WorkflowTaskFailure(BAD_MESSAGE, f"invalid response to update {update_id}")
            attrs_done = history.WorkflowExecutionUpdateCompletedEventAttributes(
                meta=response.meta, accepted_event_id=record.accepted_event_id, outcome=response.outcome
            )
            ms.add_update_completed(attrs_done)
            entry.updates.pop(update_id, None)
            effects.append(lambda: record.resolve(response.outcome))
        else:
            raise WorkflowTaskFailure(BAD_MESSAGE, f"unknown message body {message.body.type_url}")

    @staticmethod
    def reject_unprocessed(entry: ExecutionEntry, stamp: int, effects: list[Effect]) -> None:
        """Updates sent with a task that completed without answering them are rejected."""
        for update_id, record in list(entry.updates.items()):
            if record.state == "sent" and record.sent_with_stamp == stamp:
                entry.updates.pop(update_id)
                effects.append(lambda r=record: r.resolve(update_pb.Outcome(failure=UNPROCESSED)))  # type: ignore[misc]

    @staticmethod
    def resend_after_failure(entry: ExecutionEntry) -> None:
        """The task failed: its updates go with the next one."""
        for record in entry.updates.values():
            if record.state == "sent":
                record.state = "admitted"

    @staticmethod
    def has_admitted(entry: ExecutionEntry) -> bool:
        return any(r.state == "admitted" for r in entry.updates.values())

    @staticmethod
    def abort_closed(entry: ExecutionEntry, continuing: bool) -> None:
        """The run closed: accepted updates fail, the others are told to retry (a new run) or stop."""
        for record in entry.updates.values():
            if record.state == "accepted":
                record.resolve(update_pb.Outcome(failure=WORKFLOW_COMPLETED_FIRST))
            elif continuing:
                record.fail(
                    ResourceExhausted(
                        "workflow operation can not be applied because workflow is closing",
                        errordetails.ResourceExhaustedFailure(
                            cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_BUSY_WORKFLOW,
                            scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                        ),
                    )
                )
            else:
                record.fail(NotFound("workflow update was aborted by closing workflow"))
        entry.updates.clear()


async def _wait(record: UpdateRecord, wanted: int, timeout: float) -> tuple[int, update_pb.Outcome | None]:
    """Wait until the update reaches `wanted` (or the long poll ends); return where it is."""
    target = record.outcome if wanted == COMPLETED else record.accepted
    try:
        await asyncio.wait_for(asyncio.shield(target), timeout)
    except TimeoutError:
        pass
    if record.outcome.done():
        return COMPLETED, record.outcome.result()
    if record.accepted.done():
        record.accepted.result()  # raises if the update was aborted
        return ACCEPTED, None
    return ADMITTED, None


def _response(
    run: common.WorkflowExecution, update_id: str, stage: int, outcome: update_pb.Outcome | None
) -> ws.UpdateWorkflowExecutionResponse:
    resp = ws.UpdateWorkflowExecutionResponse(stage=stage)  # type: ignore[arg-type]
    resp.update_ref.workflow_execution.CopyFrom(run)
    resp.update_ref.update_id = update_id
    if outcome is not None:
        resp.outcome.CopyFrom(outcome)
    return resp
