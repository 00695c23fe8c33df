"""The allow-list of outbound addresses: how patterns match, what is always allowed, the
reference's messages, the start-request checks of completion callbacks, the CLI flag and the
HTTP client's last check before a call."""

from __future__ import annotations

import argparse

import pytest
from temporalio.api.common.v1 import Callback
from temporalio.api.nexus.v1 import Endpoint, EndpointSpec, EndpointTarget, Request

from tempyral.cli import _allowed_address, build_parser
from tempyral.common.errors import InvalidArgument, Unimplemented
from tempyral.frontend.validation import check_completion_callbacks
from tempyral.nexus.addresses import AddressRefused, AddressRule, OutboundAddresses
from tempyral.nexus.callbacks import Completion, DeliveryError
from tempyral.nexus.http_client import NexusHttpClient
from tempyral.nexus.outcomes import Kind

NO_MATCH = "url does not match any configured callback address"


def refusal(addresses: OutboundAddresses, url: str) -> str:
    try:
        addresses.check_callback(url)
    except AddressRefused as err:
        return str(err)
    return ""


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("*", "anything.example:8443", True),
        ("127.0.0.1:*", "127.0.0.1:7243", True),
        ("127.0.0.1:*", "127.0.0.1.evil.example:80", False),  # the port separator is part of the pattern
        ("127.0.0.1:*", "127.0.0.1", False),
        ("prefix.*.domain", "prefix.a.b.domain", True),
        ("a.b", "aXb", False),  # the dot is literal
        ("api.example.com", "API.example.com", False),  # case-sensitive, as the reference's regexp
        ("[::1]:*", "[::1]:9", True),
    ],
)
def test_patterns_match_the_whole_host_and_port(pattern: str, host: str, matches: bool) -> None:
    assert AddressRule(pattern).matches(host) is matches


def test_nothing_but_the_internal_urls_is_allowed_without_configuration() -> None:
    addresses = OutboundAddresses()
    assert refusal(addresses, "temporal://system") == ""
    assert refusal(addresses, "temporal://internal") == ""
    assert refusal(addresses, "http://127.0.0.1:7243/x") == f"invalid url: {NO_MATCH}: http://127.0.0.1:7243/x"
    assert refusal(addresses, "HTTPS://Example.com/x") == f"invalid url: {NO_MATCH}: https://Example.com/x"


def test_tempyral_s_own_callback_routes_are_allowed_and_nothing_else_of_it() -> None:
    addresses = OutboundAddresses()
    addresses.own_base_url = "http://127.0.0.1:7243"
    assert refusal(addresses, "http://127.0.0.1:7243/namespaces/default/nexus/callback") == ""
    assert refusal(addresses, "http://127.0.0.1:7243/nexus/callback?x=1") == ""
    for url in (
        "http://127.0.0.1:7243/api/v1/namespaces/default/workflows/x",
        "http://127.0.0.1:7243/namespaces/a/b/nexus/callback",
        "http://127.0.0.1:7244/nexus/callback",
        "https://127.0.0.1:7243/nexus/callback",
    ):
        assert refusal(addresses, url) == f"invalid url: {NO_MATCH}: {url}"


def test_the_first_matching_rule_decides_and_insecure_needs_permission() -> None:
    addresses = OutboundAddresses([AddressRule("*.example.com"), AddressRule("*", allow_insecure=True)])
    assert refusal(addresses, "https://api.example.com/cb") == ""
    assert refusal(addresses, "http://api.example.com/cb") == (
        "invalid url: callback address does not allow insecure connections: http://api.example.com/cb"
    )
    assert refusal(addresses, "http://10.0.0.1/cb") == ""
    # userinfo is not part of the host the patterns see
    assert refusal(OutboundAddresses([AddressRule("h:1")]), "https://u:p@h:1/x") == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "invalid url: unknown scheme: "),
        ("ftp://h/x", "invalid url: unknown scheme: ftp://h/x"),
        ("temporal://system/x", "invalid url: unknown scheme: temporal://system/x"),
        ("http:///x", "invalid url: missing host"),
        ("http:h", "invalid url: missing host"),
        ("://h", 'invalid callback url: parse "://h": missing protocol scheme'),
        ("http://[::1", "invalid callback url: parse \"http://[::1\": missing ']' in host"),
        ("http://h:x/", 'invalid callback url: parse "http://h:x/": invalid port ":x" after host'),
        ("http://a b/", 'invalid callback url: parse "http://a b/": invalid character " " in host name'),
        ("http://a%zz/", 'invalid callback url: parse "http://a%zz/": invalid URL escape "%zz"'),
        ("http://a/\x7f", 'invalid callback url: parse "http://a/\\x7f": net/url: invalid control character in URL'),
    ],
)
def test_malformed_urls_get_the_reference_s_messages(url: str, message: str) -> None:
    assert refusal(OutboundAddresses([AddressRule("*", allow_insecure=True)]), url) == message


