"""Graceful failover (issue 13 part 2): the HANDOVER state as the reference has it, and `tempyral namespace failover`
under a stream of signals (nothing lost, nothing twice) and with a target that cannot catch up (rolled back)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.converter import default as default_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.clusters import Cluster, temporal_cli
from tests.support.clusters import connect as connect_clusters
from tests.xdc.conftest import connect, create_global_namespace
from tests.xdc.failover_workflows import Collector

HANDOVER_TEXT = "Namespace replication in Handover state."
WORKFLOWS = 8


def describe(cluster: Cluster, ns: str) -> dict[str, object]:
    out = temporal_cli(cluster.address, "operator", "namespace", "describe", "-n", ns, "-o", "json").stdout
    result: dict[str, object] = json.loads(out)
    return result


def state_and_active(cluster: Cluster, ns: str) -> tuple[str, str]:
    rc = describe(cluster, ns)["replicationConfig"]
    assert isinstance(rc, dict)
    return str(rc.get("state", "")), str(rc["activeClusterName"])


def signal_request(ns: str, workflow_id: str, value: str) -> SignalWorkflowExecutionRequest:
    payloads = Payloads(payloads=default_converter().payload_converter.to_payloads([value]))
    return SignalWorkflowExecutionRequest(
        namespace=ns,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name="add",
        input=payloads,
        identity="test-signaller",
        request_id=value,  # a retried signal is recognised by it, as a retrying SDK client's would be
    )


async def failover_command(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tempyral",
        "namespace",
        "failover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await within(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def keep_signalling(
    clients: list[Client],
    ns: str,
    pick: Callable[[int], str],
    prefix: str,
    acknowledged: dict[str, list[str]],
    stop: asyncio.Event,
    retried: Counter[str] | None = None,
) -> None:
    """Signal the workflow `pick(seq)` with `{prefix}-{seq}` until `stop`, recording each acknowledged value. Sent
    to the first client until its cluster says the namespace is active elsewhere, then to the other; UNAVAILABLE and
    DEADLINE_EXCEEDED (a failover under way) are retried, with each failure's status counted in `retried`."""
    clients = list(clients)
    seq = 0
    while not stop.is_set():
        wid = pick(seq)
        value = f"{prefix}-{seq}"
        seq += 1
        while True:
            try:
                await clients[0].workflow_service.signal_workflow_execution(
                    signal_request(ns, wid, value), retry=False, timeout=timedelta(seconds=5)
                )
                acknowledged[wid].append(value)
                break
            except RPCError as err:
                if retried is not None:
                    retried[err.status.name] += 1
                if err.status == RPCStatusCode.FAILED_PRECONDITION and "is active in cluster" in err.message:
                    clients.reverse()
                elif err.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                    raise
                await asyncio.sleep(0.05)


async def signalled_values(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    values = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = e.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "add":
                values.append(default_converter().payload_converter.from_payloads(attrs.input.payloads)[0])
    return values


# ---------------------------------------------------------------------- HANDOVER
async def test_handover_holds_calls_then_answers_unavailable_and_lets_them_go_when_normal(
    clusters: list[Cluster],
) -> None:
    a, _ = clusters
    ns = create_global_namespace(clusters)
    client = await connect(a, ns)
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, workflows=[Collector]):
        handle = await client.start_workflow(Collector.run, id=new_id("wf"), task_queue=tq)
        temporal_cli(a.address, "operator", "namespace", "update", "-n", ns, "--replication-state", "handover")
        assert state_and_active(a, ns) == ("REPLICATION_STATE_HANDOVER", "a")
        started = time.monotonic()
        with pytest.raises(RPCError) as refused:
            await client.workflow_service.signal_workflow_execution(
                signal_request(ns, handle.id, "refused"), retry=False, timeout=timedelta(seconds=1.5)
            )
        assert refused.value.status == RPCStatusCode.UNAVAILABLE
        assert refused.value.message == HANDOVER_TEXT
        assert time.monotonic() - started >= 1.0  # held until just before its deadline, not refused at once
        # a call that may wait longer is held until the state changes, then goes through
        held = asyncio.create_task(
            client.workflow_service.signal_workflow_execution(
                signal_request(ns, handle.id, "held"), retry=False, timeout=timedelta(seconds=30)
            )
        )
        await asyncio.sleep(0.5)
        assert not held.done()
        temporal_cli(a.address, "operator", "namespace", "update", "-n", ns, "--replication-state", "normal")
        await within(held, 20)
        await handle.signal(Collector.done)
        assert await within(handle.result()) == ["held"]  # the refused signal was not written


