"""Wires persistence, namespaces, history, matching and the frontend together; start and stop."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import socket
import ssl
import sys

import grpc
from aiohttp import web
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service_pb
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service_pb

from tempyral.auth.authorizer import INTERNAL_SECRET_KEY, Authorizer
from tempyral.auth.grpc import GrpcAuthorization, HttpAuthorization
from tempyral.batch.apply import Applier
from tempyral.batch.service import BatchOperations
from tempyral.cluster.auto_failover import AutoFailover, local_failover
from tempyral.cluster.cluster_wide import ClusterWide
from tempyral.cluster.config_watch import ConfigWatch
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.namespace_replication import NamespaceReplicator
from tempyral.cluster.peers import Peers
from tempyral.cluster.receiver import HistoryReceiver
from tempyral.cluster.replication_nodes import ReplicationNodes, replication_node_handler
from tempyral.cluster.sender import HistorySender
from tempyral.cluster.service import ReplicationService, replication_handler
from tempyral.cluster.status import ReplicationStatus
from tempyral.cluster.status import add_http_route as add_replication_status_route
from tempyral.common import tls
from tempyral.common.bind import bind, bound_addresses, check_free, host_port, local_host, warn_if_exposed
from tempyral.common.dynamic_config import AddressPattern, DynamicConfig
from tempyral.common.errors import StartupError
from tempyral.common.limits import (
    CALL_LIMITS,
    GRPC_MAX_METADATA_BYTES,
    GRPC_MAX_PENDING_REQUESTS,
    GRPC_MAX_RECEIVE_BYTES,
    GRPC_MAX_SEND_BYTES,
)
from tempyral.config import ServerConfig
from tempyral.frontend.admission import Admission
from tempyral.frontend.dynamic_limits import DynamicLimits, NamespaceRates
from tempyral.frontend.grpc_handlers import generic_handler
from tempyral.frontend.handover import HandoverGate
from tempyral.frontend.health import health_handler
from tempyral.frontend.http_gateway import HttpGateway
from tempyral.frontend.observe import RequestObserver
from tempyral.frontend.operator_service import OperatorService
from tempyral.frontend.redirection import Redirector
from tempyral.frontend.workflow_service import WorkflowService
from tempyral.history.engine import EngineConfig, HistoryEngine
from tempyral.history.reapply import reapply
from tempyral.history.replication import ReplicationApplier
from tempyral.matching.service import Matching
from tempyral.metrics import ServerMetrics
from tempyral.metrics.http import MetricsEndpoint
from tempyral.metrics.matching import MatchingMetrics
from tempyral.metrics.persistence import instrument_store
from tempyral.metrics.tasks import TaskMetrics
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus import access
from tempyral.nexus.access_service import EndpointAccessService, endpoint_access_handler
from tempyral.nexus.addresses import AddressRule, OutboundAddresses
from tempyral.nexus.callbacks import CallbackDelivery
from tempyral.nexus.dispatch import NexusDispatcher
from tempyral.nexus.endpoint_replication import (
    EndpointChangesService,
    EndpointReplicator,
    endpoint_replication_handler,
)
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.nexus.http_api import NexusHttpApi
from tempyral.nexus.http_client import NexusHttpClient
from tempyral.nexus.invoker import NexusInvoker
from tempyral.nexus.machinery import Machinery
from tempyral.nexus.metrics import NexusMetrics
from tempyral.nexus.operations import NexusOperations
from tempyral.nexus.standalone import StandaloneNexus, is_standalone_task
from tempyral.nodes.client import NodeClient
from tempyral.nodes.matching import MatchingRouter
from tempyral.nodes.membership import Membership
from tempyral.nodes.ownership import Ownership
from tempyral.nodes.routed_ops import RoutedNexusCompletion, RoutedWorkflowOps, Router
from tempyral.nodes.routing import NodeRouter, RoutedServicer
from tempyral.nodes.service import NodeService, node_handler
from tempyral.nodes.shards import ShardController
from tempyral.persistence.open import describe as describe_db
from tempyral.persistence.open import is_postgres_url, open_store
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import NamespaceRecord, TaskType
from tempyral.schedules.runner import ScheduleRunner
from tempyral.schedules.service import ScheduleService
from tempyral.ui.assets import UiAssetsError, ensure_assets
from tempyral.ui.server import ui_application
from tempyral.visibility.service import Visibility

log = logging.getLogger(__name__)

WORKFLOW_SERVICE = workflow_service_pb.DESCRIPTOR.services_by_name["WorkflowService"]
OPERATOR_SERVICE = operator_service_pb.DESCRIPTOR.services_by_name["OperatorService"]


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # TLS of every port, and of the connections this server makes (common/tls.py).
        config.tls.check()
        tls.configure_outbound(tls.outbound_of(config.tls))
        self.certificates: tls.ServerCertificates | None = None
        # Prometheus metrics named as the reference's, served on --metrics-port and the HTTP port (metrics/).
        self.metrics = ServerMetrics()
        self.metrics_endpoint = MetricsEndpoint(self.metrics, config.metrics)
        self.observer = RequestObserver(self.metrics)
        # Settings changeable without a restart (--dynamic-config-value, --dynamic-config-path), read where used.
        self.dynamic_config = DynamicConfig(config.dynamic_config)
        self.namespace_rates = NamespaceRates(self.dynamic_config)
        self.store = open_store(config)
        instrument_store(self.store, self.metrics)
        self.clusters = ClusterMetadata(self.store)
        self.namespaces = NamespaceRegistry(self.store, self.clusters)
        self.metrics.known_namespace = lambda name: self.namespaces.find(name) is not None
        self.metrics.namespace_name = self._namespace_name
        # Several clusters: channels to the connected ones, the internal service they call here, and the pull of
        # global namespace records from them.
        self.peers = Peers(self.clusters)
        self.replication_service = ReplicationService(self.clusters, self.namespaces)
        self.namespace_replicator = NamespaceReplicator(self.clusters, self.namespaces, self.peers)
        self.auto_failover: AutoFailover | None = None  # opt-in per namespace; started once the frontend serves
        # Where completion callbacks and external endpoints may point; checked on request and before each call.
        self.outbound_addresses = OutboundAddresses(config.callback_allowed_addresses)
        self.outbound_addresses.dynamic_rules = self._dynamic_address_rules
        self.endpoints = EndpointRegistry(self.store, self.namespaces, self.outbound_addresses)
        # The endpoint registry is replicated to every connected cluster: changes pulled from them, and served.
        self.endpoint_replicator = EndpointReplicator(self.clusters, self.endpoints, self.peers)
        self.endpoint_changes = EndpointChangesService(self.clusters, self.endpoints)
        # Endpoint access policies: --nexus-allow writes them; `tempyral nexus endpoint` manages them.
        self.endpoints.initial_access = {name: access.only(ns) for name, ns in config.nexus.allowed_callers.items()}
        self.endpoint_access = EndpointAccessService(self.endpoints)
        self.matching = Matching(MatchingMetrics(self.metrics))
        self.admission = Admission(config.admission)
        # JWT authorization of client calls (--auth-jwks-path/--auth-jwks-url); None: every call is allowed.
        self.authorizer = Authorizer(config.auth) if config.auth.enabled else None
        # Calls of namespaces that are standby here, sent to their active cluster (--dc-redirection-policy).
        self.redirector = Redirector(config.dc_redirection_policy, self.clusters, self.namespaces, WORKFLOW_SERVICE)
        # Several nodes share a PostgreSQL database and serve one cluster (nodes/); SQLite is one process's.
        self.node_name = config.nodes.name or host_port(local_host(config.ip), config.port)
        self.several_nodes = is_postgres_url(config.db)
        self.engine = HistoryEngine(
            self.store,
            self.namespaces,
            self.matching,
            EngineConfig(
                num_shards=config.num_shards,
                owner=self.node_name,
                max_pending_nexus_operations=config.nexus.max_pending_operations,
                cache_bytes=config.history_cache_bytes,
            ),
        )
        self.engine.tasks.metrics = task_metrics = TaskMetrics(self.metrics)
        self.engine.executions.closed_listeners.append(task_metrics.workflow_closed)
        # Batch operations: each job runs on the node holding its shard (batch/service.py).
        self.batches = BatchOperations(self.store, self.engine, self.namespaces)
        # History replication: streams of this cluster's replication tasks to the others, and of theirs to here.
        self.history_sender = HistorySender(self.engine.executions, self.store, self.namespaces, self.clusters)
        self.replication_service.history_source = self.history_sender
        self.replication_service.shard_watermarks = lambda: {
            shard.shard_id: shard.next_task_id - 1 for shard in self.engine.shards if shard.owned
        }
        self.engine.on_replication_tasks = self.history_sender.notify
        self.history_receiver = HistoryReceiver(
            self.clusters,
            self.peers,
            ReplicationApplier(self.engine.executions, self.namespaces),
            self.store,
            self.namespace_replicator,
        )
        self.namespace_replicator.catch_up = self.history_receiver.wait_applied
        self.replication_status = ReplicationStatus(
            self.clusters, self.namespaces, self.history_sender, self.history_receiver, config.num_shards
        )
        self.replication_service.status = self.replication_status.snapshot
        self.replication_service.dlq = self.history_receiver
        self.replication_service.handoffs_done = self.engine.handoffs_done
        self.replication_service.reapply = self._reapply_events
        self.nexus_dispatcher = NexusDispatcher(self.matching)
        # Per (endpoint, caller namespace) limits: dynamic config's component.nexusoperations.limit.callerRPS, else
        # --nexus-caller-rps; looked up per call, so a reloaded value applies at once.
        caller_flags = config.nexus.caller_rps
        self.nexus_machinery = Machinery(
            config.nexus,
            caller_rps=lambda endpoint, ns: self.dynamic_config.caller_rps(
                endpoint, ns, caller_flags.get((endpoint, ns), 0.0)
            ),
        )
        self.nexus_metrics = NexusMetrics(self.metrics, self.nexus_machinery)
        # The history side of Nexus operations: it records outcomes and applies their timers.
        self.nexus_operations = NexusOperations(self.engine.executions, config.nexus)
        # Standalone operations (started by clients) share the Nexus tasks and timers of workflows' operations.
        self.standalone_nexus = StandaloneNexus(self.engine.executions, self.namespaces, self.endpoints, config.nexus)
        self.nexus_operations.standalone_complete = self.standalone_nexus.complete
        self.engine.tasks.timer_handlers.update(self.standalone_nexus.timer_handlers(self.nexus_operations.on_timer))
        # Schedules: each a hidden scheduler run whose wake timer the engine's timer queue fires (schedules/).
        self.schedule_runner = ScheduleRunner(self.engine, self.namespaces, self.store)
        self.nexus_invoker = NexusInvoker(
            self.nexus_operations,
            self.namespaces,
            self.endpoints,
            self.nexus_dispatcher,
            self.nexus_machinery,
            self.nexus_metrics,
        )
        self.nexus_invoker.standalone_caller = self.standalone_nexus
        self.nexus_invoker.request_timeout = lambda namespace, endpoint: self.dynamic_config.nexus_request_timeout_s(
            namespace, endpoint, config.nexus.request_timeout_s
        )
        self.engine.executions.history_limits = self.dynamic_config.history_limits
        self.engine.workflow_tasks.max_pending_nexus_for = lambda namespace: (
            self.dynamic_config.nexus_max_concurrent_operations(namespace, config.nexus.max_pending_operations)
        )
        self.nexus_invoker.is_standalone = is_standalone_task
        self.callbacks = CallbackDelivery(
            self.nexus_operations, self.namespaces, self.nexus_machinery, self.nexus_metrics
        )
        self.engine.outbound.update(
            {
                TaskType.TASK_TYPE_NEXUS_START: self.nexus_invoker.start,
                TaskType.TASK_TYPE_NEXUS_CANCEL: self.nexus_invoker.cancel,
                TaskType.TASK_TYPE_CALLBACK: self.callbacks.deliver,
            }
        )
        self.engine.find_endpoint_id = self._endpoint_id
        # Nexus over HTTP: outbound calls to external endpoints and callback URLs, and the HTTP API.
        self.nexus_http_client = NexusHttpClient(config.nexus.request_timeout_s, self.outbound_addresses)
        self.nexus_invoker.external = self.nexus_http_client.call
        self.callbacks.external = self.nexus_http_client.deliver
        # Requests and completions for a namespace active on another cluster go to its HTTP API.
        self.nexus_invoker.other_cluster = self.nexus_http_client.call_cluster
        self.callbacks.other_cluster = self.nexus_http_client.deliver_to_cluster
        self.nexus_http_api = NexusHttpApi(
            self.nexus_operations,
            self.namespaces,
            self.endpoints,
            self.nexus_dispatcher,
            self.nexus_machinery,
            self.nexus_metrics,
        )
        self.metrics.more_text.append(self.replication_status.render_metrics)
        self.membership: Membership | None = None
        self.ownership: Ownership | None = None
        self.node_router: NodeRouter | None = None
        self.matching_router: MatchingRouter | None = None
        self.shard_controller: ShardController | None = None
        self.node_service: NodeService | None = None
        self.config_watch: ConfigWatch | None = None
        # Namespace and endpoint replication and automatic failover run on one node of the cluster.
        self.cluster_wide = ClusterWide(self._owned_here, self.several_nodes)
        self.replication_nodes: ReplicationNodes | None = None
        if self.several_nodes:
            self._wire_nodes()
            self._wire_replication_nodes()
        # Set when the server must stop on its own (its node name was taken over); the command exits non-zero.
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self._http: web.AppRunner | None = None
        self._ui: web.AppRunner | None = None
        self.ui_address = ""
        self._grpc: grpc.aio.Server | None = None
        self._serving = False
        # Bound before anything else starts, served once the rest is ready.
        self._http_socket: socket.socket | None = None
        self._ui_socket: socket.socket | None = None
        self.address = ""
        self.http_address = ""

    def _wire_nodes(self) -> None:
        """Membership, shard ownership, and passing work between the nodes of this cluster."""
        settings = self.config.nodes
        # Before the registries load: from then on their changes are numbered by claims and announced.
        self.config_watch = ConfigWatch(self.store, self.namespaces, self.endpoints, self.clusters)
        self.membership = membership = Membership(self.store, settings, self.node_name)
        membership.on_evicted = self._evicted
        self.ownership = ownership = Ownership(membership, self.config.num_shards)
        owned = self._owned_here
        self.node_router = NodeRouter(ownership, self.namespaces, WORKFLOW_SERVICE.full_name, owned)
        # Transfer tasks and Nexus completions that reach a workflow on another node's shard go there.
        client, shard_router = NodeClient(ownership), Router(ownership, owned)
        self.engine.tasks.workflows = RoutedWorkflowOps(self.engine, shard_router, client)
        complete = RoutedNexusCompletion(self.nexus_operations.complete, shard_router, client)
        self.callbacks.complete_operation = complete
        self.nexus_http_api.complete_operation = complete
        self.matching_router = router = MatchingRouter(ownership, self.matching, self.engine)
        dispatcher = self.nexus_dispatcher
        self.node_service = NodeService(
            self.namespaces,
            self.engine,
            self.nexus_operations.complete,
            add_task=router.add_task,
            record_task_started=router.record_task_started,
            dispatch_nexus_task=lambda request: router.dispatch_nexus_here(dispatcher, request),
            report_pollers=router.report_pollers,
            describe_queue=router.describe_queue,
        )
        self.matching.router = router
        self.engine.workflow_tasks.remote = router
        self.engine.activities.remote = router
        self.nexus_dispatcher.route = router.dispatch_nexus
        self.engine.on_shard_released.append(router.shard_released)
        self.engine.outbox.on_rows_deleted = router.forget
        for shard in self.engine.shards:
            shard.on_rows_deleted = router.forget
        membership.listeners.append(router.view_changed)
        self.shard_controller = ShardController(
            self.engine, self.store, membership, ownership, takeover_s=2 * settings.member_timeout_s
        )

    def _wire_replication_nodes(self) -> None:
        """History replication follows the shards: each node sends and receives the streams of the shards it owns,
        and passes what reaches it for another node's shard (cluster/replication_nodes.py)."""
        assert self.ownership is not None
        self.replication_nodes = nodes = ReplicationNodes(self.ownership, self._owned_here)
        self.replication_service.nodes = nodes
        self.history_receiver.nodes = nodes
        self.replication_status.gather = nodes.statuses_elsewhere
        self.replication_service.cluster_status = self.replication_status.cluster_snapshot
        for listeners, sender_hook in (
            (self.engine.on_shard_acquired, self.history_sender.shard_acquired),
            (self.engine.on_shard_released, self.history_sender.shard_released),
        ):
            listeners += [sender_hook, self.history_receiver.shard_moved, self.cluster_wide.shard_moved]

    def _owned_here(self, shard_id: int) -> bool:
        return self.engine.shards[shard_id].owned

    def _evicted(self, reason: str) -> None:
        log.error("stopping: %s", reason)
        self.fatal_reason = reason
        self.fatal.set()

    def _namespace_name(self, namespace_id: str) -> str | None:
        ns = self.namespaces.find_by_id(namespace_id)
        return ns.name if ns is not None else None

    def _dynamic_address_rules(self) -> tuple[AddressRule, ...] | None:
        """callback.allowedAddresses for the current call's namespace (none outside a call: the unconstrained
        value), when dynamic config sets it."""
        patterns = self.dynamic_config.callback_addresses(CALL_LIMITS.get().namespace or None)
        return None if patterns is None else _address_rules(patterns)

    def _endpoint_id(self, name: str) -> str | None:
        endpoint = self.endpoints.find_by_name(name)
        return endpoint.id if endpoint is not None else None

    async def _reapply_events(self, request: rpb.ReapplyEventsRequest) -> int:
        """Losing events of a run another cluster resolved a conflict on (ReplicationService.ReapplyEvents)."""
        return await reapply(
            self.engine.executions,
            self.namespaces,
            request.namespace_id,
            request.workflow_id,
            request.run_id,
            list(request.events.events),
        )

    async def start(self) -> None:
        """Bind every port, then lock and open the database, then serve. A port in use fails the start before
        the database is touched, and a failed start releases whatever it took."""
        try:
            self._listen()
            await self._start()
        except BaseException:
            await self.stop(grace=0)
            raise

    def _listen(self) -> None:
        """Take the ports: bound, not yet listening, so nobody connects before the server serves."""
        cfg = self.config
        check_free(cfg.ip, cfg.port, "the gRPC API")  # gRPC binds and listens at once: it comes last
        http_port = cfg.port + 10 if cfg.http_port is None else cfg.http_port
        self._http_socket = bind(cfg.ip, http_port, "the HTTP API")
        if not cfg.headless:
            ui_port = cfg.port + 1000 if cfg.ui_port is None else cfg.ui_port
            self._ui_socket = bind(cfg.ui.ip or cfg.ip, ui_port, "the Web UI")
        self.metrics_endpoint.listen(cfg.ip)

    async def _start(self) -> None:
        cfg = self.config
        self.certificates = tls.server_certificates(cfg.tls)
        if self.certificates is not None:
            self.certificates.start()
        if cfg.log_config:
            # --log-config: what the server runs with, on stderr as the reference prints it.
            print(f"tempyral configuration: {cfg!r}", file=sys.stderr, flush=True)
            effective = json.dumps(self.dynamic_config.effective(), sort_keys=True)
            print(f"tempyral dynamic config: {effective}", file=sys.stderr, flush=True)
        self.dynamic_config.start()
        await self.store.open()
        # Executions map to shards by hash: another count would strand every outstanding task and timer.
        shards = await self.store.get_or_set_metadata("history_shards", str(cfg.num_shards))
        if int(shards) != cfg.num_shards:
            raise StartupError(
                f"database {describe_db(cfg)} has {shards} history shards, and their number cannot change: "
                f"start with --shards {shards}"
            )
        await self.clusters.load(cfg.cluster, cfg.num_shards, describe_db(cfg))
        await self.namespaces.load()
        for name in ["default", *cfg.namespaces]:
            await self.namespaces.ensure(name)
        if cfg.search_attributes:
            for ns in self.namespaces.all():
                if all(ns.record.search_attributes.get(k) == v for k, v in cfg.search_attributes.items()):
                    continue  # a restart with the same flags changes nothing
                record = NamespaceRecord()
                record.CopyFrom(ns.record)
                record.search_attributes.update(cfg.search_attributes)
                if record.is_global_namespace:
                    record.config_version += 1  # replicated like any configuration change
                await self.namespaces.save(record)
        await self.endpoints.load()
        await self.endpoints.apply_initial_access()
        if self.authorizer is not None:
            # The credential of the server's own calls: one secret for all the nodes that share this database.
            secret = await self.store.get_or_set_metadata(INTERNAL_SECRET_KEY, secrets.token_urlsafe(32))
            await self.authorizer.start(secret)
        visibility = Visibility(self.store)
        workflow_service = WorkflowService(
            self.engine,
            self.namespaces,
            visibility,
            self.clusters,
            "postgres12" if is_postgres_url(cfg.db) else "sqlite",
            self.nexus_dispatcher,
            self.outbound_addresses,
            standalone_nexus=self.standalone_nexus,
            batches=self.batches,
            schedules=ScheduleService(self.engine, self.namespaces, visibility),
        )
        operator_service = OperatorService(self.namespaces, self.endpoints, self.clusters)
        # Every call runs with its namespace's dynamic limits (blob sizes, request rate): gRPC and HTTP alike.
        limited = DynamicLimits(workflow_service, self.dynamic_config, self.namespace_rates)
        http_workflow_service: object = limited
        if self.node_router is not None:
            http_workflow_service = RoutedServicer(WORKFLOW_SERVICE, limited, self.node_router)
        self.http_gateway = HttpGateway(
            [(WORKFLOW_SERVICE, http_workflow_service), (OPERATOR_SERVICE, operator_service)],
            self.admission,
            self.observer,
        )
        if self.authorizer is not None:
            self.http_gateway.authorizer = HttpAuthorization(self.authorizer)
            self.nexus_http_api.authorizer = self.authorizer
        # Before the engine: outbound tasks it resumes need the client and the callback URL.
        await self.nexus_http_client.start()
        self._set_callback_base_url()
        # The shards are owned before any door opens: no request meets an engine that cannot write yet. With several
        # nodes, this node joins first and takes the shards that belong on it; more come as other nodes hand them over.
        await self.engine.start(acquire_all=not self.several_nodes)
        if self.config_watch is not None:
            self.config_watch.start()  # its first poll reloads everything once
        grpc_server = self._grpc_server(limited, operator_service)
        if self.shard_controller is not None:
            await self._join(grpc_server)
        await self.history_sender.start()
        await self._start_http()
        await self._start_ui()
        await self.metrics_endpoint.start()
        await grpc_server.start()
        if self.membership is not None and self.shard_controller is not None:
            self.membership.start()
            self.shard_controller.start()
        if self.matching_router is not None:
            self.matching_router.start()
        # Batch jobs apply their operations through this node's own frontend: they start once it serves.
        self.batches.start(
            Applier(
                host_port(local_host(cfg.ip), int(self.address.rsplit(":", 1)[1])),
                self.authorizer.internal_header if self.authorizer is not None else None,
            )
        )
        # Where other clusters call this one: addresses to dial, never a wildcard.
        own_host = local_host(cfg.ip)
        await self.clusters.set_addresses(
            host_port(own_host, int(self.address.rsplit(":", 1)[1])),
            # host:port; the others dial it with TLS when they are configured for it, as this cluster serves it
            self.outbound_addresses.own_base_url.split("://", 1)[1],
        )
        self.auto_failover = auto_failover = AutoFailover(
            self.clusters,
            self.namespaces,
            self.peers,
            local_failover(workflow_service.namespace_handler.update),
            lambda: self.clusters.current.cluster_address,
        )
        self.cluster_wide.add("namespace replication", self.namespace_replicator.start, self.namespace_replicator.stop)
        self.cluster_wide.add("endpoint replication", self.endpoint_replicator.start, self.endpoint_replicator.stop)
        self.cluster_wide.add("automatic failover", auto_failover.start, auto_failover.stop)
        await self.cluster_wide.ready()
        await self.history_receiver.load_dlq_sizes()
        self.history_receiver.start()
        self._serving = True
        log.info("tempyral listening on %s (database: %s)", self.address, describe_db(cfg))
        warn_if_exposed("The gRPC API", [cfg.ip], self.address)

    async def _join(self, grpc_server: grpc.aio.Server) -> None:
        """Become a member (refused if a live node has this name) and take the shards nobody live holds."""
        assert self.membership is not None and self.shard_controller is not None and self._http_socket is not None
        own_host = local_host(self.config.ip)
        address = host_port(own_host, int(self.address.rsplit(":", 1)[1]))
        http_address = host_port(own_host, self._http_socket.getsockname()[1])
        await self.membership.join(address, http_address)
        await self.shard_controller.tick()

    def _grpc_server(self, workflow_service: object, operator_service: OperatorService) -> grpc.aio.Server:
        cfg = self.config
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", GRPC_MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", GRPC_MAX_SEND_BYTES),
                # grpc-go's header limit, as the reference has it. gRPC's own refuses metadata over 8 KiB at
                # random (RESOURCE_EXHAUSTED) and all over 16 KiB: the SDKs send the namespace name as a header.
                ("grpc.max_metadata_size", GRPC_MAX_METADATA_BYTES),
                ("grpc.absolute_max_metadata_size", GRPC_MAX_METADATA_BYTES),
                ("grpc.so_reuseport", 0),
                # Let the transport queue bursts instead of cancelling calls; the admission limits
                # (frontend/admission.py) bound the work and refuse the excess with a retryable error.
                ("grpc.server.max_pending_requests", GRPC_MAX_PENDING_REQUESTS),
                ("grpc.server.max_pending_requests_hard_limit", GRPC_MAX_PENDING_REQUESTS),
            ]
        )
        self._grpc = server  # stopped with the rest, should what follows fail
        # The public services only: the internal ones (replication, node-to-node) are not in the reference's API
        # table; the network (TLS) guards them.
        auth = GrpcAuthorization(self.authorizer) if self.authorizer is not None else None
        server.add_generic_rpc_handlers(
            (
                generic_handler(
                    WORKFLOW_SERVICE,
                    workflow_service,
                    self.admission,
                    self.redirector,
                    HandoverGate(self.namespaces),
                    self.node_router,
                    authorizer=auth,
                    observer=self.observer,
                ),
                generic_handler(
                    OPERATOR_SERVICE, operator_service, self.admission, authorizer=auth, observer=self.observer
                ),
                replication_handler(self.replication_service),
                *([node_handler(self.node_service)] if self.node_service is not None else []),
                *([replication_node_handler(self.history_receiver)] if self.replication_nodes is not None else []),
                endpoint_replication_handler(self.endpoint_changes),
                endpoint_access_handler(self.endpoint_access, auth),
                health_handler(),
            )
        )
        try:
            if self.certificates is not None:
                bound = server.add_secure_port(host_port(cfg.ip, cfg.port), self.certificates.grpc_credentials())
            else:
                bound = server.add_insecure_port(host_port(cfg.ip, cfg.port))
        except RuntimeError:
            bound = 0
        if bound == 0:  # taken since _listen checked it
            raise StartupError(f"cannot listen on {host_port(cfg.ip, cfg.port)} for the gRPC API")
        self.address = host_port(cfg.ip, bound)
        return server

    def _set_callback_base_url(self) -> None:
        """Where handlers send completions: the HTTP port, at an address to call (never a wildcard)."""
        assert self._http_socket is not None
        own = f"{self.http_scheme}://{host_port(local_host(self.config.ip), self._http_socket.getsockname()[1])}"
        self.nexus_invoker.callback_base_url = self.outbound_addresses.own_base_url = own

    async def _start_http(self) -> None:
        app = self.nexus_http_api.app()
        self.http_gateway.add_to(app)  # the Temporal HTTP API (/api/v1/...) shares the port
        add_replication_status_route(app, self.replication_status)
        assert self._http_socket is not None
        self._http, self.http_address = await _serve(app, self._http_socket, "The HTTP API", self._ssl_context)
        self._http_socket = None  # the site owns it now
        log.info("HTTP API (Temporal and Nexus) listening on %s://%s", self.http_scheme, self.http_address)

    async def _start_ui(self) -> None:
        if self._ui_socket is None:
            return
        try:
            assets = await asyncio.to_thread(ensure_assets)
        except UiAssetsError as e:
            log.warning("running without the Web UI: %s", e)
            self._ui_socket.close()
            self._ui_socket = None
            return
        # The UI's /api/v1 calls go to the same HTTP API handler as the HTTP port's.
        ui = self.config.ui
        app = ui_application(assets, self.http_gateway.handle, ui.public_path, ui.codec_endpoint)
        self._ui, self.ui_address = await _serve(app, self._ui_socket, "The Web UI", self._ssl_context)
        self._ui_socket = None
        log.info("Web UI at %s://%s%s", self.http_scheme, self.ui_address, ui.public_path)

    @property
    def http_scheme(self) -> str:
        """Of the HTTP API and the Web UI."""
        return "https" if self.config.tls.serving else "http"

    @property
    def _ssl_context(self) -> ssl.SSLContext | None:
        return self.certificates.ssl_context if self.certificates is not None else None

    async def _stop_ui(self) -> None:
        if self._ui is not None:
            await self._ui.cleanup()
            self._ui = None

    async def stop(self, grace: float = 2.0) -> None:
        """Stop serving and release everything; also undoes a start that failed half-way."""
        for sock in (self._http_socket, self._ui_socket):
            if sock is not None:
                sock.close()
        self._http_socket = self._ui_socket = None
        await self.batches.stop()  # before the frontend they call through goes
        await self.dynamic_config.stop()
        await self._stop_ui()
        await self.metrics_endpoint.stop()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        await self.cluster_wide.stop()  # automatic failover, namespace and endpoint replication
        if self.config_watch is not None:
            await self.config_watch.stop()
        await self.history_receiver.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        await self.peers.close()
        await self.redirector.close()
        await self.history_sender.stop()
        if self.shard_controller is not None:
            await self.shard_controller.stop()
            await self.shard_controller.hand_over_all()  # the others take them now, not after the timeout
        if self.membership is not None:
            await self.membership.stop()
            if self._serving:
                await self.membership.leave()
        if self.matching_router is not None:
            await self.matching_router.close()
            if self.node_router is not None:
                passed = ", ".join(f"{m} to {n}: {c}" for (n, m), c in sorted(self.node_router.passed.items()))
                log.info(
                    "node %s passed calls (%s) and sent %d tasks to other nodes",
                    self.node_name,
                    passed or "none",
                    self.matching_router.sent,
                )
        if self.ownership is not None:
            await self.ownership.close()
        await self.schedule_runner.stop()
        await self.engine.stop()
        await self.nexus_http_client.close()
        if self.authorizer is not None:
            await self.authorizer.stop()
        await self.store.close()
        if self.certificates is not None:
            await self.certificates.stop()
            tls.forget(self.config.tls)
            self.certificates = None
        if self._serving:
            log.info("tempyral stopped")
        self._serving = False


@functools.lru_cache(maxsize=64)
def _address_rules(patterns: tuple[AddressPattern, ...]) -> tuple[AddressRule, ...]:
    """Compiled once per value dynamic config gives (values are immutable tuples, replaced on reload)."""
    return tuple(AddressRule(p.pattern, p.allow_insecure) for p in patterns)


async def _serve(
    app: web.Application, sock: socket.socket, what: str, ssl_context: ssl.SSLContext | None
) -> tuple[web.AppRunner, str]:
    """Serve `app` on a bound socket (over TLS with `ssl_context`); the runner, and the address as bound."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    address = ", ".join(bound_addresses(runner.addresses))
    warn_if_exposed(what, [a[0] for a in runner.addresses], address)
    return runner, address
