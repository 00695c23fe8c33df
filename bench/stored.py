"""Throughput with 1,000 and with 100,000 stored executions (goal: within 20%).

    .venv/bin/python bench/stored.py                         # PostgreSQL, 1k against 100k, 2 rounds
    .venv/bin/python bench/stored.py --db postgresql,sqlite --out stored.json
    .venv/bin/python bench/stored.py --large 20000 --n 300 --rounds 1    # a short run

For each database kind (`--db`: postgresql, sqlite or both) two databases are made: "small" with `--small` stored
executions (default 1,000) and "large" with `--large` (default 100,000). PostgreSQL: one throwaway server
(benchlib.LocalPostgres, a child of this process; durable: fsync and synchronous_commit on, `--no-durable` turns them
off) with two databases. SQLite: two files in a temporary directory (tempyral's default synchronous mode).

Filling. Each database first gets `--templates` real workflows (default 100): a tempyral server (`start-dev --db`,
`--shards` history shards, default 4) runs the one_activity workflow (bench/one_activity.py, as the shared
benchmark's) through the official SDK, with ids tmpl-0000000000, tmpl-0000000001, ... Then the server stops and the
rest is filled through tempyral's own Store API (tempyral.persistence: the store the server uses, opened on that
database) by cloning those closed runs under new ids: workflow ids fill-0000000000, ... (the length of a template's,
so that each id can be swapped in place inside the serialized state, history batches and task), fresh run ids and
start request ids (uuid4). A clone is what the server writes for a closed run: its execution row (the template's
ExecutionState with the ids swapped), its current-run row, its history batches, its visibility row, and its
retention timer (the DELETE_HISTORY task the template's close left, due when the template's is: a day after it
closed in the default namespace; a run that just closed also has timeout timers that fire and go within a minute,
which clones, like runs closed long ago, do not), each in the shard `tempyral.history.executions.shard_id_for`
gives the new workflow id, with task ids from a range of that shard taken with `acquire_shard` (so the server's next
range is above them) and released after. Clones keep their template's times (start, close), so the visibility rows
share about `--templates` distinct start times. After filling, PostgreSQL gets VACUUM ANALYZE and a CHECKPOINT (as a
database that has been up a while, and so that no checkpoint of the fill lands in a measurement).

Measuring. `--rounds` rounds (default 2) of small then large; each run is a fresh `tempyral server start-dev` on the
database (start_s: until its gRPC port serves; it loads the retention timers of every stored run at start), a
warm-up, then the one_activity workload of the shared benchmark exactly as compare.py runs it
(../shared/bench/workloads.py ADDRESS one_activity N in a subprocess: 200 in flight, a fresh task queue), and the
server's CPU during it (tempyral and, for PostgreSQL, the whole PostgreSQL server) and tempyral's resident memory
after it. Before the runs, each database is checked through a server and the SDK: three clones described, their
histories and results read, and the count of completed runs listed equals the number stored. `stored` is the number of
executions in the database when the run began (the runs before it add to it). The summary gives the medians and the
ratio large/small per database kind.

`--timeout` (default 1800 s) bounds the whole run; every server is stopped at the end, on an error or on Ctrl-C, and
the temporary directory removed (the server logs are kept when the run fails; everything with `--keep`). Filling
100,000 executions takes about half a minute on a 2-core machine; the default run, 3 to 4 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    LocalPostgres,
    PostgresSettings,
    TreeCpu,
    free_port,
    python,
    rss_mib,
    tempyral_command,
    wait_port,
)
from one_activity import WORKER_OPTIONS, OneActivity, run_many, step
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.client import Client
from temporalio.worker import Worker

from tempyral.common.clock import ts_ns
from tempyral.history.executions import shard_id_for
from tempyral.history.shard import RANGE_BITS
from tempyral.persistence.store import (
    CurrentWrite,
    ExecutionWrite,
    HistoryWrite,
    Store,
    TaskRow,
    Transaction,
    VisibilityQuery,
    VisibilityRow,
)
from tempyral.proto.internal_pb2 import ExecutionState, NamespaceRecord, Task, TaskCategory, TaskType

WORKLOADS_PY = REPO.parent / "shared" / "bench" / "workloads.py"
TEMPLATE_PREFIX, CLONE_PREFIX, ID_WIDTH = "tmpl-", "fill-", 10  # equal lengths: ids are swapped in place
FILL_OWNER = "bench-fill"  # the shard owner named while filling (released after)
WORKLOAD_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 45.0
RUNNING: list[subprocess.Popen[bytes]] = []
POSTGRES: list[LocalPostgres] = []


# ---------------------------------------------------------------------- servers
class TempyralServer:
    """`tempyral server start-dev` on one database, in its own process group."""

    def __init__(self, db_args: list[str], shards: int, log_path: Path) -> None:
        self.port = free_port()
        self.command = tempyral_command(
            "server",
            "start-dev",
            *db_args,
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--headless",
            "--log-level",
            "warn",
            "--shards",
            str(shards),
        )
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it; the seconds until it serves."""
        t = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        RUNNING.append(self.proc)
        try:
            wait_port(self.port, self.proc, "tempyral", timeout=300.0)
        except RuntimeError as err:
            raise RuntimeError(f"{err}: {self.log_path.read_text(errors='replace')[-2000:]}") from None
        return time.monotonic() - t

    def stop(self) -> None:
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


