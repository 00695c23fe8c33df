"""TLS: the server's certificate for the gRPC API, the HTTP API and the Web UI (reloaded when its files change),
client certificates required from callers (mTLS), and the TLS of the connections this server makes (to other
clusters, to the other nodes of its cluster, to its own frontend).

Outbound settings are process-wide (`configure_outbound`): every channel and HTTP request to a cluster or node
goes through `peer_channel` / `cluster_ssl`, and one server (or one CLI command) runs per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from tempyral.common import file_stamps
from tempyral.common.errors import StartupError

log = logging.getLogger(__name__)

DEFAULT_RELOAD_INTERVAL_S = 5.0


@dataclass(frozen=True)
class TlsSettings:
    """What `server start-dev|start` was given (--tls-*); all None: no TLS anywhere."""

    cert_path: str | None = None
    key_path: str | None = None
    # Callers must present a certificate this CA signed (mTLS).
    client_ca_path: str | None = None
    # The certificate this server presents when it calls other clusters and nodes (default: its own, above).
    outbound_cert_path: str | None = None
    outbound_key_path: str | None = None
    # What verifies the servers it calls (default: the client CA above, else the system's trusted CAs).
    outbound_ca_path: str | None = None
    # The name their certificates must carry (default: the host of the address dialled).
    outbound_server_name: str | None = None
    reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S

    @property
    def serving(self) -> bool:
        return self.cert_path is not None

    def check(self) -> None:
        """StartupError for a combination that cannot work, or a file that cannot be used."""
        if (self.cert_path is None) != (self.key_path is None):
            raise StartupError("--tls-cert-path and --tls-key-path go together: give both or neither")
        if self.client_ca_path is not None and self.cert_path is None:
            raise StartupError("--tls-client-ca-path needs --tls-cert-path and --tls-key-path")
        if (self.outbound_cert_path is None) != (self.outbound_key_path is None):
            raise StartupError("--tls-outbound-cert-path and --tls-outbound-key-path go together: give both or neither")
        if self.reload_interval_s <= 0:
            raise StartupError("--tls-reload-interval must be positive")
        if self.serving:
            try:
                _server_context(self)
            except (OSError, ssl.SSLError) as err:
                raise StartupError(f"cannot use the TLS certificate: {_reason(err, self)}") from err
        outbound = outbound_of(self)
        if outbound is not None:
            try:
                outbound.read()
            except OSError as err:
                raise StartupError(f"cannot use the outbound TLS files: {_reason(err)}") from err

    def outbound_enabled(self) -> bool:
        return self.serving or any(
            p is not None for p in (self.outbound_cert_path, self.outbound_ca_path, self.outbound_server_name)
        )


def _reason(err: Exception, settings: TlsSettings | None = None) -> str:
    if isinstance(err, ssl.SSLError) and settings is not None:
        # OpenSSL's reason ("PEM lib", "KEY_VALUES_MISMATCH") names no file: say which ones were read.
        files = ", ".join(p for p in (settings.cert_path, settings.key_path, settings.client_ca_path) if p)
        return f"{err.reason or err} (reading {files})"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------- serving


def _server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context loaded from the files now (raises on a missing, unreadable or mismatched file)."""
    assert settings.cert_path is not None and settings.key_path is not None
    for path in (settings.cert_path, settings.key_path, settings.client_ca_path):
        _read(path)  # an OSError that names the file (load_cert_chain's does not)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert_path, settings.key_path)
    if settings.client_ca_path is not None:
        context.load_verify_locations(cafile=settings.client_ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ServerCertificates:
    """The serving certificate of every port: one `ssl.SSLContext` for the aiohttp ports, dynamic credentials
    for gRPC. Files polled every `reload_interval_s`; a new, valid set is taken for the next handshakes; an
    invalid one is logged and the current certificate kept."""

    def __init__(self, settings: TlsSettings) -> None:
        assert settings.cert_path is not None and settings.key_path is not None
        self.settings = settings
        self._paths = [p for p in (settings.cert_path, settings.key_path, settings.client_ca_path) if p is not None]
        self._signature = file_stamps.signature(self._paths)
        self._failed_signature: file_stamps.Signature | None = None
        self.ssl_context = _server_context(settings)
        self.reloads = 0
        # gRPC asks for a new configuration on each handshake, from one of its own threads.
        self._lock = threading.Lock()
        self._current = self._grpc_configuration()
        self._pending: Any = None
        self._task: asyncio.Task[None] | None = None

    def _grpc_configuration(self) -> Any:
        key, cert, ca = (
            _read(p) for p in (self.settings.key_path, self.settings.cert_path, self.settings.client_ca_path)
        )
        assert key is not None and cert is not None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._current, self._fetch, require_client_authentication=self.settings.client_ca_path is not None
        )

    def _fetch(self) -> Any:
        """gRPC's question before a handshake: a new configuration, or None to keep the one it has."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload_if_changed(self) -> bool:
        """One poll: True if new files were taken."""
        signature = file_stamps.signature(self._paths)
        if signature == self._signature or signature == self._failed_signature:
            return False
        try:
            _server_context(self.settings)  # all of it valid, or nothing changes
            configuration = self._grpc_configuration()
            if file_stamps.signature(self._paths) != signature:
                return False  # still being written: the next poll takes it
        except (OSError, ssl.SSLError) as err:
            self._failed_signature = signature
            log.warning(
                "TLS certificate files changed but cannot be used, keeping the current ones: %s",
                _reason(err, self.settings),
            )
            return False
        assert self.settings.cert_path is not None
        # New handshakes of the aiohttp ports use what the shared context holds now. A changed client CA is
        # added to what it trusts (an SSLContext cannot forget one): removing a CA takes a restart there.
        self.ssl_context.load_cert_chain(self.settings.cert_path, self.settings.key_path)
        if self.settings.client_ca_path is not None:
            self.ssl_context.load_verify_locations(cafile=self.settings.client_ca_path)
        with self._lock:
            self._current = self._pending = configuration
        self._signature, self._failed_signature = signature, None
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.settings.cert_path)
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="tls-reload")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                # On the loop's thread: the shared SSLContext must not change while the loop handshakes with it.
                # The files are small; reading them does not hold the loop up.
                self.reload_if_changed()
            except Exception:
                log.exception("TLS certificate reload failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_served: dict[TlsSettings, ServerCertificates] = {}


def server_certificates(settings: TlsSettings) -> ServerCertificates | None:
    """The one reloading set of certificates for these settings (shared by every port), None without TLS."""
    if not settings.serving:
        return None
    found = _served.get(settings)
    if found is None:
        found = _served[settings] = ServerCertificates(settings)
    return found


def server_ssl_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """For an HTTP port: the context to serve with (it follows the reloads), None without TLS."""
    certificates = server_certificates(settings)
    return certificates.ssl_context if certificates is not None else None


def forget(settings: TlsSettings) -> None:
    """At server stop: the next server of this process loads the files again."""
    _served.pop(settings, None)


# ---------------------------------------------------------------------------------------------- outbound


@dataclass(frozen=True)
class OutboundTls:
    """How this process dials clusters and nodes over TLS: its client certificate (optional) and what
    verifies theirs. Files are read whenever a connection is made, so new ones are used without a restart."""

    cert_path: str | None = None
    key_path: str | None = None
    ca_path: str | None = None  # None: the system's trusted CAs
    server_name: str | None = None  # None: the host dialled

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """CA, key, certificate (each None if not configured)."""
        return _read(self.ca_path), _read(self.key_path), _read(self.cert_path)

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        ca, key, cert = self.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def grpc_options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_path)
        if self.cert_path is not None:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context


def outbound_of(settings: TlsSettings) -> OutboundTls | None:
    """A server's outbound TLS: on whenever it serves TLS (its peers do too) or an outbound flag says so."""
    if not settings.outbound_enabled():
        return None
    cert, key = settings.outbound_cert_path, settings.outbound_key_path
    if cert is None:
        cert, key = settings.cert_path, settings.key_path
    return OutboundTls(
        cert_path=cert,
        key_path=key,
        ca_path=settings.outbound_ca_path or settings.client_ca_path,
        server_name=settings.outbound_server_name,
    )


