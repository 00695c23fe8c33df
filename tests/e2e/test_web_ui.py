"""The official Temporal Web UI served by tempyral, driven in headless Chromium: each page shows the data the SDK
wrote, and the UI's write actions (signal, cancel, terminate, reset, Nexus endpoint create and edit) reach the server.

The browser is Debian's `chromium` (scripts/test installs it when it runs as root), driven by the PyPI `playwright`
package; no browser is downloaded. Screenshots of every page go to $TEMPYRAL_TEST_ARTIFACTS (default
<repo>/test-artifacts/ui/). Every API answer with status >= 400 is recorded and shown in assertion messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    GetNexusEndpointRequest,
    ListNexusEndpointsRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, GetSystemInfoRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowHandle,
)
from temporalio.worker import Worker

from tests.e2e.ui_workflows import (
    GreetingWorkflow,
    ParentWorkflow,
    WaitingWorkflow,
    compose_greeting,
    heartbeat_until_cancelled,
)
from tests.support.ci import cannot_run, in_ci
from tests.support.servers import REPO, ServerProcess, tempyral

if not in_ci():  # in CI a missing playwright fails the collection instead
    pytest.importorskip(
        "playwright.async_api", reason="the PyPI package playwright is not installed (pip install -e '.[test]')"
    )
from playwright.async_api import Browser, Locator, Page, Response, async_playwright, expect

CHROMIUM = os.environ.get("TEMPYRAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("TEMPYRAL_TEST_ARTIFACTS") or REPO / "test-artifacts" / "ui")
WAIT_MS = 20_000  # every wait for the UI is bounded by this
TASK_QUEUE = "ui-e2e-tq"
NEXUS_TASK_QUEUE = "ui-e2e-nexus-tq"

NO_CHROMIUM = (
    ""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)
    else f"no Chromium at {CHROMIUM}: install Debian's chromium package (scripts/test does when it runs as root with "
    "apt-get; its log is /tmp/tempyral-chromium-install.log; README.md says how without root) or point "
    "TEMPYRAL_CHROMIUM at a Chromium binary"
)


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """First of all: without a browser every test here skips, or fails in CI."""
    if NO_CHROMIUM:
        cannot_run(NO_CHROMIUM)


@dataclass
class UiEnv:
    server: ServerProcess
    client: Client
    base: str
    run_ids: dict[str, str] = field(default_factory=dict)
    nexus_endpoint_id: str = ""

    def handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id, run_id=run_id)


# Workflow ids (the server is this module's own, so they need no random part).
IDS = {name: f"ui-{name}" for name in ("greeting", "parent", "waiting", "cancel", "terminate", "reset")}


@pytest.fixture(scope="module")
def ui_server() -> Iterator[ServerProcess]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc = tempyral(extra=["--namespace", "ui-other"]).start()
    announced = f"Web UI at http://127.0.0.1:{proc.ui_port}"
    deadline = time.monotonic() + WAIT_MS / 1000
    while announced not in proc.log_tail(20_000) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert announced in proc.log_tail(20_000), f"tempyral serves no Web UI; its log:\n{proc.log_tail()}"
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def env(ui_server: ServerProcess) -> AsyncIterator[UiEnv]:
    client = await Client.connect(ui_server.address)
    ui = UiEnv(ui_server, client, f"http://127.0.0.1:{ui_server.ui_port}")
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[GreetingWorkflow, WaitingWorkflow, ParentWorkflow],
        activities=[compose_greeting, heartbeat_until_cancelled],
    ):
        result = await client.execute_workflow(
            GreetingWorkflow.run, "UI tester", id=IDS["greeting"], task_queue=TASK_QUEUE
        )
        assert result == "Hello, UI tester!"
        await client.execute_workflow(ParentWorkflow.run, "child tester", id=IDS["parent"], task_queue=TASK_QUEUE)
        for name in ("waiting", "cancel", "terminate", "reset"):
            handle = await client.start_workflow(WaitingWorkflow.run, name, id=IDS[name], task_queue=TASK_QUEUE)
            assert handle.first_execution_run_id is not None
            ui.run_ids[name] = handle.first_execution_run_id
        # Each waiting workflow has its activity started (pending, heartbeating) before the UI looks at it.
        for name in ("waiting", "cancel", "terminate", "reset"):

            async def activity_started(workflow_id: str = IDS[name]) -> bool:
                return await _activity_started(ui.handle(workflow_id))

            await _eventually(activity_started, f"activity of {IDS[name]} started")
        created = await client.operator_service.create_nexus_endpoint(
            CreateNexusEndpointRequest(
                spec=EndpointSpec(
                    name="ui-endpoint",
                    description=_json_payload("The endpoint the UI test made"),
                    target=EndpointTarget(
                        worker=EndpointTarget.Worker(namespace="default", task_queue=NEXUS_TASK_QUEUE)
                    ),
                )
            )
        )
        ui.nexus_endpoint_id = created.endpoint.id
        yield ui


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


@pytest_asyncio.fixture
async def page(browser: Browser, env: UiEnv) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=env.base, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    failures: list[str] = []

    def record(response: Response) -> None:
        if response.status >= 400:
            failures.append(f"{response.status} {response.request.method} {response.url}")

    page.on("response", record)
    page.failures = failures  # type: ignore[attr-defined]
    yield page
    await context.close()


# ---------------------------------------------------------------------- helpers
def _json_payload(value: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


async def _activity_started(handle: WorkflowHandle[Any, Any]) -> bool:
    description = await handle.describe()
    return any(p.last_started_time.seconds for p in description.raw_description.pending_activities)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.2)


def failing_api_calls(page: Page) -> list[str]:
    failures: list[str] = page.failures  # type: ignore[attr-defined]
    return list(failures)


async def shows(page: Page, target: str | re.Pattern[str] | Locator, what: str | None = None) -> None:
    """Wait (bounded) until the page shows `target`: a text, a pattern or a locator. The failure message tells
    which API calls failed and what the page showed instead."""
    locator = page.get_by_text(target) if isinstance(target, (str, re.Pattern)) else target
    locator = locator.filter(visible=True).first
    try:
        await expect(locator).to_be_visible(timeout=WAIT_MS)
    except AssertionError as err:
        text = re.sub(r"\s+", " ", await page.locator("body").inner_text())[:2000]
        raise AssertionError(
            f"{what or target!r} not shown on {page.url}\nfailing API calls: {failing_api_calls(page)}\n"
            f"page text: {text}"
        ) from err


def no_failing_api_calls(page: Page) -> None:
    unexpected = failing_api_calls(page)
    assert not unexpected, f"API calls failed on {page.url}: {unexpected}"


async def screenshot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def open_workflow(page: Page, workflow_id: str, tab: str | None = None) -> None:
    await page.goto(f"/namespaces/default/workflows/{workflow_id}")
    await shows(page, page.get_by_role("heading", name=workflow_id), f"the heading of {workflow_id}")
    if tab:
        await page.get_by_role("tab", name=re.compile(f"^{tab}")).click()


async def more_actions(page: Page, item: str) -> Locator:
    """Open More Actions, choose `item`, and return the dialog it opens."""
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name=item, exact=True).click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=re.compile(item.split()[-1])))
    await shows(page, dialog, f"the {item} dialog")
    return dialog


async def history_events(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return list((await handle.fetch_history()).events)


async def status_of(handle: WorkflowHandle[Any, Any]) -> int:
    return int((await handle.describe()).raw_description.workflow_execution_info.status)


async def has_status(handle: WorkflowHandle[Any, Any], status: int) -> bool:
    return await status_of(handle) == status


# ---------------------------------------------------------------------- namespaces
async def test_namespaces_list_and_detail(page: Page, env: UiEnv) -> None:
    await page.goto("/namespaces")
    await shows(page, page.get_by_role("heading", name="Namespaces"))
    await shows(page, page.get_by_role("link", name="ui-other", exact=True), "the namespace ui-other")
    await shows(page, page.get_by_role("link", name="default", exact=True), "the namespace default")
    await screenshot(page, "01-namespaces")

    await page.goto("/namespaces/default")
    await shows(page, "Namespace: default")
    await shows(page, "Retention Period")
    await shows(page, "1 day")
    await shows(page, "1.32.0", "the server version")
    await shows(page, "WorkflowId", "the search attributes")
    await screenshot(page, "02-namespace-default")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- workflows list
async def test_workflows_list_counts_and_filter(page: Page, env: UiEnv) -> None:
    await page.goto("/namespaces/default/workflows")
    await shows(page, "7 Workflows", "the workflow count")
    await shows(page, "4 RUNNING")
    await shows(page, "3 COMPLETED")
    for workflow_id in (*IDS.values(), f"{IDS['parent']}-child"):
        row = page.get_by_role("row").filter(has_text=workflow_id)
        await shows(page, row, f"the row of {workflow_id}")
    await shows(page, page.get_by_role("row").filter(has_text=IDS["greeting"]).filter(has_text="COMPLETED"))
    await shows(page, page.get_by_role("row").filter(has_text=IDS["waiting"]).filter(has_text="RUNNING"))
    await screenshot(page, "03-workflows")

    # A visibility query in the URL, as the UI writes it when a filter is applied.
    await page.goto("/namespaces/default/workflows?query=WorkflowType%3D%22GreetingWorkflow%22")
    await shows(page, "2 Workflows", "the count of GreetingWorkflow executions")
    await shows(page, page.get_by_role("row").filter(has_text=IDS["greeting"]))
    await shows(page, page.get_by_role("row").filter(has_text=f"{IDS['parent']}-child"))
    await expect(page.get_by_role("row").filter(has_text=IDS["waiting"])).to_have_count(0)
    await screenshot(page, "04-workflows-filtered-by-type")

    # The same kind of query typed into the UI's raw query box.
    await page.goto("/namespaces/default/workflows")
    await shows(page, "7 Workflows")
    await page.get_by_test_id("toggle-manual-query").click()
    box = page.get_by_placeholder("Enter a query")
    await shows(page, box, "the visibility query box")
    await box.fill('ExecutionStatus="Running"')
    await page.get_by_role("button", name="Search", exact=True).click()
    await shows(page, "4 Workflows", "the count of running executions")
    await expect(page.get_by_role("row").filter(has_text=IDS["greeting"])).to_have_count(0)
    await shows(page, page.get_by_role("row").filter(has_text=IDS["reset"]))
    assert "query=" in page.url
    await screenshot(page, "05-workflows-query-running")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- completed workflow
async def test_completed_workflow_detail(page: Page, env: UiEnv) -> None:
    await open_workflow(page, IDS["greeting"])
    await shows(page, "COMPLETED")
    await shows(page, '"UI tester"', "the decoded input")
    await shows(page, '"Hello, UI tester!"', "the decoded result")
    await shows(page, "GreetingWorkflow")
    await screenshot(page, "06-workflow-completed")

    await page.get_by_role("tab", name=re.compile("^Event History")).click()
    for event in (
        "Workflow Execution Started",
        "Workflow Task Completed",
        "Activity Task Scheduled",
        "Activity Task Completed",
        "Workflow Execution Completed",
    ):
        await shows(page, page.get_by_role("cell").filter(has_text=event), f"the event {event}")
    await shows(page, "compose_greeting", "the activity type")
    rows = page.get_by_role("row").filter(has=page.get_by_role("link", name=re.compile(r"^\s*\d+\s*$")))
    await expect(rows).to_have_count(11)
    await screenshot(page, "07-workflow-completed-history")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- running workflow
async def test_running_workflow_pending_activity_live_history_query_and_signal(page: Page, env: UiEnv) -> None:
    handle = env.handle(IDS["waiting"])
    await open_workflow(page, IDS["waiting"])
    await shows(page, "RUNNING")

    await page.get_by_role("tab", name=re.compile("^Pending Activities")).click()
    await shows(page, "heartbeat_until_cancelled", "the pending activity")
    await shows(page, "Last Heartbeat")
    await shows(page, '"waiting"', "the heartbeat details")
    await screenshot(page, "08-workflow-pending-activity")

    # The history page long-polls: a signal sent through the SDK appears without a reload.
    await page.get_by_role("tab", name=re.compile("^Event History")).click()
    await shows(page, page.get_by_role("cell").filter(has_text="Activity Task Scheduled"))
    signaled = page.get_by_role("cell").filter(has_text="Workflow Execution Signaled")
    await expect(signaled).to_have_count(0)
    url_before = page.url
    await handle.signal(WaitingWorkflow.add_note, "from the SDK")
    await shows(page, signaled, "the signal sent through the SDK, without a reload")
    await shows(page, page.get_by_role("row").filter(has=signaled).filter(has_text="add_note"), "the signal's name")
    assert page.url == url_before
    await screenshot(page, "09-workflow-history-live")

    # Queries tab: run the `status` query.
    await page.get_by_role("tab", name="Queries").click()
    await shows(page, page.get_by_role("button", name="Run Query"))
    await page.get_by_test_id("query-select-button").click()
    await page.get_by_role("option", name="status").click()
    await page.get_by_role("button", name="Run Query").click()
    await shows(page, "waiting with 1 notes: from the SDK", "the query's answer")
    await screenshot(page, "10-workflow-query")

    # Send a Signal from the UI.
    dialog = await more_actions(page, "Send a Signal")
    await dialog.get_by_test_id("signal-select-button").click()
    await dialog.get_by_role("option", name="add_note").click()
    editor = dialog.get_by_role("textbox", name="Data")
    await editor.click()
    await page.keyboard.type('"from the UI"')
    await screenshot(page, "11-workflow-signal-dialog")
    await dialog.get_by_role("button", name="Submit").click()
    await expect(dialog).to_be_hidden(timeout=WAIT_MS)

    async def signal_arrived() -> bool:
        return await handle.query(WaitingWorkflow.status) == "waiting with 2 notes: from the SDK, from the UI"

    await _eventually(signal_arrived, "the signal sent from the UI reached the workflow")
    events = await history_events(handle)
    signals = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in signals] == ["add_note", "add_note"]
    assert signals[-1].workflow_execution_signaled_event_attributes.input.payloads[0].data == b'"from the UI"'
    no_failing_api_calls(page)


async def test_cancel_from_the_ui(page: Page, env: UiEnv) -> None:
    handle = env.handle(IDS["cancel"])
    await open_workflow(page, IDS["cancel"])
    await page.get_by_role("button", name="Request Cancellation").click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name="Cancel Workflow"))
    await shows(page, dialog, "the cancel dialog")
    await dialog.get_by_role("button", name="Confirm").click()
    await _eventually(
        lambda: has_status(handle, WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED),
        f"{IDS['cancel']} canceled",
    )
    types = [e.event_type for e in await history_events(handle)]
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in types
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    await shows(page, page.get_by_text(re.compile(r"^\s*canceled\s*$", re.I)), "the canceled status")
    await screenshot(page, "12-workflow-canceled")
    no_failing_api_calls(page)


async def test_terminate_from_the_ui(page: Page, env: UiEnv) -> None:
    handle = env.handle(IDS["terminate"])
    await open_workflow(page, IDS["terminate"])
    dialog = await more_actions(page, "Terminate")
    await dialog.locator("#workflow-termination-reason").fill("terminated from the UI test")
    await dialog.get_by_role("button", name="Terminate").click()
    await _eventually(
        lambda: has_status(handle, WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED),
        f"{IDS['terminate']} terminated",
    )
    last = (await history_events(handle))[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert last.workflow_execution_terminated_event_attributes.reason == "terminated from the UI test"
    await shows(page, page.get_by_text(re.compile(r"^\s*terminated\s*$", re.I)), "the terminated status")
    await screenshot(page, "13-workflow-terminated")
    no_failing_api_calls(page)


async def test_reset_from_the_ui(page: Page, env: UiEnv) -> None:
    first_run = env.run_ids["reset"]
    await open_workflow(page, IDS["reset"])
    dialog = await more_actions(page, "Reset")
    await dialog.get_by_test_id("workflow-reset-event-id-select-button").click()
    await dialog.get_by_role("option", name=re.compile("WorkflowTaskCompleted")).first.click()
    await dialog.locator("#reset-reason").fill("reset from the UI test")
    await screenshot(page, "14-workflow-reset-dialog")
    await dialog.get_by_role("button", name="Confirm").click()

    async def new_run() -> bool:
        return (await env.handle(IDS["reset"]).describe()).run_id != first_run

    await _eventually(new_run, f"a new run of {IDS['reset']} after the reset")
    old = env.handle(IDS["reset"], first_run)
    assert await status_of(old) == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
    current = await env.handle(IDS["reset"]).describe()
    assert current.raw_description.workflow_execution_info.status == (
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    )
    events = await history_events(env.handle(IDS["reset"], current.run_id))
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed and "reset from the UI test" in failed[0].workflow_task_failed_event_attributes.failure.message
    # The workflow's page now shows the new run, with the reset in its history.
    await open_workflow(page, IDS["reset"], tab="Event History")
    await shows(page, current.run_id, "the new run's id")
    await shows(page, page.get_by_role("cell").filter(has_text="Workflow Task Failed"), "the reset point's failed task")
    await screenshot(page, "15-workflow-reset")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- parent and child
async def test_parent_shows_its_child(page: Page, env: UiEnv) -> None:
    await open_workflow(page, IDS["parent"], tab="Relationships")
    await shows(page, page.get_by_text(f"{IDS['parent']}-child", exact=True), "the child workflow")
    await shows(page, "Child Count")
    await screenshot(page, "16-workflow-relationships")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- Nexus endpoints
async def test_nexus_endpoints_list_detail_create_and_edit(page: Page, env: UiEnv) -> None:
    info = await env.client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.capabilities.nexus  # without it the UI hides its Nexus pages
    await page.goto("/nexus")
    await shows(page, page.get_by_role("heading", name="Nexus Endpoints"))
    await shows(page, page.get_by_role("link", name="ui-endpoint", exact=True), "the endpoint ui-endpoint")
    await screenshot(page, "17-nexus-endpoints")

    link = page.get_by_role("link", name="ui-endpoint", exact=True)
    await expect(link).to_have_attribute("href", f"/nexus/{env.nexus_endpoint_id}")
    await page.wait_for_load_state("networkidle")
    await link.click()
    await page.wait_for_url(f"**/nexus/{env.nexus_endpoint_id}", timeout=WAIT_MS)
    await shows(page, f"UUID: {env.nexus_endpoint_id}", "the endpoint's id")
    await shows(page, page.get_by_text("ui-endpoint", exact=True), "the endpoint's name")
    await shows(page, page.get_by_role("link", name="default", exact=True), "the target namespace")
    await shows(page, page.get_by_role("link", name=NEXUS_TASK_QUEUE), "the target task queue")
    description = page.frame_locator("iframe").first.get_by_text("The endpoint the UI test made")
    await shows(page, description, "the description rendered through /render")
    await screenshot(page, "18-nexus-endpoint-detail")

    # Create an endpoint from the UI's form.
    await page.goto("/nexus/create")
    await page.locator("#name").fill("ui-created-endpoint")
    await page.locator("#target-namespace").click()
    await page.locator("#target-namespace").fill("default")
    await page.get_by_role("option", name="default", exact=True).click()
    await page.locator("#task-queue").fill("ui-created-tq")
    await page.get_by_role("textbox").filter(has_not=page.locator("input")).last.click()
    await page.keyboard.type("Made in the browser")
    await screenshot(page, "19-nexus-create-form")
    await page.get_by_role("button", name="Create Nexus Endpoint").click()

    async def created() -> list[Any]:
        found = await env.client.operator_service.list_nexus_endpoints(
            ListNexusEndpointsRequest(name="ui-created-endpoint")
        )
        return list(found.endpoints)

    await _eventually(lambda: _truthy(created()), "the endpoint created from the UI")
    endpoint = (await created())[0]
    assert endpoint.spec.target.worker.namespace == "default"
    assert endpoint.spec.target.worker.task_queue == "ui-created-tq"
    assert b"Made in the browser" in endpoint.spec.description.data
    created_link = page.get_by_role("link", name="ui-created-endpoint", exact=True)
    await shows(page, created_link, "the created endpoint in the list")
    await screenshot(page, "20-nexus-created")

    # Edit it: a new task queue.
    await page.goto(f"/nexus/{endpoint.id}/edit")
    queue = page.locator("#task-queue")
    await expect(queue).to_have_value("ui-created-tq", timeout=WAIT_MS)
    await queue.fill("ui-edited-tq")
    await screenshot(page, "21-nexus-edit-form")
    await page.get_by_role("button", name=re.compile("^(Save|Update)")).click()

    async def edited() -> bool:
        got = await env.client.operator_service.get_nexus_endpoint(GetNexusEndpointRequest(id=endpoint.id))
        return bool(got.endpoint.spec.target.worker.task_queue == "ui-edited-tq")

    await _eventually(edited, "the endpoint edited from the UI")
    got = await env.client.operator_service.get_nexus_endpoint(GetNexusEndpointRequest(id=endpoint.id))
    assert got.endpoint.version == endpoint.version + 1
    assert got.endpoint.spec.name == "ui-created-endpoint"
    no_failing_api_calls(page)


async def _truthy(value: Awaitable[Any]) -> bool:
    return bool(await value)


# ---------------------------------------------------------------------- schedules
async def test_schedules_list_and_detail(page: Page, env: UiEnv) -> None:
    info = await env.client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.capabilities.supports_schedules  # without it the UI hides its schedule pages
    schedule_id = "ui-schedule"
    await env.client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                "WaitingWorkflow", "scheduled", id="ui-scheduled", task_queue=TASK_QUEUE
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )
    await page.goto("/namespaces/default/schedules")
    link = page.get_by_role("link", name=schedule_id, exact=True)
    await shows(page, link, "the schedule in the list")
    await screenshot(page, "22-schedules")
    await page.goto(f"/namespaces/default/schedules/{schedule_id}")
    await shows(page, page.get_by_role("heading", name=schedule_id), "the schedule's heading")
    await shows(page, "WaitingWorkflow", "the schedule's workflow type")
    await shows(page, "5 Upcoming Runs", "the next action times")
    await shows(page, "Every 1 hour(s)", "the spec")
    await screenshot(page, "23-schedule-detail")
    no_failing_api_calls(page)


# ---------------------------------------------------------------------- standalone activities
async def test_standalone_activities_list_and_detail(page: Page, env: UiEnv) -> None:
    """The UI's activity pages (shown for the namespace capability) list a standalone activity and describe it."""
    described = await env.client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert described.namespace_info.capabilities.standalone_activities
    activity_id = "ui-standalone-activity"
    handle = await env.client.start_activity(
        "ReportActivity", id=activity_id, task_queue="ui-nobody-polls", start_to_close_timeout=timedelta(minutes=5)
    )
    await page.goto("/namespaces/default/activities")
    await shows(page, page.get_by_role("link", name=activity_id, exact=True), "the activity in the list")
    await screenshot(page, "24-activities")
    await page.goto(f"/namespaces/default/activities/{activity_id}/{handle.run_id}")
    await shows(page, "ReportActivity", "the activity's type")
    await shows(page, "ui-nobody-polls", "the activity's task queue")
    await screenshot(page, "25-activity-detail")
    no_failing_api_calls(page)
    workflows = await env.client.count_workflows("TaskQueue = 'ui-nobody-polls'")
    assert workflows.count == 0  # never among the workflows
    await handle.terminate(reason="end of the UI test")
