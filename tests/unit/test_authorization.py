"""The authorization pieces on their own: the API table against the protos, the claim mapper, the default
authorizer's role arithmetic, and the JWKS sources (a file, and a URL served here on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from google.protobuf.message_factory import GetMessageClass
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service_pb
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service_pb

from tempyral.auth import jwks as jwks_module
from tempyral.auth.access import (
    ADMIN,
    CLUSTER,
    NS,
    OPERATOR_SERVICE,
    OPERATOR_SERVICE_ACCESS,
    READ,
    WORKFLOW_SERVICE,
    WORKFLOW_SERVICE_ACCESS,
    WRITE,
    Access,
    Scope,
    method_access,
)
from tempyral.auth.authorizer import REQUEST_UNAUTHORIZED, Authorizer, AuthSettings, Refused, allowed
from tempyral.auth.claims import Claims, Role, claims_from
from tempyral.cli import auth_settings, build_parser
from tempyral.frontend.http_gateway import CallContext
from tests.support.jwt_tokens import SigningKey, write_jwks

SERVICES = [
    (workflow_service_pb.DESCRIPTOR.services_by_name["WorkflowService"], WORKFLOW_SERVICE_ACCESS),
    (operator_service_pb.DESCRIPTOR.services_by_name["OperatorService"], OPERATOR_SERVICE_ACCESS),
]


# ---------------------------------------------------------------------------------------------------- the table
@pytest.mark.parametrize("service,table", SERVICES, ids=["WorkflowService", "OperatorService"])
def test_every_method_has_an_entry(service: object, table: dict[str, tuple[Scope, Access]]) -> None:
    methods = {m.name for m in service.methods}  # type: ignore[attr-defined]
    assert methods == set(table), (methods - set(table), set(table) - methods)
    for name in methods:
        scope, access = table[name]
        assert scope is not Scope.UNKNOWN and access is not Access.UNKNOWN, name


@pytest.mark.parametrize("service,table", SERVICES, ids=["WorkflowService", "OperatorService"])
def test_scopes_agree_with_the_requests(service: object, table: dict[str, tuple[Scope, Access]]) -> None:
    """The reference's rule for its metadata: a namespace-scoped request has a namespace field, a cluster-scoped
    one has none (the authorizer reads the namespace from that field)."""
    for method in service.methods:  # type: ignore[attr-defined]
        has_namespace = "namespace" in GetMessageClass(method.input_type).DESCRIPTOR.fields_by_name
        assert has_namespace == (table[method.name][0] is NS), method.name


def test_known_entries() -> None:
    """Samples of each kind, as the reference's common/api/metadata.go has them."""
    w, o = WORKFLOW_SERVICE, OPERATOR_SERVICE
    expected = {
        w + "DescribeWorkflowExecution": (NS, READ),
        w + "PollWorkflowExecutionUpdate": (NS, READ),
        w + "StartWorkflowExecution": (NS, WRITE),
        w + "SignalWorkflowExecution": (NS, WRITE),
        w + "PollWorkflowTaskQueue": (NS, WRITE),
        w + "PollActivityTaskQueue": (NS, WRITE),
        w + "RespondActivityTaskCompleted": (NS, WRITE),
        w + "RegisterNamespace": (NS, ADMIN),
        w + "UpdateNamespace": (NS, ADMIN),
        w + "ListNamespaces": (CLUSTER, READ),
        w + "GetClusterInfo": (CLUSTER, READ),
        o + "AddSearchAttributes": (NS, ADMIN),
        o + "ListSearchAttributes": (NS, READ),
        o + "DeleteNamespace": (NS, ADMIN),
        o + "ListClusters": (CLUSTER, ADMIN),
        o + "CreateNexusEndpoint": (CLUSTER, ADMIN),
        o + "ListNexusEndpoints": (CLUSTER, ADMIN),
        "/temporal.api.nexusservice.v1.NexusService/DispatchByEndpoint": (NS, WRITE),
        "/temporal.api.nexusservice.v1.NexusService/CompleteNexusOperation": (NS, WRITE),
    }
    for api, entry in expected.items():
        assert method_access(api) == entry, api
    assert method_access("/temporal.server.api.historyservice.v1.HistoryService/StartWorkflowExecution") == (
        Scope.UNKNOWN,
        Access.UNKNOWN,
    )


