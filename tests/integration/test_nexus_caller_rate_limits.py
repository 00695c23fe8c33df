"""Rate limits per (endpoint, caller namespace) pair (--nexus-caller-rps): the limited caller's operations are paced
(held back, shown as blocked, counted in the metrics), another caller of the same endpoint is not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import aiohttp
import nexusrpc
import nexusrpc.handler
import pytest
from temporalio.api.enums.v1 import PendingNexusOperationState
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_services import Call, Caller, Pinger, Req, Resp
from tests.support.servers import ServerProcess, tempyral
from tests.support.waiting import until

ENDPOINT = "ep-paced"
RATE = 0.5  # a bucket of one token, one more every 2 s: a call soon after another waits long enough to show
CALLS = 4


@nexusrpc.handler.service_handler(service=Pinger)
class StampingPinger:
    """When each caller's request reached the handler (this test process's clock)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []

    @nexusrpc.handler.sync_operation
    async def ping(self, ctx: nexusrpc.handler.StartOperationContext, req: Req) -> Resp:
        self.seen.append((time.monotonic(), req.name.split("/")[0]))
        return Resp(f"pong {req.name}")


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # The pair's limit comes from dynamic config, which wins over the flag's (far higher) value for the same pair.
    dynamic = tmp_path_factory.mktemp("dynamic") / "dynamic.yaml"
    dynamic.write_text(
        "component.nexusoperations.limit.callerRPS:\n"
        f"  - value: {RATE}\n"
        f"    constraints: {{namespace: slow-ns, destination: {ENDPOINT}}}\n"
    )
    extra = ["--nexus-caller-rps", f"{ENDPOINT}:slow-ns=1000", "--dynamic-config-path", str(dynamic)]
    for ns in ("slow-ns", "fast-ns", "handler-ns"):
        extra += ["--namespace", ns]
    proc = tempyral(extra=extra).start()
    yield proc
    proc.stop()


async def _metrics(server: ServerProcess) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.http_port}/metrics") as resp:
        return (await resp.text()).splitlines()


async def _start(client: Client, namespace: str, task_queue: str, i: int) -> WorkflowHandle[Caller, str]:
    call = Call(ENDPOINT, "ping", f"{namespace}/{i}")
    return await client.start_workflow(Caller.run, call, id=f"paced-{uuid.uuid4().hex}", task_queue=task_queue)


async def test_one_caller_is_paced_on_an_endpoint_the_other_is_not(paced_server: ServerProcess) -> None:
    clients = {ns: await Client.connect(paced_server.address, namespace=ns) for ns in ("slow-ns", "fast-ns")}
    handler_client = await Client.connect(paced_server.address, namespace="handler-ns")
    handler_tq, caller_tq = f"h-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    target = EndpointTarget(worker=EndpointTarget.Worker(namespace="handler-ns", task_queue=handler_tq))
    await handler_client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(spec=EndpointSpec(name=ENDPOINT, target=target))
    )
    pinger = StampingPinger()
    async with (
        Worker(handler_client, task_queue=handler_tq, nexus_service_handlers=[pinger]),
        Worker(clients["slow-ns"], task_queue=caller_tq, workflows=[Caller]),
        Worker(clients["fast-ns"], task_queue=caller_tq, workflows=[Caller]),
    ):
        started = time.monotonic()
        slow = [await _start(clients["slow-ns"], "slow-ns", caller_tq, i) for i in range(CALLS)]

        async def held_back() -> object:
            for handle in slow:
                for op in (await handle.describe()).raw_description.pending_nexus_operations:
                    if op.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BLOCKED:
                        return op
            return None

        op = await until(held_back, timeout=30, what="a paced operation shown as blocked")
        assert op.blocked_reason == f"The namespace slow-ns is over its Nexus rate limit for the endpoint {ENDPOINT}."
        fast = [await _start(clients["fast-ns"], "fast-ns", caller_tq, i) for i in range(CALLS)]
        results = await within(asyncio.gather(*(h.result() for h in fast + slow)), 60)
    assert sorted(results) == sorted(f"pong {ns}/{i}" for ns in ("slow-ns", "fast-ns") for i in range(CALLS))
    # Paced: a bucket of one token refilled at RATE lets at most 1 + RATE * T calls through in T seconds, so the
    # last slow call reached the handler at least (CALLS - 1) / RATE after the test started them (a lower bound:
    # a slow machine only adds to it).
    slow_seen = sorted(t for t, ns in pinger.seen if ns == "slow-ns")
    assert len(slow_seen) == CALLS and slow_seen[-1] - started >= (CALLS - 1) / RATE
    lines = await _metrics(paced_server)
    blocked = [line for line in lines if line.startswith("nexus_outbound_blocked{")]
    slow_blocks = [line for line in blocked if 'namespace="slow_ns"' in line and 'reason="caller_rate_limit"' in line]
    assert slow_blocks and int(slow_blocks[0].rsplit(" ", 1)[1]) >= 1
    assert not [line for line in blocked if 'namespace="fast_ns"' in line]  # the other caller was never held
    assert f'nexus_caller_rate_limit{{destination="{ENDPOINT.replace("-", "_")}",namespace="slow_ns"}} 0.5' in lines
