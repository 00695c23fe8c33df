"""Logging failures that come in floods: a full disk fails every write, and a line (or a traceback) per failure
would bury everything else in the log. The first failure of a kind is logged at once, then at most one line
per interval, which says how many were left out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tempyral.common.errors import ServiceError

DEFAULT_INTERVAL_S = 30.0


@dataclass(slots=True)
class _Kind:
    next_log: float = 0.0
    left_out: int = 0


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._kinds: dict[str, _Kind] = {}

    def due(self, kind_name: str) -> int | None:
        """Whether a line of this kind may be written now: None if not (it is counted as left out), else how many
        were left out since the last one."""
        kind = self._kinds.setdefault(kind_name, _Kind())
        now = time.monotonic()
        if now < kind.next_log:
            kind.left_out += 1
            return None
        left_out, kind.left_out = kind.left_out, 0
        kind.next_log = now + self._interval_s
        return left_out

    def failure(self, what: str, err: BaseException) -> None:
        """`what` failed with `err`. Known errors (service errors, such as storage being unavailable) get one line;
        anything else also gets its traceback, since it is a bug to look into."""
        left_out = self.due(what)
        if left_out is None:
            return
        more = f" ({left_out} more like it since the last report)" if left_out else ""
        self._logger.error("%s: %s%s", what, err, more, exc_info=None if isinstance(err, ServiceError) else err)