@dataclasses.dataclass
class Database:
    """One database under test: how the server and the store reach it, and how to count its executions."""

    kind: str  # postgresql | sqlite
    label: str  # small | large
    target: int  # stored executions wanted
    server_args: list[str]
    open_store: Callable[[], Store]
    count_rows: Callable[[str], int]  # rows of a table
    settle: Callable[[], None]  # after filling
    extra_roots: list[int]  # other server processes whose CPU counts (PostgreSQL)


def postgres_databases(args: argparse.Namespace) -> list[Database]:
    from tempyral.persistence.postgres import PostgresStore

    pg = LocalPostgres(PostgresSettings(durable=not args.no_durable))
    POSTGRES.append(pg)
    pg.start()
    assert pg.pid is not None
    out = []
    for label, target in (("small", args.small), ("large", args.large)):
        url = pg.create_database(label)

        def settle(name: str = label) -> None:
            pg.psql("VACUUM ANALYZE", database=name)
            pg.psql("CHECKPOINT", database=name)

        out.append(
            Database(
                "postgresql",
                label,
                target,
                ["--db", url],
                lambda url=url: PostgresStore(url),  # type: ignore[misc]
                lambda table, name=label: int(pg.psql(f"SELECT count(*) FROM {table}", database=name)),  # type: ignore[misc]
                settle,
                [pg.pid],
            )
        )
    return out


def sqlite_databases(args: argparse.Namespace, workdir: Path) -> list[Database]:
    from tempyral.persistence.sqlite import SqliteStore

    out = []
    for label, target in (("small", args.small), ("large", args.large)):
        path = str(workdir / f"{label}.db")

        def count(table: str, path: str = path) -> int:
            # Not mode=ro: a WAL database whose server left no -shm file cannot be opened read-only (SQLite then
            # calls it malformed); it is read between runs, with no server on it.
            conn = sqlite3.connect(path)
            try:
                return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            finally:
                conn.close()

        def settle(path: str = path) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("ANALYZE")

        out.append(
            Database(
                "sqlite",
                label,
                target,
                ["--db-filename", path],
                lambda path=path: SqliteStore(path),  # type: ignore[misc]
                count,
                settle,
                [],
            )
        )
    return out


# ---------------------------------------------------------------------- filling
@dataclasses.dataclass
class Template:
    workflow_id: str
    run_id: str
    request_id: str
    status: int
    state: bytes
    db_version: int
    history: list[tuple[int, int, bytes]]  # (first event id, last event id, serialized History)
    visibility: VisibilityRow
    delete_task: bytes | None  # the run's DELETE_HISTORY timer, serialized


async def make_templates(server: TempyralServer, count: int) -> None:
    """`count` closed one_activity runs with ids tmpl-0000000000, ..."""
    client = await asyncio.wait_for(Client.connect(server.address), 30)
    tq = f"stored-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=tq, workflows=[OneActivity], activities=[step], **WORKER_OPTIONS):  # type: ignore[arg-type]
        await run_many([client], tq, count, 200, TEMPLATE_PREFIX, id_width=ID_WIDTH)


