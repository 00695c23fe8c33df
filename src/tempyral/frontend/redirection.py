"""DC redirection: calls of a global namespace that reach a cluster where it is standby go to its active cluster
(the reference's dcRedirectionPolicy: common/rpc/interceptor/redirection.go and dc_redirection_policy.go).

Policies (`--dc-redirection-policy`):

- `noop` (the default, as on the reference): every call is answered here; writes of a standby namespace get
  NamespaceNotActive.
- `selected-apis-forwarding`: the calls of SELECTED_APIS (starts, signals, updates, cancels, terminations, resets,
  deletions, queries...) go to the active cluster; the rest are answered here.
- `all-apis-forwarding`: every namespace-scoped WorkflowService call but the LOCAL_APIS goes to the active cluster,
  worker polls and task completions included, so workers connected to a standby cluster work for the active one.

Only global namespaces are redirected. A call answered here that fails with NamespaceNotActive (the registry here
lagged behind a failover) and a forwarded call the remote refuses with it are tried once more, on the cluster
that error names. The remote's answer, error status and details included, goes back to the client unchanged.
A forwarded call carries `xdc-redirection-api: true` and `xdc-redirection-source-cell: <this cluster>`; it is never
forwarded again; a client opts out with `xdc-redirection: false` (common/xdc.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from temporalio.api.errordetails.v1 import message_pb2 as errordetails

from tempyral.cluster.client import peer_channel
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common import xdc
from tempyral.common.errors import NamespaceNotActive, Unavailable
from tempyral.namespace.registry import Namespace, NamespaceRegistry

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
# A servicer method; a forwarded call answers with the remote's serialized response.
Handler = Callable[[Any, Context], Awaitable[Message | bytes]]

NOOP = "noop"
SELECTED_APIS_FORWARDING = "selected-apis-forwarding"
ALL_APIS_FORWARDING = "all-apis-forwarding"
POLICIES = (NOOP, SELECTED_APIS_FORWARDING, ALL_APIS_FORWARDING)

# Never redirected (the reference's localAPIResponses).
LOCAL_APIS = frozenset(
    {
        "DeprecateNamespace",
        "DescribeNamespace",
        "ListNamespaces",
        "RegisterNamespace",
        "UpdateNamespace",
        "GetSearchAttributes",
        "GetClusterInfo",
        "GetSystemInfo",
    }
)
# What selected-apis-forwarding redirects (the reference's selectedAPIsForwardingRedirectionPolicyWhitelistedAPIs).
SELECTED_APIS = frozenset(
    {
        "StartWorkflowExecution",
        "SignalWithStartWorkflowExecution",
        "SignalWorkflowExecution",
        "UpdateWorkflowExecution",
        "RequestCancelWorkflowExecution",
        "TerminateWorkflowExecution",
        "PauseWorkflowExecution",
        "UnpauseWorkflowExecution",
        "ResetWorkflowExecution",
        "DeleteWorkflowExecution",
        "QueryWorkflow",
        "ExecuteMultiOperation",
        "StartActivityExecution",
        "RequestCancelActivityExecution",
        "TerminateActivityExecution",
        "DeleteActivityExecution",
        "PauseActivityExecution",
        "UnpauseActivityExecution",
        "ResetActivityExecution",
        "UpdateActivityExecutionOptions",
        "StartNexusOperationExecution",
        "RequestCancelNexusOperationExecution",
        "TerminateNexusOperationExecution",
        "DeleteNexusOperationExecution",
    }
)
# The caller's headers a forwarded call carries (the reference's headers.Propagate).
PROPAGATED_HEADERS = (
    "client-name",
    "client-version",
    "supported-server-versions",
    "supported-features",
    "caller-name",
    "caller-type",
    "call-initiation",
    "authorization",  # the caller's token: the other server authorizes the call as this one did
)
# A forwarded call whose caller set no deadline: as long as the longest long poll, and a little more.
DEFAULT_FORWARD_TIMEOUT_S = 70.0
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_NOT_ACTIVE_TYPE = errordetails.NamespaceNotActiveFailure.DESCRIPTOR.full_name


def check_policy(policy: str) -> str:
    """The policy's canonical name ("" is noop, as on the reference); any other name is refused."""
    if policy == "":
        return NOOP
    if policy not in POLICIES:
        raise ValueError(f"Unknown DC redirection policy {policy}")
    return policy


def forwardable_apis(service: ServiceDescriptor) -> frozenset[str]:
    """The methods all-apis-forwarding redirects: every namespace-scoped one but the local ones."""
    return frozenset(
        m.name for m in service.methods if m.name not in LOCAL_APIS and "namespace" in m.input_type.fields_by_name
    )


@dataclass(frozen=True, slots=True)
class Route:
    target: str  # the cluster that answers first
    retry: bool  # a NamespaceNotActive answer is tried once more on the cluster it names


def route(policy: str, method: str, ns: Namespace, current: str, forwardable: frozenset[str]) -> Route:
    """Where a call of `method` on `ns` goes under `policy` (getTargetClusterAndIsNamespaceNotActiveAutoForwarding)."""
    here = Route(current, False)
    if policy == NOOP or not ns.is_global or method not in forwardable:
        return here
    if method in SELECTED_APIS or policy == ALL_APIS_FORWARDING:
        return Route(ns.active_cluster or current, True)
    return here


