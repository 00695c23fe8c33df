"""Dynamic config (common/dynamic_config.py): parsing, constraint precedence, reloads, bad input; and what reads it
without a server (the namespace rate limiter, the blob size checks, the UI's public path)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tempyral.common.dynamic_config import (
    AddressPattern,
    DynamicConfig,
    DynamicConfigSettings,
    parse_value_flag,
)
from tempyral.common.errors import InvalidArgument
from tempyral.common.limits import CALL_LIMITS, CallLimits, check_blob_size, exceeds_blob_limit
from tempyral.frontend.dynamic_limits import NamespaceRates
from tempyral.ui.options import normalize_public_path
from tempyral.ui.server import with_public_path


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # The reload looks at the contents too, so a rewrite within the mtime's resolution is still seen.
    os.utime(path)


def test_value_flag_is_key_equals_json() -> None:
    assert parse_value_flag("limit.blobSize.error=1024") == ("limit.blobSize.error", 1024)
    assert parse_value_flag('x="a=b"') == ("x", "a=b")
    assert parse_value_flag('callback.allowedAddresses=[{"Pattern":"*"}]')[1] == [{"Pattern": "*"}]
    for bad in ("noequals", "=1", "k=not json"):
        with pytest.raises(ValueError):
            parse_value_flag(bad)


def test_defaults_without_any_value() -> None:
    config = DynamicConfig()
    assert config.blob_size_error("default") == 2 * 1024 * 1024
    assert config.blob_size_warn("default") == 512 * 1024
    assert config.namespace_rps("default") == (None, 2.0)
    assert config.caller_rps("ep", "caller") == 0.0
    assert config.callback_addresses("default") is None


def test_namespace_constraint_wins_over_unconstrained(tmp_path: Path) -> None:
    path = tmp_path / "dc.yaml"
    write(
        path,
        """
limit.blobSize.error:
  - value: 100
    constraints: {namespace: small}
  - value: 5000
LIMIT.BLOBSIZE.WARN:   # keys are case-insensitive, as on the reference
  - value: 50
""",
    )
    config = DynamicConfig(DynamicConfigSettings(path=str(path)))
    assert config.blob_size_error("small") == 100
    assert config.blob_size_error("other") == 5000
    assert config.blob_size_error(None) == 5000
    assert config.blob_size_warn("small") == 50


def test_caller_rps_by_endpoint_and_caller_namespace(tmp_path: Path) -> None:
    """The lookup the per-caller Nexus limiter makes: namespace+destination, destination, namespace, none."""
    path = tmp_path / "dc.yaml"
    write(
        path,
        """
component.nexusoperations.limit.callerRPS:
  - value: 1.5
    constraints: {namespace: caller-a, destination: ep-1}
  - value: 7
    constraints: {destination: ep-1}
  - value: 3
    constraints: {namespace: caller-b}
  - value: 11
""",
    )
    config = DynamicConfig(DynamicConfigSettings(path=str(path)))
    assert config.caller_rps("ep-1", "caller-a") == 1.5
    assert config.caller_rps("ep-1", "caller-b") == 7.0  # the endpoint's value is more specific than the caller's
    assert config.caller_rps("ep-2", "caller-b") == 3.0
    assert config.caller_rps("ep-2", "caller-a") == 11.0
    # A value whose constraints are not one of the tried sets never applies (here: a task queue on this key).
    write(
        path,
        """
component.nexusoperations.limit.callerRPS:
  - value: 9
    constraints: {taskQueueName: q}
