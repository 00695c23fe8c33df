"""The Nexus endpoint registry over the SQLite store: persisted, versioned, unique by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget

from tempyral.common.errors import AlreadyExists, FailedPrecondition, NotFound
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.persistence.sqlite import SqliteStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


def spec(name: str, task_queue: str = "q") -> EndpointSpec:
    return EndpointSpec(
        name=name, target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))
    )


async def _registry(store: SqliteStore) -> EndpointRegistry:
    namespaces = NamespaceRegistry(store, "active")
    await namespaces.load()
    await namespaces.ensure("default")
    endpoints = EndpointRegistry(store, namespaces)
    await endpoints.load()
    return endpoints


@pytest_asyncio.fixture(loop_scope="function")
async def db(tmp_path: Path) -> AsyncIterator[str]:
    yield str(tmp_path / "nexus.db")


async def test_endpoints_survive_a_restart(db: str) -> None:
    store = SqliteStore(db)
    await store.open()
    registry = await _registry(store)
    created = await registry.create(spec("billing"))
    updated = await registry.update(created.id, 1, spec("billing", task_queue="q2"))
    await store.close()

    store = SqliteStore(db)
    await store.open()
    reloaded = await _registry(store)
    assert reloaded.get(created.id) == updated
    assert reloaded.find_by_name("billing") == updated
    await store.close()


async def test_versions_names_and_deletes(db: str) -> None:
    store = SqliteStore(db)
    await store.open()
    registry = await _registry(store)
    first = await registry.create(spec("first"))
    second = await registry.create(spec("second"))
    with pytest.raises(AlreadyExists):
        await registry.create(spec("first"))
    with pytest.raises(FailedPrecondition, match="received: 3 expected 1"):
        await registry.update(first.id, 3, spec("first"))
    with pytest.raises(AlreadyExists):  # renaming onto another endpoint's name
        await registry.update(second.id, 1, spec("first"))
    # two updates racing on one version: exactly one wins
    results = await asyncio.gather(
        registry.update(first.id, 1, spec("first", "a")),
        registry.update(first.id, 1, spec("first", "b")),
        return_exceptions=True,
    )
    assert sum(isinstance(r, FailedPrecondition) for r in results) == 1
    assert registry.get(first.id).version == 2
    await registry.delete(first.id, 5)  # any positive version, as on the reference
    with pytest.raises(NotFound):
        registry.get(first.id)
    with pytest.raises(NotFound):
        await registry.delete(first.id, 2)
    assert [e.spec.name for e in (await _registry(store)).list(0, b"")[0]] == ["second"]
    await store.close()


async def test_pages_in_id_order_with_keyset_tokens(db: str) -> None:
    store = SqliteStore(db)
    await store.open()
    registry = await _registry(store)
    ids = sorted([(await registry.create(spec(f"ep-{i}"))).id for i in range(5)])
    seen, token = [], b""
    for _ in range(10):
        page, token = registry.list(2, token)
        seen += [e.id for e in page]
        if not token:
            break
    assert sorted(seen) == ids and len(seen) == len(set(seen))
    await store.close()