def test_endpoint_urls_follow_the_rules_but_not_the_callback_exceptions() -> None:
    addresses = OutboundAddresses([AddressRule("handlers.example:443")])
    addresses.own_base_url = "http://127.0.0.1:7243"
    addresses.check_endpoint("https://handlers.example:443/nexus")
    for url, message in (
        ("http://handlers.example:443/nexus", "callback address does not allow insecure connections"),
        ("http://127.0.0.1:7243/nexus/callback", NO_MATCH),
        ("http:///x", "missing host"),
    ):
        with pytest.raises(AddressRefused, match=f"^invalid target URL: {message}"):
            addresses.check_endpoint(url)


def test_start_requests_check_count_length_address_and_header_size_and_lowercase_headers() -> None:
    addresses = OutboundAddresses()
    callbacks = [Callback(nexus=Callback.Nexus(url="temporal://system", header={"X-Token": "t"}))]
    check_completion_callbacks(callbacks, addresses)
    assert dict(callbacks[0].nexus.header) == {"x-token": "t"}

    def refused(callbacks: list[Callback]) -> str:
        with pytest.raises((InvalidArgument, Unimplemented)) as err:
            check_completion_callbacks(callbacks, addresses)
        return str(err.value.message)

    system = Callback(nexus=Callback.Nexus(url="temporal://system"))
    assert refused([system] * 2001) == "cannot attach more than 2000 callbacks to an execution"
    long = Callback(nexus=Callback.Nexus(url="temporal://system" + "x" * 1000))
    assert refused([long]) == "invalid url: url length longer than max length allowed of 1000"
    assert refused([system, Callback(nexus=Callback.Nexus(url="http://h/"))]) == f"invalid url: {NO_MATCH}: http://h/"
    big = Callback(nexus=Callback.Nexus(url="temporal://system", header={"h": "x" * 8192}))
    assert refused([big]) == "invalid header: header size longer than max allowed size of 8192"
    assert refused([Callback()]) == "unknown callback variant: <nil>"
    internal = Callback(internal=Callback.Internal(data=b"x"))
    assert refused([internal]) == "unsupported callback variant: *common.Callback_Internal_"


def test_the_cli_flag_takes_a_pattern_and_optionally_allow_insecure() -> None:
    assert _allowed_address("*.example.com") == AddressRule("*.example.com")
    assert _allowed_address("127.0.0.1:*,allow-insecure") == AddressRule("127.0.0.1:*", allow_insecure=True)
    for bad in ("", ",allow-insecure", "h,insecure"):
        with pytest.raises(argparse.ArgumentTypeError):
            _allowed_address(bad)
    args = build_parser().parse_args(
        ["server", "start-dev", "--callback-allowed-address", "a:1", "--callback-allowed-address", "b:*,allow-insecure"]
    )
    assert args.callback_allowed_address == [AddressRule("a:1"), AddressRule("b:*", allow_insecure=True)]


async def test_the_http_client_checks_again_before_calling() -> None:
    """No request leaves for a URL the configuration does not allow (the client is not even
    started: a request would fail on its missing session instead)."""
    client = NexusHttpClient(1.0, OutboundAddresses())
    endpoint = Endpoint(
        spec=EndpointSpec(name="ext", target=EndpointTarget(external=EndpointTarget.External(url="http://h:1/x")))
    )
    outcome = await client.call(endpoint, Request(), 1.0)
    assert outcome.kind == Kind.FAILED and outcome.failure is not None
    assert outcome.failure.message == f"invalid target URL: {NO_MATCH}: http://h:1/x"
    assert outcome.failure.nexus_handler_failure_info.type == "UNAUTHORIZED"

    with pytest.raises(DeliveryError) as err:
        await client.deliver("http://h:1/cb", Completion("token", start_link=None, start_time_ns=0))  # type: ignore[arg-type]
    assert str(err.value) == f"invalid url: {NO_MATCH}: http://h:1/cb"
    assert err.value.retryable is False
