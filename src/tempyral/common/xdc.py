"""The headers of cross-cluster forwarding (the reference's common/rpc/interceptor/redirection.go), shared by the
gRPC redirection (frontend/redirection.py) and the Nexus HTTP API (nexus/http_api.py).

- `xdc-redirection: false` on a call: the client opts out, the cluster it called answers itself;
- `xdc-redirection-api: true` and `xdc-redirection-source-cell: <cluster>` mark a call one cluster forwarded to
  another. tempyral never forwards such a call again (the reference does, so two clusters that disagree about a
  namespace's active cluster could pass a call back and forth).
"""

from __future__ import annotations

from collections.abc import Callable

REDIRECTION_HEADER = "xdc-redirection"
FORWARDED_HEADER = "xdc-redirection-api"
SOURCE_CELL_HEADER = "xdc-redirection-source-cell"

# Go's strconv.ParseBool, which the reference reads these headers with; anything else is "not given".
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def go_bool(value: str | None) -> bool | None:
    """The value as Go's strconv.ParseBool reads it; None when it is missing or not a boolean."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


def may_forward(header: Callable[[str], str | None]) -> bool:
    """Whether a call with these headers may be forwarded to another cluster: not when the client opted out
    (`xdc-redirection: false`), nor when another cluster forwarded it here already."""
    if go_bool(header(REDIRECTION_HEADER)) is False:
        return False
    return go_bool(header(FORWARDED_HEADER)) is not True


def forwarded_headers(current_cluster: str) -> list[tuple[str, str]]:
    """What a forwarded call carries besides the caller's own headers."""
    return [(FORWARDED_HEADER, "true"), (SOURCE_CELL_HEADER, current_cluster)]