async def default_namespace_id(store: Store) -> str:
    for blob in await store.load_namespaces():
        record = NamespaceRecord.FromString(blob)
        if record.info.name == "default":
            return str(record.info.id)
    raise RuntimeError("no default namespace in the database")


async def load_templates(store: Store, namespace_id: str, shards: int, count: int) -> list[Template]:
    rows = await store.list_visibility(namespace_id, VisibilityQuery(page_size=count * 2 + 1000))
    delete_tasks: dict[str, bytes] = {}
    for shard in range(shards):
        for _, data in await store.load_tasks(shard, TaskCategory.TASK_CATEGORY_TIMER):
            task = Task.FromString(data)
            if task.type == TaskType.TASK_TYPE_DELETE_HISTORY:
                delete_tasks[task.run_id] = data
    templates = []
    for row in rows:
        if not row.workflow_id.startswith(TEMPLATE_PREFIX) or row.close_time is None:
            continue
        execution = await store.get_execution(namespace_id, row.workflow_id, row.run_id)
        current = await store.get_current(namespace_id, row.workflow_id)
        assert execution is not None and current is not None and current.run_id == row.run_id
        state = ExecutionState.FromString(execution.state)
        batches = []
        for blob in await store.read_history(namespace_id, row.run_id, 1, state.next_event_id):
            events = history_pb.History.FromString(blob).events
            batches.append((events[0].event_id, events[-1].event_id, blob))
        templates.append(
            Template(
                row.workflow_id,
                row.run_id,
                current.start_request_id,
                current.status,
                execution.state,
                execution.db_version,
                batches,
                dataclasses.replace(row, sort_values=()),
                delete_tasks.get(row.run_id),
            )
        )
    if len(templates) != count:
        raise RuntimeError(f"{len(templates)} closed template runs found, {count} expected")
    templates.sort(key=lambda t: t.workflow_id)  # clone i copies tmpl-(i % count)
    return templates


@dataclasses.dataclass
class Clone:
    workflow_id: str
    run_id: str
    request_id: str
    template: Template

    def swap(self, blob: bytes) -> bytes:
        """The template's ids replaced by the clone's, in place (the same lengths: protobuf lengths stay right)."""
        t = self.template
        blob = blob.replace(t.workflow_id.encode(), self.workflow_id.encode())
        blob = blob.replace(t.run_id.encode(), self.run_id.encode())
        if t.request_id and len(t.request_id) == len(self.request_id):
            blob = blob.replace(t.request_id.encode(), self.request_id.encode())
        return blob


def clone_of(index: int, templates: list[Template]) -> Clone:
    template = templates[index % len(templates)]
    workflow_id = f"{CLONE_PREFIX}{index:0{ID_WIDTH}d}"
    assert len(workflow_id) == len(template.workflow_id), (workflow_id, template.workflow_id)
    request_id = str(uuid.uuid4()) if len(template.request_id) == 36 else template.request_id
    return Clone(workflow_id, str(uuid.uuid4()), request_id, template)


