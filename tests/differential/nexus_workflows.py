"""Nexus services and workflows for the differential Nexus scenarios (a copy of the shared
conformance suite's GreetingService, so that CI needs only this repository). Free of test-only
imports: the SDK sandbox re-imports it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import activity, nexus, workflow
from temporalio.exceptions import ApplicationError


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@dataclass
class NexusInput:
    name: str
    mode: str = "ok"


@dataclass
class NexusOutput:
    message: str


@nexusrpc.service
class GreetingService:
    echo: nexusrpc.Operation[NexusInput, NexusOutput]
    hello: nexusrpc.Operation[NexusInput, NexusOutput]


@workflow.defn
class NexusHandlerWorkflow:
    """Closes only when the test releases it (`release`), which it does once the caller's workflow
    task that saw NexusOperationStarted (or CancelRequestCompleted) has completed: the outcome then
    never arrives while that task runs, and the histories do not depend on who is quicker."""

    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self, inp: NexusInput) -> NexusOutput:
        if inp.mode == "hang":
            try:
                await workflow.wait_condition(lambda: False)
            except asyncio.CancelledError:
                await workflow.wait_condition(lambda: self.released)
                raise
        await workflow.wait_condition(lambda: self.released)
        if inp.mode == "fail":
            raise ApplicationError("handler workflow failed", non_retryable=True)
        msg = await workflow.execute_activity(greet, inp.name, start_to_close_timeout=timedelta(seconds=10))
        return NexusOutput(msg)

    @workflow.signal
    def release(self) -> None:
        self.released = True


# Start attempts of `retry-once` operations, per (handler task queue, name): both servers' handler
# workers run in one test process, each on its own task queue, with the same operation names.
ATTEMPTS: dict[tuple[str, str], int] = {}


@nexusrpc.handler.service_handler(service=GreetingService)
class GreetingServiceHandler:
    @nexusrpc.handler.sync_operation
    async def echo(self, ctx: nexusrpc.handler.StartOperationContext, inp: NexusInput) -> NexusOutput:
        if inp.mode == "operation-error":
            raise nexusrpc.OperationError("operation failed on purpose", state=nexusrpc.OperationErrorState.FAILED)
        if inp.mode == "bad-request":
            raise nexusrpc.HandlerError("bad request on purpose", type=nexusrpc.HandlerErrorType.BAD_REQUEST)
        if inp.mode == "retry-once":
            key = (nexus.info().task_queue, inp.name)
            ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
            if ATTEMPTS[key] == 1:
                raise nexusrpc.HandlerError("transient", type=nexusrpc.HandlerErrorType.INTERNAL)
        return NexusOutput(f"echo {inp.name}")

    @nexus.workflow_run_operation
    async def hello(self, ctx: nexus.WorkflowRunOperationContext, inp: NexusInput) -> nexus.WorkflowHandle[NexusOutput]:
        return await ctx.start_workflow(NexusHandlerWorkflow.run, inp, id=f"handler-{inp.name}")


@dataclass
class CallerInput:
    endpoint: str
    operation: str
    name: str
    mode: str = "ok"
    schedule_to_close_seconds: float = 0


@workflow.defn
class NexusCallerWorkflow:
    @workflow.run
    async def run(self, inp: CallerInput) -> str:
        client = workflow.create_nexus_client(service=GreetingService, endpoint=inp.endpoint)
        op = GreetingService.echo if inp.operation == "echo" else GreetingService.hello
        timeout = timedelta(seconds=inp.schedule_to_close_seconds) if inp.schedule_to_close_seconds else None
        result = await client.execute_operation(op, NexusInput(inp.name, inp.mode), schedule_to_close_timeout=timeout)
        return result.message


@workflow.defn
class NexusCancelCallerWorkflow:
    """Starts a `hello` that hangs, cancels it when the test says so (WAIT_COMPLETED: once the handler
    workflow's first task is done, whatever its speed) and reports how it ended."""

    def __init__(self) -> None:
        self.cancel_now = False

    @workflow.run
    async def run(self, inp: CallerInput) -> str:
        client = workflow.create_nexus_client(service=GreetingService, endpoint=inp.endpoint)
        handle = await client.start_operation(GreetingService.hello, NexusInput(inp.name, "hang"))
        await workflow.wait_condition(lambda: self.cancel_now)
        handle.cancel()
        try:
            await handle
            return "not cancelled"
        except Exception as err:  # the SDK raises NexusOperationError with a CancelledError cause
            cause = getattr(err, "cause", None)
            return f"{type(err).__name__}/{type(cause).__name__}"

    @workflow.signal
    def cancel(self) -> None:
        self.cancel_now = True
