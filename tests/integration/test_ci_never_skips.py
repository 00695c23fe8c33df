"""In CI (CI=true) a test that cannot run fails instead of skipping: the Web UI test without a browser."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.servers import REPO


def run_ui_test_without_a_browser(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TEMPYRAL_CHROMIUM"] = "/nonexistent/chromium"
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/e2e/test_web_ui.py"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_outside_ci_it_skips_and_says_why() -> None:
    done = run_ui_test_without_a_browser(None)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "skipped" in done.stdout and "no Chromium at /nonexistent/chromium" in done.stdout


def test_in_ci_it_fails() -> None:
    done = run_ui_test_without_a_browser("true")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "skipped" not in done.stdout
    assert "CI=true: this test must run here" in done.stdout
