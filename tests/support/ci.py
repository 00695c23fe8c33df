"""Where the suite runs: in CI (CI=true, as CI services set it) a test that cannot run is a failure, not a skip,
so that a regression cannot land behind a green run that skipped the test meant to catch it."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def cannot_run(reason: str) -> None:
    """Skip, or in CI fail, the test (or fixture) that calls this."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run here)", pytrace=False)
    pytest.skip(reason)
