"""Typed server configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from tempyral.auth.authorizer import AuthSettings
from tempyral.cluster.metadata import ClusterIdentity
from tempyral.common.dynamic_config import DynamicConfigSettings
from tempyral.common.tls import TlsSettings
from tempyral.frontend.admission import AdmissionLimits
from tempyral.metrics.http import MetricsSettings
from tempyral.nexus.addresses import AddressRule
from tempyral.ui.options import UiOptions


@dataclass(frozen=True)
class NexusLimits:
    """Configuration of the outbound machinery (defaults are the reference's)."""

    request_timeout_s: float = 10.0
    # Not enough time left before a timeout to make another call: the operation times out.
    min_request_timeout_s: float = 1.5
    retry_initial_s: float = 1.0
    retry_max_s: float = 3600.0
    retry_coefficient: float = 2.0
    retry_jitter: float = 0.2
    breaker_failures: int = 5  # opens after more than this many consecutive failures
    breaker_open_s: float = 60.0
    endpoint_rps: float = 0.0  # 0: unlimited
    namespace_rps: float = 0.0
    max_pending_operations: int = 30
    # Endpoint name -> caller namespaces allowed to use it (--nexus-allow): written as the access policy of the
    # endpoint of that name at start and when one is created (nexus/access.py).
    allowed_callers: dict[str, frozenset[str]] = field(default_factory=dict)
    # (endpoint name, caller namespace) -> requests per second (--nexus-caller-rps; nexus/machinery.py).
    caller_rps: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeSettings:
    """One node among several serving a cluster from one database (cluster/membership.py)."""

    # Unique among the cluster's live nodes; None: "IP:PORT" of the gRPC API.
    name: str | None = None
    # A node whose heartbeat is older than this is gone: its shards move to the live nodes.
    member_timeout_s: float = 5.0
    heartbeat_s: float = 1.0
    # A start keeps trying to reach the database this long, then fails.
    connect_timeout_s: float = 30.0


@dataclass
class ServerConfig:
    ip: str = "127.0.0.1"
    port: int = 7233
    # None: a throwaway database, gone at exit (like the reference dev server's default).
    db_filename: str | None = None
    # The database, when given: a postgresql:// URL, or a SQLite file (it wins over db_filename).
    db: str | None = None
    nodes: NodeSettings = field(default_factory=NodeSettings)
    namespaces: list[str] = field(default_factory=list)
    # name -> temporal.api.enums.v1.IndexedValueType
    search_attributes: dict[str, int] = field(default_factory=dict)
    log_level: str = "info"
    num_shards: int = 4
    # Memory for cached workflow state and histories; beyond it the least recently used are re-read when needed.
    history_cache_bytes: int = 128 * 1024 * 1024
    # "FULL" makes every commit durable against power loss; "NORMAL" only against crashes.
    sqlite_synchronous: str = "NORMAL"
    # More PRAGMA settings for every SQLite connection (--sqlite-pragma NAME=VALUE, as the reference's start-dev).
    sqlite_pragmas: dict[str, str] = field(default_factory=dict)
    # Who this cluster is: name, initial failover version, version increment (None each: the database's, or
    # the reference dev server's "active", 1 and 10 on a new database).
    cluster: ClusterIdentity = field(default_factory=ClusterIdentity)
    # Which calls on a standby cluster go to the namespace's active cluster (the reference's dcRedirectionPolicy).
    dc_redirection_policy: str = "noop"
    # The Nexus HTTP API: None = gRPC port + 10 (as the reference's 7243 for 7233), 0 = any free port.
    http_port: int | None = None
    # The Web UI: None = gRPC port + 1000 (as the reference's 8233 for 7233), 0 = any free port; off when headless.
    ui_port: int | None = None
    headless: bool = False
    # Outbound Nexus calls: timeouts, retries, circuit breaker, rate limits, allowed callers.
    nexus: NexusLimits = field(default_factory=NexusLimits)
    # Where completion callbacks and external Nexus endpoints may point, besides tempyral's own
    # callback URL and the internal ones: nowhere unless configured.
    callback_allowed_addresses: list[AddressRule] = field(default_factory=list)
    # How many client requests (and bytes of them) the frontend works on at once; more get RESOURCE_EXHAUSTED.
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    # TLS of the gRPC API, the HTTP API and the Web UI, mTLS, and of the connections made to other clusters.
    tls: TlsSettings = field(default_factory=TlsSettings)
    # JWT authorization of client calls (--auth-*); off without a JWKS source.
    auth: AuthSettings = field(default_factory=AuthSettings)
    # GET /metrics on its own port (--metrics-port; default any free port, as the reference's start-dev).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # Dynamic config: --dynamic-config-value and --dynamic-config-path (common/dynamic_config.py).
    dynamic_config: DynamicConfigSettings = field(default_factory=DynamicConfigSettings)
    # --ui-ip, --ui-public-path, --ui-codec-endpoint (ui/options.py).
    ui: UiOptions = field(default_factory=UiOptions)
    # --log-config: log the effective configuration at start.
    log_config: bool = False
