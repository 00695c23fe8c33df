"""The server's log output: `--log-format json|pretty` (`text`, the reference's name, is `pretty`) and
`--log-level debug|info|warn|error|never`.

JSON is one object per line: `time` (RFC 3339, UTC), `level`, `logger`, `msg`, then the record's structured fields
(passed as `extra={"fields": {...}}`), and `error` with the traceback when there is one. Pretty is one line of text
with the fields as key=value after the message. `never` logs nothing at all.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LEVELS = ("debug", "info", "warn", "error", "never")
FORMATS = ("json", "pretty", "text")
_LEVEL = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower().replace("warning", "warn"),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class PrettyFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = fields_of(record)
        if not fields:
            return text
        head, sep, tail = text.partition("\n")  # fields go on the message's line, before a traceback
        return head + " " + " ".join(f"{k}={_pretty(v)}" for k, v in fields.items()) + sep + tail


def _pretty(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


def configure(level: str, fmt: str = "pretty", stream: TextIO | None = None) -> None:
    """Set up the root logger once, at start (replacing what was there)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if level == "never":
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        logging.disable(logging.CRITICAL)  # nothing at all, not even what bypasses levels
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PrettyFormatter())
    root.addHandler(handler)
    root.setLevel(_LEVEL[level])
