"""The mapping of a remote node's gRPC status back to tempyral's exceptions (nodes/client.py `error_from_status`),
on statuses built as the frontend's `abort` sends them; and NodeService serving every method of its proto."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import status_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from tempyral.common.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NamespaceNotActive,
    NamespaceNotFound,
    NotFound,
    PermissionDenied,
    QueryFailed,
    ResourceExhausted,
    ServiceError,
    ShardNotHere,
    Unavailable,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.nodes.client import error_from_status
from tempyral.nodes.service import NodeService, node_handler
from tempyral.proto import nodes_pb2 as npb


def rpc_error(err: ServiceError) -> grpc.aio.AioRpcError:
    """The error a caller meets when the remote aborts with `err`, as frontend/grpc_handlers.abort sends it."""
    trailing = grpc.aio.Metadata()
    if err.details is not None:
        status = status_pb2.Status(code=err.code.value[0], message=err.message)
        detail = any_pb2.Any()
        detail.Pack(err.details, type_url_prefix="type.googleapis.com/")
        status.details.append(detail)
        trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return aio_error(err.code, err.message, trailing)


def aio_error(code: grpc.StatusCode, message: str, trailing: grpc.aio.Metadata | None = None) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing or grpc.aio.Metadata(), message, None)


@pytest.mark.parametrize(
    "error",
    [
        WorkflowAlreadyStarted("Workflow execution is already running.", "req-1", "run-1"),
        NamespaceNotActive("ns", "cluster-a", "cluster-b"),
        NamespaceNotFound("ns"),
        WorkflowNotFound.for_id("w"),
        WorkflowNotFound.for_run("w", "r"),
        WorkflowCompleted(),
        NotFound("activity not found", "c1", "c2"),
        ShardNotHere(7),
        Unavailable("the database is unreachable"),
        InvalidArgument("bad"),
        Internal("bug"),
        DeadlineExceeded("too slow"),
        ResourceExhausted("busy"),
        PermissionDenied("no", "why"),
        QueryFailed("query failed", failure_pb.Failure(message="inner")),
    ],
    ids=lambda e: f"{type(e).__name__}:{e.message[:20]}",
)
def test_error_from_status_gives_back_the_exception_sent(error: ServiceError) -> None:
    got = error_from_status(rpc_error(error))
    assert type(got) is type(error)
    assert (got.code, got.message, got.details) == (error.code, error.message, error.details)
    if isinstance(error, ShardNotHere):
        assert isinstance(got, ShardNotHere) and got.shard_id == 7
    if isinstance(error, NamespaceNotActive):
        assert isinstance(got, NamespaceNotActive) and got.active_cluster == "cluster-b"


def test_error_from_status_of_codes_without_a_class_and_of_connection_failures() -> None:
    refused = error_from_status(aio_error(grpc.StatusCode.UNAVAILABLE, "failed to connect"))
    assert type(refused) is Unavailable and refused.message == "failed to connect"
    cancelled = error_from_status(aio_error(grpc.StatusCode.CANCELLED, "gone"))
    assert (cancelled.code, cancelled.message, cancelled.details) == (grpc.StatusCode.CANCELLED, "gone", None)
    # an undecodable status, or a detail of a type unknown here, is dropped, not an error
    garbled = grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\xff"))
    assert error_from_status(aio_error(grpc.StatusCode.INTERNAL, "x", garbled)).details is None
    unknown = status_pb2.Status(code=13, message="x")
    unknown.details.add(type_url="type.googleapis.com/no.such.Type", value=b"")
    odd = grpc.aio.Metadata(("grpc-status-details-bin", unknown.SerializeToString()))
    got = error_from_status(aio_error(grpc.StatusCode.INTERNAL, "x", odd))
    assert type(got) is Internal and got.details is None


def test_every_method_of_the_service_is_served() -> None:
    handler = node_handler(NodeService(None, None, None))  # type: ignore[arg-type]
    served = {name.rsplit("/", 1)[1] for name in handler._method_handlers}  # type: ignore[attr-defined]
    assert served == {m.name for m in npb.DESCRIPTOR.services_by_name["NodeService"].methods}
