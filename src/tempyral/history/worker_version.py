"""Which build of a worker took a task: the stamp the reference writes on task started and
completed events, derived from what the worker's poll or completion says about itself."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkerVersioningMode
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws


def stamp_from_poll(
    req: ws.PollWorkflowTaskQueueRequest | ws.PollActivityTaskQueueRequest,
) -> common.WorkerVersionStamp | None:
    """The build a polling worker runs, as the reference records it on the task's started event
    (nothing for workers of a worker deployment). Workers that only send a binary checksum (the
    SDKs' default build id) get that checksum as their build id, as the reference shows it."""
    caps = req.worker_version_capabilities
    options = req.deployment_options
    if (
        options.worker_versioning_mode == WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED
        and options.deployment_name
    ):
        return None
    if caps.use_versioning and caps.deployment_series_name:
        return None
    if caps.build_id:
        return common.WorkerVersionStamp(use_versioning=caps.use_versioning, build_id=caps.build_id)
    checksum = getattr(req, "binary_checksum", "")
    return common.WorkerVersionStamp(build_id=checksum) if checksum else None


def stamp_from_completion(req: ws.RespondWorkflowTaskCompletedRequest) -> common.WorkerVersionStamp | None:
    """The stamp a completing worker sent, or its binary checksum as an unversioned build id."""
    if req.HasField("worker_version_stamp"):
        return req.worker_version_stamp
    return common.WorkerVersionStamp(build_id=req.binary_checksum) if req.binary_checksum else None
