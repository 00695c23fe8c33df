"""Nexus endpoint access policies managed with `tempyral nexus endpoint allow|deny|open|show` on a running server:
a caller namespace the policy refuses gets the refusal (workflow and standalone operations, and HTTP callers, whose
namespace is unknown), an allowed one is served, and a change applies at once, without a restart."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import aiohttp
import pytest
import pytest_asyncio
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest, GetNexusEndpointRequest
from temporalio.client import Client, NexusOperationFailureError, WorkflowFailureError
from temporalio.exceptions import NexusOperationError
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_access import endpoint_cli
from tests.support.nexus_services import Call, Caller, Greeter, GreeterHandler, GreeterWorkflow, Req
from tests.support.servers import ServerProcess, tempyral

NAMESPACES = ("handler-ns", "trusted-ns", "other-ns")


@pytest.fixture(scope="module")
def access_server() -> Iterator[ServerProcess]:
    proc = tempyral(extra=[arg for ns in NAMESPACES for arg in ("--namespace", ns)]).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def clients(access_server: ServerProcess) -> AsyncIterator[dict[str, Client]]:
    yield {ns: await Client.connect(access_server.address, namespace=ns) for ns in ("default", *NAMESPACES)}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _call(clients: dict[str, Client], namespace: str, caller_tq: str, endpoint: str) -> str:
    handle = await clients[namespace].start_workflow(
        Caller.run, Call(endpoint, "echo", namespace), id=_name("caller"), task_queue=caller_tq
    )
    result: str = await within(handle.result(), 30)
    return result


async def _refused(clients: dict[str, Client], namespace: str, caller_tq: str, endpoint: str) -> None:
    with pytest.raises(WorkflowFailureError) as info:
        await _call(clients, namespace, caller_tq, endpoint)
    operation_error = info.value.cause
    assert isinstance(operation_error, NexusOperationError)
    cause = operation_error.cause  # the operation's failure: the handler error
    assert f"caller namespace '{namespace}' is not allowed to use endpoint '{endpoint}'" in str(cause)
    assert type(cause).__name__ == "HandlerError"


async def _http_status(server: ServerProcess, endpoint_id: str) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{server.http_port}/nexus/endpoints/{endpoint_id}/services/Greeter/echo"
    async with aiohttp.ClientSession() as http, http.post(url, json={"name": "web"}) as resp:
        return resp.status, await resp.json()


async def test_policy_set_by_the_cli_refuses_and_allows_and_changes_without_restart(
    clients: dict[str, Client], access_server: ServerProcess
) -> None:
    handler_tq, caller_tq, endpoint = _name("h"), _name("c"), _name("ep")
    spec = EndpointSpec(
        name=endpoint,
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="handler-ns", task_queue=handler_tq)),
    )
    created = await clients["default"].operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    endpoint_id = created.endpoint.id
    handler = GreeterHandler()
    async with AsyncExitStack() as stack:
        handler_worker = Worker(
            clients["handler-ns"], task_queue=handler_tq, workflows=[GreeterWorkflow], nexus_service_handlers=[handler]
        )
        await stack.enter_async_context(handler_worker)
        for ns in ("trusted-ns", "other-ns"):
            await stack.enter_async_context(Worker(clients[ns], task_queue=caller_tq, workflows=[Caller]))

        out = endpoint_cli(access_server, "allow", "--name", endpoint, "--caller-namespace", "trusted-ns")
        assert out.returncode == 0, out.stderr
        assert f"endpoint {endpoint} ({endpoint_id}, version 2): callable by only trusted-ns" in out.stdout
        got = await clients["default"].operator_service.get_nexus_endpoint(GetNexusEndpointRequest(id=endpoint_id))
        assert got.endpoint.version == 2  # a policy change is a change of the endpoint

        await _refused(clients, "other-ns", caller_tq, endpoint)
        assert handler.calls == 0  # never reached the handler
        assert await _call(clients, "trusted-ns", caller_tq, endpoint) == "echo trusted-ns"
        # standalone operations: the namespace starting one is its caller
        for ns, allowed in (("other-ns", False), ("trusted-ns", True)):
            nexus = clients[ns].create_nexus_client(endpoint=endpoint, service=Greeter)
            handle = await nexus.start_operation(Greeter.echo, Req(ns), id=_name("op"))
            if allowed:
                assert (await within(handle.result(), 30)).message == f"echo {ns}"
            else:
                with pytest.raises(NexusOperationFailureError) as failed:
                    await within(handle.result(), 30)
                assert "is not allowed to use endpoint" in str(failed.value.cause)
        # an HTTP caller has no namespace we know: an endpoint with a policy refuses it
        status, body = await _http_status(access_server, endpoint_id)
        assert status == 403 and body["details"] == {"type": "UNAUTHORIZED"}, body

        out = endpoint_cli(access_server, "deny", "--name", endpoint, "--caller-namespace", "trusted-ns")
        assert out.returncode == 0, out.stderr
        assert "callable by only no namespace except trusted-ns" in out.stdout
        await _refused(clients, "trusted-ns", caller_tq, endpoint)

        out = endpoint_cli(access_server, "open", "--name", endpoint)
        assert out.returncode == 0, out.stderr
        assert "version 4): callable by every namespace" in out.stdout
        assert await _call(clients, "other-ns", caller_tq, endpoint) == "echo other-ns"
        status, body = await _http_status(access_server, endpoint_id)
        assert status == 200 and body == {"message": "echo web"}, body

        out = endpoint_cli(access_server, "deny", "--name", endpoint, "--caller-namespace", "other-ns", "-o", "json")
        assert out.returncode == 0, out.stderr
        shown = json.loads(endpoint_cli(access_server, "show", "--name", endpoint, "-o", "json").stdout)
        assert shown == json.loads(out.stdout)
        assert shown["endpointVersion"] == "5" and shown["access"] == {"denied": ["other-ns"]}
        await _refused(clients, "other-ns", caller_tq, endpoint)
        assert await _call(clients, "trusted-ns", caller_tq, endpoint) == "echo trusted-ns"


async def test_cli_errors(access_server: ServerProcess) -> None:
    out = endpoint_cli(access_server, "show", "--name", "no-such-endpoint")
    assert out.returncode == 1
    assert out.stderr.strip() == "tempyral: error: NOT_FOUND: Nexus endpoint with name `no-such-endpoint` not found"
    out = endpoint_cli(access_server, "allow", "--name", "no-such-endpoint")
    assert out.returncode == 2 and "--caller-namespace" in out.stderr  # argparse: the namespace is required
