"""Nexus services, handlers and caller workflows for the project's Nexus tests.

Kept free of test-only imports: the SDK's workflow sandbox re-imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import nexus, workflow
from temporalio.exceptions import ApplicationError


@dataclass
class Req:
    name: str
    mode: str = "ok"


@dataclass
class Resp:
    message: str


@nexusrpc.service
class Greeter:
    echo: nexusrpc.Operation[Req, Resp]
    hello: nexusrpc.Operation[Req, Resp]


@workflow.defn
class GreeterWorkflow:
    @workflow.run
    async def run(self, req: Req) -> Resp:
        if req.mode == "hang":
            await workflow.wait_condition(lambda: False)
        if req.mode == "fail":
            raise ApplicationError("handler workflow failed", non_retryable=True)
        if req.mode == "slow":
            await workflow.sleep(timedelta(seconds=2))
        return Resp(f"Hello, {req.name}!")


@nexusrpc.handler.service_handler(service=Greeter)
class GreeterHandler:
    """Counts the start requests it served (per instance, so two workers can be told apart)."""

    def __init__(self) -> None:
        self.calls = 0

    @nexusrpc.handler.sync_operation
    async def echo(self, ctx: nexusrpc.handler.StartOperationContext, req: Req) -> Resp:
        self.calls += 1
        if req.mode == "operation-error":
            raise nexusrpc.OperationError("operation failed on purpose", state=nexusrpc.OperationErrorState.FAILED)
        if req.mode == "bad-request":
            raise nexusrpc.HandlerError("bad request on purpose", type=nexusrpc.HandlerErrorType.BAD_REQUEST)
        return Resp(f"echo {req.name}")

    @nexus.workflow_run_operation
    async def hello(self, ctx: nexus.WorkflowRunOperationContext, req: Req) -> nexus.WorkflowHandle[Resp]:
        self.calls += 1
        return await ctx.start_workflow(GreeterWorkflow.run, req, id=f"greeter-{req.name}")


@nexusrpc.service
class Pinger:
    ping: nexusrpc.Operation[Req, Resp]


@nexusrpc.handler.service_handler(service=Pinger)
class PingerHandler:
    """A second service, to be served from the same task queue as Greeter."""

    @nexusrpc.handler.sync_operation
    async def ping(self, ctx: nexusrpc.handler.StartOperationContext, req: Req) -> Resp:
        return Resp(f"pong {req.name}")


@nexusrpc.service(name="Greeter")
class GreeterWithUnknownOperation:
    """The Greeter service as a caller that expects an operation the handler does not have."""

    missing: nexusrpc.Operation[Req, Resp]


@dataclass
class Call:
    endpoint: str
    operation: str  # echo | hello | missing | ping
    name: str
    mode: str = "ok"
    schedule_to_close_s: float = 0
    cancel_type: str = ""  # cancel after starting, with this NexusOperationCancellationType name
    pad: int = 0  # characters added to the operation's input (made in the workflow: its own input stays small)


@workflow.defn
class Caller:
    @workflow.run
    async def run(self, call: Call) -> str:
        timeout = timedelta(seconds=call.schedule_to_close_s) if call.schedule_to_close_s else None
        req = Req(call.name + "x" * call.pad, call.mode)
        if call.operation == "missing":
            missing = workflow.create_nexus_client(service=GreeterWithUnknownOperation, endpoint=call.endpoint)
            return (await missing.execute_operation(GreeterWithUnknownOperation.missing, req)).message
        if call.operation == "ping":
            pinger = workflow.create_nexus_client(service=Pinger, endpoint=call.endpoint)
            return (await pinger.execute_operation(Pinger.ping, req)).message
        client = workflow.create_nexus_client(service=Greeter, endpoint=call.endpoint)
        op = Greeter.echo if call.operation == "echo" else Greeter.hello
        if not call.cancel_type:
            return (await client.execute_operation(op, req, schedule_to_close_timeout=timeout)).message
        handle = await client.start_operation(
            op, req, cancellation_type=workflow.NexusOperationCancellationType[call.cancel_type]
        )
        await workflow.sleep(1)
        handle.cancel()
        try:
            return (await handle).message
        except Exception as err:
            return f"{type(err).__name__}/{type(getattr(err, 'cause', None)).__name__}"
