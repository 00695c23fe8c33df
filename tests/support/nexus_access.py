"""`tempyral nexus endpoint ...` run as an operator runs it, against a test's server."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.servers import ServerProcess


def endpoint_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own (this checkout's code: PYTHONPATH is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "tempyral", "nexus", "endpoint", *args, "--address", server.address],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