""",
    )
    assert config.reload()
    assert config.caller_rps("ep-1", "caller-a") == 0.0


def test_command_line_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dc.yaml"
    write(
        path,
        "limit.blobSize.error:\n  - value: 100\n    constraints: {namespace: a}\nlimit.blobSize.warn: [{value: 7}]\n",
    )
    config = DynamicConfig(DynamicConfigSettings(values=[("limit.blobSize.error", 300)], path=str(path)))
    assert config.blob_size_error("a") == 300  # the flag replaces the file's values of that key
    assert config.blob_size_warn("a") == 7  # other keys still come from the file


def test_reload_picks_up_changes_and_keeps_the_last_good_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dc.yaml"
    write(path, "limit.blobSize.error: [{value: 100}]\n")
    config = DynamicConfig(DynamicConfigSettings(path=str(path)))
    changes: list[int] = []
    config.listeners.append(lambda: changes.append(config.blob_size_error(None)))
    assert not config.reload()  # unchanged
    write(path, "limit.blobSize.error: [{value: 200}]\n")
    assert config.reload()
    assert config.blob_size_error(None) == 200
    assert changes == [200]
    with caplog.at_level(logging.WARNING):
        write(path, "limit.blobSize.error: [{value: 300}\n")  # not YAML
        assert not config.reload()
        path.unlink()
        assert not config.reload()
    assert config.blob_size_error(None) == 200
    assert any("is not valid" in r.getMessage() for r in caplog.records)
    assert any("cannot read" in r.getMessage() for r in caplog.records)
    write(path, "limit.blobSize.error: [{value: 400}]\n")
    assert config.reload()
    assert config.blob_size_error(None) == 400


def test_unknown_keys_are_logged_once_and_wrong_types_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dc.yaml"
    text = """
