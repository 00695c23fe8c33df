"""Which access each API needs, and at which scope: the reference's method metadata (common/api/metadata.go in
temporalio/temporal), which its default authorizer reads. A unit test checks that every method of the
WorkflowService and OperatorService the temporalio protos declare has an entry.
"""

from __future__ import annotations

import enum


class Scope(enum.Enum):
    UNKNOWN = 0
    NAMESPACE = 1  # the request names its namespace; system roles apply too
    CLUSTER = 2  # only system (temporal-system) roles apply


class Access(enum.Enum):
    UNKNOWN = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


NS, CLUSTER = Scope.NAMESPACE, Scope.CLUSTER
READ, WRITE, ADMIN = Access.READ, Access.WRITE, Access.ADMIN

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
OPERATOR_SERVICE = "/temporal.api.operatorservice.v1.OperatorService/"
# Not a gRPC service: the names the reference authorizes its Nexus HTTP requests as.
NEXUS_SERVICE = "/temporal.api.nexusservice.v1.NexusService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


WORKFLOW_SERVICE_ACCESS: dict[str, tuple[Scope, Access]] = {
    "RegisterNamespace": (NS, ADMIN),
    "DescribeNamespace": (NS, READ),
    "ListNamespaces": (CLUSTER, READ),
    "UpdateNamespace": (NS, ADMIN),
    "DeprecateNamespace": (NS, ADMIN),
    "StartWorkflowExecution": (NS, WRITE),
    "GetWorkflowExecutionHistory": (NS, READ),
    "GetWorkflowExecutionHistoryReverse": (NS, READ),
    "PollWorkflowTaskQueue": (NS, WRITE),
    "RespondWorkflowTaskCompleted": (NS, WRITE),
    "RespondWorkflowTaskFailed": (NS, WRITE),
    "PollActivityTaskQueue": (NS, WRITE),
    "RecordActivityTaskHeartbeat": (NS, WRITE),
    "RecordActivityTaskHeartbeatById": (NS, WRITE),
    "RespondActivityTaskCompleted": (NS, WRITE),
    "RespondActivityTaskCompletedById": (NS, WRITE),
    "RespondActivityTaskFailed": (NS, WRITE),
    "RespondActivityTaskFailedById": (NS, WRITE),
    "RespondActivityTaskCanceled": (NS, WRITE),
    "RespondActivityTaskCanceledById": (NS, WRITE),
    "CountActivityExecutions": (NS, READ),
    "CountNexusOperationExecutions": (NS, READ),
    "DeleteActivityExecution": (NS, WRITE),
    "DeleteNexusOperationExecution": (NS, WRITE),
    "DescribeActivityExecution": (NS, READ),
    "DescribeNexusOperationExecution": (NS, READ),
    "PollActivityExecution": (NS, READ),
    "PollNexusOperationExecution": (NS, READ),
    "ListActivityExecutions": (NS, READ),
    "ListNexusOperationExecutions": (NS, READ),
    "RequestCancelActivityExecution": (NS, WRITE),
    "RequestCancelNexusOperationExecution": (NS, WRITE),
    "StartActivityExecution": (NS, WRITE),
    "StartNexusOperationExecution": (NS, WRITE),
    "TerminateActivityExecution": (NS, WRITE),
    "TerminateNexusOperationExecution": (NS, WRITE),
    "PollNexusTaskQueue": (NS, WRITE),
    "RespondNexusTaskCompleted": (NS, WRITE),
    "RespondNexusTaskFailed": (NS, WRITE),
    "RequestCancelWorkflowExecution": (NS, WRITE),
    "SignalWorkflowExecution": (NS, WRITE),
    "SignalWithStartWorkflowExecution": (NS, WRITE),
    "ResetWorkflowExecution": (NS, WRITE),
    "TerminateWorkflowExecution": (NS, WRITE),
    "DeleteWorkflowExecution": (NS, WRITE),
    "ListOpenWorkflowExecutions": (NS, READ),
    "ListClosedWorkflowExecutions": (NS, READ),
    "ListWorkflowExecutions": (NS, READ),
    "ListArchivedWorkflowExecutions": (NS, READ),
    "ScanWorkflowExecutions": (NS, READ),
    "CountWorkflowExecutions": (NS, READ),
    "GetSearchAttributes": (CLUSTER, READ),
    "RespondQueryTaskCompleted": (NS, WRITE),
    "ResetStickyTaskQueue": (NS, WRITE),
    "ShutdownWorker": (NS, WRITE),
    "ExecuteMultiOperation": (NS, WRITE),
    "QueryWorkflow": (NS, READ),
    "DescribeWorkflowExecution": (NS, READ),
    "DescribeTaskQueue": (NS, READ),
    "GetClusterInfo": (CLUSTER, READ),
    "GetSystemInfo": (CLUSTER, READ),
    "ListTaskQueuePartitions": (NS, READ),
    "CreateSchedule": (NS, WRITE),
    "DescribeSchedule": (NS, READ),
    "UpdateSchedule": (NS, WRITE),
    "PatchSchedule": (NS, WRITE),
    "ListScheduleMatchingTimes": (NS, READ),
    "DeleteSchedule": (NS, WRITE),
    "ListSchedules": (NS, READ),
    "CountSchedules": (NS, READ),
    "UpdateWorkerBuildIdCompatibility": (NS, WRITE),
    "GetWorkerBuildIdCompatibility": (NS, READ),
    "UpdateWorkerVersioningRules": (NS, WRITE),
    "GetWorkerVersioningRules": (NS, READ),
    "GetWorkerTaskReachability": (NS, READ),
    "UpdateWorkflowExecution": (NS, WRITE),
    "PollWorkflowExecutionUpdate": (NS, READ),
    "PollWorkflowExecutionTimeSkipping": (NS, READ),
    "StartBatchOperation": (NS, WRITE),
    "StopBatchOperation": (NS, WRITE),
    "DescribeBatchOperation": (NS, READ),
    "ListBatchOperations": (NS, READ),
    "UpdateActivityOptions": (NS, WRITE),
    "PauseActivity": (NS, WRITE),
    "UnpauseActivity": (NS, WRITE),
    "ResetActivity": (NS, WRITE),
    "UpdateActivityExecutionOptions": (NS, WRITE),
    "PauseActivityExecution": (NS, WRITE),
    "UnpauseActivityExecution": (NS, WRITE),
    "ResetActivityExecution": (NS, WRITE),
    "UpdateWorkflowExecutionOptions": (NS, WRITE),
    "DescribeDeployment": (NS, READ),
    "ListDeployments": (NS, READ),
    "GetDeploymentReachability": (NS, READ),
    "GetCurrentDeployment": (NS, READ),
    "SetCurrentDeployment": (NS, WRITE),
    "DescribeWorkerDeploymentVersion": (NS, READ),
    "DescribeWorkerDeployment": (NS, READ),
    "SetWorkerDeploymentCurrentVersion": (NS, WRITE),
    "SetWorkerDeploymentRampingVersion": (NS, WRITE),
    "SetWorkerDeploymentManager": (NS, WRITE),
    "CreateWorkerDeployment": (NS, WRITE),
    "DeleteWorkerDeployment": (NS, WRITE),
    "CreateWorkerDeploymentVersion": (NS, WRITE),
    "UpdateWorkerDeploymentVersionComputeConfig": (NS, WRITE),
    "ValidateWorkerDeploymentVersionComputeConfig": (NS, READ),
    "DeleteWorkerDeploymentVersion": (NS, WRITE),
    "UpdateWorkerDeploymentVersionMetadata": (NS, WRITE),
    "ListWorkerDeployments": (NS, READ),
    "CreateWorkflowRule": (NS, WRITE),
    "DescribeWorkflowRule": (NS, READ),
    "DeleteWorkflowRule": (NS, WRITE),
    "ListWorkflowRules": (NS, READ),
    "TriggerWorkflowRule": (NS, WRITE),
    "RecordWorkerHeartbeat": (NS, WRITE),
    "ListWorkers": (NS, READ),
    "CountWorkers": (NS, READ),
    "DescribeWorker": (NS, READ),
    "UpdateTaskQueueConfig": (NS, WRITE),
    "FetchWorkerConfig": (NS, READ),
    "UpdateWorkerConfig": (NS, WRITE),
    "PauseWorkflowExecution": (NS, WRITE),
    "UnpauseWorkflowExecution": (NS, WRITE),
}


