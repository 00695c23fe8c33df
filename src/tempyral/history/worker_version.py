"""Which build of a worker took a task: the stamp the reference writes on task started and
completed events, derived from what the worker's poll or completion says about itself."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkerVersioningMode
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws


def stamp_from_poll(req: ws.PollWorkflowTaskQueueRequest) -> common.WorkerVersionStamp | None:
    """The build a polling worker runs, as the reference records it on the task's started event
    (nothing for workers of a worker deployment)."""
    caps = req.worker_version_capabilities
    options = req.deployment_options
    if (
        options.worker_versioning_mode == WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED
        and options.deployment_name
    ):
        return None
    if caps.use_versioning and caps.deployment_series_name:
        return None
    if not caps.build_id:
        return None
    return common.WorkerVersionStamp(use_versioning=caps.use_versioning, build_id=caps.build_id)


def stamp_from_completion(req: ws.RespondWorkflowTaskCompletedRequest) -> common.WorkerVersionStamp | None:
    """The stamp a completing worker sent."""
    return req.worker_version_stamp if req.HasField("worker_version_stamp") else None