def not_active_cluster(err: grpc.aio.AioRpcError) -> str | None:
    """The active cluster a remote's NamespaceNotActive names (None: the error is another one)."""
    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    blob = _status_details(err)
    if blob is None:
        return None
    try:
        status = status_pb2.Status.FromString(blob)
    except DecodeError:
        return None
    for detail in status.details:
        if detail.TypeName() == _NOT_ACTIVE_TYPE:
            failure = errordetails.NamespaceNotActiveFailure()
            if detail.Unpack(failure):
                return failure.active_cluster or None
    return None


def _status_details(err: grpc.aio.AioRpcError) -> bytes | None:
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return value
    return None


class _Remote:
    """A channel to one cluster's frontend, for its address at the time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = peer_channel(address)


class Redirector:
    """Wraps the WorkflowService methods with the policy; counts what it forwarded."""

    def __init__(
        self, policy: str, clusters: ClusterMetadata, namespaces: NamespaceRegistry, service: ServiceDescriptor
    ) -> None:
        self.policy = check_policy(policy)
        self.clusters = clusters
        self.namespaces = namespaces
        self.service_name = service.full_name
        self.forwardable = forwardable_apis(service)
        self._remotes: dict[str, _Remote] = {}
        self._retired: list[_Remote] = []
        # (target cluster, method) -> calls forwarded there, failed ones included.
        self.forwarded: Counter[tuple[str, str]] = Counter()

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` under the policy (itself when the policy never redirects `method`)."""
        if self.policy == NOOP or method not in self.forwardable:
            return handler
        full_method = f"/{self.service_name}/{method}"

        async def redirecting(request: Any, context: Context) -> Message | bytes:
            metadata = context.invocation_metadata() or ()
            if not xdc.may_forward(lambda key: _header(metadata, key)):
                return await handler(request, context)
            ns = self.namespaces.find(getattr(request, "namespace", ""))
            if ns is None:  # answered here: NamespaceNotFound, or the missing-namespace error
                return await handler(request, context)
            r = route(self.policy, method, ns, self.clusters.name, self.forwardable)
            return await self._call(r, method, full_method, handler, request, context)

        return redirecting

    async def _call(
        self, r: Route, method: str, full_method: str, handler: Handler, request: Any, context: Context
    ) -> Message | bytes:
        current = self.clusters.name
        try:
            if r.target == current:
                return await handler(request, context)
            return await self._forward(r.target, method, full_method, request, context)
        except NamespaceNotActive as err:  # this cluster's answer
            if not r.retry or err.active_cluster in ("", current):
                raise
            retry_on = err.active_cluster
        except grpc.aio.AioRpcError as err:  # the remote's answer
            active = not_active_cluster(err) if r.retry else None
            if active is None:
                return await _pass_back(context, err)
            retry_on = active
        # Once more where the error says the namespace is active (the registry that routed the call lagged).
        if retry_on == current:
            return await handler(request, context)
        try:
            return await self._forward(retry_on, method, full_method, request, context)
        except grpc.aio.AioRpcError as err:
            return await _pass_back(context, err)

    async def _forward(self, cluster: str, method: str, full_method: str, request: Any, context: Context) -> bytes:
        remote = self._remote(cluster)
        remaining = context.time_remaining()
        timeout = DEFAULT_FORWARD_TIMEOUT_S if remaining is None else max(remaining, 0.0)
        self.forwarded[(cluster, method)] += 1
        log.debug("forwarding %s on namespace %s to cluster %s", method, getattr(request, "namespace", ""), cluster)
        return await pass_call(
            remote.channel, full_method, request, context, xdc.forwarded_headers(self.clusters.name), timeout
        )

    def _remote(self, cluster: str) -> _Remote:
        """A channel to `cluster`'s frontend; only clusters the operator connected are called."""
        record = self.clusters.get(cluster)
        if record is None or cluster == self.clusters.name:
            raise Unavailable(f"could not find cluster metadata for cluster {cluster}")
        if not record.cluster_address:
            raise Unavailable(f"RPCAddress not configured for cluster: {cluster}")
        remote = self._remotes.get(cluster)
        if remote is None or remote.address != record.cluster_address:
            if remote is not None:
                self._retired.append(remote)
            remote = self._remotes[cluster] = _Remote(record.cluster_address)
        return remote

    def forwarded_total(self) -> int:
        return sum(self.forwarded.values())

    async def close(self) -> None:
        remotes = [*self._remotes.values(), *self._retired]
        self._remotes, self._retired = {}, []
        for remote in remotes:
            await remote.channel.close(None)


async def pass_call(
    channel: grpc.aio.Channel,
    full_method: str,
    request: Any,
    context: Any,
    headers: list[tuple[str, str]],
    timeout: float,
) -> bytes:
    """Make the caller's call on another server: bytes in, bytes out (the request and the answer as they are),
    with the caller's propagated headers plus `headers`."""
    metadata = context.invocation_metadata() or ()
    outgoing = [(k, v) for k, v in metadata if k in PROPAGATED_HEADERS and isinstance(v, str)] + headers
    call = channel.unary_unary(full_method, request_serializer=None, response_deserializer=None)
    response: bytes = await call(request.SerializeToString(), timeout=timeout, metadata=tuple(outgoing))
    return response


def _header(metadata: Any, key: str) -> str | None:
    for k, v in metadata:
        if k == key and isinstance(v, str):
            return v
    return None


async def _pass_back(context: Context, err: grpc.aio.AioRpcError) -> bytes:
    """Answer with the remote's status: its code, message and error details."""
    details = _status_details(err)
    trailing = ((STATUS_DETAILS_KEY, details),) if details is not None else ()
    await context.abort(err.code(), err.details() or "", trailing_metadata=trailing)
    raise AssertionError("unreachable: abort raises")
