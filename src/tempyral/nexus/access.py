"""Who may call a Nexus endpoint: its access policy, stored and replicated with the endpoint (nexus/endpoints.py)
and checked against the caller's namespace before every start (nexus/invoker.py, nexus/http_api.py).

A policy is open (every namespace), or restricted to a list of allowed namespaces; a list of denied namespaces is
refused either way. The reference keeps no such policy (it leaves it to its authorizer); tempyral's replaces the
`--nexus-allow` flag, which now writes policies (nexus/endpoints.py `EndpointRegistry.apply_initial_access`).
"""

from __future__ import annotations

from collections.abc import Iterable

from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.common.errors import InvalidArgument
from tempyral.proto.nexus_replication_pb2 import (
    EndpointAccessChange,
    EndpointAccessPolicy,
    StoredEndpointExtras,
)

OPEN = EndpointAccessPolicy()


def allows(policy: EndpointAccessPolicy, caller_namespace: str) -> bool:
    if caller_namespace in policy.denied:
        return False
    return not policy.restricted or caller_namespace in policy.allowed


def refusal(caller_namespace: str, endpoint_name: str) -> str:
    """The message of a refused call (the failure the caller's operation gets)."""
    return f"caller namespace {caller_namespace!r} is not allowed to use endpoint {endpoint_name!r}"


def only(namespaces: Iterable[str]) -> EndpointAccessPolicy:
    """Restricted to `namespaces` (what `--nexus-allow ENDPOINT=NS,...` sets)."""
    return EndpointAccessPolicy(restricted=True, allowed=sorted(set(namespaces)))


def changed(policy: EndpointAccessPolicy, change: int, namespaces: Iterable[str]) -> EndpointAccessPolicy:
    """`policy` after an operator's change; InvalidArgument for a change that names nothing to change."""
    names = set(namespaces)
    if "" in names:
        raise InvalidArgument("caller namespace is empty")
    if change == EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_OPEN:
        return EndpointAccessPolicy()
    if not names:
        raise InvalidArgument("no caller namespace given")
    allowed, denied = set(policy.allowed), set(policy.denied)
    if change == EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_ALLOW:
        # Allowing names the namespaces that may call: the endpoint is restricted to its list from then on.
        return EndpointAccessPolicy(restricted=True, allowed=sorted(allowed | names), denied=sorted(denied - names))
    if change == EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_DENY:
        return EndpointAccessPolicy(
            restricted=policy.restricted, allowed=sorted(allowed - names), denied=sorted(denied | names)
        )
    raise InvalidArgument("unknown access change")


def describe(policy: EndpointAccessPolicy) -> str:
    parts = [f"only {', '.join(policy.allowed) or 'no namespace'}" if policy.restricted else "every namespace"]
    if policy.denied:
        parts.append(f"except {', '.join(policy.denied)}")
    return " ".join(parts)


# ---------------------------------------------------------------------- storage
def stored_data(endpoint: nexus_pb.Endpoint, policy: EndpointAccessPolicy) -> bytes:
    """The nexus_endpoints data column: the Endpoint's bytes, then the policy as field 900 (an open policy adds
    nothing: the column then holds what it held before policies existed)."""
    return endpoint.SerializeToString() + StoredEndpointExtras(access=policy).SerializeToString()


def parse_stored(data: bytes) -> tuple[nexus_pb.Endpoint, EndpointAccessPolicy]:
    endpoint = nexus_pb.Endpoint.FromString(data)
    endpoint.DiscardUnknownFields()  # the policy is not the API's: clients never see it
    extras = StoredEndpointExtras.FromString(data)
    return endpoint, extras.access
