"""What the crash tests share: a server of their own, on a fresh database, that a test may SIGKILL and restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import ServerProcess, tempyral


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = tempyral(str(tmp_path / "crash.db")).start()
    yield proc
    proc.stop()
