"""Dynamic config: settings an operator changes without a restart, under the reference's key names.

Values come from `--dynamic-config-value KEY=JSON` (repeatable, as the reference's start-dev) and from a
YAML file (`--dynamic-config-path`) in the reference's format::

    limit.blobSize.error:
      - value: 1048576
        constraints: {namespace: orders}
      - value: 2097152

The file is polled and reloaded when it changes; a file that does not parse keeps the last good values.
A key given on the command line wins over the file's values for that key, whatever their constraints.

Lookups are dict reads made where a value is used, so a reload changes behaviour at once. As the
reference does, a lookup tries the most specific constraints first (for a per-destination key:
namespace+destination, destination, namespace, none) and a value applies only when its constraints are
exactly those tried. Keys tempyral does not know are logged once and ignored; a value of the wrong type
is logged and the default used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

# Precedences: which constraints a key's lookups use, most specific first (the reference's orders).
GLOBAL = "global"
NAMESPACE = "namespace"
DESTINATION = "destination"
TASK_QUEUE = "taskQueue"

# Constraint names as the reference's YAML spells them (matched case-insensitively, as there).
CONSTRAINT_NAMES = {
    name.lower(): name
    for name in ("namespace", "namespaceID", "taskQueueName", "taskType", "shardID", "destination", "chasmTaskType")
}


class BadValue(ValueError):
    """A value that does not fit its key's type."""


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BadValue(f"expected an integer, got {value!r}")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"expected a number, got {value!r}")
    return float(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "t", "f"):
        return value.lower() in ("true", "1", "t")
    raise BadValue(f"expected a boolean, got {value!r}")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _to_duration_s(value: Any) -> float:
    """Seconds, from a number of seconds or a duration string ("1.5s", "10m", "1h30m", "2d"), as the reference's
    converter takes them (a bare number in a string is seconds too)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise BadValue(f"expected a duration, got {value!r}")
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    return _to_float(value)


@dataclass(frozen=True)
class AddressPattern:
    """One entry of `callback.allowedAddresses`."""

    pattern: str
    allow_insecure: bool = False


def _to_addresses(value: Any) -> tuple[AddressPattern, ...]:
    """The reference's shape: a list of {Pattern, AllowInsecure}; entries without a pattern are skipped, as there."""
    if not isinstance(value, list):
        raise BadValue(f"expected a list of {{Pattern, AllowInsecure}}, got {value!r}")
    rules = []
    for entry in value:
        if not isinstance(entry, dict):
            raise BadValue(f"expected {{Pattern, AllowInsecure}}, got {entry!r}")
        fields = {k.lower(): v for k, v in entry.items()}
        pattern = fields.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            continue
        rules.append(AddressPattern(pattern, _to_bool(fields.get("allowinsecure", False))))
    return tuple(rules)


@dataclass(frozen=True)
class Setting:
    key: str
    convert: Callable[[Any], Any]
    default: Any
    precedence: str
    help: str


def _settings(*settings: Setting) -> dict[str, Setting]:
    return {s.key.lower(): s for s in settings}


# The keys tempyral honours, with the reference's names, types, defaults and constraints. A default of None
# means "not set": the command-line flag (or built-in behaviour) that predates dynamic config applies.
BLOB_SIZE_ERROR = "limit.blobSize.error"
BLOB_SIZE_WARN = "limit.blobSize.warn"
MAX_ID_LENGTH = "limit.maxIDLength"
MIN_RETENTION_GLOBAL = "system.namespaceMinRetentionGlobal"
MIN_RETENTION_LOCAL = "system.namespaceMinRetentionLocal"
HISTORY_SIZE_ERROR = "limit.historySize.error"
HISTORY_COUNT_ERROR = "limit.historyCount.error"
NAMESPACE_RPS = "frontend.namespaceRPS"
NAMESPACE_BURST_RATIO = "frontend.namespaceBurstRatio"
NEXUS_REQUEST_TIMEOUT = "component.nexusoperations.request.timeout"
NEXUS_MAX_CONCURRENT_OPERATIONS = "component.nexusoperations.limit.operation.concurrency"
NEXUS_CALLER_RPS = "component.nexusoperations.limit.callerRPS"  # tempyral's own: the reference has none
CALLBACK_ALLOWED_ADDRESSES = "callback.allowedAddresses"
# The name before the reference moved callbacks to CHASM; accepted too, the new name wins.
CALLBACK_ALLOWED_ADDRESSES_OLD = "component.callbacks.allowedAddresses"