# ---------------------------------------------------------------------------------------------------- claims
def test_claims_mapping() -> None:
    claims = claims_from(
        {
            "sub": "alice",
            "permissions": [
                "default:read",
                "default:WORKER",
                "temporal-system:Write",
                "orders:admin",
                "no-colon",
                42,
                "odd:role",
                "a:b:c",
            ],
        },
        "permissions",
    )
    assert claims.subject == "alice"
    assert claims.system == Role.WRITER
    assert claims.namespaces == {
        "default": Role.READER | Role.WORKER,
        "orders": Role.ADMIN,
        "odd": Role.UNDEFINED,
        "a": Role.UNDEFINED,
    }
    assert claims_from({"sub": "x", "permissions": "default:admin"}, "permissions").namespaces == {}
    assert claims_from({"sub": "x", "roles": ["default:admin"]}, "roles").namespaces == {"default": Role.ADMIN}


def test_default_authorizer() -> None:
    w, o = WORKFLOW_SERVICE, OPERATOR_SERVICE

    def can(api: str, namespace: str, system: Role = Role.UNDEFINED, **roles: Role) -> bool:
        return allowed(Claims("s", system, dict(roles)), api, namespace)

    assert not allowed(None, w + "DescribeNamespace", "default")
    assert allowed(None, w + "GetSystemInfo", "")
    assert allowed(None, "/grpc.health.v1.Health/Check", "")
    assert can(w + "DescribeNamespace", "default", default=Role.READER)
    assert not can(w + "DescribeNamespace", "other", default=Role.READER)
    assert not can(w + "StartWorkflowExecution", "default", default=Role.READER)
    assert can(w + "StartWorkflowExecution", "default", default=Role.WRITER)
    assert can(w + "DescribeNamespace", "default", default=Role.WRITER)  # a writer reads
    # The role mask compared as a number: worker (1) is below read (2); worker+read (3) below write (4).
    assert not can(w + "DescribeNamespace", "default", default=Role.WORKER)
    assert not can(w + "PollWorkflowTaskQueue", "default", default=Role.WORKER | Role.READER)
    assert not can(w + "UpdateNamespace", "default", default=Role.WRITER | Role.READER | Role.WORKER)
    assert can(w + "UpdateNamespace", "default", default=Role.ADMIN)
    # cluster scope: system roles only
    assert not can(w + "ListNamespaces", "", default=Role.ADMIN)
    assert can(w + "ListNamespaces", "", system=Role.READER)
    assert not can(o + "ListClusters", "", system=Role.WRITER)
    assert can(o + "ListClusters", "", system=Role.ADMIN)
    # system roles apply to every namespace
    assert can(w + "StartWorkflowExecution", "anything", system=Role.WRITER)
    assert not can(w + "StartWorkflowExecution", "anything", system=Role.READER)
    # not in the table: refused
    assert not can("/temporal.server.api.adminservice.v1.AdminService/DescribeCluster", "", system=Role.ADMIN)


# ---------------------------------------------------------------------------------------------------- tokens
RSA = SigningKey.rsa("r")
EC = SigningKey.ec("e")


async def refused(authorizer: Authorizer, header: str | None, invalid: bool) -> None:
    with pytest.raises(Refused) as err:
        await authorizer.check(WORKFLOW_SERVICE + "CountWorkflowExecutions", "default", header)
    assert err.value.message == REQUEST_UNAUTHORIZED
    assert err.value.invalid_token is invalid


