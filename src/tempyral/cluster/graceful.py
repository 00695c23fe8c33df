"""Graceful failover of a global namespace (`tempyral namespace failover`, and the failback of automatic failover):
the reference's namespace-handover workflow (service/worker/migration/handover_workflow.go) as a library.

Steps, each said as it happens:
1. find the namespace's active cluster and the target, through any cluster of the namespace (DescribeNamespace,
   and ListClusters for the other clusters' addresses);
2. wait until the target is less than `max_lag` behind the active (the target's GetReplicationStatus);
3. set HANDOVER on the active: its frontend holds the namespace's calls and its history takes no write;
4. wait until the target has applied every replication task the active committed (per shard of the active: its
   `last_task_id` <= the target's `applied_task_id` from it), read again until it no longer moves;
5. fail over on the old active (UpdateNamespace with the target as active cluster, which also returns the state
   to NORMAL; the target then waits for the old active's watermarks, cluster/namespace_replication.py), and wait
   until the target says it is active.
Whatever happens after step 3 (a timeout, an error), the namespace goes back to NORMAL on the active: a rollback,
as the reference's deferred reset. Everything is bounded by `timeout`, from the start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from temporalio.api.enums.v1 import ReplicationState
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.cluster.client import ReplicationClient, peer_channel
from tempyral.proto import replication_pb2 as rpb

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often replication progress is read while waiting
CALL_TIMEOUT_S = 10.0
HANDOVER = ReplicationState.REPLICATION_STATE_HANDOVER
NORMAL = ReplicationState.REPLICATION_STATE_NORMAL


class FailoverError(Exception):
    """The failover did not happen; the message says why (and that the namespace was rolled back)."""


@dataclass
class FailoverResult:
    namespace: str
    source: str
    target: str
    seconds: float  # from the start to the target active
    handover_seconds: float  # how long writes were held
    steps: list[str] = field(default_factory=list)


def inbound_from(status: rpb.GetReplicationStatusResponse, peer: str) -> rpb.PeerInbound | None:
    for inbound in status.inbound:
        if inbound.cluster_name == peer:
            return inbound
    return None


def behind(active: rpb.GetReplicationStatusResponse, target: rpb.GetReplicationStatusResponse) -> dict[int, int]:
    """Shards of the active whose last committed task the target has not applied: shard -> tasks missing."""
    inbound = inbound_from(target, active.cluster_name)
    applied = dict(inbound.applied_task_id) if inbound is not None else {}
    return {
        s.shard_id: s.last_task_id - applied.get(s.shard_id, 0)
        for s in active.shards
        if s.last_task_id > applied.get(s.shard_id, 0)
    }


WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
OPERATOR_SERVICE = "temporal.api.operatorservice.v1.OperatorService"
M = TypeVar("M", bound=Message)


async def call(channel: grpc.aio.Channel, method: str, request: Message, response: type[M], timeout: float) -> M:
    """One unary call of a public service (`method`: /service/Method), typed."""
    stub = channel.unary_unary(
        method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString
    )
    answer: M = await stub(request, timeout=timeout)
    return answer


class _Frontend:
    """WorkflowService and OperatorService of one cluster, and its replication status (polled while waiting)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = peer_channel(address)
        self.replication = ReplicationClient(address)

    async def status(self, namespace: str, deadline: float) -> rpb.GetReplicationStatusResponse:
        return await self.replication.replication_status(namespace, timeout=min(5.0, _remaining(deadline)))

    async def describe(self, namespace: str) -> ws.DescribeNamespaceResponse:
        request = ws.DescribeNamespaceRequest(namespace=namespace)
        method = f"/{WORKFLOW_SERVICE}/DescribeNamespace"
        return await call(self.channel, method, request, ws.DescribeNamespaceResponse, CALL_TIMEOUT_S)

    async def update(self, namespace: str, config: replication_pb.NamespaceReplicationConfig) -> None:
        request = ws.UpdateNamespaceRequest(namespace=namespace, replication_config=config)
        method = f"/{WORKFLOW_SERVICE}/UpdateNamespace"
        await call(self.channel, method, request, ws.UpdateNamespaceResponse, CALL_TIMEOUT_S)

    async def addresses(self) -> dict[str, str]:
        method = f"/{OPERATOR_SERVICE}/ListClusters"
        response = await call(
            self.channel, method, ops.ListClustersRequest(page_size=1000), ops.ListClustersResponse, CALL_TIMEOUT_S
        )
        return {c.cluster_name: c.address for c in response.clusters}

    async def close(self) -> None:
        await self.channel.close(None)
        await self.replication.close()


