"""The chaos harness of tests/xdc/test_chaos.py: three clusters, one global namespace, workflows that collect
signals, a signaller, and a seeded driver of partitions, SIGKILLs, restarts and failovers; then heal and check.

Everything it does is printed with the time since the start, so a failing run can be read (and re-run with the
same seed: TEMPYRAL_CHAOS_SEED). Only the driver's choices follow the seed; what the servers do with them is
timing, so a seed replays the same plan, not the same run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
    SignalWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.converter import default as default_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Worker

from tests.support.clusters import Cluster, temporal_cli
from tests.support.servers import ReplayCheckFailed

T = TypeVar("T")
EventKey = tuple[int, str, int]  # event id, type, version
Wrong = tuple[int, str, str]  # a workflow's index, the signal's payload (or name), what is wrong
RPC_TIMEOUT = timedelta(seconds=5)
STALE_CLIENTS = 0.25  # the share of signals sent first through a random cluster instead of the believed active
SIGNAL_DEADLINE_S = 20.0  # a signal no cluster acknowledged within this is given up (counted as not acknowledged)
AGREE_DEADLINE_S = 60.0  # heal: every cluster names the same active cluster
COMPLETE_DEADLINE_S = 180.0  # heal: every workflow completed on the active
CONVERGE_DEADLINE_S = 120.0  # heal: every cluster holds the same history of every workflow


@dataclass
class Settings:
    seed: int
    seconds: float
    workflows: int
    forced: bool  # forced failovers (a failover issued on a cluster cut off from the active, or the active dead)
    rate: float  # signals per second

    @classmethod
    def from_env(cls, seconds: float, workflows: int) -> Settings:
        env = os.environ
        return cls(
            seed=int(env.get("TEMPYRAL_CHAOS_SEED") or random.SystemRandom().randrange(1_000_000)),
            seconds=float(env.get("TEMPYRAL_CHAOS_SECONDS") or seconds),
            workflows=int(env.get("TEMPYRAL_CHAOS_WORKFLOWS") or workflows),
            forced=env.get("TEMPYRAL_CHAOS_FORCED", "1") not in ("0", "false", "no"),
            rate=float(env.get("TEMPYRAL_CHAOS_RATE") or 10.0),
        )


class Log:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, message: str) -> None:
        print(f"[chaos {self.elapsed():7.1f}s] {message}", flush=True)


@dataclass
class Stats:
    actions: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    signals_sent: int = 0
    acked_by: Counter[str] = field(default_factory=Counter)
    given_up: int = 0
    send_errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # what the harness saw go wrong outside the final checks


def workflow_id(index: int) -> str:
    return f"chaos-wf-{index}"


def _error_kind(err: BaseException) -> str:
    status = getattr(err, "status", None)
    name = getattr(status, "name", None)
    return str(name) if name else type(err).__name__


class Chaos:
    def __init__(self, clusters: list[Cluster], namespace: str, settings: Settings, task_queue: str) -> None:
        self.clusters = {c.name: c for c in clusters}
        self.names = [c.name for c in clusters]
        self.namespace = namespace
        self.settings = settings
        self.task_queue = task_queue
        self.rng = random.Random(settings.seed)  # the driver's plan
        self.signal_rng = random.Random(settings.seed + 1)  # which workflow each signal goes to
        self.log = Log()
        self.stats = Stats()
        self.clients: dict[str, Client] = {}
        self.up = {name: True for name in self.names}
        self.disabled: set[tuple[str, str]] = set()  # (on, peer): cluster `on` has its connection to `peer` disabled
        self.believed_active = self.names[0]
        self.undo: list[tuple[float, str, tuple[str, ...]]] = []  # (due, what, whom): heal a cut, restart
        # payload -> (workflow index, cluster that acknowledged it, when: seconds since the start)
        self.acked: dict[str, tuple[int, str, float]] = {}
        self.finished: dict[int, tuple[str, float]] = {}  # workflow index -> (who acknowledged finish, when)
        self.unacked: dict[str, int] = {}  # payload -> workflow index: sent, never acknowledged
        self.run_ids: dict[int, str] = {}  # the first run of each workflow
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._stop_workers = asyncio.Event()
        self._converter = default_converter().payload_converter

    # --- set-up -------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        # the SDK's warnings of polls retried against a killed cluster would drown what the test prints
        quiet = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
            )
        )
        for name, cluster in self.clusters.items():
            self.clients[name] = await Client.connect(cluster.address, namespace=self.namespace, runtime=quiet)

    def start_workers(self, workflows: list[type]) -> None:
        for name in self.names:
            self._workers[name] = asyncio.create_task(self._keep_worker(name, workflows))

    async def _keep_worker(self, name: str, workflows: list[type]) -> None:
        """A worker on cluster `name` for the whole test; one that fails (its cluster killed) is started again."""
        while not self._stop_workers.is_set():
            worker = Worker(
                self.clients[name], task_queue=self.task_queue, workflows=workflows, max_cached_workflows=50
            )
            run = asyncio.create_task(worker.run())
            stop = asyncio.create_task(self._stop_workers.wait())
            await asyncio.wait([run, stop], return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                await worker.shutdown()
                await asyncio.gather(run, return_exceptions=True)
                return
            stop.cancel()
            err = run.exception()
            self.log(f"worker on {name} ended ({type(err).__name__}: {err}); starting another in 2 s")
            await asyncio.sleep(2)

    async def stop_workers(self) -> None:
        self._stop_workers.set()
        await asyncio.wait_for(asyncio.gather(*self._workers.values(), return_exceptions=True), 60)

    async def start_workflows(self) -> None:
        client = self.clients[self.names[0]]
        limit = asyncio.Semaphore(20)

        async def start(i: int) -> None:
            async with limit:
                handle = await client.start_workflow("ChaosCollector", id=workflow_id(i), task_queue=self.task_queue)
                assert handle.first_execution_run_id is not None
                self.run_ids[i] = handle.first_execution_run_id

        await asyncio.gather(*(start(i) for i in range(self.settings.workflows)))
        self.log(f"started {self.settings.workflows} workflows on {self.names[0]}")

    # --- signals ------------------------------------------------------------------------------------------

    async def send(
        self, index: int, name: str, value: str | None, deadline_s: float, first: str | None = None
    ) -> str | None:
        """Send one signal through `first` (default: the believed active), then the others, until one cluster
        returns OK: the name of that cluster, or None after `deadline_s`. One request id for every attempt, so a
        retry the server has already seen is recognised."""
        request = SignalWorkflowExecutionRequest(
            namespace=self.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id(index)),
            signal_name=name,
            identity="chaos-signaller",
            request_id=str(uuid.uuid4()),
        )
        if value is not None:
            request.input.CopyFrom(Payloads(payloads=self._converter.to_payloads([value])))
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            start = first or self.believed_active
            for cluster in [start] + [n for n in self.names if n != start]:
                if not self.up[cluster]:
                    continue
                try:
                    await self.clients[cluster].workflow_service.signal_workflow_execution(
                        request, retry=False, timeout=RPC_TIMEOUT
                    )
                except Exception as err:
                    self.stats.send_errors[f"{cluster}:{_error_kind(err)}"] += 1
                    continue
                return cluster
            await asyncio.sleep(0.5)
        return None

    async def signaller(self, stop: asyncio.Event) -> None:
        """Signals to random workflows at the configured rate until `stop`, each through the believed active (or a
        random cluster, see STALE_CLIENTS) and then the others; at most 32 in flight."""
        in_flight = asyncio.Semaphore(32)
        tasks: set[asyncio.Task[None]] = set()

        async def one(index: int, payload: str, first: str | None) -> None:
            try:
                by = await self.send(index, "sig", payload, SIGNAL_DEADLINE_S, first)
                if by is None:
                    self.unacked[payload] = index
                    self.stats.given_up += 1
                else:
                    self.acked[payload] = (index, by, self.log.elapsed())
                    self.stats.acked_by[by] += 1
            finally:
                in_flight.release()

        n = 0
        while not stop.is_set():
            await in_flight.acquire()
            index = self.signal_rng.randrange(self.settings.workflows)
            n += 1
            # a quarter of the clients have a stale idea of the active: they try a random cluster first (so an
            # active cut off by a forced failover still gets writes: conflicting histories)
            stale = self.signal_rng.random() < STALE_CLIENTS
            first = self.signal_rng.choice(self.names) if stale else None
            task = asyncio.create_task(one(index, f"wf-{index}/sig-{n}", first))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.stats.signals_sent = n
            try:
                await asyncio.wait_for(stop.wait(), 1.0 / self.settings.rate)
            except TimeoutError:
                pass
        await asyncio.gather(*tasks)
        self.log(
            f"signaller stopped: sent {n}, acknowledged {len(self.acked)} {dict(self.stats.acked_by)}, "
            f"given up {self.stats.given_up}"
        )

    # --- the driver ---------------------------------------------------------------------------------------

    async def cli(self, via: str, *args: str, retry_s: float = 0.0) -> bool:
        """The CLI on cluster `via`; a call refused for a peer it cannot reach yet is tried again for `retry_s`
        (a cluster just restarted is refused for a moment by peers whose channel to it is backing off)."""
        deadline = time.monotonic() + retry_s
        while True:
            result = await asyncio.to_thread(temporal_cli, self.clusters[via].address, *args, check=False)
            if result.returncode == 0:
                return True
            said = (result.stdout + result.stderr).strip()
            if "Unable connect to remote cluster" in said and time.monotonic() < deadline:
                await asyncio.sleep(1)
                continue
            self.log(f"  temporal {' '.join(args)} on {via} failed: {said[:300]}")
            return False

    async def upsert(self, on: str, peer: str, enable: bool) -> bool:
        """Enable or disable, on cluster `on`, its connection to `peer` (both must be up)."""
        flag = "--enable-connection" if enable else "--enable-connection=false"
        args = ("operator", "cluster", "upsert", "--frontend-address", self.clusters[peer].address, flag)
        if not await self.cli(on, *args, retry_s=15):
            return False
        (self.disabled.discard if enable else self.disabled.add)((on, peer))
        return True

    async def set_connection(self, x: str, y: str, enable: bool) -> bool:
        return await self.upsert(x, y, enable) and await self.upsert(y, x, enable)

    def linked(self, x: str, y: str) -> bool:
        return (x, y) not in self.disabled and (y, x) not in self.disabled

    async def kill(self, name: str) -> None:
        self.up[name] = False
        try:
            await asyncio.to_thread(self.clusters[name].server.kill)
        except ReplayCheckFailed as err:  # the database after the SIGKILL does not explain itself
            self.stats.problems.append(f"replay check of {name} after SIGKILL: {err}")
            self.log(f"  REPLAY CHECK FAILED for {name}: {str(err)[:500]}")

    async def restart(self, name: str) -> bool:
        try:
            await asyncio.to_thread(self.clusters[name].server.start)
        except Exception as err:
            self.stats.problems.append(f"restart of {name}: {err}")
            self.log(f"  restart of {name} failed: {str(err)[:500]}")
            return False
        self.up[name] = True
        return True

    async def describe(self, name: str) -> tuple[int, str] | None:
        """(failover version, active cluster) of the namespace as cluster `name` sees it."""
        try:
            got = await self.clients[name].workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self.namespace), timeout=RPC_TIMEOUT
            )
        except Exception:
            return None
        return got.failover_version, got.replication_config.active_cluster_name

    async def refresh_active(self) -> None:
        """Believe the active cluster named with the highest failover version among the clusters up."""
        seen = [d for n in self.names if self.up[n] and (d := await self.describe(n)) is not None]
        if seen:
            self.believed_active = max(seen)[1]

    def _pairs(self) -> list[tuple[str, str]]:
        return [(x, y) for i, x in enumerate(self.names) for y in self.names[i + 1 :]]

    def _heal_later(self, x: str, y: str) -> None:
        self.undo.append((self.log.elapsed() + self.rng.uniform(5, 15), "heal", (x, y)))

    async def step(self) -> None:
        choices = ["partition", "kill", "failover"] + (["forced"] * 2 if self.settings.forced else [])
        what = self.rng.choice(choices)
        done = await getattr(self, f"_{what}")(self.believed_active)
        (self.stats.actions if done else self.stats.skipped)[what] += 1
        await self.refresh_active()

    async def _partition(self, active: str) -> bool:
        pairs = [(x, y) for x, y in self._pairs() if self.up[x] and self.up[y] and self.linked(x, y)]
        if not pairs:
            return False
        x, y = self.rng.choice(pairs)
        self.log(f"partition {x} <-/-> {y}")
        self._heal_later(x, y)
        return await self.set_connection(x, y, enable=False)

    async def _kill(self, active: str) -> bool:
        if not all(self.up.values()):
            return False  # never two down at once
        victim = self.rng.choice(self.names)
        self.log(f"SIGKILL {victim}" + (" (the active)" if victim == active else ""))
        await self.kill(victim)
        self.undo.append((self.log.elapsed() + self.rng.uniform(3, 8), "restart", (victim,)))
        return True

    async def _failover(self, active: str) -> bool:
        """Planned: issued on the active, to a cluster up and connected to it. The active must see every cluster
        of the namespace connected (the reference's check: Invalid cluster name otherwise)."""
        if not self.up[active] or any(on == active for on, _ in self.disabled):
            return False
        targets = [n for n in self.names if n != active and self.up[n] and self.linked(active, n)]
        if not targets:
            return False
        target = self.rng.choice(targets)
        self.log(f"failover {active} -> {target} (issued on {active})")
        ns = self.namespace
        if not await self.cli(active, "operator", "namespace", "update", "-n", ns, "--active-cluster", target):
            return False
        await self._wait_active_on(target, 30)
        return True

    async def _forced(self, active: str) -> bool:
        """Forced: issued on a cluster while the active is dead or cut off from every other cluster. The cut is
        made on the active's side only: the active then refuses the others' pulls and pulls nothing, so no data
        flows either way, while the cluster taking over still sees every cluster connected (the namespace
        update's check) and the old active, believing itself active, keeps writing: conflicting histories."""
        candidates = [n for n in self.names if n != active and self.up[n]]
        if not candidates:
            return False
        target = self.rng.choice(candidates)
        for on, peer in sorted(self.disabled):
            if on == target and not (self.up[peer] and await self.upsert(target, peer, enable=True)):
                return False  # the target's own view must have every cluster connected
        if self.up[active]:
            for peer in self.names:
                if peer != active and self.up[peer] and (active, peer) not in self.disabled:
                    self.log(f"cut {active} off from {peer} (on {active}'s side, for a forced failover)")
                    if not await self.upsert(active, peer, enable=False):
                        return False
                    self._heal_later(active, peer)
        state = "dead" if not self.up[active] else "cut off"
        self.log(f"FORCED failover {active} -> {target} (issued on {target}, {active} {state})")
        ns = self.namespace
        if not await self.cli(target, "operator", "namespace", "update", "-n", ns, "--active-cluster", target):
            return False
        self.believed_active = target
        return True

    async def _wait_active_on(self, target: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await self.describe(target)
            if got and got[1] == target:
                self.believed_active = target
                return
            await asyncio.sleep(0.2)
        self.log(f"  {target} did not say it is active within {timeout}s")

    async def do_due_undos(self) -> None:
        now = self.log.elapsed()
        for item in sorted(self.undo):
            due, what, whom = item
            if due > now:
                continue
            if what == "restart":
                self.log(f"restart {whom[0]}")
                if await self.restart(whom[0]):
                    self.undo.remove(item)
            elif all(self.up[n] for n in whom):  # a connection is enabled only with both sides up
                self.log(f"heal {whom[0]} <---> {whom[1]}")
                if await self.set_connection(whom[0], whom[1], enable=True):
                    self.undo.remove(item)

    async def drive(self) -> None:
        """Random steps for the configured time, then stop (the heal comes after)."""
        for name, cluster in self.clusters.items():
            self.log(f"cluster {name} on {cluster.address}, log {cluster.server.log_path}")
        self.log(
            f"namespace {self.namespace}; seed {self.settings.seed} (TEMPYRAL_CHAOS_SEED), "
            f"{self.settings.seconds:.0f} s of chaos, "
            f"{self.settings.workflows} workflows, forced failovers {'on' if self.settings.forced else 'off'}"
        )
        end = self.log.elapsed() + self.settings.seconds
        while self.log.elapsed() < end:
            await self.do_due_undos()
            await self.step()
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
        self.log(f"chaos over: {dict(self.stats.actions)} (skipped {dict(self.stats.skipped)})")

    # --- heal and checks ----------------------------------------------------------------------------------

    async def heal(self) -> None:
        for name in self.names:
            if not self.up[name]:
                self.log(f"heal: restart {name}")
                assert await self.restart(name), f"{name} does not start again: {self.clusters[name].server.log_tail()}"
        self.undo.clear()
        for x, y in self._pairs():
            self.log(f"heal: enable {x} <---> {y}")
            assert await self.set_connection(x, y, enable=True), f"cannot enable {x} <-> {y}"

    async def wait_agree(self) -> str:
        async def agreed() -> str | None:
            seen = {await self.describe(n) for n in self.names}
            if len(seen) == 1 and None not in seen:
                return next(iter(seen))[1]  # type: ignore[index]
            return None

        active = await bounded(agreed, AGREE_DEADLINE_S, "every cluster names the same active cluster and version")
        self.believed_active = active
        self.log(f"all clusters agree: active {active}")
        return active

    async def finish_all(self, active: str) -> None:
        limit = asyncio.Semaphore(20)

        async def finish(i: int) -> None:
            async with limit:
                by = await self.send(i, "finish", None, 60)
                assert by is not None, f"no cluster acknowledged the finish signal of {workflow_id(i)}"
                self.finished[i] = (by, self.log.elapsed())

        await asyncio.gather(*(finish(i) for i in range(self.settings.workflows)))
        self.log(f"finish sent to every workflow (through {active})")

    async def current(self, cluster: str, index: int) -> tuple[str, int]:
        """Run id and status of the workflow's current run on `cluster`."""
        got = await self.clients[cluster].workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=self.namespace, execution=WorkflowExecution(workflow_id=workflow_id(index))
            ),
            timeout=RPC_TIMEOUT,
        )
        return got.workflow_execution_info.execution.run_id, got.workflow_execution_info.status

    async def history(self, cluster: str, index: int, run_id: str) -> list[HistoryEvent]:
        events: list[HistoryEvent] = []
        token = b""
        while True:
            page = await self.clients[cluster].workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=self.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id(index), run_id=run_id),
                    next_page_token=token,
                ),
                timeout=RPC_TIMEOUT,
            )
            events.extend(page.history.events)
            token = page.next_page_token
            if not token:
                return events

    async def wait_completed(self, active: str) -> list[Wrong]:
        """Until every workflow's current run is completed on the active; what is not, after the deadline."""
        left = set(range(self.settings.workflows))
        deadline = time.monotonic() + COMPLETE_DEADLINE_S
        last: dict[int, str] = {}
        while left and time.monotonic() < deadline:
            for i in sorted(left):
                try:
                    run_id, status = await self.current(active, i)
                except Exception as err:
                    last[i] = f"describe failed: {err}"
                    continue
                if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
                    left.discard(i)
                else:
                    last[i] = f"run {run_id} {WorkflowExecutionStatus.Name(WorkflowExecutionStatus.ValueType(status))}"
            if left:
                await asyncio.sleep(1)
        wrong = []
        for i in sorted(left):
            by, at = self.finished.get(i, ("?", 0.0))
            message = (
                f"finish of {workflow_id(i)} (acknowledged by {by} at {at:.1f}s): not completed on {active}, "
                f"{last.get(i)}; last events {await self._tail(active, i)}"
            )
            wrong.append((i, "finish", message))
        self.log(
            f"{len(left)} workflows not completed on {active}" if left else f"every workflow completed on {active}"
        )
        return wrong

    async def _tail(self, cluster: str, index: int) -> list[EventKey]:
        try:
            run_id, _ = await self.current(cluster, index)
            return keys(await self.history(cluster, index, run_id))[-8:]
        except Exception as err:
            return [(0, f"unreadable: {err}", 0)]

    async def wait_converged(self) -> list[str]:
        """Until every cluster's current run of every workflow has the same run id and history (ids, types,
        versions); the workflows that still differ after the deadline, with their first difference."""
        left = set(range(self.settings.workflows))
        difference: dict[int, str] = {}
        deadline = time.monotonic() + CONVERGE_DEADLINE_S
        while left and time.monotonic() < deadline:
            for i in sorted(left):
                try:
                    seen = {}
                    for name in self.names:
                        run_id, _ = await self.current(name, i)
                        seen[name] = (run_id, await self.history(name, i, run_id))
                except Exception as err:
                    difference[i] = f"unreadable: {err}"
                    continue
                first = self.names[0]
                diff = [first_difference(first, seen[first], n, seen[n]) for n in self.names[1:]]
                if any(diff):
                    difference[i] = "; ".join(d for d in diff if d)
                else:
                    left.discard(i)
            if left:
                await asyncio.sleep(1)
        if left:
            self.log(f"{len(left)} workflows differ between clusters")
        else:
            self.log("every cluster holds the same history of every workflow")
        return [f"{workflow_id(i)} differs between clusters: {difference.get(i)}" for i in sorted(left)]

    async def histories_on(self, cluster: str) -> dict[int, list[HistoryEvent]]:
        """Every workflow's current run's history on `cluster`."""
        out: dict[int, list[HistoryEvent]] = {}
        for i in range(self.settings.workflows):
            run_id, _ = await self.current(cluster, i)
            out[i] = await self.history(cluster, i, run_id)
        return out

    def check_signals(self, histories: dict[int, list[HistoryEvent]]) -> list[Wrong]:
        """Every acknowledged signal exactly once in its workflow's history; what is wrong."""
        wrong: list[Wrong] = []
        counts: Counter[str] = Counter()
        for events in histories.values():
            for e in events:
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    attrs = e.workflow_execution_signaled_event_attributes
                    if attrs.signal_name == "sig":
                        counts[self._converter.from_payloads(attrs.input.payloads)[0]] += 1
        for payload, (index, by, at) in self.acked.items():
            if counts[payload] != 1:
                message = (
                    f"{payload} (acknowledged by {by} at {at:.1f}s) is {counts[payload]} times in {workflow_id(index)}"
                )
                wrong.append((index, payload, message))
        for payload, index in self.unacked.items():
            if counts[payload] > 1:
                message = f"{payload} (never acknowledged) is {counts[payload]} times in {workflow_id(index)}"
                wrong.append((index, payload, message))
        landed = sum(1 for p in self.unacked if counts[p] == 1)
        self.log(
            f"signals: {len(self.acked)} acknowledged, {sum(counts[p] == 1 for p in self.acked)} of them exactly "
            f"once; {len(self.unacked)} never acknowledged, {landed} of those in a history anyway"
        )
        return wrong

    def _signal_payload(self, e: HistoryEvent) -> str | None:
        if e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            return None
        attrs = e.workflow_execution_signaled_event_attributes
        if attrs.signal_name != "sig":
            return attrs.signal_name
        return str(self._converter.from_payloads(attrs.input.payloads)[0])

    def _short(self, e: HistoryEvent) -> str:
        kind = EventType.Name(EventType.ValueType(e.event_type)).removeprefix("EVENT_TYPE_")
        short = "".join(part[0] for part in kind.split("_"))  # WORKFLOW_TASK_COMPLETED -> WTC
        payload = self._signal_payload(e)
        if payload is not None:
            short += f"({payload})"
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = e.workflow_task_failed_event_attributes
            short += f"({attrs.cause}:{attrs.failure.message[:40]})"
        return f"{e.event_id}:{short}@{e.version}"

    async def diagnose(self, wrong: list[Wrong], active: str, limit: int = 3) -> None:
        """Where some wrong signals (workflow index, payload or signal name, what is wrong) are: every run of their
        workflow on every cluster, and the current run's history on the active (event id:initials of the
        type(signal)@version)."""
        for index, payload, line in wrong[:limit]:
            wid = workflow_id(index)
            self.log(f"where is {payload} ({line})?")
            for name in self.names:
                try:
                    runs = [w async for w in self.clients[name].list_workflows(f'WorkflowId = "{wid}"')]
                    for w in runs:
                        events = await self.history(name, index, w.run_id)
                        at = [e.event_id for e in events if self._signal_payload(e) == payload]
                        status = w.status.name if w.status else "?"
                        self.log(f"  on {name}: run {w.run_id} {status}, {len(events)} events, {payload} at {at}")
                except Exception as err:
                    self.log(f"  on {name}: unreadable: {err}")
            try:
                run_id, _ = await self.current(active, index)
                events = await self.history(active, index, run_id)
                self.log(f"  current run on {active}: " + " ".join(self._short(e) for e in events))
            except Exception as err:
                self.log(f"  current run on {active}: unreadable: {err}")

    async def conflicts(self, histories: dict[int, list[HistoryEvent]]) -> dict[str, int]:
        """What conflict resolution left to see: runs other than the first, resets, versions seen."""
        new_runs = 0
        for i in histories:
            run_id, _ = await self.current(self.names[0], i)
            new_runs += run_id != self.run_ids.get(i)
        resets = sum(
            1
            for events in histories.values()
            for e in events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and "reapplication" in (e.workflow_task_failed_event_attributes.failure.message or "")
        )
        return {"workflows on a later run": new_runs, "events-reapplication resets": resets}


