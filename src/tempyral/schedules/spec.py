"""Schedule specs: validation, the canonical form the reference stores and describes, and the times a spec
matches (nominal, and actual with the spec's jitter).

A spec's times are the union of its calendars' and intervals' times, minus the times any exclude calendar
matches, within [start_time, end_time], up to the end of MAX_CALENDAR_YEAR; all in whole seconds. Intervals are
aligned to the Unix epoch plus their phase. Jitter delays each time by a deterministic amount below the spec's
jitter and below the gap to the following time: the reference's hash of the nominal time and a seed, so the
same schedule gets the same actual times here, after a restart, and on the reference."""

from __future__ import annotations

import io
import zoneinfo
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.schedule.v1 import message_pb2 as schedule_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as service_pb

from tempyral.common.errors import InvalidArgument
from tempyral.schedules.calendar import (
    MAX_CALENDAR_YEAR,
    UTC_ZONE,
    CompiledCalendar,
    SpecError,
    Zone,
    clean_ranges,
    parse_calendar,
    parse_cron_string,
    validate_structured,
)
from tempyral.schedules.farmhash import fingerprint32

NANOS = 1_000_000_000
# Go's time.Time.MarshalBinary counts seconds from 0001-01-01; the jitter hash covers that encoding.
_GO_INTERNAL_EPOCH = 62_135_596_800
_END_OF_CALENDAR = int(datetime(MAX_CALENDAR_YEAR + 1, 1, 1, tzinfo=UTC).timestamp())
# ListScheduleMatchingTimes answers at most this many times, as the reference does.
MAX_MATCHING_TIMES = 1000
# How many excluded candidates one search may step over before the spec is refused as over-excluded. The
# reference has no bound by default (it would spin towards 2100); a server must not.
MAX_EXCLUDED_STEPS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _invalid(reason: str) -> InvalidArgument:
    return InvalidArgument(f"Invalid schedule spec: {reason}")


def _duration_ns(seconds: int, nanos: int) -> int:
    return seconds * NANOS + nanos


def _canonicalize(spec: schedule_pb.ScheduleSpec) -> schedule_pb.ScheduleSpec:
    """Calendars and cron strings as structured calendars and intervals, with the cron strings' time zone; the
    reference's form (ranges still compact). Raises SpecError."""
    out = schedule_pb.ScheduleSpec()
    out.CopyFrom(spec)
    for cal in spec.calendar:
        out.structured_calendar.append(parse_calendar(cal))
    del out.calendar[:]
    for cal in spec.exclude_calendar:
        out.exclude_structured_calendar.append(parse_calendar(cal))
    del out.exclude_calendar[:]
    cron_tz: str | None = None
    for cron in spec.cron_string:
        structured, interval, tz_name = parse_cron_string(cron)
        if cron_tz is not None and tz_name != cron_tz:
            raise SpecError("conflicting timezone names")  # every cron string names the same zone, or none
        cron_tz = tz_name
        if structured is not None:
            out.structured_calendar.append(structured)
        if interval is not None:
            out.interval.append(interval)
    del out.cron_string[:]
    if cron_tz:
        if (out.timezone_name and out.timezone_name != cron_tz) or out.timezone_data:
            raise SpecError("conflicting timezone names")
        out.timezone_name = cron_tz
    for structured in out.structured_calendar:
        validate_structured(structured)
    for interval in out.interval:
        every = _duration_ns(interval.interval.seconds, interval.interval.nanos)
        phase = _duration_ns(interval.phase.seconds, interval.phase.nanos)
        if every < NANOS:
            raise SpecError("interval is too small")
        if phase < 0:
            raise SpecError("phase is negative")
        if phase >= every:
            raise SpecError("phase cannot be greater than Interval")
    return out


