"""The Nexus endpoint registry: named routes from caller workflows to a handler namespace and task
queue (a worker target) or to a URL (an external target).

Endpoints are global to the cluster, few and read on every Nexus call, so all of them live in
memory; every change is written, then cached, one at a time. Requests are checked, and answered,
as the reference's frontend answers them.

Unlike the reference's, the registry is replicated to every connected cluster (nexus/endpoint_replication.py):
each change takes a stamp and this cluster's next change number, a deletion leaves a tombstone, and changes
made elsewhere are merged as nexus/endpoint_merge.py says.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import re
import time
import uuid
from urllib.parse import urlsplit

from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.cluster.shared_config import UNREAD, Settling, SharedConfig
from tempyral.common import gojson
from tempyral.common.clock import timestamp
from tempyral.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NamespaceNotFound,
    NotFound,
)
from tempyral.common.limits import MAX_ID_LENGTH
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus import access
from tempyral.nexus import endpoint_merge as merge
from tempyral.nexus.addresses import AddressRefused, OutboundAddresses
from tempyral.persistence.store import EndpointRow, Store
from tempyral.proto.nexus_replication_pb2 import EndpointAccessPolicy, ReplicatedEndpoint

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9\-]*[a-zA-Z0-9]$"
MAX_NAME_LENGTH = 200  # component.nexusoperations.endpointNameMaxLength
MAX_DESCRIPTION_BYTES = 20_000  # component.nexusoperations.endpointDescriptionMaxSize
MAX_URL_LENGTH = 4 * 1024
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
RESERVED_TASK_QUEUE_PREFIX = "/_sys/"
MAX_CHANGES_PER_ANSWER = 500
SEQ_COUNTER = "nexus_endpoint_seq"  # the claims of change numbers (shared database)
_NAME = re.compile(NAME_PATTERN)


class EndpointRegistry:
    def __init__(self, store: Store, namespaces: NamespaceRegistry, addresses: OutboundAddresses | None = None) -> None:
        self._store = store
        self._namespaces = namespaces
        # Which external target URLs may be registered (default: none).
        self._addresses = addresses or OutboundAddresses()
        self._by_id: dict[str, nexus_pb.Endpoint] = {}  # the live endpoints
        self._states: dict[str, ReplicatedEndpoint] = {}  # every endpoint known, tombstones included
        self._seqs: dict[str, int] = {}  # endpoint id -> this cluster's change number of its last write
        self._seq = 0
        self._clock = merge.HybridClock()
        self._lock = asyncio.Lock()  # one change at a time keeps the cache and the table in step
        # Set when other nodes share the database (cluster/config_watch.py): change numbers are then claimed,
        # changes announced by the config stamp, and the table reloaded when the stamp moves.
        self.shared: SharedConfig | None = None
        self._settling = Settling()
        self._stamp_seen: str | None = UNREAD  # the config stamp of the last reload
        # Endpoint name -> the access policy an endpoint of that name gets when created here (--nexus-allow).
        self.initial_access: dict[str, EndpointAccessPolicy] = {}

    @property
    def cluster(self) -> str:
        return self._namespaces.clusters.name

    def share(self, shared: SharedConfig) -> None:
        """Other nodes share the database from now on (cluster/config_watch.py); called before loading."""
        self.shared = shared
        self._settling = Settling(clock=shared.clock)

    async def load(self) -> None:
        for row in await self._store.load_nexus_endpoints():
            self._remember(_state(row), row.seq)
        log.info("loaded %d Nexus endpoints (%d deleted)", len(self._by_id), len(self._states) - len(self._by_id))

    def _remember(self, state: ReplicatedEndpoint, seq: int) -> None:
        endpoint_id = state.endpoint.id
        self._states[endpoint_id] = state
        self._seqs[endpoint_id] = seq
        self._seq = max(self._seq, seq)
        self._clock.observe(state.stamp)
        if self.shared is not None:
            self._settling.saw(seq)
        if state.deleted:
            self._by_id.pop(endpoint_id, None)
        else:
            self._by_id[endpoint_id] = state.endpoint

    def _row(self, state: ReplicatedEndpoint, seq: int) -> EndpointRow:
        endpoint = state.endpoint
        return EndpointRow(
            endpoint.id,
            endpoint.spec.name,
            endpoint.version,
            access.stored_data(endpoint, state.access),
            state.deleted,
            seq,
            state.stamp,
            state.origin_cluster,
            state.created_stamp,
        )

    async def _write(self, states: builtins.list[ReplicatedEndpoint]) -> None:
        """Store `states` (each under this cluster's next change number), then cache them. With a shared
        database the numbers are claimed (two nodes never use one) and the change is announced."""

        async def save(seqs: builtins.list[int]) -> None:
            await self._store.save_nexus_endpoints([self._row(s, n) for s, n in zip(states, seqs, strict=True)])

        if self.shared is None:
            seqs = [self._seq + i + 1 for i in range(len(states))]
            await save(seqs)
        else:
            seqs = await self.shared.numbered(SEQ_COUNTER, self._seq, len(states), save)
        for state, seq in zip(states, seqs, strict=True):
            self._remember(state, seq)
        if self.shared is not None:
            await self.shared.stamp()

    # ------------------------------------------------------------------ several nodes, one database
    async def sync(self) -> None:
        """Catch up with changes other nodes made, if the config stamp moved since the last reload (one small
        read); nothing without a shared database."""
        if self.shared is not None:
            await self.reload_at(await self.shared.current())

    async def reload_at(self, stamp: str | None) -> bool:
        """Reload the table unless already done at config stamp `stamp` (read before calling: a change
        committed before that stamp was written is then seen); whether it reloaded."""
        async with self._lock:  # no change of this node's is half-way (written, not yet cached) meanwhile
            if stamp == self._stamp_seen:
                return False
            changed = 0
            for row in await self._store.load_nexus_endpoints():
                state = _state(row)
                if self._seqs.get(row.id) == row.seq and self._states.get(row.id) == state:
                    continue
                # What is stored wins, even over a state this node wrote (two nodes changed one endpoint at
                # once): every node loads it, so they agree; other clusters merge it as any change.
                self._remember(state, row.seq)
                changed += 1
            self._stamp_seen = stamp
        if changed:
            log.info("reloaded Nexus endpoints: %d changed on other nodes", changed)
        return True

    def _local(
        self,
        endpoint: nexus_pb.Endpoint,
        deleted: bool = False,
        created: int = 0,
        policy: EndpointAccessPolicy | None = None,
    ) -> ReplicatedEndpoint:
        """A change made on this cluster; the endpoint keeps its access policy unless `policy` replaces it."""
        stamp = self._clock.next()
        if policy is None:
            known = self._states.get(endpoint.id)
            policy = known.access if known is not None else access.OPEN
        return ReplicatedEndpoint(
            endpoint=endpoint,
            deleted=deleted,
            stamp=stamp,
            origin_cluster=self.cluster,
            created_stamp=created or stamp,
            access=policy,
        )

    # ------------------------------------------------------------------ reads
    def get(self, endpoint_id: str) -> nexus_pb.Endpoint:
        _check_id(endpoint_id)
        endpoint = self._by_id.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"Nexus endpoint with ID `{endpoint_id}` not found")
        return _copy(endpoint)

    def access_of(self, endpoint_id: str) -> EndpointAccessPolicy:
        """Who may call the endpoint (open when it is not known: the caller found it, so it was just replaced)."""
        state = self._states.get(endpoint_id)
        return state.access if state is not None and not state.deleted else access.OPEN

    def find_by_name(self, name: str) -> nexus_pb.Endpoint | None:
        for endpoint in self._by_id.values():
            if endpoint.spec.name == name:
                return _copy(endpoint)
        return None

    async def find_by_name_fresh(self, name: str) -> nexus_pb.Endpoint | None:
        """`find_by_name`, catching up with other nodes first when this node does not know the name: an endpoint
        another node just created is found at once, not after the next configuration poll."""
        found = self.find_by_name(name)
        if found is None:
            await self.sync()
            found = self.find_by_name(name)
        return found

    def list(self, page_size: int, page_token: bytes, name: str = "") -> tuple[list[nexus_pb.Endpoint], bytes]:
        """A page in id order, and the token of the next page (empty after the last full page
        only when nothing follows it, as the reference's keyset paging does)."""
        if name:  # the name filter ignores paging, as on the reference
            found = self.find_by_name(name)
            return ([found] if found else []), b""
        if page_size < 0:
            raise InvalidArgument("page_size is negative")
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size exceeds limit of {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token)
        ordered = sorted(self._by_id.values(), key=lambda e: uuid.UUID(e.id).bytes)
        page = [e for e in ordered if after is None or uuid.UUID(e.id).bytes > after][:size]
        token = _encode_token(uuid.UUID(page[-1].id).bytes) if len(page) == size else b""
        return [_copy(e) for e in page], token

    # ------------------------------------------------------------------ changes
    async def create(self, spec: nexus_pb.EndpointSpec) -> nexus_pb.Endpoint:
        self._check_spec(spec)
        await self.sync()
        async with self._lock:
            if self.find_by_name(spec.name) is not None:
                raise _name_taken(spec.name)
            endpoint = nexus_pb.Endpoint(version=1, id=str(uuid.uuid4()), spec=spec)
            endpoint.created_time.CopyFrom(timestamp(time.time_ns()))
            endpoint.url_prefix = url_prefix(endpoint.id)
            policy = self.initial_access.get(spec.name, access.OPEN)
            try:
                await self._write([self._local(endpoint, policy=policy)])
            except AlreadyExists as err:
                raise _name_taken(spec.name) from err
            log.info("created Nexus endpoint %s (%s)", spec.name, endpoint.id)
            return _copy(endpoint)

    async def update(self, endpoint_id: str, version: int, spec: nexus_pb.EndpointSpec) -> nexus_pb.Endpoint:
        self._check_spec(spec)
        await self.sync()
        async with self._lock:
            current = self._by_id.get(endpoint_id)
            if current is None:
                raise NotFound(f"error updating Nexus endpoint. endpoint ID {endpoint_id} not found")
            if version != current.version:
                raise FailedPrecondition(
                    f"nexus endpoint version mismatch. received: {version} expected {current.version}"
                )
            other = self.find_by_name(spec.name)
            if other is not None and other.id != endpoint_id:
                raise _name_taken(spec.name)
            # As on the reference, an updated endpoint shows when it was last changed, not created;
            # in milliseconds, like the reference's hybrid clock.
            updated = nexus_pb.Endpoint(version=version + 1, id=endpoint_id, spec=spec, url_prefix=current.url_prefix)
            updated.last_modified_time.CopyFrom(timestamp(time.time_ns() // 1_000_000 * 1_000_000))
            try:
                await self._write([self._local(updated, created=self._states[endpoint_id].created_stamp)])
            except AlreadyExists as err:
                raise _name_taken(spec.name) from err
            log.info("updated Nexus endpoint %s (%s) to version %d", spec.name, endpoint_id, updated.version)
            return _copy(updated)

    async def delete(self, endpoint_id: str, version: int) -> None:
        """The version must be positive but, as on the reference, need not be the current one."""
        issues = _id_issues(endpoint_id)
        if version <= 0:
            issues.append("endpoint version is non-positive")
        if issues:
            raise InvalidArgument(", ".join(issues))
        await self.sync()
        async with self._lock:
            current = self._by_id.get(endpoint_id)
            if current is None:
                raise NotFound(f"error deleting nexus endpoint with ID: {endpoint_id}")
            # A tombstone: the deletion replicates, and no older state of the endpoint revives it.
            await self._write([self._local(current, deleted=True, created=self._states[endpoint_id].created_stamp)])
            log.info("deleted Nexus endpoint %s (%s)", current.spec.name, endpoint_id)

    # ------------------------------------------------------------------ access policies
    async def change_access(
        self, name: str, change: int, namespaces: builtins.list[str]
    ) -> tuple[nexus_pb.Endpoint, EndpointAccessPolicy]:
        """Apply an operator's change to the access policy of the endpoint named `name`: a change of the endpoint
        like any other (its version goes up, it replicates); the endpoint and its policy after it."""
        await self.sync()
        async with self._lock:
            current = self.find_by_name(name)
            if current is None:
                raise NotFound(f"Nexus endpoint with name `{name}` not found")
            policy = access.changed(self.access_of(current.id), change, namespaces)
            return await self._set_access(current, policy)

    async def _set_access(
        self, current: nexus_pb.Endpoint, policy: EndpointAccessPolicy
    ) -> tuple[nexus_pb.Endpoint, EndpointAccessPolicy]:
        """Under the lock."""
        if policy == self.access_of(current.id):
            return current, policy  # nothing changes: no new version
        updated = _copy(current)
        updated.version = current.version + 1
        updated.last_modified_time.CopyFrom(timestamp(time.time_ns() // 1_000_000 * 1_000_000))
        created = self._states[current.id].created_stamp
        await self._write([self._local(updated, created=created, policy=policy)])
        log.info(
            "access to Nexus endpoint %s (%s) changed to %s (version %d)",
            current.spec.name,
            current.id,
            access.describe(policy),
            updated.version,
        )
        return _copy(updated), policy

    async def apply_initial_access(self) -> None:
        """Give the endpoints named in `initial_access` (--nexus-allow) those policies, at start: the flag
        is the operator's word on them, as `tempyral nexus endpoint allow` is."""
        await self.sync()
        async with self._lock:
            for name, policy in sorted(self.initial_access.items()):
                current = self.find_by_name(name)
                if current is not None:
                    await self._set_access(current, policy)

    # ------------------------------------------------------------------ replication
    @property
    def last_sequence(self) -> int:
        return self._seq

    def changes_since(self, after: int) -> tuple[builtins.list[ReplicatedEndpoint], int]:
        """The endpoints written here after change number `after`, oldest first, and the number to ask after
        next time. With a shared database that number is at most the highest this node has had for a few seconds
        (a lower one claimed by another node may still be committing, cluster/shared_config.py), but never below
        `after` unless `after` is past every change here (a new database: the asker starts over)."""
        changed = sorted((seq, i) for i, seq in self._seqs.items() if seq > after)[:MAX_CHANGES_PER_ANSWER]
        last = changed[-1][0] if len(changed) == MAX_CHANGES_PER_ANSWER else self._seq
        if self.shared is not None and after <= self._seq:
            last = max(after, min(last, self._settling.cursor()))
        return [self._states[i] for _, i in changed], last

    async def apply_replicated(self, incoming: builtins.list[ReplicatedEndpoint], source: str) -> int:
        """Merge endpoints changed on cluster `source`; how many changed something here."""
        applied = 0
        if incoming:  # most pulls bring nothing: no read of the stamp for them
            await self.sync()
        async with self._lock:
            for state in incoming:
                if not state.endpoint.id:
                    continue
                self._clock.observe(state.stamp)
                if not merge.supersedes(state, self._states.get(state.endpoint.id)):
                    continue
                await self._write(self._settle_name(state, source))
                applied += 1
                log.info(
                    "Nexus endpoint %s (%s) %s, replicated from cluster %s",
                    state.endpoint.spec.name,
                    state.endpoint.id,
                    "deleted" if state.deleted else f"at version {state.endpoint.version}",
                    source,
                )
        return applied

    def _settle_name(self, state: ReplicatedEndpoint, source: str) -> builtins.list[ReplicatedEndpoint]:
        """What to write for `state`: itself, unless another live endpoint has its name; then the one created
        first keeps the name and the other is deleted (the deletion written first, to free the name)."""
        if state.deleted:
            return [state]
        name = state.endpoint.spec.name
        rival = next(
            (
                s
                for i, s in self._states.items()
                if i != state.endpoint.id and not s.deleted and s.endpoint.spec.name == name
            ),
            None,
        )
        if rival is None:
            return [state]
        keeper, loser = (rival, state) if merge.keeps_name(rival, state) else (state, rival)
        log.warning(
            "Nexus endpoint name %s was created on two clusters: endpoint %s (from cluster %s) keeps it, "
            "endpoint %s (from cluster %s) is deleted",
            name,
            keeper.endpoint.id,
            keeper.origin_cluster,
            loser.endpoint.id,
            loser.origin_cluster if loser is rival else source,
        )
        tombstone = self._local(loser.endpoint, deleted=True, created=loser.created_stamp)
        return [tombstone] if loser is state else [tombstone, state]

    # ------------------------------------------------------------------ validation
    def _check_spec(self, spec: nexus_pb.EndpointSpec) -> None:
        issues = _name_issues(spec.name)
        variant = spec.target.WhichOneof("variant")
        if variant is None:
            issues.append("empty target variant")
            raise InvalidArgument(", ".join(issues))
        if variant == "worker":
            worker = spec.target.worker
            if not worker.namespace:
                issues.append("target namespace not set")
            else:
                try:
                    self._namespaces.get(worker.namespace)
                except NamespaceNotFound as err:
                    raise FailedPrecondition(
                        f"could not verify namespace referenced by target exists: {err.message}"
                    ) from err
            queue_issue = _task_queue_issue(worker.task_queue)
            if queue_issue:
                issues.append(f"invalid target task queue: {json.dumps(queue_issue)}")
        else:
            url_issues = _url_issues(spec.target.external.url)
            if not url_issues:
                try:
                    self._addresses.check_endpoint(spec.target.external.url)
                except AddressRefused as err:
                    url_issues.append(str(err))
            issues += url_issues
        if spec.description.ByteSize() > MAX_DESCRIPTION_BYTES:
            issues.append(f"description size exceeds limit of {MAX_DESCRIPTION_BYTES}")
        if issues:
            raise InvalidArgument(", ".join(issues))


def _state(row: EndpointRow) -> ReplicatedEndpoint:
    endpoint, policy = access.parse_stored(row.data)
    return ReplicatedEndpoint(
        endpoint=endpoint,
        deleted=row.deleted,
        stamp=row.stamp,
        origin_cluster=row.origin,
        created_stamp=row.created,
        access=policy,
    )


def url_prefix(endpoint_id: str) -> str:
    """Where the endpoint's Nexus HTTP API lives on the frontend."""
    return f"/nexus/endpoints/{endpoint_id}/services"


def _copy(endpoint: nexus_pb.Endpoint) -> nexus_pb.Endpoint:
    copy = nexus_pb.Endpoint()
    copy.CopyFrom(endpoint)
    return copy


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"error creating Nexus endpoint. Endpoint with name {name} already registered")


def _name_issues(name: str) -> list[str]:
    if not name:
        return ["endpoint name not set"]
    issues = []
    if len(name) > MAX_NAME_LENGTH:
        issues.append(f"endpoint name exceeds length limit of {MAX_NAME_LENGTH}")
    if not _NAME.match(name):
        issues.append(f"endpoint name must match the regex: {json.dumps(NAME_PATTERN)}")
    return issues


def _task_queue_issue(name: str) -> str:
    if not name:
        return "taskQueue is not set"
    if len(name) > MAX_ID_LENGTH:
        return "taskQueue length exceeds limit"
    if name.startswith(RESERVED_TASK_QUEUE_PREFIX):
        return f"task queue name cannot start with reserved prefix {RESERVED_TASK_QUEUE_PREFIX}"
    return ""


def _url_issues(url: str) -> list[str]:
    if not url:
        return ["empty target URL"]
    if len(url) > MAX_URL_LENGTH:
        return [f"target URL length exceeds limit of {MAX_URL_LENGTH}"]
    try:
        scheme = urlsplit(url).scheme
    except ValueError as err:
        return [f"invalid target URL: {err}"]
    if scheme not in ("http", "https"):
        return [f"invalid target URL scheme: {json.dumps(scheme)}, expected http or https"]
    return []


def _id_issues(endpoint_id: str) -> list[str]:
    if not endpoint_id:
        return ["endpoint ID not set"]
    try:
        uuid.UUID(endpoint_id)
    except ValueError:
        return [f"malformed endpoint ID: {json.dumps(_uuid_error(endpoint_id))}"]
    return []


def _uuid_error(text: str) -> str:
    """The reason Go's uuid.Parse gives for a string that is not a UUID."""
    if len(text) not in (32, 36, 38, 45):
        return f"invalid UUID length: {len(text)}"
    return "invalid UUID format"


def _check_id(endpoint_id: str) -> None:
    issues = _id_issues(endpoint_id)
    if issues:
        raise InvalidArgument(", ".join(issues))


def _encode_token(last_id: bytes) -> bytes:
    return json.dumps({"LastID": base64.b64encode(last_id).decode()}, separators=(",", ":")).encode()


def _decode_token(token: bytes) -> bytes | None:
    if not token:
        return None
    try:
        last = base64.b64decode(gojson.loads(token.decode())["LastID"], validate=True)  # never recurses
    except (ValueError, KeyError, TypeError) as err:
        # The reference fails such a token deep in its store, with an internal error.
        raise Internal("error listing Nexus endpoints") from err
    return last
