"""DC redirection (frontend/redirection.py): the policy tables against the reference's, where each call goes, and
the forwarding itself between two in-process gRPC servers standing for cluster a (this one) and cluster b."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.rpc import status_pb2
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.api.workflowservice.v1 import service_pb2

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.common import xdc
from tempyral.common.errors import NamespaceNotActive, NotFound, ServiceError
from tempyral.frontend.grpc_handlers import generic_handler
from tempyral.frontend.redirection import (
    ALL_APIS_FORWARDING,
    LOCAL_APIS,
    NOOP,
    SELECTED_APIS,
    SELECTED_APIS_FORWARDING,
    Redirector,
    Route,
    check_policy,
    forwardable_apis,
    route,
)
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore

SERVICE = service_pb2.DESCRIPTOR.services_by_name["WorkflowService"]
FORWARDABLE = forwardable_apis(SERVICE)

# The reference's globalAPIResponses (common/rpc/interceptor/redirection.go) that this SDK's protos have: what
# all-apis-forwarding sends to the active cluster.
REFERENCE_GLOBAL_APIS = {
    "DescribeTaskQueue",
    "DescribeWorkflowExecution",
    "GetWorkflowExecutionHistory",
    "GetWorkflowExecutionHistoryReverse",
    "ListArchivedWorkflowExecutions",
    "ListClosedWorkflowExecutions",
    "ListOpenWorkflowExecutions",
    "ListWorkflowExecutions",
    "ScanWorkflowExecutions",
    "CountWorkflowExecutions",
    "PollActivityTaskQueue",
    "PollWorkflowTaskQueue",
    "PollNexusTaskQueue",
    "QueryWorkflow",
    "RecordActivityTaskHeartbeat",
    "RecordActivityTaskHeartbeatById",
    "RequestCancelWorkflowExecution",
    "ResetStickyTaskQueue",
    "ShutdownWorker",
    "ResetWorkflowExecution",
    "RespondActivityTaskCanceled",
    "RespondActivityTaskCanceledById",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskCompletedById",
    "RespondActivityTaskFailed",
    "RespondActivityTaskFailedById",
    "RespondWorkflowTaskCompleted",
    "RespondWorkflowTaskFailed",
    "RespondQueryTaskCompleted",
    "RespondNexusTaskCompleted",
    "RespondNexusTaskFailed",
    "SignalWithStartWorkflowExecution",
    "SignalWorkflowExecution",
    "StartWorkflowExecution",
    "ExecuteMultiOperation",
    "UpdateWorkflowExecution",
    "PollWorkflowExecutionUpdate",
    "TerminateWorkflowExecution",
    "DeleteWorkflowExecution",
    "ListTaskQueuePartitions",
    "PauseWorkflowExecution",
    "UnpauseWorkflowExecution",
    "CreateSchedule",
    "DescribeSchedule",
    "UpdateSchedule",
    "PatchSchedule",
    "DeleteSchedule",
    "ListSchedules",
    "CountSchedules",
    "ListScheduleMatchingTimes",
    "UpdateWorkerBuildIdCompatibility",
    "GetWorkerBuildIdCompatibility",
    "UpdateWorkerVersioningRules",
    "GetWorkerVersioningRules",
    "GetWorkerTaskReachability",
    "StartBatchOperation",
    "StopBatchOperation",
    "DescribeBatchOperation",
    "ListBatchOperations",
    "UpdateActivityOptions",
    "PauseActivity",
    "UnpauseActivity",
    "ResetActivity",
    "UpdateWorkflowExecutionOptions",
    "RecordWorkerHeartbeat",
    "ListWorkers",
    "DescribeWorker",
    "UpdateTaskQueueConfig",
    "FetchWorkerConfig",
    "UpdateWorkerConfig",
    "CountActivityExecutions",
    "ListActivityExecutions",
    "DescribeActivityExecution",
    "PollActivityExecution",
    "StartActivityExecution",
    "RequestCancelActivityExecution",
    "TerminateActivityExecution",
    "DeleteActivityExecution",
}


# ---------------------------------------------------------------------- the tables
def test_local_apis_are_never_forwarded() -> None:
    assert LOCAL_APIS.isdisjoint(FORWARDABLE)
    # all of them exist in the service (no misspelt name hides one)
    names = {m.name for m in SERVICE.methods}
    assert LOCAL_APIS <= names | {"DeprecateNamespace"}


def test_all_apis_forwarding_covers_the_references_global_apis() -> None:
    names = {m.name for m in SERVICE.methods}
    assert (REFERENCE_GLOBAL_APIS & names) <= FORWARDABLE
    # and nothing beyond namespace-scoped methods that are not local
    for name in FORWARDABLE:
        method = SERVICE.methods_by_name[name]
        assert "namespace" in method.input_type.fields_by_name


def test_selected_apis_are_the_references_whitelist() -> None:
    names = {m.name for m in SERVICE.methods}
    present = SELECTED_APIS & names
    assert present <= FORWARDABLE
    assert {
        "StartWorkflowExecution",
        "SignalWithStartWorkflowExecution",
        "SignalWorkflowExecution",
        "UpdateWorkflowExecution",
        "RequestCancelWorkflowExecution",
        "TerminateWorkflowExecution",
        "ResetWorkflowExecution",
        "DeleteWorkflowExecution",
        "QueryWorkflow",
        "ExecuteMultiOperation",
    } <= present
    assert not SELECTED_APIS & {"PollWorkflowTaskQueue", "RespondActivityTaskCompleted", "DescribeWorkflowExecution"}


def test_policy_names() -> None:
    assert check_policy("") == NOOP
    for policy in (NOOP, SELECTED_APIS_FORWARDING, ALL_APIS_FORWARDING):
        assert check_policy(policy) == policy
    with pytest.raises(ValueError, match=r"^Unknown DC redirection policy bogus$"):
        check_policy("bogus")


# ---------------------------------------------------------------------- where calls go
def namespace(is_global: bool = True, active: str = "b") -> Namespace:
    record = NamespaceRecord(is_global_namespace=is_global)
    record.info.name = "g"
    record.replication_config.active_cluster_name = active
    return Namespace(record)


HERE = Route("a", False)
THERE = Route("b", True)


@pytest.mark.parametrize(
    ("policy", "method", "ns", "expected"),
    [
        (NOOP, "StartWorkflowExecution", namespace(), HERE),
        (NOOP, "PollWorkflowTaskQueue", namespace(), HERE),
        (SELECTED_APIS_FORWARDING, "StartWorkflowExecution", namespace(), THERE),
        (SELECTED_APIS_FORWARDING, "QueryWorkflow", namespace(), THERE),
        (SELECTED_APIS_FORWARDING, "PollWorkflowTaskQueue", namespace(), HERE),
        (SELECTED_APIS_FORWARDING, "DescribeWorkflowExecution", namespace(), HERE),
        (SELECTED_APIS_FORWARDING, "StartWorkflowExecution", namespace(is_global=False), HERE),
        (ALL_APIS_FORWARDING, "PollWorkflowTaskQueue", namespace(), THERE),
        (ALL_APIS_FORWARDING, "RespondActivityTaskCompleted", namespace(), THERE),
        (ALL_APIS_FORWARDING, "GetWorkflowExecutionHistory", namespace(), THERE),
        (ALL_APIS_FORWARDING, "DescribeNamespace", namespace(), HERE),
        (ALL_APIS_FORWARDING, "GetSystemInfo", namespace(), HERE),
        (ALL_APIS_FORWARDING, "PollWorkflowTaskQueue", namespace(is_global=False), HERE),
        # active here: answered here, and retried elsewhere should this cluster's registry have lagged
        (SELECTED_APIS_FORWARDING, "SignalWorkflowExecution", namespace(active="a"), Route("a", True)),
        (ALL_APIS_FORWARDING, "PollActivityTaskQueue", namespace(active="a"), Route("a", True)),
    ],
)
def test_route(policy: str, method: str, ns: Namespace, expected: Route) -> None:
    assert route(policy, method, ns, "a", FORWARDABLE) == expected


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"xdc-redirection": "false"}, False),
        ({"xdc-redirection": "0"}, False),
        ({"xdc-redirection": "F"}, False),
        ({"xdc-redirection": "true"}, True),
        ({"xdc-redirection": "nonsense"}, True),  # Go's ParseBool fails: redirection stays allowed
        ({"xdc-redirection-api": "true"}, False),  # forwarded here already: never again
        ({"xdc-redirection-api": "false"}, True),
    ],
)
def test_may_forward(headers: dict[str, str], allowed: bool) -> None:
    assert xdc.may_forward(headers.get) is allowed


# ---------------------------------------------------------------------- forwarding between two servers
@dataclass
class FakeService:
    """A WorkflowService that records what reached it and answers as told."""

    name: str
    calls: list[tuple[str, dict[str, str], float | None]] = field(default_factory=list)
    error: ServiceError | None = None

    def _record(self, method: str, ctx: Any) -> None:
        self.calls.append((method, dict(ctx.invocation_metadata() or ()), ctx.time_remaining()))
        if self.error is not None:
            raise self.error

    async def start_workflow_execution(self, req: ws.StartWorkflowExecutionRequest, ctx: Any) -> Any:
        self._record("StartWorkflowExecution", ctx)
        return ws.StartWorkflowExecutionResponse(run_id=f"{self.name}:{req.workflow_id}")

    async def poll_workflow_task_queue(self, req: ws.PollWorkflowTaskQueueRequest, ctx: Any) -> Any:
        self._record("PollWorkflowTaskQueue", ctx)
        return ws.PollWorkflowTaskQueueResponse(task_token=self.name.encode())

    async def describe_namespace(self, req: ws.DescribeNamespaceRequest, ctx: Any) -> Any:
        self._record("DescribeNamespace", ctx)
        return ws.DescribeNamespaceResponse()


@dataclass
class Pair:
    a: FakeService
    b: FakeService
    redirector: Redirector
    namespaces: NamespaceRegistry
    channel: grpc.aio.Channel

    async def call(
        self, method: str, request: Any, response: Any, metadata: tuple[tuple[str, str], ...] = (), timeout: float = 10
    ) -> Any:
        fn = self.channel.unary_unary(
            f"/{SERVICE.full_name}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return await fn(request, metadata=metadata, timeout=timeout)

    async def start(self, namespace: str = "g", metadata: tuple[tuple[str, str], ...] = ()) -> str:
        request = ws.StartWorkflowExecutionRequest(namespace=namespace, workflow_id="w")
        resp = await self.call("StartWorkflowExecution", request, ws.StartWorkflowExecutionResponse, metadata)
        return str(resp.run_id)

    async def set_active(self, cluster: str) -> None:
        record = NamespaceRecord()
        record.CopyFrom(self.namespaces.get("g").record)
        record.replication_config.active_cluster_name = cluster
        await self.namespaces.save(record)


async def _serve(service: FakeService, redirector: Redirector | None = None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((generic_handler(SERVICE, service, None, redirector),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _pair(policy: str) -> AsyncIterator[Pair]:
    b = FakeService("b")
    server_b, address_b = await _serve(b)
    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity("a", 1, 10), 4, "a.db")
    await clusters.upsert(
        ClusterMetadataRecord(
            cluster_name="b",
            initial_failover_version=2,
            failover_version_increment=10,
            history_shard_count=4,
            is_connection_enabled=True,
            cluster_address=address_b,
        )
    )
    namespaces = NamespaceRegistry(store, clusters)
    await namespaces.ensure("local")
    record = namespaces.new_record("g")
    record.is_global_namespace = True
    record.replication_config.active_cluster_name = "b"
    record.replication_config.clusters.add(cluster_name="b")
    await namespaces.create(record)
    a = FakeService("a")
    redirector = Redirector(policy, clusters, namespaces, SERVICE)
    server_a, address_a = await _serve(a, redirector)
    channel = grpc.aio.insecure_channel(address_a)
    try:
        yield Pair(a, b, redirector, namespaces, channel)
    finally:
        await channel.close(None)
        await redirector.close()
        await server_a.stop(0)
        await server_b.stop(0)


@pytest_asyncio.fixture(loop_scope="session")
async def selected() -> AsyncIterator[Pair]:
    async for pair in _pair(SELECTED_APIS_FORWARDING):
        yield pair


@pytest_asyncio.fixture(loop_scope="session")
async def all_apis() -> AsyncIterator[Pair]:
    async for pair in _pair(ALL_APIS_FORWARDING):
        yield pair


NOT_ACTIVE_B = "Namespace: g is active in cluster: b, while current cluster a is a standby cluster."


def _not_active(current: str, active: str) -> NamespaceNotActive:
    return NamespaceNotActive("g", current, active)


async def test_a_whitelisted_call_goes_to_the_active_cluster_marked_as_forwarded(selected: Pair) -> None:
    run_id = await selected.start(metadata=(("client-name", "temporal-python"), ("custom", "x")))
    assert run_id == "b:w"
    assert selected.a.calls == []
    [(method, headers, _)] = selected.b.calls
    assert method == "StartWorkflowExecution"
    assert headers["xdc-redirection-api"] == "true"
    assert headers["xdc-redirection-source-cell"] == "a"
    assert headers["client-name"] == "temporal-python"  # the caller's version headers go along
    assert "custom" not in headers
    assert selected.redirector.forwarded == {("b", "StartWorkflowExecution"): 1}


async def test_the_callers_token_goes_along(selected: Pair) -> None:
    """The active cluster authorizes a forwarded call with the caller's own token (auth/)."""
    await selected.start(metadata=(("authorization", "Bearer caller-token"),))
    [(_, headers, _)] = selected.b.calls
    assert headers["authorization"] == "Bearer caller-token"


