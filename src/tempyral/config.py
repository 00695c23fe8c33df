"""Typed server configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from tempyral.frontend.admission import AdmissionLimits
from tempyral.nexus.addresses import AddressRule
from tempyral.nexus.machinery import NexusLimits


@dataclass
class ServerConfig:
    ip: str = "127.0.0.1"
    port: int = 7233
    # None: a throwaway database, gone at exit (like the reference dev server's default).
    db_filename: str | None = None
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
    cluster_name: str = "active"
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