SETTINGS = _settings(
    Setting(BLOB_SIZE_ERROR, _to_int, 2 * 1024 * 1024, NAMESPACE, "bytes of a payload refused above"),
    Setting(BLOB_SIZE_WARN, _to_int, 512 * 1024, NAMESPACE, "bytes of a payload logged above"),
    Setting(MIN_RETENTION_GLOBAL, _to_duration_s, 24 * 3600.0, GLOBAL, "shortest retention of a global namespace"),
    # The reference's default is 1 h; tempyral keeps accepting shorter ones unless set.
    Setting(MIN_RETENTION_LOCAL, _to_duration_s, 0.0, GLOBAL, "shortest retention of a local namespace"),
    Setting(MAX_ID_LENGTH, _to_int, 1000, GLOBAL, "length limit of ids and names"),
    Setting(HISTORY_SIZE_ERROR, _to_int, 50 * 1024 * 1024, NAMESPACE, "history bytes over which a run is terminated"),
    Setting(HISTORY_COUNT_ERROR, _to_int, 50 * 1024, NAMESPACE, "history events over which a run is terminated"),
    Setting(NAMESPACE_RPS, _to_int, None, NAMESPACE, "requests per second per namespace (unset: unlimited)"),
    Setting(NAMESPACE_BURST_RATIO, _to_float, 2.0, NAMESPACE, "burst of the namespace RPS limit, as a ratio of it"),
    Setting(
        NEXUS_REQUEST_TIMEOUT, _to_duration_s, None, DESTINATION, "seconds one Nexus start or cancel request takes"
    ),
    Setting(NEXUS_MAX_CONCURRENT_OPERATIONS, _to_int, None, NAMESPACE, "pending Nexus operations of one workflow"),
    Setting(NEXUS_CALLER_RPS, _to_float, 0.0, DESTINATION, "Nexus requests per second per endpoint and caller"),
    Setting(CALLBACK_ALLOWED_ADDRESSES, _to_addresses, None, NAMESPACE, "addresses callbacks may call"),
    Setting(CALLBACK_ALLOWED_ADDRESSES_OLD, _to_addresses, None, NAMESPACE, "older name of the same"),
)

Constraints = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
_NONE: Constraints = ()


@dataclass(frozen=True)
class DynamicConfigSettings:
    """The command line's part: values, the file, and how often the file is looked at."""

    values: Sequence[tuple[str, Any]] = ()  # (key, value decoded from JSON)
    path: str | None = None
    poll_interval_s: float = 10.0  # the reference's default poll interval