async def test_calls_outside_the_whitelist_and_local_namespaces_stay_here(selected: Pair) -> None:
    poll = ws.PollWorkflowTaskQueueRequest(namespace="g")
    resp = await selected.call("PollWorkflowTaskQueue", poll, ws.PollWorkflowTaskQueueResponse)
    assert resp.task_token == b"a"
    assert await selected.start(namespace="local") == "a:w"
    assert selected.b.calls == [] and selected.redirector.forwarded_total() == 0


async def test_opting_out_and_forwarded_calls_are_answered_here(selected: Pair) -> None:
    selected.a.error = _not_active("a", "b")
    for header in (("xdc-redirection", "false"), ("xdc-redirection-api", "true")):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await selected.start(metadata=(header,))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == NOT_ACTIVE_B
    assert [c[0] for c in selected.a.calls] == ["StartWorkflowExecution"] * 2
    assert selected.b.calls == []


async def test_the_remotes_errors_come_back_unchanged(selected: Pair) -> None:
    selected.b.error = NotFound("workflow not found for ID: w", current_cluster="b", active_cluster="b")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await selected.start()
    err = info.value
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "workflow not found for ID: w"
    trailing: Any = err.trailing_metadata() or ()
    status = status_pb2.Status.FromString(dict(trailing)["grpc-status-details-bin"])
    detail = errordetails.NotFoundFailure()
    assert status.details[0].Unpack(detail)
    assert (detail.current_cluster, detail.active_cluster) == ("b", "b")


