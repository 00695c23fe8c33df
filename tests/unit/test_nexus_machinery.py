"""Circuit breaker, rate limits, backoff and outcome classification."""

from __future__ import annotations

import time

import pytest
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.config import NexusLimits
from tempyral.metrics.server_metrics import ServerMetrics
from tempyral.nexus import outcomes
from tempyral.nexus.machinery import CircuitBreaker, Machinery, TokenBucket, backoff_s
from tempyral.nexus.metrics import NexusMetrics
from tempyral.nexus.outcomes import Kind


def test_breaker_opens_after_more_than_n_failures_then_lets_one_probe_through(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    breaker = CircuitBreaker("ep", failures=2, open_s=60)
    for _ in range(2):
        breaker.record(ok=False)
        assert breaker.allow() == 0 and breaker.state == "closed"
    breaker.record(ok=False)
    assert breaker.state == "open" and breaker.allow() == pytest.approx(60)
    now[0] += 60
    assert breaker.state == "half-open"
    assert breaker.allow() == 0  # the probe
    assert breaker.allow() > 0  # nobody else while it is out
    breaker.record(ok=False)  # the probe failed: open again
    assert breaker.state == "open"
    now[0] += 60
    assert breaker.allow() == 0
    breaker.record(ok=True)
    assert breaker.state == "closed" and breaker.allow() == 0


def test_token_bucket_allows_a_burst_then_paces(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2.0)
    assert bucket.reserve() == 0 and bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.reserve() == 0


def test_rate_limits_per_endpoint_and_per_namespace() -> None:
    machinery = Machinery(NexusLimits(endpoint_rps=1, namespace_rps=100))
    assert machinery.rate_delay("a", "ns")[0] == 0
    delay, reason = machinery.rate_delay("a", "ns")
    assert delay > 0 and "endpoint a" in reason
    assert machinery.rate_delay("b", "ns")[0] == 0  # another endpoint has its own bucket
    machinery = Machinery(NexusLimits(namespace_rps=1))
    assert machinery.rate_delay("a", "ns1")[0] == 0
    delay, reason = machinery.rate_delay("b", "ns1")
    assert delay > 0 and "namespace ns1" in reason


def test_caller_rate_limit_per_endpoint_and_namespace_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    limits = {("ep", "slow"): 1.0}
    machinery = Machinery(NexusLimits(endpoint_rps=100), caller_rps=lambda ep, ns: limits.get((ep, ns), 0.0))
    assert machinery.rate_check("ep", "slow").delay_s == 0
    verdict = machinery.rate_check("ep", "slow")
    assert verdict.delay_s == pytest.approx(1.0) and verdict.metric_reason == "caller_rate_limit"
    assert verdict.message == "The namespace slow is over its Nexus rate limit for the endpoint ep."
    assert all(machinery.rate_check("ep", "fast").delay_s == 0 for _ in range(20))  # another caller: unlimited
    assert machinery.rate_check("other", "slow").delay_s == 0  # another endpoint: unlimited
    limits[("ep", "slow")] = 0.0  # looked up per call: a removed limit applies at once
    assert machinery.rate_check("ep", "slow").delay_s == 0
    limits[("ep", "slow")] = 2.0
    assert machinery.caller_limits() == {}  # a bucket appears with calls only
    machinery.rate_check("ep", "slow")
    assert machinery.caller_limits() == {("ep", "slow"): 2.0}
    text = NexusMetrics(ServerMetrics(), machinery).render()  # read from the machinery at scrape time
    assert 'nexus_caller_rate_limit{destination="ep",namespace="slow"} 2' in text
    now[0] += 5  # full again: dropped at the next sweep
    machinery.rate_check("ep", "fast")
    assert machinery.caller_limits() == {}


def test_caller_rate_limit_buckets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempyral.nexus.machinery.MAX_PAIR_BUCKETS", 3)
    machinery = Machinery(NexusLimits(), caller_rps=lambda ep, ns: 0.001)
    for i in range(10):
        assert machinery.rate_check("ep", f"ns{i}").delay_s == 0
    assert set(machinery.caller_limits()) == {("ep", "ns7"), ("ep", "ns8"), ("ep", "ns9")}


def test_caller_rate_limits_from_the_flag() -> None:
    machinery = Machinery(NexusLimits(caller_rps={("ep", "ns"): 1.0}))
    assert machinery.caller_limits() == {("ep", "ns"): 1.0}  # configured: shown before any call
    assert machinery.rate_delay("ep", "ns")[0] == 0
    assert machinery.rate_delay("ep", "ns")[0] > 0
    assert machinery.rate_delay("ep", "other")[0] == 0


def test_backoff_grows_and_is_capped() -> None:
    limits = NexusLimits(retry_initial_s=1, retry_max_s=5, retry_jitter=0)
    assert [backoff_s(limits, n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def _failed(error_type: str, retry_behavior: int = 0) -> ws.RespondNexusTaskFailedRequest:
    req = ws.RespondNexusTaskFailedRequest()
    req.failure.message = "x"
    req.failure.nexus_handler_failure_info.type = error_type
    req.failure.nexus_handler_failure_info.retry_behavior = retry_behavior  # type: ignore[assignment]
    return req


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (_failed("BAD_REQUEST"), Kind.FAILED),
        (_failed("NOT_FOUND"), Kind.FAILED),
        (_failed("INTERNAL"), Kind.RETRY),
        (_failed("WEIRD"), Kind.RETRY),  # unknown types are retried, as on the reference
        (_failed("INTERNAL", outcomes.RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE), Kind.FAILED),
        (_failed("BAD_REQUEST", outcomes.RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE), Kind.RETRY),
    ],
)
def test_handler_errors_are_retried_by_type_and_behavior(reply: ws.RespondNexusTaskFailedRequest, kind: Kind) -> None:
    assert outcomes.start_outcome(reply).kind == kind


def test_start_responses() -> None:
    ok = ws.RespondNexusTaskCompletedRequest()
    ok.response.start_operation.sync_success.payload.data = b"1"
    assert outcomes.start_outcome(ok).kind == Kind.SUCCEEDED
    started = ws.RespondNexusTaskCompletedRequest()
    started.response.start_operation.async_success.operation_token = "t"
    assert outcomes.start_outcome(started).token == "t"
    too_long = ws.RespondNexusTaskCompletedRequest()
    too_long.response.start_operation.async_success.operation_token = "t" * 5000
    assert outcomes.start_outcome(too_long).kind == Kind.FAILED
    canceled = ws.RespondNexusTaskCompletedRequest()
    canceled.response.start_operation.failure.canceled_failure_info.SetInParent()
    assert outcomes.start_outcome(canceled).kind == Kind.CANCELED
    legacy = ws.RespondNexusTaskCompletedRequest()
    legacy.response.start_operation.operation_error.operation_state = "failed"
    legacy.response.start_operation.operation_error.failure.message = "raw op failed"
    out = outcomes.start_outcome(legacy)
    assert out.kind == Kind.FAILED and out.failure is not None and out.failure.message == "raw op failed"


def test_legacy_handler_error_keeps_its_failure_as_cause() -> None:
    req = ws.RespondNexusTaskFailedRequest(error=nexus_pb.HandlerError(error_type="BAD_REQUEST"))
    req.error.failure.message = "raw bad"
    req.error.failure.metadata["k"] = "v"
    out = outcomes.start_outcome(req)
    assert out.kind == Kind.FAILED and out.failure is not None
    assert out.failure.message == "" and out.failure.nexus_handler_failure_info.type == "BAD_REQUEST"
    assert out.failure.cause.message == "raw bad"
    assert out.failure.cause.application_failure_info.type == "NexusFailure"