def parse_value_flag(text: str) -> tuple[str, Any]:
    """`KEY=JSON`, as the reference's start-dev: the key an identifier-ish name, the value JSON."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"dynamic config value must be KEY=JSON, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"dynamic config value for {key} must be JSON: {err}") from err


@dataclass
class _Loaded:
    # lowercased key -> {constraints: converted value}
    values: dict[str, dict[Constraints, Any]] = field(default_factory=dict)


class DynamicConfig:
    """One per server; pass it to whatever reads a setting."""

    def __init__(self, settings: DynamicConfigSettings | None = None) -> None:
        self.settings = settings or DynamicConfigSettings()
        self._warned: set[str] = set()  # unknown keys already logged
        self._overrides = self._convert({key: [{"value": value}] for key, value in self.settings.values}, "flag")
        self._file = _Loaded()
        self._merged: dict[str, dict[Constraints, Any]] = dict(self._overrides.values)
        self._file_stamp: tuple[float, int, bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0  # files loaded, for tests and the log
        self.listeners: list[Callable[[], None]] = []  # called after every change of the values
        if self.settings.path is not None:
            self.reload()

    # ------------------------------------------------------------------ lookups
    def value(
        self,
        key: str,
        default: Any = None,
        *,
        namespace: str | None = None,
        destination: str | None = None,
        task_queue: str | None = None,
    ) -> Any:
        """The value for these constraints, tried from the most specific as the reference does; else `default`
        (else the key's registered default)."""
        setting = SETTINGS.get(key.lower())
        values = self._merged.get(key.lower())
        if values:
            precedence = setting.precedence if setting else GLOBAL
            for constraints in _precedence(precedence, namespace, destination, task_queue):
                if constraints in values:
                    return values[constraints]
        if default is not None or setting is None:
            return default
        return setting.default

    def blob_size_error(self, namespace: str | None) -> int:
        return int(self.value(BLOB_SIZE_ERROR, namespace=namespace))

    def blob_size_warn(self, namespace: str | None) -> int:
        return int(self.value(BLOB_SIZE_WARN, namespace=namespace))

    def min_retention_s(self) -> tuple[float, float]:
        """(global, local) shortest retention of a namespace, in seconds."""
        return float(self.value(MIN_RETENTION_GLOBAL)), float(self.value(MIN_RETENTION_LOCAL))

    def max_id_length(self) -> int:
        return int(self.value(MAX_ID_LENGTH))

    def history_limits(self, namespace: str) -> tuple[int, int]:
        """(size in bytes, count of events) over which a running workflow is terminated."""
        return int(self.value(HISTORY_SIZE_ERROR, namespace=namespace)), int(
            self.value(HISTORY_COUNT_ERROR, namespace=namespace)
        )

    def namespace_rps(self, namespace: str) -> tuple[int | None, float]:
        """Requests per second (None: unlimited) and the burst ratio."""
        rps = self.value(NAMESPACE_RPS, namespace=namespace)
        return rps, float(self.value(NAMESPACE_BURST_RATIO, namespace=namespace))

    def nexus_request_timeout_s(self, caller_namespace: str, endpoint: str, default: float) -> float:
        value = self.value(NEXUS_REQUEST_TIMEOUT, namespace=caller_namespace, destination=endpoint)
        return default if value is None else float(value)

    def nexus_max_concurrent_operations(self, namespace: str, default: int) -> int:
        value = self.value(NEXUS_MAX_CONCURRENT_OPERATIONS, namespace=namespace)
        return default if value is None else int(value)

    def caller_rps(self, endpoint_name: str, caller_namespace: str, default: float | None = None) -> float:
        """Nexus requests per second from `caller_namespace` to the endpoint; 0: unlimited. `default` where no
        value is configured (the --nexus-caller-rps flag's)."""
        return float(self.value(NEXUS_CALLER_RPS, default, namespace=caller_namespace, destination=endpoint_name))

    def callback_addresses(self, namespace: str | None) -> tuple[AddressPattern, ...] | None:
        """The allowed callback addresses dynamic config gives for the namespace; None: not configured."""
        rules = self.value(CALLBACK_ALLOWED_ADDRESSES, namespace=namespace)
        if rules is None:
            rules = self.value(CALLBACK_ALLOWED_ADDRESSES_OLD, namespace=namespace)
        return rules  # type: ignore[no-any-return]

    def effective(self) -> dict[str, list[dict[str, Any]]]:
        """Every value set, as the file's format has them (for --log-config)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for key, values in sorted(self._merged.items()):
            name = SETTINGS[key].key if key in SETTINGS else key
            out[name] = [{"value": _plain(v), **({"constraints": dict(c)} if c else {})} for c, v in values.items()]
        return out

    # ------------------------------------------------------------------ loading
    def _convert(self, raw: Mapping[str, Any], source: str) -> _Loaded:
        """Raw key -> [{value, constraints}] into converted values; bad entries are logged and left out."""
        loaded = _Loaded()
        for key, entries in raw.items():
            setting = SETTINGS.get(str(key).lower())
            if setting is None:
                if str(key).lower() not in self._warned:
                    self._warned.add(str(key).lower())
                    log.warning("dynamic config warning: unregistered key %r (%s): ignored", key, source)
                continue
            if not isinstance(entries, list):
                log.warning("dynamic config: %s (%s): expected a list of {value, constraints}: ignored", key, source)
                continue
            for entry in entries:
                try:
                    constraints, value = self._entry(entry)
                    loaded.values.setdefault(setting.key.lower(), {})[constraints] = setting.convert(value)
                except BadValue as err:
                    log.warning("dynamic config: %s (%s): %s: ignored", setting.key, source, err)
        return loaded

    @staticmethod
    def _entry(entry: Any) -> tuple[Constraints, Any]:
        if not isinstance(entry, dict):
            raise BadValue(f"expected {{value, constraints}}, got {entry!r}")
        fields = {str(k).lower(): v for k, v in entry.items()}
        if "value" not in fields:
            raise BadValue("an entry without a value")
        raw_constraints = fields.get("constraints") or {}
        if not isinstance(raw_constraints, dict):
            raise BadValue(f"constraints must be a map, got {raw_constraints!r}")
        constraints = []
        for name, value in raw_constraints.items():
            canonical = CONSTRAINT_NAMES.get(str(name).lower())
            if canonical is None:
                raise BadValue(f"unknown constraint {name!r}")
            constraints.append((canonical, str(value)))
        return tuple(sorted(constraints)), fields["value"]

    def reload(self) -> bool:
        """Read the file if it changed; True if the values changed. A file that cannot be read or parsed keeps the
        last good values."""
        path = self.settings.path
        if path is None:
            return False
        try:
            stat = os.stat(path)
            with open(path, "rb") as f:
                contents = f.read()
        except OSError as err:
            if self._file_stamp != (0.0, 0, b""):
                log.warning("dynamic config: cannot read %s: %s; keeping the last values", path, err)
                self._file_stamp = (0.0, 0, b"")
            return False
        stamp = (stat.st_mtime, stat.st_size, contents)
        if stamp == self._file_stamp:
            return False
        self._file_stamp = stamp
        try:
            raw = yaml.safe_load(contents) or {}
            if not isinstance(raw, dict):
                raise BadValue("the file must map keys to lists of {value, constraints}")
        except (yaml.YAMLError, BadValue) as err:
            log.warning("dynamic config: %s is not valid: %s; keeping the last values", path, err)
            return False
        self._file = self._convert(raw, path)
        merged = dict(self._file.values)
        merged.update(self._overrides.values)  # the command line wins, key by key
        self._merged = merged
        self.reloads += 1
        log.info("Updated dynamic config from %s (%d keys)", path, len(self._file.values))
        for listener in self.listeners:
            listener()
        return True

    def start(self) -> None:
        """Poll the file for changes (nothing to do without one)."""
        if self.settings.path is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="dynamic config poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                # The read is small and local; in a thread all the same, a slow disk must not stall requests.
                await asyncio.to_thread(self.reload)
            except Exception as err:  # a bug here must not stop the polling
                log.warning("dynamic config: reload failed: %s", err)


def _precedence(
    precedence: str, namespace: str | None, destination: str | None, task_queue: str | None
) -> list[Constraints]:
    """The constraint sets a lookup tries, most specific first, as the reference's."""
    ns = (("namespace", namespace),) if namespace is not None else None
    dest = (("destination", destination),) if destination is not None else None
    tq = (("taskQueueName", task_queue),) if task_queue is not None else None
    order: list[Constraints | None]
    if precedence == NAMESPACE:
        order = [ns]
    elif precedence == DESTINATION:
        both = tuple(sorted(ns + dest)) if ns and dest else None
        order = [both, dest, ns]
    elif precedence == TASK_QUEUE:
        both = tuple(sorted(ns + tq)) if ns and tq else None
        order = [both, tq, ns]
    else:
        order = []
    return [c for c in order if c] + [_NONE]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [{"Pattern": a.pattern, "AllowInsecure": a.allow_insecure} for a in value]
    return value