# ---------------------------------------------------------------------- the command, under load
@pytest.mark.timeout(180)
async def test_graceful_failover_under_a_stream_of_signals_loses_nothing(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    tq = new_id("tq")
    worker_a = Worker(client_a, task_queue=tq, workflows=[Collector])
    worker_b = Worker(client_b, task_queue=tq, workflows=[Collector])
    async with worker_a, worker_b:
        ids = [new_id("load") for _ in range(WORKFLOWS)]
        for wid in ids:
            await client_a.start_workflow(Collector.run, id=wid, task_queue=tq)
        acknowledged: dict[str, list[str]] = {wid: [] for wid in ids}
        stop = asyncio.Event()
        retried = Counter[str]()

        signallers = [
            asyncio.create_task(
                keep_signalling(
                    [client_a, client_b], ns, lambda seq: random.choice(ids), f"s{n}", acknowledged, stop, retried
                )
            )
            for n in range(4)
        ]
        await asyncio.sleep(2.0)  # load before the command starts
        code, out, err = await failover_command(
            "--namespace", ns, "--to", "b", "--max-lag", "5s", "--timeout", "30s", "--address", a.address
        )
        await asyncio.sleep(1.0)  # load after it, on the new active
        stop.set()
        await within(asyncio.gather(*signallers), 60)
        print(out)
        assert code == 0, f"failover failed: {out}{err}"
        assert "HANDOVER set on a" in out and "failed over from a to b" in out
        for wid in ids:
            await client_b.get_workflow_handle(wid).signal(Collector.done)
        results = await within(asyncio.gather(*(client_b.get_workflow_handle(wid).result() for wid in ids)), 90)
        total = sum(len(v) for v in acknowledged.values())
        lost = duplicated = 0
        for wid, result in zip(ids, results, strict=True):
            counts = Counter(result)
            lost += sum(1 for v in acknowledged[wid] if counts[v] == 0)
            duplicated += sum(1 for v in acknowledged[wid] if counts[v] > 1)
            assert sorted(result) == sorted(acknowledged[wid]), wid
            # both clusters hold the same signals, each once
            for client in (client_a, client_b):
                deadline = time.monotonic() + 30
                while sorted(await signalled_values(client, wid)) != sorted(acknowledged[wid]):
                    assert time.monotonic() < deadline, f"{wid} on {client.service_client.config.target_host}"
                    await asyncio.sleep(0.2)
        line = [ln for ln in out.splitlines() if "failed over from" in ln][-1]
        print(
            f"graceful failover under load: {total} signals acknowledged, lost {lost}, duplicated {duplicated}; "
            f"retried calls {dict(retried)}; {line}"
        )
        assert lost == 0 and duplicated == 0
    assert state_and_active(a, ns) == ("REPLICATION_STATE_NORMAL", "b")
    assert state_and_active(b, ns) == ("REPLICATION_STATE_NORMAL", "b")


# ---------------------------------------------------------------------- rollback
@pytest.mark.timeout(120)
async def test_a_failover_whose_target_cannot_catch_up_times_out_and_rolls_back(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    tq = new_id("tq")
    # b stops taking a's replication (its side of the connection only: a still lists b as connected, so a accepts
    # HANDOVER and the failover, as the reference's cluster check wants)
    temporal_cli(
        b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, "--enable-connection=false"
    )
    try:
        async with Worker(client_a, task_queue=tq, workflows=[Collector]):
            handle = await client_a.start_workflow(Collector.run, id=new_id("wf"), task_queue=tq)
            await handle.signal(Collector.add, "before")  # written on a, never seen by b while disconnected
            started = time.monotonic()
            code, out, err = await failover_command(
                "--namespace", ns, "--to", "b", "--max-lag", "1h", "--timeout", "3s", "--address", a.address
            )
            took = time.monotonic() - started
            print(out, err)
            assert code != 0
            assert "timed out after 3s" in err and "NORMAL" in err
            assert "HANDOVER set on a" in out and "rolled back" in out
            assert took >= 3.0
            assert state_and_active(a, ns) == ("REPLICATION_STATE_NORMAL", "a")
            # writes work on a again
            await handle.signal(Collector.add, "after")
            await handle.signal(Collector.done)
            assert await within(handle.result()) == ["before", "after"]
    finally:
        connect_clusters(a, b)
