"""Endpoint access policies in the registry (nexus/endpoints.py): a change is a new version of the endpoint, is
stored (a reload, or another node, reads it), is replicated to other clusters, and `--nexus-allow` writes them."""

from __future__ import annotations

import pytest

from tempyral.common.errors import InvalidArgument, NotFound
from tempyral.nexus import access
from tempyral.nexus.access_service import EndpointAccessService
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto import nexus_replication_pb2 as npb
from tests.support.memory_store import MemoryStore
from tests.unit.test_nexus_endpoint_replication import pull, registry, spec

pytestmark = pytest.mark.asyncio(loop_scope="function")
ALLOW = npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_ALLOW
DENY = npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_DENY
OPEN = npb.EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_OPEN


async def test_a_change_is_a_new_version_and_is_stored() -> None:
    store = MemoryStore()
    endpoints = await registry("a", store)
    created = await endpoints.create(spec("billing"))
    assert endpoints.access_of(created.id) == access.OPEN
    endpoint, policy = await endpoints.change_access("billing", ALLOW, ["payments"])
    assert endpoint.version == 2 and endpoint.HasField("last_modified_time")
    assert policy == access.only(["payments"]) and endpoints.access_of(created.id) == policy
    assert endpoints.get(created.id).version == 2
    _, again = await endpoints.change_access("billing", ALLOW, ["payments"])  # no change: no new version
    assert again == policy and endpoints.get(created.id).version == 2
    # an update through the operator API keeps the policy
    updated = await endpoints.update(created.id, 2, spec("billing", "other-queue"))
    assert updated.version == 3 and endpoints.access_of(created.id) == policy
    reloaded = EndpointRegistry(store, endpoints._namespaces)
    await reloaded.load()
    assert reloaded.access_of(created.id) == policy
    assert reloaded.get(created.id) == endpoints.get(created.id)  # the API's endpoint carries no policy


async def test_a_policy_replicates_to_other_clusters() -> None:
    a, b = await registry("a"), await registry("b")
    created = await a.create(spec("billing"))
    await pull(b, a)
    assert b.access_of(created.id) == access.OPEN
    await a.change_access("billing", DENY, ["intruder"])
    assert await pull(b, a) == 1
    assert not access.allows(b.access_of(created.id), "intruder") and access.allows(b.access_of(created.id), "x")
    assert b.get(created.id).version == 2
    await b.change_access("billing", OPEN, [])  # a change made there comes back too
    assert await pull(a, b) == 1
    assert a.access_of(created.id) == access.OPEN


async def test_nexus_allow_writes_policies_at_start_and_at_creation() -> None:
    store = MemoryStore()
    first = await registry("a", store)
    existing = await first.create(spec("existing"))
    restarted = EndpointRegistry(store, first._namespaces)
    restarted.initial_access = {"existing": access.only(["x"]), "later": access.only(["y"])}
    await restarted.load()
    await restarted.apply_initial_access()
    assert restarted.access_of(existing.id) == access.only(["x"])
    assert restarted.get(existing.id).version == 2
    await restarted.apply_initial_access()  # already so: nothing written
    assert restarted.get(existing.id).version == 2
    later = await restarted.create(spec("later"))
    assert restarted.access_of(later.id) == access.only(["y"]) and later.version == 1


async def test_the_service_answers_by_name() -> None:
    endpoints = await registry("a")
    await endpoints.create(spec("billing"))
    service = EndpointAccessService(endpoints)
    answer = await service.update(
        npb.UpdateNexusEndpointAccessRequest(endpoint_name="billing", change=ALLOW, caller_namespaces=["p"])
    )
    assert answer.endpoint_name == "billing" and answer.endpoint_version == 2 and list(answer.access.allowed) == ["p"]
    shown = await service.get(npb.GetNexusEndpointAccessRequest(endpoint_name="billing"))
    assert shown == answer
    with pytest.raises(NotFound, match="Nexus endpoint with name `nope` not found"):
        await service.get(npb.GetNexusEndpointAccessRequest(endpoint_name="nope"))
    with pytest.raises(NotFound):
        await service.update(npb.UpdateNexusEndpointAccessRequest(endpoint_name="nope", change=OPEN))
    with pytest.raises(InvalidArgument):
        await service.update(npb.UpdateNexusEndpointAccessRequest(endpoint_name="billing", change=ALLOW))
    with pytest.raises(InvalidArgument):
        await service.get(npb.GetNexusEndpointAccessRequest())