async def graceful_failover(
    address: str,
    namespace: str,
    target: str,
    max_lag: float = 5.0,
    timeout: float = 30.0,
    say: Callable[[str], None] | None = None,
) -> FailoverResult:
    """Fail `namespace` over to `target` gracefully (module docstring); FailoverError when it could not."""
    started = time.monotonic()
    deadline = started + timeout
    steps: list[str] = []

    def step(message: str) -> None:
        line = f"[{time.monotonic() - started:6.2f}s] {message}"
        steps.append(line)
        log.info("graceful failover of %s: %s", namespace, message)
        if say is not None:
            say(line)

    entry = _Frontend(address)
    frontends: list[_Frontend] = [entry]
    try:
        described = await entry.describe(namespace)
        if not described.is_global_namespace:
            raise FailoverError(f"namespace {namespace} is not a global namespace")
        source = described.replication_config.active_cluster_name
        members = [c.cluster_name for c in described.replication_config.clusters]
        if target not in members:
            raise FailoverError(f"cluster {target} is not a cluster of namespace {namespace} ({', '.join(members)})")
        if source == target:
            step(f"namespace {namespace} is already active in {target}: nothing to do")
            return FailoverResult(namespace, source, target, time.monotonic() - started, 0.0, steps)
        addresses = await entry.addresses()
        for name in (source, target):
            if not addresses.get(name):
                raise FailoverError(f"no address known for cluster {name} (ListClusters on {address})")
        active, standby = _Frontend(addresses[source]), _Frontend(addresses[target])
        frontends += [active, standby]
        step(f"namespace {namespace} is active in {source} ({active.address}); target {target} ({standby.address})")

        lag = await _wait_for_lag(standby, source, namespace, max_lag, deadline)
        step(f"{target} is {lag:.3f}s behind {source} (bound {max_lag:g}s)")

        await active.update(namespace, replication_pb.NamespaceReplicationConfig(state=HANDOVER))
        held_at = time.monotonic()
        step(f"HANDOVER set on {source}: writes of {namespace} are held")
        issued = False
        try:
            watermarks = await _wait_until_applied(active, standby, deadline)
            step(f"{target} applied every replication task of {source} (last task per shard: {watermarks})")
            await active.update(namespace, replication_pb.NamespaceReplicationConfig(active_cluster_name=target))
            issued = True
            step(f"failover issued on {source}: active cluster {target}")
            await _wait_until_active(standby, namespace, target, deadline)
            handover_seconds = time.monotonic() - held_at
            step(f"{target} is active for {namespace}; writes were held {handover_seconds:.3f}s")
        except BaseException as err:
            await _roll_back(active, namespace, step)
            if issued:  # the switch was made; the target did not say so in time
                raise FailoverError(
                    f"failover to {target} issued, not yet confirmed by {target}: {_describe(err)}"
                ) from err
            if isinstance(err, TimeoutError):
                raise FailoverError(
                    f"timed out after {timeout:g}s; namespace {namespace} returned to NORMAL, still active in {source}"
                ) from err
            if isinstance(err, (FailoverError, grpc.aio.AioRpcError)):
                raise FailoverError(f"{_describe(err)}; namespace {namespace} returned to NORMAL") from err
            raise
        return FailoverResult(namespace, source, target, time.monotonic() - started, handover_seconds, steps)
    except TimeoutError as err:
        raise FailoverError(f"timed out after {timeout:g}s before HANDOVER; nothing changed") from err
    except grpc.aio.AioRpcError as err:
        raise FailoverError(_describe(err)) from err
    finally:
        for frontend in frontends:
            await frontend.close()


def _describe(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


async def _wait_for_lag(standby: _Frontend, source: str, namespace: str, max_lag: float, deadline: float) -> float:
    """Until the target's lag behind `source` is under `max_lag`; the lag."""
    while True:
        status = await standby.status(namespace, deadline)
        inbound = inbound_from(status, source)
        if inbound is not None and inbound.lag_seconds < max_lag:
            return inbound.lag_seconds
        await asyncio.sleep(min(POLL_S, _remaining(deadline)))


async def _wait_until_applied(active: _Frontend, standby: _Frontend, deadline: float) -> dict[int, int]:
    """Until the target has applied every task the active committed, and the active's last ids stay put (a commit
    under way when HANDOVER was set may still take an id); the active's last task id per shard."""
    previous: dict[int, int] | None = None
    while True:
        source = await active.status("", deadline)
        target = await standby.status("", deadline)
        watermarks = {s.shard_id: s.last_task_id for s in source.shards}
        if not behind(source, target):
            if watermarks == previous:
                return watermarks
            previous = watermarks
        await asyncio.sleep(min(POLL_S, _remaining(deadline)))


async def _wait_until_active(standby: _Frontend, namespace: str, target: str, deadline: float) -> None:
    while True:
        described = await standby.describe(namespace)
        if described.replication_config.active_cluster_name == target:
            return
        await asyncio.sleep(min(POLL_S, _remaining(deadline)))


async def _roll_back(active: _Frontend, namespace: str, step: Callable[[str], None]) -> None:
    """Return the namespace to NORMAL on the active (whatever the failure was, with a deadline of its own)."""
    try:
        described = await active.describe(namespace)
        if described.replication_config.state == HANDOVER:
            await active.update(namespace, replication_pb.NamespaceReplicationConfig(state=NORMAL))
        step(f"rolled back: {namespace} is NORMAL on {active.address}")
    except grpc.aio.AioRpcError as err:
        step(f"could not roll back {namespace} on {active.address}: {_describe(err)}")