async def test_a_stale_registry_is_corrected_once(selected: Pair) -> None:
    # This cluster still believes it is active; its own answer names b: the call goes there.
    await selected.set_active("a")
    selected.a.error = _not_active("a", "b")
    assert await selected.start() == "b:w"
    assert [c[0] for c in selected.a.calls] == ["StartWorkflowExecution"]
    # b refuses, naming a as active: a answers (once; its refusal then goes to the client).
    await selected.set_active("b")
    selected.b.error = _not_active("b", "a")
    selected.a.error = None
    assert await selected.start() == "a:w"
    selected.a.error = _not_active("a", "b")
    before = len(selected.a.calls), len(selected.b.calls)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await selected.start()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (len(selected.a.calls), len(selected.b.calls)) == (before[0] + 1, before[1] + 1)  # no ping-pong


async def test_an_unreachable_active_cluster_is_unavailable(selected: Pair) -> None:
    record = selected.redirector.clusters.get("b")
    assert record is not None
    saved = record.cluster_address
    record.cluster_address = "127.0.0.1:1"
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await selected.start()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        record.cluster_address = saved


async def test_all_apis_forwards_worker_polls_with_their_deadline(all_apis: Pair) -> None:
    poll = ws.PollWorkflowTaskQueueRequest(namespace="g")
    resp = await all_apis.call("PollWorkflowTaskQueue", poll, ws.PollWorkflowTaskQueueResponse, timeout=50)
    assert resp.task_token == b"b"
    [(_, _, remaining)] = all_apis.b.calls
    assert remaining is not None and 40 < remaining < 51
    # namespace APIs stay here
    await all_apis.call("DescribeNamespace", ws.DescribeNamespaceRequest(namespace="g"), ws.DescribeNamespaceResponse)
    assert [c[0] for c in all_apis.a.calls] == ["DescribeNamespace"]


def test_noop_leaves_the_handlers_alone() -> None:
    redirector = Redirector("noop", ClusterMetadata(MemoryStore()), NamespaceRegistry(MemoryStore(), "a"), SERVICE)

    async def handler(request: Any, context: Any) -> Any:
        return None

    assert redirector.wrap("StartWorkflowExecution", handler) is handler