def _validate_durations(spec: schedule_pb.ScheduleSpec) -> None:
    """protobuf's Duration.CheckValid on intervals and phases, which the reference checks first."""
    for interval in spec.interval:
        for name, present, d in (
            ("interval", interval.HasField("interval"), interval.interval),
            ("phase", interval.HasField("phase"), interval.phase),
        ):
            if not present:
                continue
            # Go's protobuf words this with a no-break space after "proto:" and two spaces between the fields of
            # its text form, as the reference's binary prints them
            text = "  ".join(
                f"{field}:{value}" for field, value in (("seconds", d.seconds), ("nanos", d.nanos)) if value
            )
            if not -315_576_000_000 <= d.seconds <= 315_576_000_000:
                reason = f"exceeds {'+' if d.seconds > 0 else '-'}10000 years"
            elif not -NANOS < d.nanos < NANOS:
                reason = "has out-of-range nanos"
            elif (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
                reason = "has seconds and nanos with different signs"
            else:
                continue
            raise _invalid(f"{name} is not a valid duration: proto:\u00a0duration ({text}) {reason}")


def _load_zone(spec: schedule_pb.ScheduleSpec) -> Zone:
    name = spec.timezone_name
    if spec.timezone_data:
        return _zone_from_data(name, spec.timezone_data)
    if name in ("", "UTC", "Local"):  # Go's "Local" is the server's zone; tempyral's servers run on UTC
        return UTC_ZONE
    if ".." in name or name.startswith(("/", "\\")):  # Go's time.LoadLocation refuses these before looking
        raise SpecError("time: invalid location name")
    try:
        return Zone(zoneinfo.ZoneInfo(name))
    except IsADirectoryError:
        raise SpecError("is a directory") from None  # Go reads the name as a file too: "America"
    except ValueError:
        if name.endswith("/") and _is_directory(name.rstrip("/")):
            raise SpecError("is a directory") from None
        raise SpecError(f"unknown time zone {name}") from None
    except (zoneinfo.ZoneInfoNotFoundError, OSError):
        raise SpecError(f"unknown time zone {name}") from None


def _zone_from_data(name: str, data: bytes) -> Zone:
    """A zone from TZif data, read as Go reads it: a version 2+ file's footer (the TZ string for times after the
    last transition) is used only when it sits between two newlines at the end and parses; otherwise the times
    after the last transition keep its offset."""
    candidates = [data]
    if data[4:5] not in (b"", b"\0", b"1"):
        ended = data.endswith(b"\n")
        footer = data.rfind(b"\n", 0, len(data) - 1 if ended else len(data))
        # zoneinfo would read an unterminated footer forever: never give it one
        without_footer = [data[: footer + 1] + b"\n"] if footer >= 0 else []
        candidates = ([data] if ended else []) + without_footer
    for candidate in candidates:
        try:
            return Zone(zoneinfo.ZoneInfo.from_file(io.BytesIO(candidate), key=name))
        except Exception:  # struct.error, ValueError, AssertionError... on bad data
            continue
    raise SpecError("malformed time zone information")


def _is_directory(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except IsADirectoryError:
        return True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return False


def canonical_spec(spec: schedule_pb.ScheduleSpec) -> schedule_pb.ScheduleSpec:
    """What DescribeSchedule shows for `spec` (and what to store): string calendars and cron strings turned into
    structured calendars and intervals, every range with explicit end and step. Raises InvalidArgument."""
    return CompiledSpec.compile(spec).canonical


class CompiledSpec:
    """A validated spec, ready to answer its next times. Build with compile()."""

    def __init__(
        self,
        canonical: schedule_pb.ScheduleSpec,
        zone: Zone,
        jitter_seed: str,
    ) -> None:
        self.canonical = canonical
        self.zone = zone
        self.jitter_seed = jitter_seed
        self.calendars = [CompiledCalendar(cal, zone) for cal in canonical.structured_calendar]
        self.excludes = [CompiledCalendar(cal, zone) for cal in canonical.exclude_structured_calendar]
        # intervals in whole seconds, as the reference truncates them
        self.intervals = [(max(iv.interval.seconds, 1), max(iv.phase.seconds, 0)) for iv in canonical.interval]
        self.start_ns = (
            _duration_ns(canonical.start_time.seconds, canonical.start_time.nanos)
            if canonical.HasField("start_time")
            else 0  # an unset start is the Unix epoch
        )
        self.end_ns = (
            _duration_ns(canonical.end_time.seconds, canonical.end_time.nanos)
            if canonical.HasField("end_time")
            else None
        )
        self.jitter_ns = max(_duration_ns(canonical.jitter.seconds, canonical.jitter.nanos), 0)

    @classmethod
    def compile(cls, spec: schedule_pb.ScheduleSpec, jitter_seed: str = "") -> CompiledSpec:
        """Validate and compile `spec`. `jitter_seed` decides the jitter with the nominal time: the reference
        uses f"{namespace_id}-{schedule_id}". Raises InvalidArgument with the reference's message."""
        _validate_durations(spec)
        try:
            canonical = _canonicalize(spec)
            zone = _load_zone(canonical)
        except SpecError as err:
            raise _invalid(str(err)) from None
        for cal in (*canonical.structured_calendar, *canonical.exclude_structured_calendar):
            clean_ranges(cal)
        return cls(canonical, zone, jitter_seed)

    # --- times ----------------------------------------------------------------------------------------------

    def next_time(self, after: datetime) -> tuple[datetime, datetime] | None:
        """The first (nominal, actual) time strictly after `after`, actual being nominal plus jitter; None when
        the spec has no more times. To list several times, pass back the previous *actual* time, as the
        reference does. Raises InvalidArgument when exclusions hide every time for too long."""
        after_ns = max(_to_ns(after), self.start_ns - NANOS)
        candidate = after_ns // NANOS  # the reference works in whole seconds, rounding down
        for _ in range(MAX_EXCLUDED_STEPS):
            nominal = self._raw_next(candidate)
            if nominal is None or nominal >= _END_OF_CALENDAR:
                return None
            if self.end_ns is not None and nominal * NANOS > self.end_ns:
                return None
            if not any(exclude.matches(nominal) for exclude in self.excludes):
                return _from_s(nominal), _from_s(nominal) + timedelta(milliseconds=self._jitter_ms(nominal))
            candidate = nominal
        raise InvalidArgument(
            "the schedule calendar specification has too many exclusions. Please modify the specification."
        )

    def times_between(self, start: datetime, end: datetime, limit: int) -> list[tuple[datetime, datetime]]:
        """Up to `limit` (nominal, actual) times after `start` whose actual time is not after `end`; each search
        starts from the previous actual time, as ListScheduleMatchingTimes on the reference does."""
        out: list[tuple[datetime, datetime]] = []
        after = start
        while len(out) < limit:
            found = self.next_time(after)
            if found is None or found[1] > end:
                break
            out.append(found)
            after = found[1]
        return out

    def _raw_next(self, after: int) -> int | None:
        """The first calendar or interval time after `after` (seconds), ignoring exclusions and the end."""
        best: int | None = None
        for cal in self.calendars:
            found = cal.next(after)
            if found is not None and (best is None or found < best):
                best = found
        for every, phase in self.intervals:
            found = (_go_div(after - phase, every) + 1) * every + phase
            if best is None or found < best:
                best = found
        return best

    def _jitter_ms(self, nominal: int) -> int:
        max_ns = self.jitter_ns
        following = self._raw_next(nominal)
        if following is not None:
            max_ns = min(max_ns, (following - nominal) * NANOS)  # never past the next nominal time
        max_ms = min(max_ns // 1_000_000, 0xFFFFFFFF)
        if max_ms <= 0:
            return 0
        # time.Time.MarshalBinary of the nominal time in UTC: version 1, seconds since year 1, nanoseconds,
        # and -1 for the UTC zone's offset in minutes
        encoded = (
            b"\x01"
            + (nominal + _GO_INTERNAL_EPOCH).to_bytes(8, "big", signed=True)
            + (0).to_bytes(4, "big")
            + (-1).to_bytes(2, "big", signed=True)
        )
        return (fingerprint32(encoded + self.jitter_seed.encode()) * max_ms) >> 32


# ListSchedules shows at most this many structured calendars, exclusions and intervals of a spec
LIST_INFO_SPEC_ITEMS = 10


def list_info_spec(spec: schedule_pb.ScheduleSpec) -> schedule_pb.ScheduleSpec:
    """The spec ListSchedules shows for a stored (canonical) spec: without time zone data, and with at most
    LIST_INFO_SPEC_ITEMS structured calendars, exclusions and intervals, as the reference's list info."""
    out = schedule_pb.ScheduleSpec()
    out.CopyFrom(spec)
    out.ClearField("timezone_data")
    for items in (out.structured_calendar, out.exclude_structured_calendar, out.interval):
        del items[LIST_INFO_SPEC_ITEMS:]
    return out


def future_action_times(
    compiled: CompiledSpec, base: datetime, count: int, not_before: datetime | None = None
) -> list[datetime]:
    """The next `count` actual times after `base` (the last time the schedule processed; its create time at
    first), leaving out those before `not_before` (the schedule's update time), as the reference computes
    DescribeSchedule's future_action_times (count 10, or the remaining actions if fewer) and the list info's
    (count 5)."""
    out: list[datetime] = []
    after = base
    while len(out) < count:
        found = compiled.next_time(after)
        if found is None:
            break
        after = found[1]
        if not_before is None or after >= not_before:
            out.append(after)
    return out


def list_matching_times(
    request: service_pb.ListScheduleMatchingTimesRequest, spec: schedule_pb.ScheduleSpec, jitter_seed: str
) -> service_pb.ListScheduleMatchingTimesResponse:
    """ListScheduleMatchingTimes for a schedule whose stored spec is `spec` (the schedule found by the caller)."""
    if not request.HasField("start_time") or not request.HasField("end_time"):
        raise InvalidArgument("missing or invalid query")
    return service_pb.ListScheduleMatchingTimesResponse(
        start_time=matching_times(spec, request.start_time, request.end_time, jitter_seed)
    )


def matching_times(
    spec: schedule_pb.ScheduleSpec, start: Timestamp, end: Timestamp, jitter_seed: str = ""
) -> list[Timestamp]:
    """The answer of ListScheduleMatchingTimes for a schedule with this (stored) spec: the actual times after
    `start` up to `end`, at most MAX_MATCHING_TIMES."""
    compiled = CompiledSpec.compile(spec, jitter_seed)
    out: list[Timestamp] = []
    for _, actual in compiled.times_between(_ts_datetime(start), _ts_datetime(end), MAX_MATCHING_TIMES):
        ts = Timestamp()
        ts.FromDatetime(actual)
        out.append(ts)
    return out


def _go_div(a: int, b: int) -> int:
    """Go's integer division, which truncates towards zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _to_ns(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * NANOS + delta.microseconds * 1000


def _from_s(unix: int) -> datetime:
    return _EPOCH + timedelta(seconds=unix)


def _ts_datetime(ts: Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
