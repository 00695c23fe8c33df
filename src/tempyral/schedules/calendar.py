"""Calendar specs of schedules: parsing the string forms (CalendarSpec fields and cron strings) into
StructuredCalendarSpec ranges, and finding the next second a structured calendar matches in a time zone.

Wall-clock times are resolved to instants the way Go's time.Date does (the reference is written in Go), because
that decides which copy of a repeated hour and which neighbour of a skipped hour a calendar lands on: a time in a
DST gap and a repeated time both take the offset in force at the wall-clock reading taken as UTC, unless that
instant is outside the offset's period, in which case the offset at the first guess is used."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, tzinfo

from temporalio.api.schedule.v1 import message_pb2 as schedule_pb

MIN_CALENDAR_YEAR = 2000
MAX_CALENDAR_YEAR = 2100  # the reference stops looking for calendar matches after this year
MAX_COMMENT_LEN = 200

_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1


class SpecError(ValueError):
    """A spec the reference refuses; str() is the reason as the reference words it (after "Invalid schedule
    spec: ")."""


# --- parsing ------------------------------------------------------------------------------------------------


def _atoi(s: str) -> int:
    """Go's strconv.Atoi, with its error text."""
    if not _INT.fullmatch(s):
        raise SpecError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    value = int(s)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise SpecError(f'strconv.Atoi: parsing "{s}": value out of range')
    return value


def _parse_value(s: str, lo: int, hi: int, mode: str) -> int:
    """One value of a range: a number, or a month (3+ letters) or weekday (2+ letters) name prefix."""
    names = _MONTHS if mode == "month" else _DAYS if mode == "dow" else ()
    if names and len(s) >= (3 if mode == "month" else 2):
        lowered = s.lower()
        for index, name in enumerate(names):
            if name.startswith(lowered):
                value = index + 1 if mode == "month" else index
                if not lo <= value <= hi:
                    raise SpecError("out of range")
                return value
    value = _atoi(s)
    if not lo <= value <= hi:
        raise SpecError("out of range")
    return value


def parse_ranges(text: str, field: str, default: str, lo: int, hi: int, mode: str) -> list[schedule_pb.Range]:
    """A comma-separated list of `*`, `x`, `x-z`, `x-z/y`, `x/y` (x to the maximum by y), `*/y`, in the reference's
    compact form: end 0 when equal to start, step 0 when 1; `*` for years is the empty list."""
    text = text.strip() or default
    if text == "*" and mode == "year":
        return []
    ranges: list[schedule_pb.Range] = []
    for part in text.split(","):
        step, has_step = 1, False
        slashes = part.count("/")
        if slashes > 1:
            raise SpecError(f"{field} has too many slashes")
        if slashes == 1:
            part, step_text = part.split("/")
            if step_text == "":
                raise SpecError(f"{field} missing step value")
            step = _atoi(step_text)
            if step < 1:
                raise SpecError(f"{field} has invalid Step")
            has_step = True
        start, end = lo, hi
        if part != "*":
            if "-" in part:
                if part.count("-") > 1:
                    raise SpecError(f"{field} has too many dashes")
                first, last = part.split("-")
                try:
                    start = _parse_value(first, lo, hi, mode)
                except SpecError:
                    raise SpecError(f"{field} Start is not in range [{lo}-{hi}]") from None
                try:
                    end = _parse_value(last, start, hi, mode)
                except SpecError:
                    raise SpecError(f"{field} End is before Start or not in range [{lo}-{hi}]") from None
            else:
                try:
                    start = _parse_value(part, lo, hi, mode)
                except SpecError:
                    raise SpecError(f"{field} is not in range [{lo}-{hi}]") from None
                if not has_step:
                    end = start
        if mode == "dow" and end == 7:
            # 7 is Sunday too: it becomes 0, as an extra range when the range would otherwise miss it.
            if (7 - start) % step == 0 and (step > 1 or start > 1):
                ranges.append(schedule_pb.Range(start=0))
                if start == 7:
                    continue
            end = 6
        ranges.append(schedule_pb.Range(start=start, end=0 if end == start else end, step=0 if step == 1 else step))
    return ranges


def parse_calendar(cal: schedule_pb.CalendarSpec) -> schedule_pb.StructuredCalendarSpec:
    """A CalendarSpec (strings) as a StructuredCalendarSpec; every field's error is reported, joined by ", "."""
    errors: list[str] = []

    def field(text: str, name: str, default: str, lo: int, hi: int, mode: str) -> list[schedule_pb.Range]:
        try:
            return parse_ranges(text, name, default, lo, hi, mode)
        except SpecError as err:
            errors.append(str(err))
            return []

    structured = schedule_pb.StructuredCalendarSpec(
        second=field(cal.second, "Second", "0", 0, 59, "int"),
        minute=field(cal.minute, "Minute", "0", 0, 59, "int"),
        hour=field(cal.hour, "Hour", "0", 0, 23, "int"),
        day_of_week=field(cal.day_of_week, "DayOfWeek", "*", 0, 7, "dow"),
        day_of_month=field(cal.day_of_month, "DayOfMonth", "*", 1, 31, "int"),
        month=field(cal.month, "Month", "*", 1, 12, "month"),
        year=field(cal.year, "Year", "*", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR, "year"),
        comment=cal.comment,
    )
    if errors:
        raise SpecError(", ".join(errors))
    return structured


_PREDEFINED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def parse_cron_string(
    text: str,
) -> tuple[schedule_pb.StructuredCalendarSpec | None, schedule_pb.IntervalSpec | None, str]:
    """A cron string as a calendar or (for `@every D[/P]`) an interval, and the time zone of its `TZ=`/`CRON_TZ=`
    prefix ("" when none). Five fields are minute to day of week, six add the year, seven start with seconds;
    `# ...` is the comment."""
    text = text.strip()
    tz_name = ""
    if text.startswith(("TZ=", "CRON_TZ=")):
        if " " not in text:
            raise SpecError("CronString has time zone but missing fields")
        tz, text = text.split(" ", 1)
        tz_name = tz.split("=", 1)[1]
    text, _, comment = text.partition("#")
    text, comment = text.strip(), comment.strip()
    if text.startswith("@every"):
        return None, _parse_every(text), ""
    fields = _PREDEFINED.get(text, text).split()
    if not 5 <= len(fields) <= 7:
        raise SpecError("CronString does not have 5-7 fields")
    cal = schedule_pb.CalendarSpec(comment=comment)
    if len(fields) == 7:
        cal.second = fields.pop(0)
    cal.minute, cal.hour, cal.day_of_month, cal.month, cal.day_of_week = fields[:5]
    if len(fields) == 6:
        cal.year = fields[5]
    return parse_calendar(cal), None, tz_name


def _parse_every(text: str) -> schedule_pb.IntervalSpec:
    if " " not in text:
        raise SpecError("CronString does not have interval after @every")
    interval_text, _, phase_text = text.split(" ", 1)[1].partition("/")
    spec = schedule_pb.IntervalSpec()
    spec.interval.FromNanoseconds(parse_go_duration(interval_text))
    if phase_text:
        spec.phase.FromNanoseconds(parse_go_duration(phase_text))
    return spec


_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_UNIT_NS["h"] = 3600 * 10**9
_DAYS_IN_DURATION = re.compile(r"([0-9]+(\.[0-9]*)?|(\.[0-9]+))d")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration (with the reference's extra unit `d`, 24 hours), in nanoseconds."""
    text = _DAYS_IN_DURATION.sub(lambda m: f"{24 * float(m.group(0)[:-1]):f}h", text)
    original, s = text, text
    invalid = SpecError(f'time: invalid duration "{original}"')
    negative = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid
    total = 0
    while s:
        number = re.match(r"([0-9]*)(\.([0-9]*))?", s)
        assert number is not None  # the pattern matches the empty string
        whole, fraction = number.group(1), number.group(3)
        if not whole and not fraction:
            raise invalid
        s = s[number.end() :]
        unit_match = re.match(r"[^0-9.]*", s)
        assert unit_match is not None
        unit = unit_match.group(0)
        s = s[len(unit) :]
        if unit == "":
            raise SpecError(f'time: missing unit in duration "{original}"')
        if unit not in _UNIT_NS:
            raise SpecError(f'time: unknown unit "{unit}" in duration "{original}"')
        scale = _UNIT_NS[unit]
        value = int(whole or "0") * scale
        if fraction:
            value += int(int(fraction) * scale / 10 ** len(fraction))  # Go truncates the fraction's nanoseconds
        total += value
        if total > _INT64_MAX:
            raise invalid
    return -total if negative else total


# --- validation ---------------------------------------------------------------------------------------------


def validate_structured(cal: schedule_pb.StructuredCalendarSpec) -> None:
    errors: list[str] = []
    fields: Iterable[tuple[Iterable[schedule_pb.Range], str, int, int]] = (
        (cal.second, "Second", 0, 59),
        (cal.minute, "Minute", 0, 59),
        (cal.hour, "Hour", 0, 23),
        (cal.day_of_month, "DayOfMonth", 1, 31),
        (cal.month, "Month", 1, 12),
        (cal.year, "Year", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR),
        (cal.day_of_week, "DayOfWeek", 0, 6),
    )
    for ranges, name, lo, hi in fields:
        for r in ranges:
            if not lo <= r.start <= hi:
                errors.append(f"{name} Start is not in range [{lo}-{hi}]")
            if r.end != 0 and (r.end < r.start or r.end > hi):
                errors.append(f"{name} End is before Start or not in range [{lo}-{hi}]")
            if r.step < 0:
                errors.append(f"{name} has invalid Step")
    if len(cal.comment.encode()) > MAX_COMMENT_LEN:
        errors.append("comment is too long")
    if errors:
        raise SpecError("invalid calendar spec: " + ", ".join(errors))


def clean_ranges(cal: schedule_pb.StructuredCalendarSpec) -> None:
    """The explicit form the reference describes: end at least start, step at least 1."""
    for ranges in (cal.second, cal.minute, cal.hour, cal.day_of_month, cal.month, cal.year, cal.day_of_week):
        for r in ranges:
            r.end = max(r.end, r.start)
            if r.step == 0:
                r.step = 1


# --- matching -----------------------------------------------------------------------------------------------


def _values(ranges: Iterable[schedule_pb.Range], lo: int, hi: int) -> frozenset[int]:
    """The values the ranges list, limited to [lo, hi] (values outside can never match a field)."""
    found: set[int] = set()
    for r in ranges:
        step = r.step or 1
        start, end = r.start, max(r.end, r.start)
        if step < 0:
            continue
        if start < lo:
            start += -(-(lo - start) // step) * step
        found.update(range(start, min(end, hi) + 1, step))
    return frozenset(found)


def days_in_month(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 + ((0b1010110101010 >> month) & 1)


class Zone:
    """A time zone with Go's conversions between wall-clock readings and instants (Unix seconds)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def offset(self, unix: int) -> int:
        delta = datetime.fromtimestamp(unix, self.tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def fields(self, unix: int) -> tuple[int, int, int, int, int, int]:
        t = datetime.fromtimestamp(unix, self.tz)
        return t.year, t.month, t.day, t.hour, t.minute, t.second

    def hour(self, unix: int) -> int:
        return datetime.fromtimestamp(unix, self.tz).hour

    def weekday(self, unix: int) -> int:
        return (datetime.fromtimestamp(unix, self.tz).weekday() + 1) % 7  # Sunday is 0

    def instant(self, year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
        """time.Date: the offset in force at the reading taken as UTC, unless the result falls outside that
        offset's period, when the offset in force at the result is used instead."""
        local = (date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1) * 86400
        local += hour * 3600 + minute * 60 + second
        guess = local - self.offset(local)
        return local - self.offset(guess)


UTC_ZONE = Zone(UTC)


class CompiledCalendar:
    def __init__(self, cal: schedule_pb.StructuredCalendarSpec, zone: Zone) -> None:
        self.zone = zone
        years = _values(cal.year, 0, MAX_CALENDAR_YEAR + 1)
        self.year: Callable[[int], bool] = (lambda _: True) if not cal.year else years.__contains__
        self.month = _values(cal.month, 0, 63).__contains__
        self.day_of_month = _values(cal.day_of_month, 0, 63).__contains__
        self.day_of_week = _values(cal.day_of_week, 0, 63).__contains__
        self.hour = _values(cal.hour, 0, 63).__contains__
        self.minute = _values(cal.minute, 0, 63).__contains__
        self.second = _values(cal.second, 0, 63).__contains__

    def matches(self, unix: int) -> bool:
        y, mo, d, h, m, s = self.zone.fields(unix)
        return (
            self.year(y)
            and self.month(mo)
            and self.day_of_month(d)
            and self.day_of_week(self.zone.weekday(unix))
            and self.hour(h)
            and self.minute(m)
            and self.second(s)
        )

    def next(self, after: int) -> int | None:
        """The first matching second after `after` (Unix seconds), or None before the end of MAX_CALENDAR_YEAR.

        Walks the fields from the outside in, as the reference does; a matching time in the second copy of a
        repeated hour is reached by carrying an extra hour (dst_offset) past the first copy."""
        zone = self.zone
        y, mo, d, h, m, s = zone.fields(after)
        dst_offset = 3600 if zone.hour(after - 3600) == h else 0
        s += 1
        while True:
            if s >= 60:
                m, s = m + 1, 0
            if m >= 60:
                prev = zone.instant(y, mo, d, h, 0, 0)
                h, m = h + 1, 0
                following = zone.instant(y, mo, d, h, 0, 0)
                if dst_offset == 0 and following - prev > 3600:
                    h, dst_offset = h - 1, 3600
                else:
                    dst_offset = 0
            if h >= 24:
                d, h = d + 1, 0
            if d > days_in_month(mo, y):
                mo, d = mo + 1, 1
            if mo > 12:
                y, mo = y + 1, 1
            if y > MAX_CALENDAR_YEAR:
                return None
            if not self.year(y):
                y, mo, d, h, m, s, dst_offset = y + 1, 1, 1, 0, 0, 0, 0
                continue
            if not self._month_from(mo):
                mo, d, h, m, s, dst_offset = 13, 1, 0, 0, 0, 0
                continue
            while not self.month(mo):
                mo, d, h, m, s, dst_offset = mo + 1, 1, 0, 0, 0, 0
            found_day = True
            while not self.day_of_month(d) or not self.day_of_week(zone.weekday(zone.instant(y, mo, d, h, m, s))):
                d, h, m, s, dst_offset = d + 1, 0, 0, 0, 0
                if d > days_in_month(mo, y):
                    found_day = False
                    break
            if not found_day:
                continue
            while not self.hour(h):
                h, m, s, dst_offset = h + 1, 0, 0, 0
                if h >= 24:
                    break
            if h >= 24:
                continue
            while not self.minute(m):
                m, s = m + 1, 0
                if m >= 60:
                    break
            if m >= 60:
                continue
            while not self.second(s):
                s += 1
                if s >= 60:
                    break
            if s >= 60:
                continue
            result = zone.instant(y, mo, d, h, m, s)
            if zone.hour(result) != h:
                # a wall-clock time skipped by a DST transition: look again from the next hour
                h, m, s = h + 1, 0, 0
                continue
            return result + dst_offset

    def _month_from(self, mo: int) -> bool:
        return any(self.month(candidate) for candidate in range(mo, 13))