OPERATOR_SERVICE_ACCESS: dict[str, tuple[Scope, Access]] = {
    "AddSearchAttributes": (NS, ADMIN),
    "RemoveSearchAttributes": (NS, ADMIN),
    "ListSearchAttributes": (NS, READ),
    "DeleteNamespace": (NS, ADMIN),
    "AddOrUpdateRemoteCluster": (CLUSTER, ADMIN),
    "RemoveRemoteCluster": (CLUSTER, ADMIN),
    "ListClusters": (CLUSTER, ADMIN),
    "CreateNexusEndpoint": (CLUSTER, ADMIN),
    "UpdateNexusEndpoint": (CLUSTER, ADMIN),
    "DeleteNexusEndpoint": (CLUSTER, ADMIN),
    "GetNexusEndpoint": (CLUSTER, ADMIN),
    "ListNexusEndpoints": (CLUSTER, ADMIN),
}


NEXUS_SERVICE_ACCESS: dict[str, tuple[Scope, Access]] = {
    "DispatchNexusTask": (NS, WRITE),
    "DispatchByNamespaceAndTaskQueue": (NS, WRITE),
    "DispatchByEndpoint": (NS, WRITE),
    "CompleteNexusOperation": (NS, WRITE),
    "CompleteNexusOperationChasm": (NS, WRITE),
}


# tempyral's own operator service (nexus/access_service.py): an endpoint's access policy is managed like the
# endpoint itself, by the system admin.
ENDPOINT_ACCESS_SERVICE = "/tempyral.internal.v1.NexusEndpointAccessService/"
ENDPOINT_ACCESS_SERVICE_ACCESS: dict[str, tuple[Scope, Access]] = {
    "GetNexusEndpointAccess": (CLUSTER, ADMIN),
    "UpdateNexusEndpointAccess": (CLUSTER, ADMIN),
}


# Always allowed, token or not: they tell nothing sensitive (the reference's IsHealthCheckAPI).
HEALTH_CHECK_APIS = frozenset({HEALTH_CHECK, WORKFLOW_SERVICE + "GetSystemInfo"})


def method_access(full_name: str) -> tuple[Scope, Access]:
    """Scope and access of "/package.Service/Method"; unknown for anything else (which is then refused)."""
    service, _, method = full_name.rpartition("/")
    table = _TABLES.get(service + "/")
    if table is None:
        return Scope.UNKNOWN, Access.UNKNOWN
    return table.get(method, (Scope.UNKNOWN, Access.UNKNOWN))


_TABLES = {
    WORKFLOW_SERVICE: WORKFLOW_SERVICE_ACCESS,
    OPERATOR_SERVICE: OPERATOR_SERVICE_ACCESS,
    NEXUS_SERVICE: NEXUS_SERVICE_ACCESS,
    ENDPOINT_ACCESS_SERVICE: ENDPOINT_ACCESS_SERVICE_ACCESS,
}