_outbound: OutboundTls | None = None


def configure_outbound(outbound: OutboundTls | None) -> None:
    global _outbound
    _outbound = outbound


def outbound() -> OutboundTls | None:
    return _outbound


# The `authorization` value a `tempyral` client command sends (its --api-key); never set in a server process.
_api_key: str | None = None


def configure_api_key(api_key: str | None) -> None:
    global _api_key
    _api_key = api_key


if TYPE_CHECKING:
    _Interceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.UnaryUnaryClientInterceptor


class _Authorization(_Interceptor):
    """Adds `authorization: Bearer <key>` to every call, as the temporal CLI's --api-key does."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return await continuation(details._replace(metadata=metadata), request)


def channel(address: str, options: list[tuple[str, Any]]) -> grpc.aio.Channel:
    """A channel to a frontend of this cluster or another: TLS when configured, plaintext otherwise."""
    settings = _outbound
    interceptors: Any = [_Authorization(_api_key)] if _api_key else None  # grpc-stubs' type cannot be named
    if settings is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(
        address, settings.grpc_credentials(), options=options + settings.grpc_options(), interceptors=interceptors
    )


def http_scheme() -> str:
    """The scheme of other clusters' HTTP APIs: TLS deployments serve TLS on every cluster."""
    return "https" if _outbound is not None else "http"


_contexts: dict[tuple[OutboundTls, file_stamps.Signature], ssl.SSLContext] = {}


def cluster_ssl() -> ssl.SSLContext | bool:
    """The `ssl` argument of an aiohttp request to another cluster's HTTP API (True: aiohttp's default). One
    context while the files stay the same, a new one once they change."""
    settings = _outbound
    if settings is None:
        return True
    paths = [p for p in (settings.cert_path, settings.key_path, settings.ca_path) if p is not None]
    key = (settings, file_stamps.signature(paths))
    context = _contexts.get(key)
    if context is None:
        _contexts.clear()
        context = _contexts[key] = settings.ssl_context()
    return context


def cluster_server_hostname() -> str | None:
    """The `server_hostname` of such a request (None: the host of the URL)."""
    return _outbound.server_name if _outbound is not None else None
