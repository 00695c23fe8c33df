"""Nexus HTTP requests of a namespace that is standby here, relayed to its active cluster's HTTP API (the
reference's forwardStartOperation, forwardCancelOperation and forwardCompleteOperation).

The request goes as it came (method, headers, body, query), marked with `xdc-redirection-api: true` and
`xdc-redirection-source-cell: <this cluster>`, and the remote's answer comes back as it is. Only the HTTP address
a connected cluster reported when the operator connected it is called.
"""

from __future__ import annotations

import logging
from collections import Counter

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common import tls, xdc

log = logging.getLogger(__name__)

# Hop-by-hop and framing headers: each connection has its own.
_NOT_RELAYED = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
    }
)
# Beyond the request's own timeout: time to reach the remote and to hear back.
FORWARD_MARGIN_S = 5.0


class ForwardingError(Exception):
    """The request could not be forwarded; the message is for the log, not for the caller."""


def cluster_base_url(clusters: ClusterMetadata, cluster: str) -> str:
    """The HTTP API of a remote cluster, as it reported it when connected (configured, so it may be called);
    ForwardingError if there is none to call."""
    record = clusters.get(cluster)
    if record is None or cluster == clusters.name:
        raise ForwardingError(f"could not find cluster metadata for cluster {cluster}")
    if not record.http_address:
        raise ForwardingError(f"HTTPAddress not configured for cluster: {cluster}")
    return f"{tls.http_scheme()}://{record.http_address}"


class NexusForwarder:
    def __init__(self, clusters: ClusterMetadata) -> None:
        self.clusters = clusters
        self._session: aiohttp.ClientSession | None = None
        # (target cluster, what) -> requests forwarded there, failed ones included.
        self.forwarded: Counter[tuple[str, str]] = Counter()

    def base_url(self, cluster: str) -> str:
        return cluster_base_url(self.clusters, cluster)

    async def forward(
        self, request: web.Request, cluster: str, path: str, body: bytes, timeout_s: float, what: str
    ) -> web.Response:
        """Send `request` (with `body`, already read) to `path` (encoded) on `cluster`'s HTTP API; its answer."""
        url = URL(self.base_url(cluster) + path, encoded=True).with_query(request.query)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _NOT_RELAYED)
        for key in (xdc.FORWARDED_HEADER, xdc.SOURCE_CELL_HEADER):
            headers.popall(key, None)
        headers.extend(xdc.forwarded_headers(self.clusters.name))
        self.forwarded[(cluster, what)] += 1
        session = self._client()
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout_s + FORWARD_MARGIN_S),
                allow_redirects=False,
                ssl=tls.cluster_ssl(),
                server_hostname=tls.cluster_server_hostname(),
            ) as remote:
                data = await remote.read()
                response = web.Response(status=remote.status, body=data)
                for key, value in remote.headers.items():
                    if key.lower() not in _NOT_RELAYED:
                        response.headers.add(key, value)
                if "Content-Encoding" in remote.headers:  # passed on compressed, as it came
                    response.headers["Content-Encoding"] = remote.headers["Content-Encoding"]
                return response
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ForwardingError(f"{type(err).__name__}: {err}") from err

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