no.such.key: [{value: 1}]
limit.blobSize.error: [{value: "big"}]
limit.blobSize.warn: [{value: 10}, {value: true, constraints: {namespace: b}}]
frontend.namespaceRPS: [{value: 5, constraints: {colour: red}}]
"""
    with caplog.at_level(logging.WARNING, logger="tempyral.common.dynamic_config"):
        write(path, text)
        config = DynamicConfig(DynamicConfigSettings(values=[("no.such.key", 2)], path=str(path)))
        write(path, text + "\n# changed\n")
        assert config.reload()
    unknown = [r for r in caplog.records if "no.such.key" in r.getMessage()]
    assert len(unknown) == 1 and "unregistered key" in unknown[0].getMessage()
    assert config.blob_size_error(None) == 2 * 1024 * 1024  # "big" is not an integer: the default
    assert config.blob_size_warn("b") == 10  # true is not an integer: the unconstrained value
    assert config.namespace_rps("x") == (None, 2.0)  # an unknown constraint: the entry is left out
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "expected an integer" in messages and "unknown constraint" in messages


def test_nexus_settings_and_durations() -> None:
    values = [
        ("component.nexusoperations.request.timeout", "1m30s"),
        ("component.nexusoperations.limit.operation.concurrency", 4),
    ]
    config = DynamicConfig(DynamicConfigSettings(values=values))
    assert config.nexus_request_timeout_s("ns", "ep", 10.0) == 90.0
    assert config.nexus_max_concurrent_operations("ns", 30) == 4
    assert DynamicConfig().nexus_request_timeout_s("ns", "ep", 10.0) == 10.0  # unset: the flag's value
    assert DynamicConfig().nexus_max_concurrent_operations("ns", 30) == 30
    for raw, seconds in (("1.5s", 1.5), ("250ms", 0.25), ("2", 2.0), (3, 3.0), ("1h", 3600.0)):
        timeout = DynamicConfig(DynamicConfigSettings(values=[("component.nexusoperations.request.timeout", raw)]))
        assert timeout.nexus_request_timeout_s("ns", "ep", 10.0) == seconds
    bad = DynamicConfig(DynamicConfigSettings(values=[("component.nexusoperations.request.timeout", "soon")]))
    assert bad.nexus_request_timeout_s("ns", "ep", 10.0) == 10.0


def test_retention_minimums() -> None:
    assert DynamicConfig().min_retention_s() == (86400.0, 0.0)
    values = [("system.namespaceMinRetentionGlobal", "2d"), ("system.namespaceMinRetentionLocal", "30m")]
    assert DynamicConfig(DynamicConfigSettings(values=values)).min_retention_s() == (172800.0, 1800.0)


def test_callback_addresses_in_the_references_shape() -> None:
    value = [{"Pattern": "127.0.0.1:*", "AllowInsecure": True}, {"Pattern": "*.example.com"}, {"AllowInsecure": True}]
    config = DynamicConfig(DynamicConfigSettings(values=[("callback.allowedAddresses", value)]))
    assert config.callback_addresses("any") == (
        AddressPattern("127.0.0.1:*", True),
        AddressPattern("*.example.com", False),
    )  # the entry without a pattern is skipped, as on the reference
    old = DynamicConfig(DynamicConfigSettings(values=[("component.callbacks.allowedAddresses", value[:1])]))
    assert old.callback_addresses("any") == (AddressPattern("127.0.0.1:*", True),)


async def test_the_file_is_polled(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "dc.yaml"
    write(path, "limit.blobSize.error: [{value: 100}]\n")
    config = DynamicConfig(DynamicConfigSettings(path=str(path), poll_interval_s=0.05))
    changed = asyncio.Event()
    config.listeners.append(changed.set)
    config.start()
    try:
        write(path, "limit.blobSize.error: [{value: 250}]\n")
        await asyncio.wait_for(changed.wait(), 30)
        assert config.blob_size_error(None) == 250
    finally:
        await config.stop()


def test_namespace_rate_limit() -> None:
    now = [100.0]
    values = [("frontend.namespaceRPS", 2), ("frontend.namespaceBurstRatio", 1.5)]
    rates = NamespaceRates(DynamicConfig(DynamicConfigSettings(values=values)), clock=lambda: now[0])
    assert [rates.admit("ns", "StartWorkflowExecution") for _ in range(4)] == [True, True, True, False]
    assert rates.admit("ns", "PollWorkflowTaskQueue")  # long polls are not counted
    assert rates.admit("", "GetSystemInfo")  # calls of no namespace neither
    now[0] += 0.5  # one more token
    assert [rates.admit("ns", "SignalWorkflowExecution") for _ in range(2)] == [True, False]
    assert rates.admit("other", "StartWorkflowExecution")  # a bucket per namespace
    zero = NamespaceRates(DynamicConfig(DynamicConfigSettings(values=[("frontend.namespaceRPS", 0)])))
    assert not zero.admit("ns", "DescribeNamespace")  # as the reference: 0 refuses everything
    unlimited = NamespaceRates(DynamicConfig())
    assert all(unlimited.admit("ns", "StartWorkflowExecution") for _ in range(1000))


def test_blob_limits_of_the_call() -> None:
    """As the reference's CheckEventBlobSizeLimit: the error limit counts only above the warning limit."""
    assert not exceeds_blob_limit(1500)
    token = CALL_LIMITS.set(CallLimits(error=1000, warn=500, namespace="ns"))
    try:
        assert exceeds_blob_limit(1500)
        assert not exceeds_blob_limit(900)
        with pytest.raises(InvalidArgument, match=r"Blob data size exceeds limit\."):
            check_blob_size(extra=[1001])
    finally:
        CALL_LIMITS.reset(token)
    token = CALL_LIMITS.set(CallLimits(error=1000, warn=512 * 1024, namespace="ns"))
    try:
        assert not exceeds_blob_limit(1500)  # below the warning limit, the error limit is not looked at
    finally:
        CALL_LIMITS.reset(token)


def test_ui_public_path() -> None:
    assert [normalize_public_path(p) for p in ("/", "", "/x/", "x", "/a/b")] == ["", "", "/x", "/x", "/a/b"]
    index = b'<meta http-equiv="content-security-policy" content="x">\n<link href="/_app/a.js">\nbase: ""\n'
    index += b'import("/_app/b.js")'
    assert with_public_path(index, "") == index
    assert with_public_path(index, "/x") == b'\n<link href="/x/_app/a.js">\nbase: "/x"\nimport("/x/_app/b.js")'