class ShardFiller:
    """Writes clones into one shard under a range of its own, `batch` runs per transaction."""

    def __init__(self, store: Store, namespace_id: str, shard_id: int) -> None:
        self.store, self.namespace_id, self.shard_id = store, namespace_id, shard_id
        self.range_id = 0
        self.next_task_id = self.max_task_id = 0

    async def acquire(self) -> None:
        self.range_id = await self.store.acquire_shard(self.shard_id, FILL_OWNER)
        self.next_task_id, self.max_task_id = self.range_id << RANGE_BITS, (self.range_id + 1) << RANGE_BITS

    async def task_id(self) -> int:
        if self.next_task_id >= self.max_task_id:
            self.range_id = await self.store.extend_shard_range(self.shard_id, self.range_id)
            self.next_task_id, self.max_task_id = self.range_id << RANGE_BITS, (self.range_id + 1) << RANGE_BITS
        self.next_task_id += 1
        return self.next_task_id - 1

    async def write(self, clones: list[Clone]) -> None:
        ns = self.namespace_id
        txn = Transaction(self.shard_id, self.range_id)
        for c in clones:
            t = c.template
            state = c.swap(t.state)
            parsed = ExecutionState.FromString(state)
            if parsed.workflow_id != c.workflow_id or parsed.run_id != c.run_id:
                raise RuntimeError(f"ids not swapped in the state of {c.workflow_id}")
            txn.executions.append(ExecutionWrite(ns, c.workflow_id, c.run_id, state, t.db_version, 0))
            txn.current.append(CurrentWrite(ns, c.workflow_id, c.run_id, t.status, c.request_id, None))
            txn.history.extend(HistoryWrite(ns, c.run_id, first, last, c.swap(blob)) for first, last, blob in t.history)
            if t.delete_task is not None:
                task = Task.FromString(c.swap(t.delete_task))
                task.shard_id = self.shard_id
                task.task_id = await self.task_id()
                txn.tasks.append(
                    TaskRow(task.category, task.task_id, ts_ns(task.visibility_time), task.SerializeToString())
                )
            v = t.visibility
            txn.visibility.append(
                dataclasses.replace(
                    v,
                    workflow_id=c.workflow_id,
                    run_id=c.run_id,
                    root_workflow_id=c.workflow_id if v.root_workflow_id == t.workflow_id else v.root_workflow_id,
                    root_run_id=c.run_id if v.root_run_id == t.run_id else v.root_run_id,
                )
            )
        txn.range_id = self.range_id
        await self.store.commit(txn)

    async def release(self) -> None:
        await self.store.release_shard(self.shard_id, self.range_id)


async def fill(store: Store, templates_count: int, clones: int, batch: int) -> dict[str, Any]:
    """Add `clones` closed runs cloned from the templates; returns what it did and how long it took."""
    t0 = time.monotonic()
    shards = int(await store.get_metadata("history_shards") or "0")
    namespace_id = await default_namespace_id(store)
    templates = await load_templates(store, namespace_id, shards, templates_count)
    by_shard: dict[int, list[int]] = {s: [] for s in range(shards)}
    for index in range(clones):
        by_shard[shard_id_for(namespace_id, f"{CLONE_PREFIX}{index:0{ID_WIDTH}d}", shards)].append(index)
    done = 0
    last_report = time.monotonic()

    async def one_shard(shard_id: int, indexes: list[int]) -> None:
        nonlocal done, last_report
        filler = ShardFiller(store, namespace_id, shard_id)
        await filler.acquire()
        try:
            for start in range(0, len(indexes), batch):
                chunk = indexes[start : start + batch]
                await filler.write([clone_of(i, templates) for i in chunk])
                done += len(chunk)
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    print(f"  filled {done} of {clones} ({time.monotonic() - t0:.0f} s)", flush=True)
        finally:
            await filler.release()

    await asyncio.gather(*(one_shard(s, idx) for s, idx in by_shard.items() if idx))
    return {
        "clones": clones,
        "templates": len(templates),
        "per_shard": {s: len(idx) for s, idx in by_shard.items()},
        "fill_s": round(time.monotonic() - t0, 1),
    }


