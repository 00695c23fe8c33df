"""JWT authorization on tempyral (--auth-jwks-path): the reference's default claim mapper and authorizer, through
the SDK, the `temporal` CLI, the HTTP API and the Nexus HTTP API, with keys this module makes.

What the reference answers (common/authorization/interceptor.go, default_authorizer.go): a refused call gets
PERMISSION_DENIED "Request unauthorized.", whether it had no token, a token it could not verify, or claims
without the role the API needs; GetSystemInfo and health checks are always allowed; roles are a bitmask compared
as a number, so `worker` alone (the lowest bit) allows nothing, and polls need `write`."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tempyral.nexus.invoker import encode_callback_token
from tempyral.proto.internal_pb2 import NexusCallbackToken
from tests.support.jwt_tokens import SigningKey, write_jwks
from tests.support.nexus_access import endpoint_cli
from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow
from tests.support.servers import ServerProcess, reference_binary, tempyral
from tests.support.waiting import until

UNAUTHORIZED = "Request unauthorized."
RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")
LATER = SigningKey.ec("ec-2")  # added to the JWKS file while the server runs


@workflow.defn
class Idle:
    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: False)
        return "never"


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "jwks.json"
    write_jwks(path, [RSA, EC])
    return path


@pytest.fixture(scope="module")
def server(jwks: Path) -> Iterator[ServerProcess]:
    proc = tempyral(extra=["--auth-jwks-path", str(jwks), "--headless", "--namespace", "other"])
    proc.start()
    yield proc
    proc.stop()


async def connect(server: ServerProcess, token: str | None, namespace: str = "default") -> Client:
    # api_key makes the SDK turn TLS on unless told otherwise: the test server speaks plaintext.
    return await Client.connect(server.address, namespace=namespace, api_key=token, tls=False)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def admin(server: ServerProcess) -> AsyncIterator[Client]:
    yield await connect(server, RSA.token(["temporal-system:admin"], subject="root"))


async def refused(call: object) -> None:
    with pytest.raises(RPCError) as err:
        await call  # type: ignore[misc]
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    assert err.value.message == UNAUTHORIZED


async def start_idle(client: Client) -> str:
    handle = await client.start_workflow(Idle.run, id=f"idle-{uuid.uuid4().hex[:8]}", task_queue="nobody")
    return handle.id


# ---------------------------------------------------------------------------------------------------- gRPC
async def test_no_token(server: ServerProcess) -> None:
    client = await connect(server, None)  # connecting calls GetSystemInfo: always allowed
    await refused(client.count_workflows())
    await refused(client.workflow_service.list_namespaces(ws.ListNamespacesRequest()))
    await refused(start_idle(client))
    with grpc.insecure_channel(server.address) as channel:  # health checks too
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
        check(b"", timeout=10)


async def test_wrong_namespace(server: ServerProcess) -> None:
    client = await connect(server, RSA.token(["other:admin"]))
    await refused(client.count_workflows())
    await refused(start_idle(client))
    assert (await (await connect(server, RSA.token(["other:admin"]), "other")).count_workflows()).count >= 0


async def test_reader(server: ServerProcess, admin: Client) -> None:
    workflow_id = await start_idle(admin)
    reader = await connect(server, EC.token(["default:read"]))
    assert (await reader.get_workflow_handle(workflow_id).describe()).status == Status.RUNNING
    assert [w.id async for w in reader.list_workflows(f"WorkflowId = '{workflow_id}'")] in ([], [workflow_id])
    await reader.workflow_service.describe_namespace(ws.DescribeNamespaceRequest(namespace="default"))
    await refused(start_idle(reader))
    await refused(reader.get_workflow_handle(workflow_id).signal("go"))
    # the cluster scope takes only temporal-system roles
    await refused(reader.workflow_service.list_namespaces(ws.ListNamespacesRequest()))


async def test_writer_runs_a_worker_and_worker_role_alone_allows_nothing(server: ServerProcess) -> None:
    writer = await connect(server, RSA.token(["default:write"]))
    queue = f"q-{uuid.uuid4().hex[:8]}"
    async with Worker(writer, task_queue=queue, workflows=[Greet], workflow_runner=UnsandboxedWorkflowRunner()):
        assert await writer.execute_workflow(Greet.run, "you", id=f"greet-{queue}", task_queue=queue) == "hello you"
    idle = await start_idle(writer)
    await writer.get_workflow_handle(idle).signal("anything")
    # writers may not administer their namespace
    await refused(writer.workflow_service.update_namespace(ws.UpdateNamespaceRequest(namespace="default")))
    # The role named "worker" is the lowest bit of the reference's role mask: below read, so polls (which need
    # write) and even reads are refused; together with read it is still below write.
    for permissions in (["default:worker"], ["default:worker", "default:read"]):
        worker = await connect(server, RSA.token(permissions))
        await refused(
            worker.workflow_service.poll_workflow_task_queue(
                ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue))
            )
        )
    await refused((await connect(server, RSA.token(["default:worker"]))).count_workflows())
    # role names are case-insensitive
    assert await (await connect(server, EC.token(["default:WRITE"]))).start_workflow(
        Idle.run, id=f"idle-{uuid.uuid4().hex[:8]}", task_queue="nobody"
    )


async def test_namespace_admin(server: ServerProcess) -> None:
    admin_ns = await connect(server, EC.token(["default:admin"]))
    await admin_ns.workflow_service.update_namespace(
        ws.UpdateNamespaceRequest(
            namespace="default", update_info=namespace_pb.UpdateNamespaceInfo(description="administered")
        )
    )
    described = await admin_ns.workflow_service.describe_namespace(ws.DescribeNamespaceRequest(namespace="default"))
    assert described.namespace_info.description == "administered"
    await refused(admin_ns.workflow_service.update_namespace(ws.UpdateNamespaceRequest(namespace="other")))
    # cluster operations need the system role
    await refused(admin_ns.operator_service.list_clusters(ops.ListClustersRequest()))
    await refused(admin_ns.operator_service.list_nexus_endpoints(ops.ListNexusEndpointsRequest()))


async def test_system_admin(admin: Client) -> None:
    clusters = await admin.operator_service.list_clusters(ops.ListClustersRequest())
    assert clusters.clusters
    name = f"ns-{uuid.uuid4().hex[:8]}"
    await admin.workflow_service.register_namespace(
        ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    assert any(
        n.namespace_info.name == name
        for n in (await admin.workflow_service.list_namespaces(ws.ListNamespacesRequest())).namespaces
    )
    await start_idle(admin)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(RSA.token(["default:admin"], expires_in_s=-60), id="expired"),
        pytest.param(RSA.token(["default:admin"], nbf=2**33), id="not-yet-valid"),
        pytest.param(SigningKey.rsa("rsa-1").token(["default:admin"]), id="bad-signature"),
        pytest.param(SigningKey.ec("ec-1").token(["default:admin"]), id="bad-signature-ec"),
        pytest.param(RSA.token(["default:admin"], kid="nobody"), id="unknown-kid"),
        pytest.param(EC.token(["default:admin"], kid="rsa-1"), id="kid-of-another-key-type"),
        pytest.param(RSA.token(["default:admin"], subject=None), id="no-subject"),
        pytest.param("not a jwt", id="garbage"),
    ],
)
async def test_invalid_tokens(server: ServerProcess, token: str) -> None:
    await refused((await connect(server, token)).count_workflows())


async def test_other_algorithms_and_schemes_refused(server: ServerProcess) -> None:
    import jwt

    hs256 = jwt.encode({"sub": "x", "permissions": ["default:admin"]}, "secret" * 8, "HS256", headers={"kid": "rsa-1"})
    await refused((await connect(server, hs256)).count_workflows())
    client = await connect(server, None)
    good = RSA.token(["default:admin"])
    for header in (f"Basic {good}", good):
        await refused(
            client.workflow_service.count_workflow_executions(
                ws.CountWorkflowExecutionsRequest(namespace="default"), metadata={"authorization": header}
            )
        )
    # the same token in rpc metadata instead of api_key
    await client.workflow_service.count_workflow_executions(
        ws.CountWorkflowExecutionsRequest(namespace="default"), metadata={"authorization": f"bearer {good}"}
    )


async def test_renamed_claim_is_not_read(server: ServerProcess) -> None:
    await refused((await connect(server, RSA.token(["default:admin"], claim="roles"))).count_workflows())


async def test_jwks_file_change_is_picked_up(server: ServerProcess, jwks: Path) -> None:
    token = LATER.token(["default:read"])
    client = await connect(server, token)
    await refused(client.count_workflows())
    write_jwks(jwks, [RSA, EC, LATER])

    async def accepted() -> bool:
        try:
            await client.count_workflows()
            return True
        except RPCError as err:
            assert err.status == RPCStatusCode.PERMISSION_DENIED
            return False

    await until(accepted, what="the new key to be read")


def test_cli_api_key(server: ServerProcess) -> None:
    cli = [reference_binary(), "workflow", "count", "--address", server.address]
    # The CLI turns TLS on with --api-key unless told not to.
    ok = subprocess.run([*cli, "--api-key", EC.token(["default:read"]), "--tls=false"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Total:")
    no = subprocess.run(cli, capture_output=True, text=True)
    assert no.returncode != 0
    assert UNAUTHORIZED in no.stderr


async def test_tempyral_endpoint_access_command_needs_the_system_admin(server: ServerProcess, admin: Client) -> None:
    """`tempyral nexus endpoint ...` passes --api-key; the access policy is managed as endpoints are (system admin)."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    await admin.operator_service.create_nexus_endpoint(
        ops.CreateNexusEndpointRequest(
            spec=nexus.EndpointSpec(
                name=name,
                target=nexus.EndpointTarget(
                    worker=nexus.EndpointTarget.Worker(namespace="default", task_queue="nobody")
                ),
            )
        )
    )
    no_token = endpoint_cli(server, "show", "--name", name)
    assert no_token.returncode == 1 and f"PERMISSION_DENIED: {UNAUTHORIZED}" in no_token.stderr
    writer = endpoint_cli(
        server, "deny", "--name", name, "--caller-namespace", "other", "--api-key", RSA.token(["default:admin"])
    )
    assert writer.returncode == 1 and f"PERMISSION_DENIED: {UNAUTHORIZED}" in writer.stderr
    root = RSA.token(["temporal-system:admin"], subject="root")
    denied = endpoint_cli(server, "deny", "--name", name, "--caller-namespace", "other", "--api-key", root)
    assert denied.returncode == 0, denied.stderr
    shown = endpoint_cli(server, "show", "--name", name, "--api-key", root, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["access"]["denied"] == ["other"]


# ---------------------------------------------------------------------------------------------------- HTTP
async def test_http_api(server: ServerProcess) -> None:
    url = f"http://127.0.0.1:{server.http_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/namespaces/default/workflows") as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["code"] == 7 and body["message"] == UNAUTHORIZED
        headers = {"Authorization": f"Bearer {RSA.token(['default:read'])}"}
        async with session.get(f"{url}/api/v1/namespaces/default/workflows", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        async with session.post(
            f"{url}/api/v1/namespaces/default/workflows/wf-http",
            headers=headers,
            json={"workflowType": {"name": "Idle"}, "taskQueue": {"name": "nobody"}},
        ) as resp:
            assert resp.status == 403
        async with session.get(f"{url}/api/v1/system-info") as resp:  # always allowed
            assert resp.status == 200
        async with session.get(f"{url}/metrics") as resp:  # stays open
            assert resp.status == 200


async def test_nexus_http_api(server: ServerProcess, admin: Client) -> None:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    created = await admin.operator_service.create_nexus_endpoint(
        ops.CreateNexusEndpointRequest(
            spec=nexus.EndpointSpec(
                name=name,
                target=nexus.EndpointTarget(
                    worker=nexus.EndpointTarget.Worker(namespace="default", task_queue="no-handler")
                ),
            )
        )
    )
    url = f"http://127.0.0.1:{server.http_port}/nexus/endpoints/{created.endpoint.id}/services/svc/op"
    async with aiohttp.ClientSession() as session:

        async def post(target: str, token: str | None, **headers: str) -> tuple[int, dict[str, object]]:
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            async with session.post(target, json="x", headers=headers) as resp:
                return resp.status, json.loads(await resp.text())

        # As the reference: no token or too small a role, UNAUTHORIZED "permission denied"; a token it cannot
        # read, UNAUTHENTICATED "unauthorized".
        for token in (None, RSA.token(["default:read"]), RSA.token(["other:write"])):
            status, body = await post(url, token)
            assert (status, body["message"]) == (403, "permission denied")
        status, body = await post(url, RSA.token(["default:write"], expires_in_s=-60))
        assert (status, body["message"]) == (401, "unauthorized")
        # with write on the endpoint's namespace the request gets through (no handler: it times out)
        status, body = await post(url, RSA.token(["default:write"]), **{"Request-Timeout": "200ms"})
        assert status not in (401, 403), body
        by_queue = f"http://127.0.0.1:{server.http_port}/namespaces/default/task-queues/q/nexus-services/svc/op"
        status, body = await post(by_queue, None)
        assert (status, body["message"]) == (403, "permission denied")

        # A completion callback: the callback token names the operation, the handler's token must allow
        # CompleteNexusOperation (write) on the caller's namespace.
        described = await admin.workflow_service.describe_namespace(ws.DescribeNamespaceRequest(namespace="default"))
        callback = encode_callback_token(
            NexusCallbackToken(
                namespace_id=described.namespace_info.id, workflow_id="w", run_id="r", scheduled_event_id=5
            )
        )
        complete = f"http://127.0.0.1:{server.http_port}/namespaces/default/nexus/callback"
        headers = {"Temporal-Callback-Token": callback, "Nexus-Operation-State": "succeeded"}
        for token in (None, RSA.token(["default:read"])):
            status, body = await post(complete, token, **headers)
            assert (status, body["message"]) == (403, "permission denied")
        status, body = await post(complete, RSA.token(["default:write"]), **headers)
        assert status == 404, body  # past authorization: no such caller


# ---------------------------------------------------------------------------------------------------- internal
async def test_nexus_operations_between_workflows_work(server: ServerProcess, admin: Client) -> None:
    """Dispatch to the handler's worker and the completion of a workflow-run operation (the server's own
    callback) need no token of the server's: they do not pass the frontend."""
    queue = f"nx-{uuid.uuid4().hex[:8]}"
    endpoint = f"ep-{queue}"
    await admin.operator_service.create_nexus_endpoint(
        ops.CreateNexusEndpointRequest(
            spec=nexus.EndpointSpec(
                name=endpoint,
                target=nexus.EndpointTarget(worker=nexus.EndpointTarget.Worker(namespace="default", task_queue=queue)),
            )
        )
    )
    writer = await connect(server, RSA.token(["default:write"]))
    async with Worker(
        writer,
        task_queue=queue,
        workflows=[Caller, GreeterWorkflow],
        nexus_service_handlers=[GreeterHandler()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        sync = Call(endpoint, "echo", "sync")
        assert await writer.execute_workflow(Caller.run, sync, id=f"sync-{queue}", task_queue=queue) == "echo sync"
        run = Call(endpoint, "hello", queue)  # a handler workflow, whose completion comes back by callback
        assert await writer.execute_workflow(Caller.run, run, id=f"run-{queue}", task_queue=queue) == f"Hello, {queue}!"


async def test_batch_operations_and_schedules_work(server: ServerProcess, admin: Client) -> None:
    writer = await connect(server, EC.token(["default:write"]))
    tag = uuid.uuid4().hex[:8]
    ids = [(await writer.start_workflow(Idle.run, id=f"batch-{tag}-{i}", task_queue="nobody")).id for i in range(2)]
    job = f"job-{tag}"
    await writer.workflow_service.start_batch_operation(
        ws.StartBatchOperationRequest(
            namespace="default",
            job_id=job,
            reason="auth test",
            executions=[WorkflowExecution(workflow_id=i) for i in ids],
            termination_operation=batch.BatchOperationTermination(),
        )
    )

    async def done() -> bool:
        described = await writer.workflow_service.describe_batch_operation(
            ws.DescribeBatchOperationRequest(namespace="default", job_id=job)
        )
        return described.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED

    await until(done, what="the batch job")
    for workflow_id in ids:
        assert (await writer.get_workflow_handle(workflow_id).describe()).status == Status.TERMINATED

    schedule_id = f"sched-{tag}"
    handle = await writer.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(Idle.run, id=f"from-{schedule_id}", task_queue="nobody"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )
    await handle.trigger()

    async def started() -> bool:
        return bool((await handle.describe()).info.recent_actions)

    await until(started, what="the schedule's action")
    await handle.delete()


async def test_refusals_are_logged(server: ServerProcess) -> None:
    await refused((await connect(server, None)).count_workflows())
    await refused((await connect(server, "garbage")).count_workflows())

    async def logged() -> bool:
        # The first refusal of each kind is logged at once (later ones at most every 10 s): this test's, or an
        # earlier test's.
        log = server.log_tail(1_000_000)
        return "request refused: CountWorkflowExecutions on namespace 'default': no token" in log and (
            "request refused: CountWorkflowExecutions on namespace 'default': invalid token" in log
        )

    await until(logged, what="the refusals in the log")
