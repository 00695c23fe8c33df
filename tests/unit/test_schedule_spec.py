"""The schedule spec engine (tempyral.schedules.spec): parsing, validation, the canonical form and the times a
spec matches, with expectations worked out by hand from the reference's rules (tests/differential compares the
same engine with the reference itself)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.schedule.v1 import ScheduleSpec
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest

import tempyral.schedules.spec as spec_module
from tempyral.common.errors import InvalidArgument
from tempyral.schedules.farmhash import fingerprint32
from tempyral.schedules.spec import (
    MAX_MATCHING_TIMES,
    CompiledSpec,
    canonical_spec,
    future_action_times,
    list_info_spec,
    list_matching_times,
    matching_times,
)


def spec(**fields: Any) -> ScheduleSpec:
    return json_format.ParseDict(fields, ScheduleSpec())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def nominals(s: ScheduleSpec, start: str, count: int, seed: str = "") -> list[str]:
    compiled = CompiledSpec.compile(s, seed)
    out, after = [], at(start)
    for _ in range(count):
        found = compiled.next_time(after)
        if found is None:
            break
        out.append(found[0].strftime("%Y-%m-%dT%H:%M:%SZ"))
        after = found[1]
    return out


def ranges(s: ScheduleSpec, field: str, index: int = 0) -> list[tuple[int, int, int]]:
    cal = canonical_spec(s).structured_calendar[index]
    return [(r.start, r.end, r.step) for r in getattr(cal, field)]


# --- intervals --------------------------------------------------------------------------------------------


def test_intervals_are_aligned_to_the_epoch_plus_phase() -> None:
    hourly_at_15 = spec(interval=[{"interval": "3600s", "phase": "900s"}])
    assert nominals(hourly_at_15, "2026-01-01T10:20:00Z", 3) == [
        "2026-01-01T11:15:00Z",
        "2026-01-01T12:15:00Z",
        "2026-01-01T13:15:00Z",
    ]
    # a 7-day interval counts from Thursday 1970-01-01, not from the creation
    weekly = spec(interval=[{"interval": "604800s"}])
    assert nominals(weekly, "2026-01-05T00:00:00Z", 1) == ["2026-01-08T00:00:00Z"]


def test_next_time_is_strictly_after_in_whole_seconds() -> None:
    s = spec(interval=[{"interval": "60s"}])
    assert nominals(s, "2026-01-01T10:00:00Z", 1) == ["2026-01-01T10:01:00Z"]
    assert nominals(s, "2026-01-01T10:00:00.999Z", 1) == ["2026-01-01T10:01:00Z"]
    assert nominals(s, "2026-01-01T09:59:59.999Z", 1) == ["2026-01-01T10:00:00Z"]


def test_several_intervals_and_calendars_make_one_sorted_series() -> None:
    s = spec(interval=[{"interval": "3600s"}, {"interval": "5400s"}], cron_string=["30 0 * * *"])
    assert nominals(s, "2026-01-01T00:00:00Z", 5) == [
        "2026-01-01T00:30:00Z",
        "2026-01-01T01:00:00Z",
        "2026-01-01T01:30:00Z",
        "2026-01-01T02:00:00Z",
        "2026-01-01T03:00:00Z",
    ]


def test_an_empty_spec_has_no_times() -> None:
    assert CompiledSpec.compile(ScheduleSpec()).next_time(at("2026-01-01T00:00:00Z")) is None


# --- calendars and cron strings ---------------------------------------------------------------------------


def test_five_six_and_seven_field_cron_strings() -> None:
    assert nominals(spec(cron_string=["*/15 3 * * mon-fri"]), "2026-01-02T03:40:00Z", 2) == [
        "2026-01-02T03:45:00Z",
        "2026-01-05T03:00:00Z",  # Friday 2 January, then Monday
    ]
    # six fields: the sixth is the year
    assert nominals(spec(cron_string=["0 12 1 1 * 2028"]), "2026-01-01T00:00:00Z", 2) == ["2028-01-01T12:00:00Z"]
    # seven fields: seconds first
    assert nominals(spec(cron_string=["10,40 0 9 * * * *"]), "2026-01-01T00:00:00Z", 3) == [
        "2026-01-01T09:00:10Z",
        "2026-01-01T09:00:40Z",
        "2026-01-02T09:00:10Z",
    ]


@pytest.mark.parametrize(
    ("cron", "first"),
    [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-06-01T00:00:00Z"),
        ("@weekly", "2026-05-17T00:00:00Z"),  # a Sunday
        ("@daily", "2026-05-13T00:00:00Z"),
        ("@midnight", "2026-05-13T00:00:00Z"),
        ("@hourly", "2026-05-12T11:00:00Z"),
    ],
)
def test_predefined_cron_strings(cron: str, first: str) -> None:
    assert nominals(spec(cron_string=[cron]), "2026-05-12T10:30:00Z", 1) == [first]


def test_cron_every_is_an_interval_with_optional_phase() -> None:
    canonical = canonical_spec(spec(cron_string=["@every 90m/15m", "@every 2d # slow"]))
    assert [(i.interval.seconds, i.phase.seconds) for i in canonical.interval] == [(5400, 900), (172800, 0)]
    assert not canonical.cron_string and not canonical.structured_calendar


def test_cron_string_comment_and_time_zone_prefix() -> None:
    canonical = canonical_spec(spec(cron_string=["CRON_TZ=Asia/Tokyo 0 9 * * * # morning", "TZ=Asia/Tokyo 0 18 * * *"]))
    assert canonical.timezone_name == "Asia/Tokyo"
    assert [c.comment for c in canonical.structured_calendar] == ["morning", ""]
    assert nominals(spec(cron_string=["CRON_TZ=Asia/Tokyo 0 9 * * *"]), "2026-01-01T00:00:00Z", 1) == [
        "2026-01-02T00:00:00Z"  # 09:00 in Tokyo is midnight UTC
    ]


def test_calendar_strings_become_structured_ranges() -> None:
    s = spec(calendar=[{"hour": "9-17/2", "minute": "0,30", "day_of_week": "mon,wed-fri", "month": "jan-mar"}])
    assert ranges(s, "hour") == [(9, 17, 2)]
    assert ranges(s, "minute") == [(0, 0, 1), (30, 30, 1)]
    assert ranges(s, "second") == [(0, 0, 1)]  # default 0
    assert ranges(s, "day_of_week") == [(1, 1, 1), (3, 5, 1)]
    assert ranges(s, "month") == [(1, 3, 1)]
    assert ranges(s, "day_of_month") == [(1, 31, 1)]  # default *
    assert ranges(s, "year") == []  # * for years is the empty list
    assert not canonical_spec(s).calendar


def test_a_value_with_a_step_runs_to_the_maximum() -> None:
    assert ranges(spec(calendar=[{"minute": "5/20"}]), "minute") == [(5, 59, 20)]
    assert ranges(spec(calendar=[{"minute": "*/20"}]), "minute") == [(0, 59, 20)]
    assert nominals(spec(calendar=[{"minute": "5/20", "hour": "*"}]), "2026-01-01T00:00:00Z", 4) == [
        "2026-01-01T00:05:00Z",
        "2026-01-01T00:25:00Z",
        "2026-01-01T00:45:00Z",
        "2026-01-01T01:05:00Z",
    ]


@pytest.mark.parametrize(
    ("day_of_week", "expected"),
    [
        ("7", [(0, 0, 1)]),
        ("sun", [(0, 0, 1)]),
        ("0-7", [(0, 6, 1)]),
        ("5-7", [(0, 0, 1), (5, 6, 1)]),
        ("1-7/2", [(0, 0, 1), (1, 6, 2)]),
        ("3-7/3", [(3, 6, 3)]),  # 7 is not on the step
        ("1-7", [(1, 6, 1)]),  # as on the reference, which leaves Sunday out here
        ("Sunday,TUESDAY", [(0, 0, 1), (2, 2, 1)]),
    ],
)
def test_day_of_week_seven_is_sunday(day_of_week: str, expected: list[tuple[int, int, int]]) -> None:
    assert ranges(spec(calendar=[{"day_of_week": day_of_week}]), "day_of_week") == expected


def test_structured_calendar_is_described_with_explicit_end_and_step() -> None:
    s = spec(structured_calendar=[{"hour": [{"start": 6, "end": 18, "step": 6}], "minute": [{"start": 5}]}])
    assert ranges(s, "hour") == [(6, 18, 6)]
    assert ranges(s, "minute") == [(5, 5, 1)]
    # a field left empty in a structured calendar matches nothing (the reference's rule)
    assert CompiledSpec.compile(s).next_time(at("2026-01-01T00:00:00Z")) is None


def test_leap_days_and_days_that_never_come() -> None:
    leap = spec(calendar=[{"month": "feb", "day_of_month": "29", "hour": "12"}])
    assert nominals(leap, "2026-01-01T00:00:00Z", 3) == [
        "2028-02-29T12:00:00Z",
        "2032-02-29T12:00:00Z",
        "2036-02-29T12:00:00Z",
    ]
    assert (
        nominals(spec(calendar=[{"year": "2100", "month": "2", "day_of_month": "29"}]), "2026-01-01T00:00:00Z", 1) == []
    )
    assert nominals(spec(cron_string=["0 0 30 2 *"]), "2026-01-01T00:00:00Z", 1) == []
    assert nominals(spec(cron_string=["0 0 31 4,6,9,11 *"]), "2026-01-01T00:00:00Z", 1) == []
    assert nominals(spec(cron_string=["0 0 31 * *"]), "2026-01-31T00:00:00Z", 2) == [
        "2026-03-31T00:00:00Z",
        "2026-05-31T00:00:00Z",
    ]


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    friday_13th = spec(calendar=[{"day_of_month": "13", "day_of_week": "fri"}])
    assert nominals(friday_13th, "2026-01-01T00:00:00Z", 3) == [
        "2026-02-13T00:00:00Z",
        "2026-03-13T00:00:00Z",
        "2026-11-13T00:00:00Z",
    ]


def test_calendars_end_with_the_year_2100_and_intervals_too() -> None:
    assert nominals(spec(cron_string=["0 0 1 1 *"]), "2100-06-01T00:00:00Z", 1) == []
    assert nominals(spec(interval=[{"interval": "86400s"}]), "2100-12-30T12:00:00Z", 2) == ["2100-12-31T00:00:00Z"]


# --- time zones -------------------------------------------------------------------------------------------

NEW_YORK = {"timezone_name": "America/New_York"}


def test_skipped_wall_clock_times_do_not_happen() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT; 02:30 does not exist that day, and (as on the reference) nothing
    # replaces it
    s = spec(cron_string=["30 2 * * *"], **NEW_YORK)
    assert nominals(s, "2026-03-07T00:00:00Z", 3) == [
        "2026-03-07T07:30:00Z",  # 02:30 EST
        "2026-03-09T06:30:00Z",  # 02:30 EDT
        "2026-03-10T06:30:00Z",
    ]
    hourly = spec(cron_string=["0 * * * *"], **NEW_YORK)
    assert nominals(hourly, "2026-03-08T06:30:00Z", 2) == ["2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]


def test_repeated_wall_clock_times_fire_in_both_copies_of_the_hour() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 happens twice
    s = spec(cron_string=["30 1 * * *"], **NEW_YORK)
    assert nominals(s, "2026-10-31T12:00:00Z", 3) == [
        "2026-11-01T05:30:00Z",  # 01:30 EDT
        "2026-11-01T06:30:00Z",  # 01:30 EST
        "2026-11-02T06:30:00Z",
    ]
    every_half_hour = spec(cron_string=["0,30 * * * *"], **NEW_YORK)
    assert nominals(every_half_hour, "2026-11-01T04:45:00Z", 6) == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
        "2026-11-01T07:00:00Z",
        "2026-11-01T07:30:00Z",
    ]


def test_intervals_ignore_the_time_zone() -> None:
    s = spec(interval=[{"interval": "3600s"}], **NEW_YORK)
    assert nominals(s, "2026-03-08T06:30:00Z", 2) == ["2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]


def test_time_zone_data_is_used_under_its_name() -> None:
    from importlib import resources

    data = (resources.files("tzdata") / "zoneinfo" / "Asia" / "Kolkata").read_bytes()
    s = spec(cron_string=["0 9 * * *"], timezone_name="Somewhere/Else")
    s.timezone_data = data
    assert nominals(s, "2026-01-01T00:00:00Z", 1) == ["2026-01-01T03:30:00Z"]


# --- exclusions, start and end ----------------------------------------------------------------------------


def test_excluded_times_are_skipped() -> None:
    s = spec(
        cron_string=["0 * * * *"],
        exclude_calendar=[{"hour": "1-22", "minute": "*", "second": "*"}, {"day_of_week": "sat,sun", "hour": "*"}],
    )
    # from Friday 2 January 2026: 23:00, then nothing on the weekend (every hour there is on minute 0)
    assert nominals(s, "2026-01-02T12:00:00Z", 4) == [
        "2026-01-02T23:00:00Z",
        "2026-01-05T00:00:00Z",
        "2026-01-05T23:00:00Z",
        "2026-01-06T00:00:00Z",
    ]


def test_exclude_calendars_default_to_midnight() -> None:
    s = spec(interval=[{"interval": "1800s"}], exclude_calendar=[{"day_of_week": "*"}])
    assert nominals(s, "2026-01-01T23:00:00Z", 2) == ["2026-01-01T23:30:00Z", "2026-01-02T00:30:00Z"]


def test_start_time_and_end_time_bound_the_times() -> None:
    s = spec(interval=[{"interval": "600s"}], start_time="2026-01-01T10:00:00Z", end_time="2026-01-01T10:20:00Z")
    assert nominals(s, "2026-01-01T00:00:00Z", 5) == [
        "2026-01-01T10:00:00Z",  # the start itself matches
        "2026-01-01T10:10:00Z",
        "2026-01-01T10:20:00Z",  # and the end too
    ]
    # the reference looks from a second before the start, in whole seconds: a start between seconds lets the
    # whole second before it match
    late = spec(cron_string=["* * * * * * *"], start_time="2026-01-01T10:00:00.250Z")
    assert nominals(late, "2026-01-01T00:00:00Z", 1) == ["2026-01-01T10:00:00Z"]


def test_unset_start_is_the_epoch() -> None:
    s = spec(interval=[{"interval": "7s", "phase": "3s"}])
    # the search starts a second before the epoch, and the reference's division truncates towards zero there:
    # (-1 - 3) / 7 is 0, so 00:00:03 is passed over
    assert nominals(s, "1960-01-01T00:00:00Z", 2) == ["1970-01-01T00:00:10Z", "1970-01-01T00:00:17Z"]


# --- jitter -----------------------------------------------------------------------------------------------


def test_jitter_is_bounded_by_the_spec_and_by_the_next_time() -> None:
    wide = CompiledSpec.compile(spec(interval=[{"interval": "3600s"}], jitter="600s"), "ns-sched")
    narrow = CompiledSpec.compile(spec(cron_string=["*/5 * * * *"], jitter="86400s"), "ns-sched")
    after = at("2026-01-01T00:00:00Z")
    delays = []
    for _ in range(200):
        found = wide.next_time(after)
        assert found is not None
        nominal, actual = found
        assert timedelta(0) <= actual - nominal < timedelta(seconds=600)
        assert (actual - nominal) % timedelta(milliseconds=1) == timedelta(0)
        delays.append(actual - nominal)
        after = actual
    assert len(set(delays)) > 150  # spread, not one constant delay
    after = at("2026-01-01T00:00:00Z")
    for _ in range(50):
        found = narrow.next_time(after)
        assert found is not None
        assert timedelta(0) <= found[1] - found[0] < timedelta(minutes=5)
        after = found[1]


def test_jitter_is_determined_by_the_seed_and_nominal_time() -> None:
    s = spec(interval=[{"interval": "3600s"}], jitter="3600s")
    after = at("2026-01-01T00:00:00Z")
    one = CompiledSpec.compile(s, "ns-a").times_between(after, after + timedelta(days=1), 100)
    again = CompiledSpec.compile(s, "ns-a").times_between(after, after + timedelta(days=1), 100)
    other = CompiledSpec.compile(s, "ns-b").times_between(after, after + timedelta(days=1), 100)
    assert one == again
    assert [n for n, _ in one] == [n for n, _ in other]
    assert [a for _, a in one] != [a for _, a in other]
    without = CompiledSpec.compile(spec(interval=[{"interval": "3600s"}]), "ns-a").next_time(after)
    assert without is not None and without[0] == without[1]


def test_farmhash_fingerprint32_known_values() -> None:
    # published test vectors of FarmHash's Fingerprint32, one per length class
    assert fingerprint32(b"") == 0xDC56D17A
    assert fingerprint32(b"abcd") == 0x98B51E95
    assert fingerprint32(b"abcdefgh") == 0xFD7EC8B9
    assert fingerprint32(b"0123456789@0123") == 0x93EE6801
    assert fingerprint32(b"Nepal premier won't resign.") == 0x322984D9
    assert fingerprint32(b"I wouldn't marry him with a ten foot pole.") == 0x363394D1


# --- ListScheduleMatchingTimes ----------------------------------------------------------------------------


def ts(text: str) -> Timestamp:
    out = Timestamp()
    out.FromJsonString(text)
    return out


def test_matching_times_lists_actual_times_up_to_the_end_and_the_cap() -> None:
    s = spec(interval=[{"interval": "600s"}])
    listed = matching_times(s, ts("2026-01-01T00:00:00Z"), ts("2026-01-01T01:00:00Z"))
    assert [t.ToJsonString() for t in listed] == [f"2026-01-01T00:{m}0:00Z" for m in range(1, 6)] + [
        "2026-01-01T01:00:00Z"
    ]
    every_minute = matching_times(
        spec(cron_string=["* * * * *"]), ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z")
    )
    assert len(every_minute) == MAX_MATCHING_TIMES
    assert matching_times(s, ts("2026-01-01T01:00:00Z"), ts("2026-01-01T00:00:00Z")) == []


# --- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron_string": ["* * * *"]}, "CronString does not have 5-7 fields"),
        ({"cron_string": ["0 25 * * *"]}, "Hour is not in range [0-23]"),
        ({"cron_string": ["0 5-2 * * *"]}, "Hour End is before Start or not in range [0-23]"),
        ({"cron_string": ["0 1/x * * *"]}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"cron_string": ["0 3/2/1 * * *"]}, "Hour has too many slashes"),
        ({"cron_string": ["0 3/ * * *"]}, "Hour missing step value"),
        ({"cron_string": ["0 1-2-3 * * *"]}, "Hour has too many dashes"),
        ({"cron_string": ["0 0 0/0 * *"]}, "DayOfMonth has invalid Step"),
        (
            {"calendar": [{"hour": "24", "minute": "61", "day_of_week": "xx"}]},
            "Minute is not in range [0-59], Hour is not in range [0-23], DayOfWeek is not in range [0-7]",
        ),
        ({"cron_string": ["CRON_TZ=Europe/Paris"]}, "CronString has time zone but missing fields"),
        ({"cron_string": ["TZ=Europe/Paris 0 * * * *", "0 1 * * *"]}, "conflicting timezone names"),
        ({"cron_string": ["TZ=Europe/Paris 0 * * * *"], "timezone_name": "UTC"}, "conflicting timezone names"),
        ({"cron_string": ["@every"]}, "CronString does not have interval after @every"),
        ({"cron_string": ["@every 5"]}, 'time: missing unit in duration "5"'),
        ({"cron_string": ["@every 5x"]}, 'time: unknown unit "x" in duration "5x"'),
        ({"cron_string": ["@every 5m/10m"]}, "phase cannot be greater than Interval"),
        ({"interval": [{"interval": "0.5s"}]}, "interval is too small"),
        ({"interval": [{"interval": "60s", "phase": "-1s"}]}, "phase is negative"),
        ({"timezone_name": "Mars/Base"}, "unknown time zone Mars/Base"),
        ({"timezone_name": "../etc/passwd"}, "time: invalid location name"),
        (
            {"structured_calendar": [{"hour": [{"start": 25}], "year": [{"start": 1999}], "second": [{"step": -1}]}]},
            "invalid calendar spec: Second has invalid Step, Hour Start is not in range [0-23], "
            "Year Start is not in range [2000-2100]",
        ),
        ({"calendar": [{"comment": "x" * 201}]}, "invalid calendar spec: comment is too long"),
    ],
)
def test_invalid_specs_are_refused_with_the_reference_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        CompiledSpec.compile(spec(**fields))
    assert refused.value.message == f"Invalid schedule spec: {message}"


def test_excluding_every_time_is_refused_instead_of_searching_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec(interval=[{"interval": "1s"}], exclude_calendar=[{"second": "*", "minute": "*", "hour": "*"}])
    monkeypatch.setattr(spec_module, "MAX_EXCLUDED_STEPS", 2000)  # the real bound takes seconds to reach
    with pytest.raises(InvalidArgument, match="too many exclusions"):
        CompiledSpec.compile(s).next_time(at("2026-01-01T00:00:00Z"))
    # 1999 excluded seconds and then a time are within the bound
    within = spec(interval=[{"interval": "1s"}], exclude_calendar=[{"second": "*", "minute": "0-32", "hour": "0"}])
    assert nominals(within, "2025-12-31T23:59:59Z", 1) == ["2026-01-01T00:33:00Z"]


def test_list_matching_times_needs_both_ends() -> None:
    s = spec(interval=[{"interval": "600s"}])
    request = ListScheduleMatchingTimesRequest(
        namespace="default", schedule_id="s", start_time=ts("2026-01-01T00:00:00Z"), end_time=ts("2026-01-01T00:30:00Z")
    )
    answer = list_matching_times(request, s, "seed")
    assert [t.ToJsonString() for t in answer.start_time] == [
        "2026-01-01T00:10:00Z",
        "2026-01-01T00:20:00Z",
        "2026-01-01T00:30:00Z",
    ]
    for missing in ("start_time", "end_time"):
        partial = ListScheduleMatchingTimesRequest()
        partial.CopyFrom(request)
        partial.ClearField(missing)
        with pytest.raises(InvalidArgument) as refused:
            list_matching_times(partial, s, "seed")
        assert refused.value.message == "missing or invalid query"


def test_future_action_times_skip_times_before_the_update() -> None:
    compiled = CompiledSpec.compile(spec(interval=[{"interval": "3600s"}]))
    base = at("2026-01-01T00:30:00Z")
    assert future_action_times(compiled, base, 3) == [
        at("2026-01-01T01:00:00Z"),
        at("2026-01-01T02:00:00Z"),
        at("2026-01-01T03:00:00Z"),
    ]
    assert future_action_times(compiled, base, 2, not_before=at("2026-01-01T02:30:00Z")) == [
        at("2026-01-01T03:00:00Z"),
        at("2026-01-01T04:00:00Z"),
    ]
    ending = CompiledSpec.compile(spec(interval=[{"interval": "3600s"}], end_time="2026-01-01T02:00:00Z"))
    assert future_action_times(ending, base, 10) == [at("2026-01-01T01:00:00Z"), at("2026-01-01T02:00:00Z")]


@pytest.mark.parametrize(
    "fields",
    [
        {"cron_string": ["CRON_TZ=Europe/Berlin */15 3 * * mon-fri # c", "TZ=Europe/Berlin 0 12 * * *"]},
        {"cron_string": ["@every 90m/15m", "0 12 * * *"], "timezone_name": "Europe/Berlin"},
        {"calendar": [{"hour": "9-17/2", "day_of_week": "5-7"}], "exclude_calendar": [{"month": "jan"}]},
        {"interval": [{"interval": "3600s", "phase": "60s"}], "jitter": "60s", "start_time": "2026-01-01T00:00:00Z"},
    ],
)
def test_the_canonical_form_is_stable_and_means_the_same(fields: dict[str, Any]) -> None:
    original = spec(**fields)
    canonical = canonical_spec(original)
    assert canonical_spec(canonical) == canonical
    start, end = at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")
    assert CompiledSpec.compile(canonical, "s").times_between(start, end, 500) == CompiledSpec.compile(
        original, "s"
    ).times_between(start, end, 500)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("cut", [5, 44, 60, 1000, 1700])
def test_malformed_time_zone_data_is_refused(cut: int) -> None:
    from importlib import resources

    data = (resources.files("tzdata") / "zoneinfo" / "America" / "New_York").read_bytes()
    s = spec(cron_string=["0 9 * * *"], timezone_name="X")
    s.timezone_data = data[:cut]
    with pytest.raises(InvalidArgument) as refused:
        CompiledSpec.compile(s)
    assert refused.value.message == "Invalid schedule spec: malformed time zone information"


@pytest.mark.timeout(20)
def test_time_zone_data_with_a_cut_footer_is_read_as_go_reads_it() -> None:
    from importlib import resources

    data = (resources.files("tzdata") / "zoneinfo" / "America" / "New_York").read_bytes()
    assert data.endswith(b"\nEST5EDT,M3.2.0,M11.1.0\n")
    # without its final newline, or cut inside, the footer is ignored: the last transition's offset stays (EDT)
    for cut in (-1, -3):
        s = spec(cron_string=["0 9 * * *"], timezone_name="X")
        s.timezone_data = data[:cut]
        assert nominals(s, "2026-01-01T00:00:00Z", 1) == ["2026-01-01T13:00:00Z"]
    s.timezone_data = data
    assert nominals(s, "2026-01-01T00:00:00Z", 1) == ["2026-01-01T14:00:00Z"]


def test_list_info_spec_drops_time_zone_data_and_caps_lists() -> None:
    s = canonical_spec(
        spec(interval=[{"interval": f"{60 * (i + 1)}s"} for i in range(12)], cron_string=["0 1 * * *"] * 11)
    )
    s.timezone_data = b"TZif"
    shown = list_info_spec(s)
    assert not shown.timezone_data and s.timezone_data
    assert len(shown.interval) == 10 and len(shown.structured_calendar) == 10
    assert list(shown.interval) == list(s.interval)[:10]