async def prepare(db: Database, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Templates through a real server, then clones through the Store API, then settle."""
    t0 = time.monotonic()
    server = TempyralServer(db.server_args, args.shards, workdir / f"{db.kind}-{db.label}-templates.log")
    try:
        server.start()
        templates = min(args.templates, db.target)
        await make_templates(server, templates)
    finally:
        server.stop()
    templates_s = time.monotonic() - t0
    store = db.open_store()
    await store.open()
    try:
        done = await fill(store, templates, db.target - templates, args.batch)
    finally:
        await store.close()
    t1 = time.monotonic()
    await asyncio.to_thread(db.settle)
    done.update(templates_s=round(templates_s, 1), settle_s=round(time.monotonic() - t1, 1))
    done.update(
        stored=await count(db), task_rows=await count(db, "tasks"), visibility_rows=await count(db, "visibility")
    )
    done["check"] = await check_clones(db, args, workdir, templates, db.target - templates)
    return done


async def check_clones(db: Database, args: argparse.Namespace, workdir: Path, templates: int, clones: int) -> str:
    """Through a server and the SDK, that clones look like the closed runs they copy: a few of them described,
    their histories read and their results fetched, and the namespace's count of completed runs."""
    server = TempyralServer(db.server_args, args.shards, workdir / f"{db.kind}-{db.label}-check.log")
    try:
        await asyncio.to_thread(server.start)
        client = await asyncio.wait_for(Client.connect(server.address), 30)
        checked = sorted({0, clones // 2, clones - 1}) if clones else []
        for index in checked:
            # clone i copies template i % templates, which ran OneActivity with its own index as input
            workflow_id = f"{CLONE_PREFIX}{index:0{ID_WIDTH}d}"
            handle = client.get_workflow_handle(workflow_id)
            described = await handle.describe()
            if described.status is None or described.status.name != "COMPLETED":
                raise RuntimeError(f"clone {workflow_id} is {described.status}")
            events = [e async for e in handle.fetch_history_events()]
            if described.history_length != len(events) or events[0].event_id != 1:
                raise RuntimeError(
                    f"clone {workflow_id}: {len(events)} events read, {described.history_length} described"
                )
            result = await handle.result()
            if result != index % templates + 1:
                raise RuntimeError(f"clone {workflow_id} returned {result}, not {index % templates + 1}")
        closed = await client.count_workflows("ExecutionStatus = 'Completed'")
        if closed.count != templates + clones:
            raise RuntimeError(f"{closed.count} completed runs listed, {templates + clones} expected")
        return f"ok: {len(checked)} clones described, histories and results read; {closed.count} completed runs counted"
    finally:
        await asyncio.to_thread(server.stop)


async def count(db: Database, table: str = "executions") -> int:
    return await asyncio.to_thread(db.count_rows, table)


# ---------------------------------------------------------------------- measuring
async def workload(address: str, n: int) -> dict[str, Any]:
    """../shared/bench/workloads.py ADDRESS one_activity N, as compare.py runs it: its JSON line."""
    proc = await asyncio.create_subprocess_exec(
        python(),
        str(WORKLOADS_PY),
        address,
        "one_activity",
        str(n),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WORKLOAD_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"workloads.py one_activity {n}: not done in {WORKLOAD_TIMEOUT_S:.0f} s") from None
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"workloads.py one_activity {n} failed: {(err or out).decode()[-800:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def measure(db: Database, args: argparse.Namespace, workdir: Path, index: int) -> dict[str, Any]:
    stored = await count(db)
    server = TempyralServer(db.server_args, args.shards, workdir / f"{db.kind}-{db.label}-run{index}.log")
    try:
        start_s = await asyncio.to_thread(server.start)
        assert server.proc is not None
        warm = await workload(server.address, args.warmup)
        window = TreeCpu([server.proc.pid, *db.extra_roots])
        result = await workload(server.address, args.n)
        result.update(window.result(args.n))
        result["tempyral_rss_mib"] = rss_mib([server.proc.pid])
    finally:
        await asyncio.to_thread(server.stop)
    result.update(db=db.kind, size=db.label, stored=stored, start_s=round(start_s, 2), warmup_per_s=warm.get("per_s"))
    problems = [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if " ERROR " in line or line.startswith("Traceback")
    ]
    if problems:
        result.update(server_errors=len(problems), first_error=problems[0][:300])
    return result


def summary(results: list[dict[str, Any]]) -> str:
    metrics = [
        ("per_s", "per_s"),
        ("p50_ms", "p50_ms"),
        ("server_cpu_ms_per_wf", "server"),
        ("tempyral_cpu_ms_per_wf", "tempyral"),
        ("postgres_cpu_ms_per_wf", "postgres"),
        ("start_s", "start_s"),
        ("tempyral_rss_mib", "rss_mib"),
        ("other_processes_cores", "others"),
    ]
    lines = ["", f"{'db':<11} {'size':<6} {'stored':>8} " + " ".join(f"{title:>9}" for _, title in metrics)]
    for kind in dict.fromkeys(r["db"] for r in results):
        medians: dict[str, dict[str, float]] = {}
        for size in ("small", "large"):
            runs = [r for r in results if r["db"] == kind and r["size"] == size]
            if not runs:
                continue
            medians[size] = {k: statistics.median(float(r[k]) for r in runs) for k, _ in metrics}
            stored = statistics.median(r["stored"] for r in runs)
            lines.append(
                f"{kind:<11} {size:<6} {stored:>8.0f} " + " ".join(f"{medians[size][k]:>9.2f}" for k, _ in metrics)
            )
        if len(medians) == 2:
            small, large = medians["small"], medians["large"]
            ratio = large["per_s"] / small["per_s"] if small["per_s"] else float("nan")
            cpu = large["server_cpu_ms_per_wf"] / small["server_cpu_ms_per_wf"] if small["server_cpu_ms_per_wf"] else 0
            verdict = "within 20%" if ratio >= 0.8 else "NOT within 20%"
            lines.append(f"{kind:<11} large/small: per_s {ratio:.2f} ({verdict}), server CPU per workflow {cpu:.2f}")
    rounds = max(r["round"] for r in results)
    lines.append(f"(medians over {rounds} round(s); CPU in ms per workflow; stored: executions when the run began)")
    return "\n".join(lines)


async def main(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    print(f"work directory (databases, server logs): {workdir}", flush=True)
    results: list[dict[str, Any]] = []
    for kind in args.db.split(","):
        if kind == "postgresql":
            dbs = await asyncio.to_thread(postgres_databases, args)
        elif kind == "sqlite":
            dbs = sqlite_databases(args, workdir)
        else:
            raise SystemExit(f"unknown --db {kind}: postgresql or sqlite")
        for db in dbs:
            prepared = await prepare(db, args, workdir)
            print(f"{kind} {db.label}: {json.dumps(prepared)}", flush=True)
        for r in range(args.rounds):
            for db in dbs:
                result = await measure(db, args, workdir, r + 1)
                result["round"] = r + 1
                results.append(result)
                print(f"round {r + 1} {kind} {db.label}: {json.dumps(result)}", flush=True)
        for pg in POSTGRES:
            await asyncio.to_thread(pg.stop)
        POSTGRES.clear()
    print(summary(results))
    return results


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="postgresql", help="postgresql, sqlite, or both comma-separated")
    ap.add_argument("--small", type=int, default=1000, help="stored executions of the small database")
    ap.add_argument("--large", type=int, default=100_000, help="stored executions of the large database")
    ap.add_argument("--templates", type=int, default=100, help="real workflows run to clone from")
    ap.add_argument("--batch", type=int, default=200, help="clones per transaction while filling")
    ap.add_argument("--n", type=int, default=600, help="workflows per measured run")
    ap.add_argument("--warmup", type=int, default=100, help="workflows before each measured run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4, help="history shards of every database")
    ap.add_argument("--no-durable", action="store_true", help="PostgreSQL without fsync and synchronous_commit")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (SQLite files, server logs)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="bound of the whole run, seconds")
    ap.add_argument("--out", help="write every run's figures here as JSON")
    args = ap.parse_args()
    if not 0 < args.templates <= args.small <= args.large:
        ap.error("need 0 < --templates <= --small <= --large")
    return args


def run() -> int:
    args = parse_args()
    if not WORKLOADS_PY.exists():
        print(f"the shared workloads are not at {WORKLOADS_PY}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="tempyral-bench-stored-"))
    ok = False
    try:
        results = asyncio.run(asyncio.wait_for(main(args, workdir), args.timeout))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
        ok = True
        return 0
    except TimeoutError:
        print(f"stored.py: not done in {args.timeout:.0f} s", file=sys.stderr)
        return 1
    finally:
        for proc in RUNNING:
            stop_group(proc)
        for pg in POSTGRES:
            pg.stop()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            # the SQLite databases are large: the logs are what a failed run needs
            for db_file in workdir.glob("*.db*"):
                if not args.keep:
                    db_file.unlink(missing_ok=True)
            print(f"server logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    status = run()
    sys.stdout.flush()
    # the SDK's native runtime can crash during interpreter teardown; the results are already out
    os._exit(status)
