"""Automation schedules (massmailer.recurrence): forms, Scheduler expressions, next runs across DST.

Every expected time below is worked out by hand from the calendar and the time zones' rules, not by
the code under test: Europe/Berlin is CET (UTC+1) in winter and CEST (UTC+2) from 02:00 on the last
Sunday of March (2026-03-29) to 03:00 on the last Sunday of October (2026-10-25), when 02:00–02:59
happens twice; America/New_York is EST (UTC−5) and EDT (UTC−4) from 02:00 on the second Sunday of
March (2026-03-08) to 02:00 on the first Sunday of November (2026-11-01), when 01:00–01:59 happens
twice. EventBridge Scheduler skips a wall time that does not exist and fires one that happens twice
once (at its first occurrence); a rate is a fixed duration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from massmailer.recurrence import (
    DailySchedule,
    ExpressionSchedule,
    MonthlySchedule,
    Recurrence,
    Schedule,
    SchedulerExpression,
    WeeklySchedule,
    due,
    next_runs,
    parse_schedule,
)

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def runs(schedule: dict[str, Any], after: datetime, count: int = 5, **kw: Any) -> list[datetime]:
    return next_runs(parse_schedule(schedule), after, count, **kw)


def cron(expression: str, tz: str = "UTC") -> dict[str, str]:
    return {"expression": expression, "time_zone": tz}


# -- the forms and what Scheduler is given -----------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "kind", "pair"),
    [
        ({"preset": "daily", "time": "09:05", "time_zone": BERLIN}, DailySchedule, ("cron(5 9 * * ? *)", BERLIN)),
        (
            {"preset": "weekly", "weekdays": ["thu", "MON", "THU"], "time": "18:30", "time_zone": NEW_YORK},
            WeeklySchedule,
            ("cron(30 18 ? * MON,THU *)", NEW_YORK),
        ),
        (
            {"preset": "monthly", "day": 1, "time": "00:00", "time_zone": "UTC"},
            MonthlySchedule,
            ("cron(0 0 1 * ? *)", "UTC"),
        ),
        (
            {"preset": "monthly", "day": "last", "time": "23:59", "time_zone": BERLIN},
            MonthlySchedule,
            ("cron(59 23 L * ? *)", BERLIN),
        ),
        (cron(" cron(0 9 ? * MON-FRI *) ", NEW_YORK), ExpressionSchedule, ("cron(0 9 ? * MON-FRI *)", NEW_YORK)),
        (cron("rate(5 minutes)"), ExpressionSchedule, ("rate(5 minutes)", "UTC")),
        (cron("rate(1 hour)"), ExpressionSchedule, ("rate(1 hour)", "UTC")),
    ],
)
def test_each_form_renders_the_pair_that_create_schedule_takes(
    schedule: dict[str, Any], kind: type, pair: tuple[str, str]
) -> None:
    parsed = parse_schedule(schedule)
    assert isinstance(parsed, kind)
    assert parsed.scheduler_expression() == SchedulerExpression(*pair)


# -- presets across DST --------------------------------------------------------------------------------


def test_daily_0230_berlin_is_skipped_on_the_spring_forward_day() -> None:
    got = runs({"preset": "daily", "time": "02:30", "time_zone": BERLIN}, utc(2026, 3, 27))
    # 27th, 28th 02:30 CET = 01:30Z; 29th 02:30 does not exist; from the 30th 02:30 CEST = 00:30Z.
    assert got == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
        utc(2026, 4, 1, 0, 30),
    ]


def test_daily_0230_berlin_fires_once_when_0230_happens_twice() -> None:
    got = runs({"preset": "daily", "time": "02:30", "time_zone": BERLIN}, utc(2026, 10, 24))
    # 24th 02:30 CEST = 00:30Z; 25th: 02:30 CEST (00:30Z) and not 02:30 CET (01:30Z); then CET.
    assert got == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
        utc(2026, 10, 28, 1, 30),
    ]


def test_daily_0230_new_york_is_skipped_on_the_spring_forward_day() -> None:
    got = runs({"preset": "daily", "time": "02:30", "time_zone": NEW_YORK}, utc(2026, 3, 6, 12))
    # 7th 02:30 EST = 07:30Z; 8th none; from the 9th 02:30 EDT = 06:30Z.
    assert got == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 9, 6, 30),
        utc(2026, 3, 10, 6, 30),
        utc(2026, 3, 11, 6, 30),
        utc(2026, 3, 12, 6, 30),
    ]


def test_daily_0130_new_york_fires_once_when_0130_happens_twice() -> None:
    got = runs({"preset": "daily", "time": "01:30", "time_zone": NEW_YORK}, utc(2026, 10, 31))
    # 31st 01:30 EDT = 05:30Z; Nov 1st 01:30 EDT = 05:30Z only (not 01:30 EST = 06:30Z); then EST.
    assert got == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
        utc(2026, 11, 3, 6, 30),
        utc(2026, 11, 4, 6, 30),
    ]


def test_the_second_0130_is_not_a_run_even_when_asked_from_between_the_two() -> None:
    # After 01:30 EDT (05:30Z) has fired, the repeat at 01:30 EST (06:30Z) does not: next is the 2nd.
    got = runs({"preset": "daily", "time": "01:30", "time_zone": NEW_YORK}, utc(2026, 11, 1, 5, 45), count=1)
    assert got == [utc(2026, 11, 2, 6, 30)]


def test_weekly_keeps_its_local_time_across_the_change() -> None:
    got = runs(
        {"preset": "weekly", "weekdays": ["MON", "THU"], "time": "09:00", "time_zone": NEW_YORK}, utc(2026, 3, 1)
    )
    # Mon 2nd, Thu 5th 09:00 EST = 14:00Z; Mon 9th, Thu 12th, Mon 16th 09:00 EDT = 13:00Z.
    assert got == [
        utc(2026, 3, 2, 14),
        utc(2026, 3, 5, 14),
        utc(2026, 3, 9, 13),
        utc(2026, 3, 12, 13),
        utc(2026, 3, 16, 13),
    ]


def test_weekly_sunday_0230_berlin_skips_the_spring_forward_sunday() -> None:
    got = runs({"preset": "weekly", "weekdays": ["SUN"], "time": "02:30", "time_zone": BERLIN}, utc(2026, 3, 20))
    assert got == [
        utc(2026, 3, 22, 1, 30),
        utc(2026, 4, 5, 0, 30),
        utc(2026, 4, 12, 0, 30),
        utc(2026, 4, 19, 0, 30),
        utc(2026, 4, 26, 0, 30),
    ]


def test_monthly_last_is_each_months_last_day_in_local_time() -> None:
    got = runs({"preset": "monthly", "day": "last", "time": "23:00", "time_zone": BERLIN}, utc(2026, 1, 15))
    # Jan 31st, Feb 28th 23:00 CET = 22:00Z; Mar 31st, Apr 30th, May 31st 23:00 CEST = 21:00Z.
    assert got == [
        utc(2026, 1, 31, 22),
        utc(2026, 2, 28, 22),
        utc(2026, 3, 31, 21),
        utc(2026, 4, 30, 21),
        utc(2026, 5, 31, 21),
    ]


def test_monthly_last_in_a_leap_february() -> None:
    got = runs({"preset": "monthly", "day": "last", "time": "12:00", "time_zone": "UTC"}, utc(2028, 2, 1), count=2)
    assert got == [utc(2028, 2, 29, 12), utc(2028, 3, 31, 12)]


def test_monthly_day_31_skips_the_short_months() -> None:
    got = runs({"preset": "monthly", "day": 31, "time": "08:00", "time_zone": NEW_YORK}, utc(2026, 1, 1))
    # Jan 31st 08:00 EST = 13:00Z; then Mar, May, Jul, Aug 31st 08:00 EDT = 12:00Z (no Feb, Apr, Jun).
    assert got == [
        utc(2026, 1, 31, 13),
        utc(2026, 3, 31, 12),
        utc(2026, 5, 31, 12),
        utc(2026, 7, 31, 12),
        utc(2026, 8, 31, 12),
    ]


def test_monthly_day_29_runs_in_february_only_in_a_leap_year() -> None:
    daily29 = {"preset": "monthly", "day": 29, "time": "06:00", "time_zone": "UTC"}
    assert runs(daily29, utc(2027, 1, 30), count=2) == [utc(2027, 3, 29, 6), utc(2027, 4, 29, 6)]
    assert runs(daily29, utc(2028, 1, 30), count=2) == [utc(2028, 2, 29, 6), utc(2028, 3, 29, 6)]


# -- cron across DST, and L, W, # ---------------------------------------------------------------------


def test_cron_every_half_hour_berlin_has_no_runs_in_the_missing_hour() -> None:
    got = runs(cron("cron(0/30 * * * ? *)", BERLIN), utc(2026, 3, 29, 0, 0))  # 01:00 CET
    # 01:30 CET = 00:30Z; 02:00 and 02:30 do not exist; 03:00 CEST = 01:00Z, … continuous in UTC.
    assert got == [
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2),
        utc(2026, 3, 29, 2, 30),
    ]


def test_cron_every_half_hour_new_york_does_not_repeat_the_doubled_hour() -> None:
    got = runs(cron("cron(0,30 * * * ? *)", NEW_YORK), utc(2026, 11, 1, 4, 0))  # 00:00 EDT
    # 00:30, 01:00, 01:30 EDT = 04:30, 05:00, 05:30Z; 01:00/01:30 EST (06:00/06:30Z) do not fire;
    # 02:00, 02:30 EST = 07:00, 07:30Z.
    assert got == [
        utc(2026, 11, 1, 4, 30),
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 7, 30),
    ]


def test_cron_weekdays_at_0230_new_york_across_spring_forward() -> None:
    got = runs(cron("cron(30 2 ? * SUN,MON *)", NEW_YORK), utc(2026, 3, 1, 12), count=3)
    # Mon 2nd 02:30 EST = 07:30Z; Sun 8th 02:30 does not exist; Mon 9th 02:30 EDT = 06:30Z.
    assert got == [utc(2026, 3, 2, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 15, 6, 30)]


def test_cron_l_is_the_last_day_of_the_month() -> None:
    got = runs(cron("cron(0 12 L * ? *)"), utc(2028, 1, 15))
    assert got == [
        utc(2028, 1, 31, 12),
        utc(2028, 2, 29, 12),
        utc(2028, 3, 31, 12),
        utc(2028, 4, 30, 12),
        utc(2028, 5, 31, 12),
    ]


def test_cron_nl_is_the_months_last_such_weekday() -> None:
    got = runs(cron("cron(0 10 ? * 6L *)"), utc(2026, 1, 1))  # last Friday
    assert got == [
        utc(2026, 1, 30, 10),
        utc(2026, 2, 27, 10),
        utc(2026, 3, 27, 10),
        utc(2026, 4, 24, 10),
        utc(2026, 5, 29, 10),
    ]


def test_cron_w_is_the_nearest_weekday_within_the_month() -> None:
    got = runs(cron("cron(0 9 15W * ? *)"), utc(2026, 1, 1))
    # Jan 15th Thu; Feb 15th Sun → Mon 16th; Mar 15th Sun → Mon 16th; Apr 15th Wed; May 15th Fri.
    assert got == [
        utc(2026, 1, 15, 9),
        utc(2026, 2, 16, 9),
        utc(2026, 3, 16, 9),
        utc(2026, 4, 15, 9),
        utc(2026, 5, 15, 9),
    ]
    # Saturday 1 August 2026 → Monday the 3rd (not July 31st); Sunday 31 May 2026 → Friday the 29th.
    assert runs(cron("cron(0 9 1W 8 ? 2026)"), utc(2026, 1, 1)) == [utc(2026, 8, 3, 9)]
    assert runs(cron("cron(0 9 31W 5 ? 2026)"), utc(2026, 1, 1)) == [utc(2026, 5, 29, 9)]


def test_cron_hash_is_the_nth_weekday() -> None:
    assert runs(cron("cron(0 10 ? * 3#2 *)"), utc(2026, 6, 1), count=2) == [utc(2026, 6, 9, 10), utc(2026, 7, 14, 10)]
    # A fifth Friday only in the months that have one: Jan 30th, May 29th, Jul 31st 2026.
    assert runs(cron("cron(0 10 ? * FRI#5 *)"), utc(2026, 1, 1), count=3) == [
        utc(2026, 1, 30, 10),
        utc(2026, 5, 29, 10),
        utc(2026, 7, 31, 10),
    ]


def test_cron_ranges_steps_names_and_years() -> None:
    got = runs(cron("cron(10-40/15 8,17 ? JAN-FEB MON-FRI 2027)"), utc(2026, 12, 31), count=7)
    # Friday 1 January 2027: 08:10, 08:25, 08:40, 17:10, 17:25, 17:40; then Monday the 4th 08:10.
    assert got == [
        utc(2027, 1, 1, 8, 10),
        utc(2027, 1, 1, 8, 25),
        utc(2027, 1, 1, 8, 40),
        utc(2027, 1, 1, 17, 10),
        utc(2027, 1, 1, 17, 25),
        utc(2027, 1, 1, 17, 40),
        utc(2027, 1, 4, 8, 10),
    ]
    # The year field ends it: only November and December are left of 2027.
    assert runs(cron("cron(0 9 1 * ? 2027)"), utc(2027, 10, 15)) == [utc(2027, 11, 1, 9), utc(2027, 12, 1, 9)]
    assert runs(cron("cron(0 9 1 JAN ? 2026-2027)"), utc(2026, 6, 1)) == [utc(2027, 1, 1, 9)]


def test_cron_that_never_matches_has_no_runs() -> None:
    assert runs(cron("cron(0 0 30 2 ? *)"), utc(2026, 1, 1)) == []


# -- rate ----------------------------------------------------------------------------------------------


def test_rate_days_are_24_hours_across_the_change() -> None:
    start = utc(2026, 3, 27, 8)  # 09:00 CET
    got = runs(cron("rate(1 day)", BERLIN), utc(2026, 3, 27, 8), count=4, start=start)
    # Every 24 h: 08:00Z every day, so 09:00 CET before the change and 10:00 CEST after it.
    assert got == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8), utc(2026, 3, 31, 8)]


def test_rate_counts_from_its_start_across_the_fall_back_hour() -> None:
    start = utc(2026, 11, 1, 4, 20)  # 00:20 EDT
    got = runs(cron("rate(40 minutes)", NEW_YORK), utc(2026, 11, 1, 5), count=4, start=start)
    assert got == [utc(2026, 11, 1, 5, 40), utc(2026, 11, 1, 6, 20), utc(2026, 11, 1, 7), utc(2026, 11, 1, 7, 40)]


def test_rate_start_in_the_future_is_its_first_run() -> None:
    start = utc(2026, 5, 1, 12)
    assert runs(cron("rate(2 hours)"), utc(2026, 4, 1), count=2, start=start) == [start, utc(2026, 5, 1, 14)]


def test_rate_without_a_start_counts_from_after() -> None:
    after = utc(2026, 5, 1, 12, 0, 30)
    assert runs(cron("rate(5 minutes)"), after, count=2) == [
        after + timedelta(minutes=5),
        after + timedelta(minutes=10),
    ]


# -- due: the half-open window the scheduler loop asks about -------------------------------------------


def test_due_is_the_half_open_window() -> None:
    daily = parse_schedule({"preset": "daily", "time": "09:00", "time_zone": "UTC"})
    nine = utc(2026, 5, 1, 9)
    assert due(daily, nine - timedelta(minutes=1), nine) == [nine]
    assert due(daily, nine, nine + timedelta(hours=23)) == []
    assert due(daily, nine, nine + timedelta(days=2)) == [nine + timedelta(days=1), nine + timedelta(days=2)]


def test_a_recurrence_ends_at_its_end_date() -> None:
    recurrence = Recurrence.of("rate(1 hour)", "UTC", start=utc(2026, 5, 1), end=utc(2026, 5, 1, 2))
    assert next_runs(recurrence, utc(2026, 4, 30)) == [utc(2026, 5, 1), utc(2026, 5, 1, 1), utc(2026, 5, 1, 2)]


def test_after_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        runs(cron("rate(1 hour)"), datetime(2026, 5, 1))


# -- invalid schedules: the field and the reason, as the API's 422 gives them --------------------------


class _Body(BaseModel):
    schedule: Schedule


def _errors(schedule: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        _Body.model_validate({"schedule": schedule})
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


def _one(schedule: Any) -> tuple[str, str]:
    errors = _errors(schedule)
    assert len(errors) == 1, errors
    return errors[0]


DAILY = {"preset": "daily", "time": "09:00", "time_zone": BERLIN}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"time": "25:00"}, "schedule.time", "HH:MM on a 24-hour clock"),
        ({"time": "9:00"}, "schedule.time", "HH:MM on a 24-hour clock"),
        ({"time": "09:60"}, "schedule.time", "HH:MM on a 24-hour clock"),
        ({"time_zone": "Mars/Olympus"}, "schedule.time_zone", "not an IANA time zone"),
        ({"time_zone": "europe/berlin"}, "schedule.time_zone", "not an IANA time zone"),
        ({"time_zone": "/etc/localtime"}, "schedule.time_zone", "not an IANA time zone"),
        ({"preset": "hourly"}, "schedule.preset", "must be daily, weekly or monthly"),
        ({"weekdays": ["MON"]}, "schedule.weekdays", "Extra inputs are not permitted"),
        ({"expression": "rate(1 day)"}, "schedule.expression", "a preset or an expression, not both"),
    ],
)
def test_an_invalid_preset_names_its_field(change: dict[str, Any], field: str, reason: str) -> None:
    got_field, got_reason = _one({**DAILY, **change})
    assert got_field == field and reason in got_reason


@pytest.mark.parametrize(
    ("schedule", "field", "reason"),
    [
        (
            {"preset": "weekly", "weekdays": [], "time": "09:00", "time_zone": "UTC"},
            "schedule.weekdays",
            "at least one",
        ),
        (
            {"preset": "weekly", "weekdays": ["MON", "FUN"], "time": "09:00", "time_zone": "UTC"},
            "schedule.weekdays",
            "FUN: not a day",
        ),
        ({"preset": "weekly", "time": "09:00", "time_zone": "UTC"}, "schedule.weekdays", "Field required"),
        ({"preset": "monthly", "day": 0, "time": "09:00", "time_zone": "UTC"}, "schedule.day", '1 to 31, or "last"'),
        ({"preset": "monthly", "day": 32, "time": "09:00", "time_zone": "UTC"}, "schedule.day", '1 to 31, or "last"'),
        (
            {"preset": "monthly", "day": "first", "time": "09:00", "time_zone": "UTC"},
            "schedule.day",
            '1 to 31, or "last"',
        ),
        ({"preset": "monthly", "day": True, "time": "09:00", "time_zone": "UTC"}, "schedule.day", '1 to 31, or "last"'),
        ({"preset": "daily", "time_zone": "UTC"}, "schedule.time", "Field required"),
        ({"preset": "daily", "time": "09:00"}, "schedule.time_zone", "Field required"),
        ({"time": "09:00", "time_zone": "UTC"}, "schedule", 'needs a "preset"'),
        ("daily", "schedule", "must be an object"),
        ({"expression": 5, "time_zone": "UTC"}, "schedule.expression", "must be a string"),
    ],
)
def test_an_invalid_schedule_names_its_field(schedule: Any, field: str, reason: str) -> None:
    got_field, got_reason = _one(schedule)
    assert got_field == field and reason in got_reason


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week to be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week to be '?'"),
        ("cron(0 9 * *)", "cron needs 6 fields"),
        ("cron(0 9 * * ? * *)", "cron needs 6 fields"),
        ("cron(60 9 * * ? *)", "minutes field '60': 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours field '24': 24 is outside 0-23"),
        ("cron(0 9 32 * ? *)", "day-of-month field '32': 32 is outside 1-31"),
        ("cron(0 9 ? 13 * *)", "month field '13': 13 is outside 1-12"),
        ("cron(0 9 ? * 8 *)", "day-of-week field '8': 8 is outside 1-7"),
        ("cron(0 9 ? * MON-FUN *)", "'FUN' is not a number 1-7 or a name SUN-SAT"),
        ("cron(0 9 ? * FRI-MON *)", "the range 'FRI-MON' runs backwards"),
        ("cron(0 9 ? * MON#6 *)", "the week after '#' must be 1-5"),
        ("cron(0 9 ? * MON#1,FRI *)", "stand alone"),
        ("cron(0 9 L-2 * ? *)", "stand alone"),
        ("cron(0 9 LW * ? *)", "stand alone"),
        ("cron(0 9 15W,20 * ? *)", "stand alone"),
        ("cron(0/0 9 * * ? *)", "increment after '/' must be 1 or more"),
        ("cron(0 9 * * ? 2200)", "year field '2200': 2200 is outside 1970-2199"),
        ("cron(0 L * * ? *)", "hours field 'L': '?', 'L', 'W' and '#' are not allowed there"),
        ("cron(0 9 1,,2 * ? *)", "'' is not a number 1-31"),
        ("rate(1 minutes)", "must say 'minute': singular for 1"),
        ("rate(5 minute)", "must say 'minutes'"),
        ("rate(0 minutes)", "must be a whole number, 1 or more"),
        ("rate(-5 minutes)", "must be a whole number, 1 or more"),
        ("rate(5 weeks)", "unit 'weeks' must be minutes, hours or days"),
        ("rate(5minutes)", "must be cron("),
        ("at(2026-07-01T09:00:00)", "at(...) fires once"),
        ("every day at nine", "must be cron("),
        ("", "must be cron("),
    ],
)
def test_an_invalid_expression_names_the_expression_and_why(expression: str, reason: str) -> None:
    field, message = _one(cron(expression, "UTC"))
    assert field == "schedule.expression"
    assert reason in message


def test_errors_in_several_fields_are_all_reported() -> None:
    errors = _errors({"preset": "weekly", "weekdays": ["XYZ"], "time": "7pm", "time_zone": "Nowhere"})
    assert sorted(field for field, _ in errors) == ["schedule.time", "schedule.time_zone", "schedule.weekdays"]


def test_a_schedule_round_trips_through_its_json_and_has_a_schema() -> None:
    given = {"preset": "weekly", "weekdays": ["THU", "MON"], "time": "07:15", "time_zone": NEW_YORK}
    body = _Body.model_validate({"schedule": given})
    stored = body.model_dump(mode="json")
    assert stored == {"schedule": {**given, "weekdays": ["MON", "THU"]}}
    assert _Body.model_validate(stored) == body
    assert _Body(schedule=body.schedule).schedule is body.schedule  # a built schedule is taken as it is
    variants = _Body.model_json_schema()["properties"]["schedule"]["anyOf"]
    assert len(variants) == 4
