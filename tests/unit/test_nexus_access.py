"""Nexus endpoint access policies (nexus/access.py): what they allow, how operators' changes compose, and how the
nexus_endpoints table keeps them."""

from __future__ import annotations

import pytest
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.common.errors import InvalidArgument
from tempyral.nexus import access
from tempyral.proto.nexus_replication_pb2 import EndpointAccessChange, EndpointAccessPolicy

ALLOW = EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_ALLOW
DENY = EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_DENY
OPEN = EndpointAccessChange.ENDPOINT_ACCESS_CHANGE_OPEN


def test_open_policy_allows_everyone_restricted_only_its_list() -> None:
    assert access.allows(access.OPEN, "anyone")
    policy = access.only(["a", "b"])
    assert access.allows(policy, "a") and access.allows(policy, "b") and not access.allows(policy, "c")
    assert not access.allows(EndpointAccessPolicy(restricted=True), "a")


def test_changes_compose() -> None:
    policy = access.changed(access.OPEN, DENY, ["bad"])
    assert not policy.restricted and not access.allows(policy, "bad") and access.allows(policy, "other")
    policy = access.changed(policy, ALLOW, ["good", "bad"])  # allowing a denied namespace lifts the denial
    assert policy.restricted and list(policy.allowed) == ["bad", "good"] and not policy.denied
    policy = access.changed(policy, DENY, ["good"])
    assert list(policy.allowed) == ["bad"] and list(policy.denied) == ["good"]
    assert not access.allows(policy, "good") and not access.allows(policy, "other")
    assert access.changed(policy, OPEN, []) == access.OPEN
    assert access.describe(policy) == "only bad except good"
    with pytest.raises(InvalidArgument):
        access.changed(policy, ALLOW, [])
    with pytest.raises(InvalidArgument):
        access.changed(policy, DENY, [""])


def test_stored_data_keeps_the_policy_beside_the_endpoint() -> None:
    endpoint = nexus_pb.Endpoint(version=3, id="00000000-0000-0000-0000-000000000001")
    endpoint.spec.name = "ep"
    endpoint.spec.target.worker.namespace = "ns"
    policy = access.only(["a"])
    data = access.stored_data(endpoint, policy)
    assert access.parse_stored(data) == (endpoint, policy)
    # the column still parses as the API's Endpoint, and its policy never reaches clients
    parsed, _ = access.parse_stored(data)
    assert parsed.SerializeToString() == endpoint.SerializeToString()
    # a row written before policies existed reads as open
    assert access.parse_stored(endpoint.SerializeToString()) == (endpoint, access.OPEN)
