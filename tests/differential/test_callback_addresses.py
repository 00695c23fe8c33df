"""Completion callbacks named in start requests, against the reference: with the same allowed
addresses on both servers (tests/conftest.py's CALLBACK_ADDRESSES), the same URLs are accepted
or refused with the same status and message, over gRPC and over the HTTP API (whatever the
Content-Type), and when the accepted runs close, each server calls exactly the accepted URLs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from temporalio.api.common.v1 import Callback, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.conftest import within
from tests.support.listener import Listener, listening
from tests.support.servers import ServerProcess


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening() as found:
        yield found


def nexus(url: str, header: dict[str, str] | None = None) -> Callback:
    return Callback(nexus=Callback.Nexus(url=url, header=header or {}))


def cases(listener: Listener, tag: str) -> list[tuple[str, list[Callback]]]:
    """(name, callbacks); the listener's paths name the server and the case."""

    def at(host: str, name: str, scheme: str = "http") -> str:
        return listener.url(host, f"/{tag}/{name}", scheme)

    return [
        ("allowed-loopback", [nexus(at("127.0.0.1", "allowed-loopback"), {"X-Token": "t"})]),
        ("allowed-with-userinfo", [nexus(at("user@127.0.0.1", "allowed-with-userinfo"))]),
        ("system", [nexus("temporal://system")]),
        ("system-and-allowed", [nexus("temporal://system"), nexus(at("127.0.0.1", "system-and-allowed"))]),
        ("https-only-rule", [nexus(at("localhost", "https-only-rule"))]),
        ("no-rule-ipv6-loopback", [nexus(at("[::1]", "no-rule-ipv6-loopback"))]),
        ("no-rule-lookalike", [nexus(f"http://127.0.0.1.example.com:{listener.port}/{tag}/x")]),
        ("no-rule-metadata", [nexus("http://169.254.169.254/latest/meta-data/")]),
        ("no-rule-after-allowed", [nexus(at("127.0.0.1", "never")), nexus("http://10.0.0.1/x")]),
        ("scheme", [nexus("ftp://127.0.0.1/x")]),
        ("system-with-path", [nexus("temporal://system/x")]),
        ("empty-url", [nexus("")]),
        ("missing-host", [nexus("http:///x")]),
        ("opaque", [nexus("http:127.0.0.1")]),
        ("bad-ipv6", [nexus("http://[::1")]),
        ("bad-port", [nexus("http://127.0.0.1:x/")]),
        ("space-in-host", [nexus("http://a b/")]),
        ("bad-escape", [nexus("http://a%zz/")]),
        ("control-character", [nexus("http://a/\x7f")]),
        ("long-url", [nexus("temporal://system" + "x" * 1000)]),
        ("big-header", [nexus("temporal://system", {"h": "x" * 8200})]),
        ("too-many", [nexus("temporal://system")] * 2001),
        ("no-variant", [Callback()]),
        ("internal-variant", [Callback(internal=Callback.Internal(data=b"x"))]),
    ]


async def _start_all(server: ServerProcess, listener: Listener, tag: str) -> tuple[list[str], list[str]]:
    """Each case's answer, and the workflow ids of those that started."""
    client = await Client.connect(server.address)
    answers, started = [], []
    for name, callbacks in cases(listener, tag):
        workflow_id = f"cb-{name}-{uuid.uuid4().hex[:8]}"
        request = StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="NoSuchWorkflow"),
            task_queue=TaskQueue(name=f"cb-{uuid.uuid4().hex}"),
            request_id=str(uuid.uuid4()),
            completion_callbacks=callbacks,
        )
        try:
            await client.workflow_service.start_workflow_execution(request)
        except RPCError as err:
            answers.append(f"{name}: {err.status.name} {err.message.replace(tag, '<tag>')}")
            continue
        answers.append(f"{name}: started")
        started.append(workflow_id)
        if name == "allowed-loopback":  # stored with the header keys lowercased, as the reference keeps them
            described = await client.get_workflow_handle(workflow_id).describe()
            header = described.raw_description.callbacks[0].callback.nexus.header
            answers.append(f"{name}: header {dict(header)}")
    # Closing the runs fires their callbacks: only the accepted URLs may be called.
    for workflow_id in started:
        await client.get_workflow_handle(workflow_id).terminate()
    return answers, started


async def _paths_called(listener: Listener, tag: str, expected: int) -> list[str]:
    await within(listener.wait_for(f"/{tag}/", expected), 30)
    await asyncio.sleep(0.5)  # room for a call that should not come
    return sorted(p.replace(tag, "<tag>") for p in listener.paths if p.startswith(f"/{tag}/"))


async def test_completion_callbacks_are_accepted_and_refused_as_on_the_reference(
    reference_server: ServerProcess, server: ServerProcess, listener: Listener
) -> None:
    ref_answers, _ = await _start_all(reference_server, listener, "ref")
    our_answers, _ = await _start_all(server, listener, "ours")
    assert our_answers == ref_answers
    assert "https-only-rule: INVALID_ARGUMENT invalid url: callback address does not allow insecure" in "\n".join(
        our_answers
    )

    expected = ["/<tag>/allowed-loopback", "/<tag>/allowed-with-userinfo", "/<tag>/system-and-allowed"]
    assert await _paths_called(listener, "ref", len(expected)) == expected
    assert await _paths_called(listener, "ours", len(expected)) == expected


async def _http_start(server: ServerProcess, url: str, content_type: str | None) -> tuple[int, object]:
    body = {
        "workflowType": {"name": "NoSuchWorkflow"},
        "taskQueue": {"name": "cb-http"},
        "completionCallbacks": [{"nexus": {"url": url}}],
    }
    workflow_id = f"cb-http-{uuid.uuid4().hex}"
    path = f"http://127.0.0.1:{server.http_port}/api/v1/namespaces/default/workflows/{workflow_id}"
    headers = {"Content-Type": content_type} if content_type else {}
    async with aiohttp.ClientSession() as session, session.post(path, data=json.dumps(body), headers=headers) as resp:
        answer = await resp.json(content_type=None)  # the reference's JSON comes as Content-Type `*`
        return resp.status, answer if resp.status != 200 else "started"


async def test_the_http_api_refuses_the_same_callbacks_whatever_the_content_type(
    reference_server: ServerProcess, server: ServerProcess, listener: Listener
) -> None:
    # text/plain and form bodies are "simple" requests a web page can send without a CORS preflight:
    # the reference reads them as JSON all the same, and so the allow-list is what keeps them out.
    for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded", None):
        for url in (listener.url("localhost", "/x"), "http://10.0.0.1/x", "temporal://system"):
            reference = await _http_start(reference_server, url, content_type)
            ours = await _http_start(server, url, content_type)
            assert ours == reference, (content_type, url)
    assert await _http_start(server, listener.url("localhost", "/x"), "text/plain") == (
        400,
        {
            "code": 3,
            "message": f"invalid url: callback address does not allow insecure connections: http://localhost:{listener.port}/x",
        },
    )
    assert listener.paths == []