async def test_file_keys_and_internal_credential(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, [RSA])
    authorizer = Authorizer(AuthSettings(jwks_path=str(path)))
    await authorizer.start("shared-secret")
    try:
        count = WORKFLOW_SERVICE + "CountWorkflowExecutions"
        await authorizer.check(count, "default", f"Bearer {RSA.token(['default:read'])}")
        await refused(authorizer, None, invalid=False)
        await refused(authorizer, f"Bearer {RSA.token(['other:read'])}", invalid=False)
        await refused(authorizer, f"Bearer {EC.token(['default:read'])}", invalid=True)  # its key is not there yet
        await authorizer.check(count, "x", "Bearer shared-secret")
        await authorizer.check(OPERATOR_SERVICE + "ListClusters", "", authorizer.internal_header)
        await refused(authorizer, "Bearer shared-secreT", invalid=True)
        jwks_module.FILE_CHECK_S, saved = 0.0, jwks_module.FILE_CHECK_S
        try:
            write_jwks(path, [RSA, EC])
            await authorizer.check(count, "default", f"Bearer {EC.token(['default:read'])}")
            path.write_text("{not json")  # a broken file keeps the keys it had
            await authorizer.check(count, "default", f"Bearer {EC.token(['default:read'])}")
        finally:
            jwks_module.FILE_CHECK_S = saved
    finally:
        await authorizer.stop()


@pytest_asyncio.fixture
async def jwks_url() -> AsyncIterator[tuple[str, list[SigningKey], list[int]]]:
    """A JWKS URL on loopback serving `keys`, counting its requests."""
    keys: list[SigningKey] = [RSA]
    hits = [0]

    async def serve(_: web.Request) -> web.Response:
        hits[0] += 1
        return web.Response(text=json.dumps({"keys": [k.jwk() for k in keys]}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/jwks", keys, hits
    await runner.cleanup()


async def test_url_keys_refresh_on_an_unknown_kid(jwks_url: tuple[str, list[SigningKey], list[int]]) -> None:
    url, keys, hits = jwks_url
    authorizer = Authorizer(AuthSettings(jwks_url=url))
    await authorizer.start("s")
    try:
        count = WORKFLOW_SERVICE + "CountWorkflowExecutions"
        assert hits[0] == 1  # fetched at start
        await authorizer.check(count, "default", f"Bearer {RSA.token(['default:read'])}")
        keys.append(EC)
        # fetched again for the unknown kid only once MISS_REFRESH_S has passed since the last fetch
        await refused(authorizer, f"Bearer {EC.token(['default:read'])}", invalid=True)
        assert hits[0] == 1
        authorizer.keys._last_fetch -= jwks_module.MISS_REFRESH_S
        await authorizer.check(count, "default", f"Bearer {EC.token(['default:read'])}")
        assert hits[0] == 2
        await refused(authorizer, f"Bearer {RSA.token(['default:read'], kid='gone')}", invalid=True)
        assert hits[0] == 2  # rate-limited
    finally:
        await authorizer.stop()


def test_flags() -> None:
    for command in (["server", "start-dev"], ["server", "start", "--db", "x.db"]):
        args = build_parser().parse_args([*command, "--auth-jwks-path", "k.json", "--auth-permissions-claim", "roles"])
        assert auth_settings(args) == AuthSettings(jwks_path="k.json", permissions_claim="roles")
        assert auth_settings(args).enabled
    assert not auth_settings(build_parser().parse_args(["server", "start-dev"])).enabled


async def test_renamed_permissions_claim(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, [RSA])
    authorizer = Authorizer(AuthSettings(jwks_path=str(path), permissions_claim="roles"))
    await authorizer.start("s")
    try:
        await authorizer.check(
            WORKFLOW_SERVICE + "CountWorkflowExecutions",
            "default",
            f"Bearer {RSA.token(['default:read'], claim='roles')}",
        )
        await refused(authorizer, f"Bearer {RSA.token(['default:read'])}", invalid=False)
    finally:
        await authorizer.stop()


def test_http_calls_keep_the_token_for_another_node() -> None:
    """A call over the HTTP API that a node passes to another (nodes/routing.py) takes its token along."""
    request = make_mocked_request("GET", "/api/v1/x", headers={"Authorization": "Bearer t", "Cookie": "c"})
    assert dict(CallContext(request, 1.0).invocation_metadata()) == {"authorization": "Bearer t"}
