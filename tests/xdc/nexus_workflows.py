"""A Nexus service whose asynchronous operation runs a workflow that waits for a signal, and a caller workflow,
for the tests of Nexus across clusters. Free of test-only imports: the SDK's workflow sandbox re-imports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import nexus, workflow


@dataclass
class Job:
    name: str


@dataclass
class Order:
    endpoint: str
    operation: str  # echo | run_job
    name: str


@workflow.defn
class JobWorkflow:
    """The handler side of `run_job`: done when signalled."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.run
    async def run(self, job: Job) -> str:
        await workflow.wait_condition(lambda: self.finished)
        return f"done {job.name}"


@nexusrpc.service
class Jobs:
    echo: nexusrpc.Operation[Job, str]
    run_job: nexusrpc.Operation[Job, str]


@nexusrpc.handler.service_handler(service=Jobs)
class JobsHandler:
    @nexusrpc.handler.sync_operation
    async def echo(self, ctx: nexusrpc.handler.StartOperationContext, job: Job) -> str:
        return f"echo {job.name}"

    @nexus.workflow_run_operation
    async def run_job(self, ctx: nexus.WorkflowRunOperationContext, job: Job) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(JobWorkflow.run, job, id=job_workflow_id(job.name))


def job_workflow_id(name: str) -> str:
    return f"job-{name}"


@workflow.defn
class OrderWorkflow:
    @workflow.run
    async def run(self, order: Order) -> str:
        client = workflow.create_nexus_client(service=Jobs, endpoint=order.endpoint)
        operation = Jobs.echo if order.operation == "echo" else Jobs.run_job
        return await client.execute_operation(
            operation, Job(order.name), schedule_to_close_timeout=timedelta(seconds=300)
        )
