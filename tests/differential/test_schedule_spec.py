"""The schedule spec engine (tempyral.schedules.spec) against the reference: for each spec of the table, a paused
schedule is created on the reference server and its describe output (the canonical spec, the next action times)
and ListScheduleMatchingTimes over a fixed range are compared with what the engine computes for the same spec,
the same instants and the same jitter seed (the reference's f"{namespace_id}-{schedule_id}"). Invalid specs are
compared by the error: code and message.

The ranges are fixed dates, so ListScheduleMatchingTimes is exact; the next action times are computed from the
schedule's create time, after which the reference may already have passed some (it processes a paused
schedule's times too), so the engine's list may start with times the reference's no longer shows, all of them
before the describe call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.schedule.v1 import IntervalSpec, Schedule, ScheduleAction, ScheduleSpec, ScheduleState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CreateScheduleRequest,
    DeleteScheduleRequest,
    DescribeNamespaceRequest,
    DescribeScheduleRequest,
    ListScheduleMatchingTimesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from tempyral.common.errors import InvalidArgument
from tempyral.schedules.spec import CompiledSpec, canonical_spec, future_action_times, matching_times
from tests.support.servers import ServerProcess

NEW_YORK_TZIF = (resources.files("tzdata") / "zoneinfo" / "America" / "New_York").read_bytes()


@dataclass
class Case:
    name: str
    spec: dict[str, Any]
    start: str  # ListScheduleMatchingTimes range (RFC 3339)
    end: str
    extra: dict[str, Any] = field(default_factory=dict)  # fields set on the proto directly (bytes)


CASES = [
    Case(
        "cron weekdays every 15 minutes",
        {"cronString": ["*/15 3 * * mon-fri"]},
        "2026-01-01T00:00:00Z",
        "2026-01-20T00:00:00Z",
    ),
    Case(
        "cron with seconds (7 fields)",
        {"cronString": ["15,45 */20 9 * * * *"]},
        "2026-03-01T00:00:00Z",
        "2026-03-05T00:00:00Z",
    ),
    Case(
        "cron with a year (6 fields)",
        {"cronString": ["0 12 1 */3 * 2027"]},
        "2026-01-01T00:00:00Z",
        "2028-06-01T00:00:00Z",
    ),
    Case(
        "predefined cron strings and a comment",
        {"cronString": ["@weekly", "@monthly # reports", "@yearly", "@hourly"]},
        "2026-01-01T00:00:00Z",
        "2026-01-03T00:00:00Z",
    ),
    Case(
        "cron @every with a phase", {"cronString": ["@every 90m/15m"]}, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    ),
    Case("cron @every in days", {"cronString": ["@every 2d"]}, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
    Case(
        "CRON_TZ in New York, spring forward",
        {"cronString": ["CRON_TZ=America/New_York 30 1,2,3 * * *"]},
        "2026-03-06T00:00:00Z",
        "2026-03-10T00:00:00Z",
    ),
    Case(
        "CRON_TZ in New York, fall back",
        {"cronString": ["CRON_TZ=America/New_York 30 0,1,2 * * *"]},
        "2026-10-30T00:00:00Z",
        "2026-11-03T00:00:00Z",
    ),
    Case(
        "every 20 minutes in New York across the repeated hour",
        {"cronString": ["*/20 * * * *"], "timezoneName": "America/New_York"},
        "2026-11-01T03:00:00Z",
        "2026-11-01T08:00:00Z",
    ),
    Case(
        "Berlin 02:30, skipped and repeated",
        {"calendar": [{"hour": "2", "minute": "30"}], "timezoneName": "Europe/Berlin"},
        "2026-03-27T00:00:00Z",
        "2026-10-27T00:00:00Z",
    ),
    Case(
        "Kolkata (half-hour offset) weekday mornings",
        {"calendar": [{"hour": "9", "dayOfWeek": "1-5"}], "timezoneName": "Asia/Kolkata"},
        "2026-01-01T00:00:00Z",
        "2026-01-15T00:00:00Z",
    ),
    Case(
        "calendar strings: steps, lists, names, comment",
        {
            "calendar": [
                {
                    "hour": "9-17/2",
                    "minute": "0,30",
                    "dayOfWeek": "mon,wed-fri",
                    "month": "jan-mar",
                    "comment": "office",
                }
            ]
        },
        "2026-01-01T00:00:00Z",
        "2026-01-10T00:00:00Z",
    ),
    Case(
        "day of week 7 is Sunday",
        {"calendar": [{"hour": "8", "dayOfWeek": "5-7"}, {"hour": "20", "dayOfWeek": "1-7/2"}]},
        "2026-02-01T00:00:00Z",
        "2026-02-20T00:00:00Z",
    ),
    Case(
        "day of week 1-7 leaves Sunday out, as the reference parses it",
        {"calendar": [{"dayOfWeek": "1-7", "hour": "1"}]},
        "2026-02-01T00:00:00Z",
        "2026-02-09T00:00:00Z",
    ),
    Case(
        "structured calendar as given",
        {
            "structuredCalendar": [
                {
                    "second": [{"start": 0}],
                    "minute": [{"start": 0}, {"start": 45, "end": 50, "step": 5}],
                    "hour": [{"start": 6, "end": 18, "step": 6}],
                    "dayOfMonth": [{"start": 1}, {"start": 15}],
                    "month": [{"start": 1, "end": 12}],
                    "dayOfWeek": [{"start": 0, "end": 6}],
                }
            ]
        },
        "2026-01-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
    ),
    Case(
        "structured calendar without seconds never matches",
        {"structuredCalendar": [{"minute": [{"start": 0}], "hour": [{"start": 0, "end": 23}]}]},
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ),
    Case(
        "interval with a phase",
        {"interval": [{"interval": "3600s", "phase": "60s"}]},
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ),
    Case(
        "interval with jitter",
        {"interval": [{"interval": "3600s", "phase": "60s"}], "jitter": "600s"},
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ),
    Case(
        "jitter larger than the gap between times",
        {"cronString": ["*/5 * * * *"], "jitter": "3600s"},
        "2026-01-01T00:00:00Z",
        "2026-01-01T03:00:00Z",
    ),
    Case(
        "exclude calendars (lunch and weekends)",
        {
            "cronString": ["0 * * * *"],
            "excludeCalendar": [
                {"hour": "12-13", "minute": "*", "second": "*"},
                {"dayOfWeek": "sat,sun", "hour": "*", "minute": "*", "second": "*"},
            ],
        },
        "2026-01-01T00:00:00Z",
        "2026-01-12T00:00:00Z",
    ),
    Case(
        "exclude structured calendar on intervals",
        {
            "interval": [{"interval": "1800s"}],
            "excludeStructuredCalendar": [
                {
                    "second": [{"start": 0, "end": 59}],
                    "minute": [{"start": 0, "end": 59}],
                    "hour": [{"start": 0, "end": 5}],
                    "dayOfMonth": [{"start": 1, "end": 31}],
                    "month": [{"start": 1, "end": 12}],
                    "dayOfWeek": [{"start": 0, "end": 6}],
                }
            ],
        },
        "2026-01-01T00:00:00Z",
        "2026-01-03T00:00:00Z",
    ),
    Case(
        "start and end times",
        {"interval": [{"interval": "600s"}], "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T12:05:00.5Z"},
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ),
    Case(
        "start time between seconds, in the future",
        {"cronString": ["*/10 * * * * * *"], "startTime": "2030-01-01T10:00:00.250Z"},
        "2030-01-01T09:00:00Z",
        "2030-01-01T10:01:00Z",
    ),
    Case(
        "Feb 29 in leap years",
        {"calendar": [{"month": "feb", "dayOfMonth": "29", "hour": "12"}]},
        "2026-01-01T00:00:00Z",
        "2033-01-01T00:00:00Z",
    ),
    Case("Feb 30 never comes", {"cronString": ["0 0 30 2 *"]}, "2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
    Case(
        "a year range",
        {"calendar": [{"year": "2027-2028", "month": "6", "dayOfMonth": "1"}]},
        "2026-01-01T00:00:00Z",
        "2030-01-01T00:00:00Z",
    ),
    Case(
        "cron strings, calendars and intervals together",
        {
            "cronString": ["0 6 * * *"],
            "calendar": [{"hour": "18", "minute": "30"}],
            "interval": [{"interval": "43200s", "phase": "3600s"}],
        },
        "2026-01-01T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ),
    Case(
        "Santiago, where midnight is skipped",
        {"cronString": ["0 0 * * *", "30 0 * * *"], "timezoneName": "America/Santiago"},
        "2026-09-03T00:00:00Z",
        "2026-09-09T00:00:00Z",
    ),
    Case(
        "Lord Howe, with half-hour DST",
        {"cronString": ["*/15 * * * *"], "timezoneName": "Australia/Lord_Howe"},
        "2026-04-04T13:00:00Z",
        "2026-04-04T17:00:00Z",
    ),
    Case(
        "every minute, cut at 1000 times", {"cronString": ["* * * * *"]}, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    ),
    Case(
        "intervals before the epoch start at the epoch",
        {"interval": [{"interval": "7s", "phase": "3s"}]},
        "1960-01-01T00:00:00Z",
        "1970-01-01T00:01:00Z",
    ),
    Case(
        "fractional interval and phase are cut to seconds",
        {"interval": [{"interval": "90.5s"}, {"interval": "3600s", "phase": "0.5s"}]},
        "2026-01-01T00:00:00Z",
        "2026-01-01T02:00:00Z",
    ),
    Case(
        "cron @every with units, days and a comment",
        {"cronString": ["@every 1h30m10s/1m", "@every 0.5d/1h # twice a day"]},
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ),
    Case(
        "excluded times are skipped before jitter",
        {
            "interval": [{"interval": "3600s"}],
            "excludeCalendar": [{"hour": "*", "minute": "*", "second": "*", "month": "2"}],
            "jitter": "7200s",
        },
        "2026-01-31T20:00:00Z",
        "2026-03-01T03:00:00Z",
    ),
    Case(
        "time zone data whose footer lacks its newline",
        {"cronString": ["0 9 * * *"], "timezoneName": "Cut/Zone"},
        "2026-01-01T00:00:00Z",
        "2026-01-05T00:00:00Z",
        extra={"timezone_data": NEW_YORK_TZIF[:-1]},
    ),
    Case(
        "time zone data given",
        {"cronString": ["0 2 * * *"], "timezoneName": "Custom/Zone"},
        "2026-03-06T00:00:00Z",
        "2026-03-10T00:00:00Z",
        extra={"timezone_data": NEW_YORK_TZIF},
    ),
]

ERROR_CASES = [
    ("four cron fields", {"cronString": ["* * * *"]}),
    ("hour out of range", {"cronString": ["0 25 * * *"]}),
    ("two slashes", {"cronString": ["0 3/2/1 * * *"]}),
    ("missing step", {"cronString": ["0 3/ * * *"]}),
    ("two dashes", {"cronString": ["0 1-2-3 * * *"]}),
    ("step not a number", {"cronString": ["0 1/x * * *"]}),
    ("range backwards", {"cronString": ["0 5-2 * * *"]}),
    ("several bad calendar fields", {"calendar": [{"hour": "24", "minute": "61", "dayOfWeek": "xx"}]}),
    ("unknown time zone", {"timezoneName": "Mars/Base", "interval": [{"interval": "60s"}]}),
    ("invalid time zone name", {"timezoneName": "../etc", "interval": [{"interval": "60s"}]}),
    ("time zone name with ..", {"timezoneName": "a..b", "interval": [{"interval": "60s"}]}),
    ("time zone name that is a directory", {"timezoneName": "America", "interval": [{"interval": "60s"}]}),
    (
        "time zone name that is a directory, with a slash",
        {"timezoneName": "America/", "interval": [{"interval": "60s"}]},
    ),
    ("interval zero", {"interval": [{"interval": "0s"}]}),
    ("interval under a second", {"interval": [{"interval": "0.5s"}]}),
    ("phase equal to interval", {"interval": [{"interval": "60s", "phase": "60s"}]}),
    ("negative phase", {"interval": [{"interval": "60s", "phase": "-1s"}]}),
    ("cron strings in different zones", {"cronString": ["CRON_TZ=America/New_York 0 * * * *", "0 1 * * *"]}),
    (
        "cron zone differs from the spec's",
        {"timezoneName": "Europe/Berlin", "cronString": ["TZ=America/New_York 0 * * * *"]},
    ),
    ("a cron zone and @every (which has none)", {"cronString": ["CRON_TZ=Europe/Berlin 0 3 * * *", "@every 90m"]}),
    ("cron zone without fields", {"cronString": ["CRON_TZ=America/New_York"]}),
    ("@every without interval", {"cronString": ["@every"]}),
    ("@every with an unknown unit", {"cronString": ["@every 5x"]}),
    ("@every without unit", {"cronString": ["@every 5"]}),
    (
        "bad structured ranges",
        {
            "structuredCalendar": [
                {
                    "hour": [{"start": 25}],
                    "minute": [{"start": 5, "end": 2}],
                    "second": [{"step": -1}],
                    "year": [{"start": 1999}],
                    "dayOfWeek": [{"start": 7}],
                }
            ]
        },
    ),
    ("comment too long", {"calendar": [{"comment": "x" * 201}]}),
    ("L is not a day", {"cronString": ["0 0 L * *"]}),
    ("? is not a day", {"cronString": ["0 0 ? * *"]}),
    ("year before 2000", {"cronString": ["0 0 1 * * 1999"]}),
    ("time zone names are case-sensitive", {"timezoneName": "america/new_york", "cronString": ["0 1 * * *"]}),
    ("negative @every", {"cronString": ["@every -5m"]}),
    ("@every phase beyond the interval", {"cronString": ["@every 5m/10m"]}),
    ("@every phase not a duration", {"cronString": ["@every 5m/x"]}),
    ("eight cron fields", {"cronString": ["0 0 * * * * * *"]}),
    ("empty cron string", {"cronString": [""]}),
    ("step zero", {"cronString": ["0 0 0/0 * *"]}),
    ("month name too short", {"cronString": ["0 0 * ja *"]}),
    ("weekday names backwards", {"cronString": ["0 0 * * mo-su"]}),
    ("weekday 8", {"cronString": ["0 0 * * 8"]}),
    ("empty list item", {"cronString": ["0 0 * * ,"]}),
    ("step out of int64", {"cronString": ["0 0 1-5/99999999999999999999 * *"]}),
]


def _spec(case_spec: dict[str, Any], extra: dict[str, Any] | None = None) -> ScheduleSpec:
    spec = json_format.ParseDict(case_spec, ScheduleSpec())
    for name, value in (extra or {}).items():
        setattr(spec, name, value)
    return spec


def _ts(text: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(text)
    return ts


async def _create(client: Client, spec: ScheduleSpec) -> str:
    schedule_id = f"spec-{uuid.uuid4().hex}"
    action = ScheduleAction(
        start_workflow=NewWorkflowExecutionInfo(
            workflow_id=f"wf-{schedule_id}",
            workflow_type=WorkflowType(name="Nothing"),
            task_queue=TaskQueue(name="none"),
        )
    )
    await client.workflow_service.create_schedule(
        CreateScheduleRequest(
            namespace="default",
            schedule_id=schedule_id,
            schedule=Schedule(spec=spec, action=action, state=ScheduleState(paused=True)),
            request_id=str(uuid.uuid4()),
        )
    )
    return schedule_id


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_spec_times_and_canonical_form_as_on_the_reference(reference_server: ServerProcess, case: Case) -> None:
    client = await Client.connect(reference_server.address)
    spec = _spec(case.spec, case.extra)
    namespace = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    schedule_id = await _create(client, spec)
    seed = f"{namespace.namespace_info.id}-{schedule_id}"
    try:
        described = await client.workflow_service.describe_schedule(
            DescribeScheduleRequest(namespace="default", schedule_id=schedule_id)
        )
        described_at = datetime.now(UTC)
        listed = await client.workflow_service.list_schedule_matching_times(
            ListScheduleMatchingTimesRequest(
                namespace="default", schedule_id=schedule_id, start_time=_ts(case.start), end_time=_ts(case.end)
            )
        )
    finally:
        await client.workflow_service.delete_schedule(
            DeleteScheduleRequest(namespace="default", schedule_id=schedule_id)
        )

    assert json_format.MessageToDict(canonical_spec(spec)) == json_format.MessageToDict(described.schedule.spec)
    ours = matching_times(spec, _ts(case.start), _ts(case.end), seed)
    assert [t.ToJsonString() for t in ours] == [t.ToJsonString() for t in listed.start_time]

    theirs_next = [t.ToDatetime(UTC) for t in described.info.future_action_times]
    create_time = described.info.create_time.ToDatetime(UTC)
    ours_next = future_action_times(CompiledSpec.compile(spec, seed), create_time, 20)
    while ours_next and theirs_next and ours_next[0] < theirs_next[0]:
        assert ours_next[0] <= described_at  # only times already past when the reference answered
        ours_next.pop(0)
    assert ours_next[: len(theirs_next)] == theirs_next
    assert len(theirs_next) == min(len(ours_next), 10)


@pytest.mark.parametrize("spec", [spec for _, spec in ERROR_CASES], ids=[name for name, _ in ERROR_CASES])
async def test_invalid_spec_refused_as_on_the_reference(reference_server: ServerProcess, spec: dict[str, Any]) -> None:
    client = await Client.connect(reference_server.address)
    with pytest.raises(RPCError) as theirs:
        await _create(client, _spec(spec))
    with pytest.raises(InvalidArgument) as ours:
        CompiledSpec.compile(_spec(spec))
    assert theirs.value.status.value == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert ours.value.message == theirs.value.message


# Durations JSON cannot carry (mismatched signs, nanos out of range), refused before anything else
BAD_DURATIONS = [
    IntervalSpec(interval=Duration(seconds=60, nanos=-1)),
    IntervalSpec(interval=Duration(seconds=60), phase=Duration(seconds=-1, nanos=5)),
    IntervalSpec(interval=Duration(seconds=400_000_000_000)),
    IntervalSpec(interval=Duration(seconds=-400_000_000_000)),
    IntervalSpec(interval=Duration(seconds=60, nanos=2_000_000_000)),
]


@pytest.mark.parametrize("interval", BAD_DURATIONS, ids=[str(i).replace("\n", " ") for i in BAD_DURATIONS])
async def test_invalid_durations_refused_as_on_the_reference(
    reference_server: ServerProcess, interval: IntervalSpec
) -> None:
    client = await Client.connect(reference_server.address)
    with pytest.raises(RPCError) as theirs:
        await _create(client, ScheduleSpec(interval=[interval]))
    with pytest.raises(InvalidArgument) as ours:
        CompiledSpec.compile(ScheduleSpec(interval=[interval]))
    assert theirs.value.status.value == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert ours.value.message == theirs.value.message