def keys(events: list[HistoryEvent]) -> list[EventKey]:
    return [(e.event_id, EventType.Name(EventType.ValueType(e.event_type)), e.version) for e in events]


def first_difference(
    a: str, seen_a: tuple[str, list[HistoryEvent]], b: str, seen_b: tuple[str, list[HistoryEvent]]
) -> str:
    """The first difference between two clusters' current runs, or "" when equal."""
    if seen_a[0] != seen_b[0]:
        return f"current run {seen_a[0]} on {a}, {seen_b[0]} on {b}"
    ka, kb = keys(seen_a[1]), keys(seen_b[1])
    for i, (x, y) in enumerate(zip(ka, kb, strict=False)):
        if x != y:
            return f"event {i + 1}: {x} on {a}, {y} on {b}"
    if len(ka) != len(kb):
        return f"{len(ka)} events on {a}, {len(kb)} on {b} (next: {(ka + kb)[min(len(ka), len(kb))]})"
    return ""


async def bounded(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.5)


def summary(chaos: Chaos, figures: dict[str, Any]) -> None:
    s = chaos.stats
    chaos.log("summary:")
    chaos.log(f"  seed {chaos.settings.seed}, actions {dict(s.actions)}, skipped {dict(s.skipped)}")
    chaos.log(
        f"  signals sent {s.signals_sent}, acknowledged {len(chaos.acked)} by {dict(s.acked_by)}, given up {s.given_up}"
    )
    chaos.log(f"  failed signal attempts {dict(s.send_errors)}")
    for key, value in figures.items():
        chaos.log(f"  {key}: {value}")
    for problem in s.problems:
        chaos.log(f"  PROBLEM: {problem[:1000]}")
