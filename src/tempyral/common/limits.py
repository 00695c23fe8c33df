"""Size and length limits, with Temporal's defaults."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from temporalio.api.common.v1 import message_pb2 as common

from tempyral.common.errors import InvalidArgument

log = logging.getLogger(__name__)

BLOB_SIZE_LIMIT_ERROR = 2 * 1024 * 1024
BLOB_SIZE_LIMIT_WARN = 512 * 1024
WORKFLOW_TASK_COMPLETION_SIZE_LIMIT = 40 * 1024 * 1024
MAX_ID_LENGTH = 1000
# Whole-request ceiling accepted on the wire: grpc's default, which the reference keeps (RESOURCE_EXHAUSTED
# above it). Responses are bounded by the history page size instead.
GRPC_MAX_RECEIVE_BYTES = 4 * 1024 * 1024
GRPC_MAX_SEND_BYTES = 128 * 1024 * 1024
GRPC_MAX_METADATA_BYTES = 16 * 1024 * 1024  # grpc-go's default header list limit
# Calls the transport holds before the server takes them up; far above what admission lets through.
GRPC_MAX_PENDING_REQUESTS = 1_000_000
HISTORY_PAGE_SIZE_DEFAULT = 256
HISTORY_PAGE_BYTES = 2 * 1024 * 1024
MAX_PENDING_ACTIVITIES = 2000


@dataclass(frozen=True)
class CallLimits:
    """The limits of one call: dynamic config's for the call's namespace (limit.blobSize.*, limit.maxIDLength,
    system.namespaceMinRetention*)."""

    error: int = BLOB_SIZE_LIMIT_ERROR  # blob size
    warn: int = BLOB_SIZE_LIMIT_WARN
    namespace: str = ""
    max_id_length: int = MAX_ID_LENGTH
    # Shortest retention of a namespace (system.namespaceMinRetentionGlobal / Local); local: none unless set.
    min_retention_global_s: float = 24 * 3600.0
    min_retention_local_s: float = 0.0


# Set for the length of each client call by the frontend (frontend/dynamic_limits.py), so that the many checks
# below, deep in request handling, see the limits of the caller's namespace without each being handed them. Work
# not started by a call (timers, queues) sees the defaults.
CALL_LIMITS: ContextVar[CallLimits] = ContextVar("call_limits", default=CallLimits())  # noqa: B039 (frozen)


def max_id_length() -> int:
    """The length limit of ids and names for the current call (limit.maxIDLength)."""
    return CALL_LIMITS.get().max_id_length


def payloads_size(payloads: common.Payloads | None) -> int:
    if payloads is None:
        return 0
    return sum(len(p.data) + sum(len(v) for v in p.metadata.values()) for p in payloads.payloads)


def check_blob_size(*blobs: common.Payloads | None, extra: Iterable[int] = ()) -> None:
    if exceeds_blob_limit(sum(payloads_size(b) for b in blobs) + sum(extra)):
        raise InvalidArgument("Blob data size exceeds limit.")


def exceeds_blob_limit(size: int) -> bool:
    limits = CALL_LIMITS.get()
    # As the reference's CheckEventBlobSizeLimit: the error limit is looked at only above the warning limit (an
    # error limit set below the warning limit takes effect only once the warning limit is lowered too).
    if size <= limits.warn:
        return False
    log.warning("Blob data size exceeds the warning limit (namespace %s: %d bytes)", limits.namespace or "-", size)
    return size > limits.error


def check_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument(f"{field} is not set on request.")
    limit = max_id_length()
    if len(value) > limit:
        raise InvalidArgument(f"{field} exceeds maximum allowed length ({len(value)}/{limit})")


DEFAULT_WORKFLOW_TASK_TIMEOUT_NS = 10 * 1_000_000_000
MAX_WORKFLOW_TASK_TIMEOUT_NS = 120 * 1_000_000_000


def workflow_timeouts(execution_ns: int, run_ns: int, task_ns: int) -> tuple[int, int]:
    """The run and workflow task timeouts a new run gets, as the reference derives them: a run
    lasts at most the whole execution, a task at most 120 s (10 s when not given) and the run."""
    if run_ns == 0 or (execution_ns and run_ns > execution_ns):
        run_ns = execution_ns
    task_ns = min(task_ns or DEFAULT_WORKFLOW_TASK_TIMEOUT_NS, MAX_WORKFLOW_TASK_TIMEOUT_NS)
    if run_ns:
        task_ns = min(task_ns, run_ns)
    return run_ns, task_ns
