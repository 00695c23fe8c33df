"""The Nexus endpoint registry against the reference: the same sequence of create, get, update,
list and delete calls (good and bad) gives the same answers on both servers, ids and times
aside."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.nexus.v1 import Endpoint, EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    DeleteNexusEndpointRequest,
    GetNexusEndpointRequest,
    ListNexusEndpointsRequest,
    UpdateNexusEndpointRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.servers import ServerProcess

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MISSING_ID = "00000000-0000-0000-0000-000000000001"
TOKEN_START = b'{"LastID":'


def worker(namespace: str = "default", task_queue: str = "nexus-q") -> EndpointTarget:
    return EndpointTarget(worker=EndpointTarget.Worker(namespace=namespace, task_queue=task_queue))


def external(url: str) -> EndpointTarget:
    return EndpointTarget(external=EndpointTarget.External(url=url))


def _endpoint_shape(endpoint: Endpoint) -> str:
    """The endpoint with its id and times reduced to whether they are there."""
    copy = Endpoint()
    copy.CopyFrom(endpoint)
    has = [name for name in ("created_time", "last_modified_time") if copy.HasField(name)]
    copy.ClearField("created_time")
    copy.ClearField("last_modified_time")
    text = UUID.sub("<id>", str(copy).replace("\n", " "))
    return f"{text} times={has}"


def _shape(response: Message) -> str:
    endpoints = getattr(response, "endpoints", None)
    if endpoints is not None:
        token = bytes(response.next_page_token)  # type: ignore[attr-defined]
        shown = [_endpoint_shape(e) for e in endpoints]
        keyset_token = token.startswith(TOKEN_START)
        return f"{len(shown)} endpoints {sorted(shown)} token={bool(token)} keyset={keyset_token}"
    if "endpoint" in response.DESCRIPTOR.fields_by_name and response.HasField("endpoint"):
        return _endpoint_shape(response.endpoint)  # type: ignore[attr-defined]
    return "ok"


class Session:
    """One server's run of the script: remembers the ids it created under the script's names."""

    def __init__(self, client: Client, suffix: str) -> None:
        self.ops = client.operator_service
        self.suffix = suffix
        self.ids: dict[str, str] = {}

    def name(self, base: str) -> str:
        return f"{base}-{self.suffix}"

    async def call(self, method: Callable[[Any], Awaitable[Message]], request: Message, keep: str = "") -> str:
        try:
            response = await method(request)
        except RPCError as err:
            details = [d.TypeName() for d in err.grpc_status.details] if err.grpc_status else []
            message = UUID.sub("<id>", err.message).replace(self.suffix, "<suffix>")
            return f"error {err.status.name}: {message} {details}"
        if keep:
            self.ids[keep] = response.endpoint.id  # type: ignore[attr-defined]
        return _shape(response).replace(self.suffix, "<suffix>")


async def _script(address: str, suffix: str) -> list[str]:
    s = Session(await Client.connect(address), suffix)
    o = s.ops
    description = Payload(metadata={"encoding": b"json/plain"}, data=b'"the billing service"')
    out = [
        await s.call(
            o.create_nexus_endpoint,
            CreateNexusEndpointRequest(
                spec=EndpointSpec(name=s.name("billing"), target=worker(), description=description)
            ),
            keep="billing",
        ),
        await s.call(
            o.create_nexus_endpoint,
            CreateNexusEndpointRequest(
                spec=EndpointSpec(name=s.name("remote"), target=external("http://127.0.0.1:9/x"))
            ),
            keep="remote",
        ),
    ]
    bad_specs = [
        EndpointSpec(name=s.name("billing"), target=worker()),  # the name is taken
        EndpointSpec(name="1-starts-with-a-digit", target=worker()),
        EndpointSpec(name="ends-with-dash-", target=worker()),
        EndpointSpec(name="", target=worker()),
        EndpointSpec(name="x" * 201, target=worker()),
        EndpointSpec(name=s.name("no-target")),
        EndpointSpec(name=s.name("ns"), target=worker(namespace="no-such-namespace")),
        EndpointSpec(name=s.name("ns"), target=worker(namespace="")),
        EndpointSpec(name=s.name("tq"), target=worker(task_queue="")),
        EndpointSpec(name=s.name("tq"), target=worker(task_queue="/_sys/reserved")),
        EndpointSpec(name="", target=worker(namespace="")),  # several issues at once
        EndpointSpec(name=s.name("url"), target=external("")),
        EndpointSpec(name=s.name("url"), target=external("ftp://127.0.0.1/x")),
        EndpointSpec(
            name=s.name("big"),
            target=worker(),
            description=Payload(metadata={"encoding": b"json/plain"}, data=b"x" * 20_001),
        ),
    ]
    for spec in bad_specs:
        out.append(await s.call(o.create_nexus_endpoint, CreateNexusEndpointRequest(spec=spec)))

    billing = s.ids["billing"]
    out += [
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id=billing)),
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id="")),
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id="not-a-uuid")),
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id=MISSING_ID)),
        # a stale version, then the right one, then a missing endpoint
        await s.call(
            o.update_nexus_endpoint,
            UpdateNexusEndpointRequest(
                id=billing, version=7, spec=EndpointSpec(name=s.name("billing"), target=worker())
            ),
        ),
        await s.call(
            o.update_nexus_endpoint,
            UpdateNexusEndpointRequest(
                id=billing, version=1, spec=EndpointSpec(name=s.name("billing2"), target=worker(task_queue="other-q"))
            ),
        ),
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id=billing)),
        await s.call(
            o.update_nexus_endpoint,
            UpdateNexusEndpointRequest(
                id=billing, version=1, spec=EndpointSpec(name=s.name("billing3"), target=worker())
            ),
        ),
        await s.call(
            o.update_nexus_endpoint,
            UpdateNexusEndpointRequest(
                id=MISSING_ID, version=1, spec=EndpointSpec(name=s.name("gone"), target=worker())
            ),
        ),
        await s.call(
            o.update_nexus_endpoint,
            UpdateNexusEndpointRequest(id=billing, version=2, spec=EndpointSpec(name="", target=worker())),
        ),
        # listing: by name, bad page sizes and tokens
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(name=s.name("billing2"))),
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(name=s.name("billing"))),
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(page_size=-1)),
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(page_size=1001)),
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(page_size=1, next_page_token=b"garbage")),
        await s.call(o.list_nexus_endpoints, ListNexusEndpointsRequest(next_page_token=b"[" * 100_000)),
        # deleting: the version must be positive, not current; a second delete finds nothing
        await s.call(o.delete_nexus_endpoint, DeleteNexusEndpointRequest(id=billing, version=0)),
        await s.call(o.delete_nexus_endpoint, DeleteNexusEndpointRequest(id="bad", version=0)),
        await s.call(o.delete_nexus_endpoint, DeleteNexusEndpointRequest(id=billing, version=9)),
        await s.call(o.delete_nexus_endpoint, DeleteNexusEndpointRequest(id=billing, version=2)),
        await s.call(o.get_nexus_endpoint, GetNexusEndpointRequest(id=billing)),
        await s.call(o.delete_nexus_endpoint, DeleteNexusEndpointRequest(id=s.ids["remote"], version=1)),
    ]
    return out


async def test_endpoint_registry_answers_like_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    suffix = uuid.uuid4().hex[:8]
    reference = await _script(reference_server.address, suffix)
    ours = await _script(server.address, suffix)
    assert ours == reference


async def _all_pages(address: str, names: set[str], page_size: int) -> list[str]:
    ops = (await Client.connect(address)).operator_service
    seen: list[str] = []
    token = b""
    for _ in range(100):  # bounded: a registry that never ends its pages fails the test
        page = await ops.list_nexus_endpoints(ListNexusEndpointsRequest(page_size=page_size, next_page_token=token))
        seen += [e.spec.name for e in page.endpoints if e.spec.name in names]
        token = page.next_page_token
        if not token:
            return seen
    raise AssertionError("listing did not end")


async def test_paging_visits_every_endpoint_once(server: ServerProcess, reference_server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {f"page-{i}-{suffix}" for i in range(7)}
    for address in (server.address, reference_server.address):
        ops = (await Client.connect(address)).operator_service
        for name in sorted(names):
            await ops.create_nexus_endpoint(CreateNexusEndpointRequest(spec=EndpointSpec(name=name, target=worker())))
    for page_size in (1, 3, 7):
        ours = await _all_pages(server.address, names, page_size)
        reference = await _all_pages(reference_server.address, names, page_size)
        assert sorted(ours) == sorted(reference) == sorted(names)
        assert len(ours) == len(set(ours))
