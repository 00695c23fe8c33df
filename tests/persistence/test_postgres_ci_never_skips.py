"""Without PostgreSQL, its tests skip and say why, except in CI (CI=true), where they fail."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.servers import REPO


def run_without_postgres(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TEMPYRAL_POSTGRES_BIN"] = "/nonexistent/postgresql/bin"
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"]
    command += ["tests/persistence/test_postgres_store.py", "-k", "empty_database"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_outside_ci_it_skips_and_says_why() -> None:
    done = run_without_postgres(None)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "skipped" in done.stdout and "PostgreSQL is not installed" in done.stdout


def test_in_ci_it_fails() -> None:
    done = run_without_postgres("true")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "skipped" not in done.stdout
    assert "CI=true: this test must run here" in done.stdout
