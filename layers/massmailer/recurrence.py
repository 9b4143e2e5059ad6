"""Recurrence: an automation's schedule, its EventBridge Scheduler expression, and when it fires.

An automation's ``schedule`` is one of

* ``{"preset": "daily", "time": "HH:MM", "time_zone": "Europe/Berlin"}``
* ``{"preset": "weekly", "weekdays": ["MON", "THU"], "time": ..., "time_zone": ...}``
* ``{"preset": "monthly", "day": 1..31 | "last", "time": ..., "time_zone": ...}``
* ``{"expression": "cron(0 9 ? * MON-FRI *)" | "rate(5 minutes)", "time_zone": ...}``

A wrong one fails validation with the field named (``schedule.time``, ``schedule.expression``, …)
and the reason, which the API answers with 422. :meth:`scheduler_expression` gives the
``(ScheduleExpression, ScheduleExpressionTimezone)`` pair that ``CreateSchedule`` takes: presets
become cron expressions. A monthly day 29–31 fires only in the months that have that day, as
``cron(… 31 * ? *)`` does on Scheduler; ``"last"`` is the month's last day.

Cron is EventBridge Scheduler's: six fields ``minutes hours day-of-month month day-of-week year``
(day-of-week 1 = SUN … 7 = SAT; names ``JAN``–``DEC``, ``SUN``–``SAT``), with ``* , - /``, exactly
one of day-of-month and day-of-week ``?``, and standing alone in their field: ``L`` (day-of-month:
the last day; day-of-week: SAT, ``nL`` the month's last weekday n), ``nW`` (the weekday nearest day
n, within the month) and ``n#k`` (the k-th weekday n). Not accepted: ``LW``, ``L-n``, and ranges
that wrap around (``FRI-MON``).

When it fires (:func:`next_runs`, :func:`due`) follows EventBridge Scheduler across daylight saving
time. AWS's documentation (knowledge-center article "eventbridge-scheduler-adjust-dst", and the
user guide's "Daylight savings time on EventBridge Scheduler") says:

    "Amazon EventBridge Scheduler automatically adjusts your schedule for Daylight Saving Time. When
    the time shifts forward in Spring, your schedule invocation gets skipped if the cron expression
    falls on a non-existent date and time. When the time shifts back in the Fall, your schedule runs
    only once and doesn't repeat its invocation."
    "in a rate-based schedule that uses days as the unit, days represents a 24-hour duration on the
    clock. [...] the EventBridge Scheduler evaluates the rate expression 24 hours after the
    schedule's last invocation."

So: a cron or preset is matched on the wall clock of its time zone; a wall time that does not exist
(02:30 on the spring-forward day in Europe/Berlin or America/New_York) is skipped; one that happens
twice (01:30 on New York's fall-back day, 02:30 in Berlin's) fires once, at its first occurrence.
A rate is a fixed duration counted from the schedule's start (``StartDate``, else its creation:
"If you do not provide a StartDate for a rate-based schedule, your schedule starts invoking the
target immediately"), whatever the wall clock does.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, WrapValidator, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_AWS_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
FIRST_YEAR, LAST_YEAR = 1970, 2199
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE = re.compile(r"^rate\((\S+) (\S+)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class InvalidExpression(ValueError):
    """A schedule expression EventBridge Scheduler would not take (or that this module does not)."""


# --------------------------------------------------------------------------------------------------
# Expressions: at(...), rate(...), cron(...)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """``at(yyyy-mm-ddThh:mm:ss)``: one time, on the wall clock of the schedule's time zone."""

    wall: datetime  # naive


@dataclass(frozen=True)
class Rate:
    every: timedelta


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 1, 7, _AWS_DAYS)
_YEAR = _Field("year", FIRST_YEAR, LAST_YEAR)


def _aws_weekday(day: date) -> int:
    return day.isoweekday() % 7 + 1  # SUN = 1 … SAT = 7


@dataclass(frozen=True)
class _DaySet:  # day-of-month values (``*`` is 1-31)
    values: frozenset[int]

    def days(self, year: int, month: int) -> set[int]:
        return {d for d in self.values if d <= calendar.monthrange(year, month)[1]}


@dataclass(frozen=True)
class _LastDay:  # day-of-month ``L``
    def days(self, year: int, month: int) -> set[int]:
        return {calendar.monthrange(year, month)[1]}


@dataclass(frozen=True)
class _NearestWeekday:  # day-of-month ``nW``: the weekday nearest day n, never leaving the month
    day: int

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        if self.day > last:
            return set()
        weekday = date(year, month, self.day).isoweekday()  # MON = 1 … SUN = 7
        if weekday == 6:  # Saturday: the Friday before, or Monday the 3rd when it is the 1st
            return {self.day - 1 if self.day > 1 else 3}
        if weekday == 7:  # Sunday: the Monday after, or the Friday before when it is the last day
            return {self.day + 1 if self.day < last else self.day - 2}
        return {self.day}


@dataclass(frozen=True)
class _WeekdaySet:  # day-of-week values (``*`` is 1-7)
    values: frozenset[int]

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        return {d for d in range(1, last + 1) if _aws_weekday(date(year, month, d)) in self.values}


@dataclass(frozen=True)
class _LastWeekday:  # day-of-week ``nL``: the month's last weekday n
    weekday: int

    def days(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        return {last - (_aws_weekday(date(year, month, last)) - self.weekday) % 7}


@dataclass(frozen=True)
class _NthWeekday:  # day-of-week ``n#k``: the k-th weekday n of the month
    weekday: int
    nth: int

    def days(self, year: int, month: int) -> set[int]:
        first = 1 + (self.weekday - _aws_weekday(date(year, month, 1))) % 7
        day = first + 7 * (self.nth - 1)
        return {day} if day <= calendar.monthrange(year, month)[1] else set()


_DayRule = _DaySet | _LastDay | _NearestWeekday | _WeekdaySet | _LastWeekday | _NthWeekday


@dataclass(frozen=True)
class Cron:
    """A parsed ``cron(...)``: the wall-clock minutes it matches in its time zone."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_rule: _DayRule
    months: frozenset[int]
    years: frozenset[int]

    def days_in(self, year: int, month: int) -> list[int]:
        return sorted(self.day_rule.days(year, month))


def _value(text: str, spec: _Field, whole: str) -> int:
    key = text.upper()
    if spec.names and key in spec.names:
        return spec.names[key]
    if not text.isdigit():
        names = ""
        if spec.names:
            ordered = sorted(spec.names, key=spec.names.__getitem__)
            names = f" or a name {ordered[0]}-{ordered[-1]}"
        raise InvalidExpression(
            f"cron {spec.name} field {whole!r}: {text!r} is not a number {spec.low}-{spec.high}{names}"
        )
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise InvalidExpression(f"cron {spec.name} field {whole!r}: {value} is outside {spec.low}-{spec.high}")
    return value


def _values(text: str, spec: _Field) -> frozenset[int]:
    """One field's ``* , - /`` list → the values it allows."""
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidExpression(f"cron {spec.name} field {text!r}: the increment after '/' must be 1 or more")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            a, b = base.split("-", 1)
            low, high = _value(a, spec, text), _value(b, spec, text)
            if low > high:
                raise InvalidExpression(f"cron {spec.name} field {text!r}: the range {base!r} runs backwards")
        else:
            low = _value(base, spec, text)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _day_of_month(text: str) -> _DayRule | None:
    upper = text.upper()
    if upper == "?":
        return None
    if upper == "L":
        return _LastDay()
    if m := re.fullmatch(r"(\d{1,2})W", upper):
        return _NearestWeekday(_value(m.group(1), _DOM, text))
    if any(c in upper for c in "LW?"):
        raise InvalidExpression(
            f"cron day-of-month field {text!r}: '?', 'L' (the last day) and 'nW' (the weekday nearest day n) "
            "stand alone, not in lists or ranges ('LW' and 'L-n' are not accepted)"
        )
    return _DaySet(_values(text, _DOM))


def _day_of_week(text: str) -> _DayRule | None:
    upper = text.upper()
    if upper == "?":
        return None
    if upper == "L":
        return _WeekdaySet(frozenset({7}))  # the last day of the week: SAT
    if m := re.fullmatch(r"([A-Z]{3}|\d)L", upper):
        return _LastWeekday(_value(m.group(1), _DOW, text))
    if m := re.fullmatch(r"([A-Z]{3}|\d)#(\d+)", upper):
        nth = int(m.group(2))
        if not 1 <= nth <= 5:
            raise InvalidExpression(f"cron day-of-week field {text!r}: the week after '#' must be 1-5")
        return _NthWeekday(_value(m.group(1), _DOW, text), nth)
    if "#" in upper or "?" in upper or re.search(r"(^|[^A-Z])L|\dL", upper):
        raise InvalidExpression(
            f"cron day-of-week field {text!r}: '?', 'L', 'nL' (the month's last weekday n) and 'n#k' "
            "(the k-th weekday n) stand alone, not in lists or ranges"
        )
    return _WeekdaySet(_values(text, _DOW))


def _parse_cron(body: str) -> Cron:
    parts = body.split()
    if len(parts) != 6:
        raise InvalidExpression(
            f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(parts)}"
        )
    minute, hour, dom_text, month, dow_text, year = parts
    for text, spec in ((minute, _MINUTES), (hour, _HOURS), (month, _MONTH), (year, _YEAR)):
        if any(c in text.upper() for c in "?LW#"):
            raise InvalidExpression(f"cron {spec.name} field {text!r}: '?', 'L', 'W' and '#' are not allowed there")
    dom, dow = _day_of_month(dom_text), _day_of_week(dow_text)
    if (dom is None) == (dow is None):
        raise InvalidExpression(
            f"cron needs exactly one of day-of-month and day-of-week to be '?' (got {dom_text!r} and {dow_text!r})"
        )
    day_rule = dom if dom is not None else dow
    assert day_rule is not None
    return Cron(
        minutes=tuple(sorted(_values(minute, _MINUTES))),
        hours=tuple(sorted(_values(hour, _HOURS))),
        day_rule=day_rule,
        months=_values(month, _MONTH),
        years=_values(year, _YEAR),
    )


def _parse_rate(value_text: str, unit: str) -> Rate:
    if not value_text.isdigit() or int(value_text) < 1:
        raise InvalidExpression(f"rate value {value_text!r} must be a whole number, 1 or more")
    value = int(value_text)
    base = unit.removesuffix("s")
    if base not in _UNITS:
        raise InvalidExpression(f"rate unit {unit!r} must be minutes, hours or days")
    wanted = base if value == 1 else f"{base}s"
    if unit != wanted:
        raise InvalidExpression(f"rate({value} {unit}) must say {wanted!r}: singular for 1, plural otherwise")
    return Rate(value * _UNITS[base])


Expression = At | Rate | Cron


def parse_expression(text: str) -> Expression:
    """``at(...)``, ``rate(...)`` or ``cron(...)`` in EventBridge Scheduler's syntax, or :class:`InvalidExpression`."""
    text = text.strip()
    if m := _CRON.match(text):
        return _parse_cron(m.group(1))
    if m := _RATE.match(text):
        return _parse_rate(m.group(1), m.group(2))
    if m := _AT.match(text):
        try:
            return At(datetime.fromisoformat(m.group(1)))
        except ValueError as exc:
            raise InvalidExpression(f"at(...) holds no valid date and time: {exc}") from exc
    raise InvalidExpression(
        "must be cron(minutes hours day-of-month month day-of-week year) or rate(value unit), "
        "e.g. cron(0 9 ? * MON-FRI *) or rate(5 minutes)"
    )


# --------------------------------------------------------------------------------------------------
# When a schedule fires
# --------------------------------------------------------------------------------------------------


def _wall_instant(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time: the first one when it happens twice, None when it does not exist."""
    local = wall.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None  # skipped by a spring-forward change
    return instant


def _cron_firings(cron: Cron, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    first = (after.astimezone(tz) - timedelta(days=1)).date()
    for year in range(first.year, LAST_YEAR + 1):
        if year not in cron.years:
            continue
        for month in sorted(cron.months):
            if (year, month) < (first.year, first.month):
                continue
            for day in cron.days_in(year, month):
                if date(year, month, day) < first:
                    continue
                for hour in cron.hours:
                    for minute in cron.minutes:
                        instant = _wall_instant(datetime(year, month, day, hour, minute), tz)
                        if instant is not None and instant > after:
                            yield instant


@dataclass(frozen=True)
class Recurrence:
    """An expression evaluated in a time zone, within an optional start and end (both inclusive).

    A rate counts from ``start``; without one, from the ``after`` it is asked about (a schedule
    created then: its immediate first invocation is ``after`` itself, so the first listed is one
    period later).
    """

    expression: Expression
    time_zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of(cls, expression: str, time_zone: str = "UTC", **dates: datetime | None) -> Recurrence:
        return cls(parse_expression(expression), ZoneInfo(time_zone), **dates)

    def firings(self, after: datetime) -> Iterator[datetime]:
        """Every firing strictly after ``after`` (aware), in order, as aware UTC datetimes."""
        if after.tzinfo is None:
            raise ValueError("after must be a timezone-aware datetime")
        after = after.astimezone(UTC)
        expression = self.expression
        times: Iterator[datetime]
        if isinstance(expression, At):
            instant = expression.wall.replace(tzinfo=self.time_zone).astimezone(UTC)
            times = iter([instant] if instant > after else [])
        elif isinstance(expression, Rate):
            anchor = self.start or after
            k = 0 if anchor > after else (after - anchor) // expression.every + 1
            times = (anchor + n * expression.every for n in _count(k))
        else:
            times = _cron_firings(expression, self.time_zone, after)
        for t in times:
            if self.end is not None and t > self.end:
                return
            if self.start is None or t >= self.start:
                yield t


def _count(start: int) -> Iterator[int]:
    n = start
    while True:
        yield n
        n += 1


# --------------------------------------------------------------------------------------------------
# The API's schedule
# --------------------------------------------------------------------------------------------------


def _invalid(reason: str) -> PydanticCustomError:
    return PydanticCustomError("schedule_invalid", "{reason}", {"reason": reason})


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class SchedulerExpression(NamedTuple):
    """What ``CreateSchedule``/``UpdateSchedule`` take as ``ScheduleExpression`` and ``ScheduleExpressionTimezone``."""

    expression: str
    timezone: str


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str

    @field_validator("time_zone")
    @classmethod
    def _iana(cls, value: str) -> str:
        if value not in _time_zones():
            raise _invalid(f"{value!r} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)")
        return value

    def schedule_expression(self) -> str:
        raise NotImplementedError

    def scheduler_expression(self) -> SchedulerExpression:
        return SchedulerExpression(self.schedule_expression(), self.time_zone)

    def recurrence(self, start: datetime | None = None, end: datetime | None = None) -> Recurrence:
        return Recurrence.of(self.schedule_expression(), self.time_zone, start=start, end=end)


class _Preset(_Schedule):
    time: str

    @field_validator("time")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _TIME.match(value):
            raise _invalid("must be HH:MM on a 24-hour clock, 00:00 to 23:59")
        return value

    def _minute_hour(self) -> str:
        hour, minute = self.time.split(":")
        return f"{int(minute)} {int(hour)}"


class DailySchedule(_Preset):
    preset: Literal["daily"]

    def schedule_expression(self) -> str:
        return f"cron({self._minute_hour()} * * ? *)"


class WeeklySchedule(_Preset):
    preset: Literal["weekly"]
    weekdays: list[str]

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if not value:
            raise _invalid("needs at least one day: MON, TUE, WED, THU, FRI, SAT, SUN")
        days = {str(d).upper() for d in value}
        unknown = sorted(days - set(WEEKDAYS))
        if unknown:
            raise _invalid(f"{', '.join(unknown)}: not a day; use MON, TUE, WED, THU, FRI, SAT, SUN")
        return [d for d in WEEKDAYS if d in days]

    def schedule_expression(self) -> str:
        return f"cron({self._minute_hour()} ? * {','.join(self.weekdays)} *)"


class MonthlySchedule(_Preset):
    preset: Literal["monthly"]
    day: int | Literal["last"]

    @field_validator("day", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        if value == "last" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 31):
            return value
        raise _invalid('must be a day of the month, 1 to 31, or "last"')

    def schedule_expression(self) -> str:
        return f"cron({self._minute_hour()} {'L' if self.day == 'last' else self.day} * ? *)"


class ExpressionSchedule(_Schedule):
    expression: str

    @field_validator("expression")
    @classmethod
    def _syntax(cls, value: str) -> str:
        try:
            parsed = parse_expression(value)
        except InvalidExpression as exc:
            raise _invalid(str(exc)) from exc
        if isinstance(parsed, At):
            raise _invalid("at(...) fires once; an automation recurs: use cron(...) or rate(...)")
        return value.strip()

    def schedule_expression(self) -> str:
        return self.expression


AnySchedule = DailySchedule | WeeklySchedule | MonthlySchedule | ExpressionSchedule
_PRESETS: dict[str, type[DailySchedule] | type[WeeklySchedule] | type[MonthlySchedule]] = {
    "daily": DailySchedule,
    "weekly": WeeklySchedule,
    "monthly": MonthlySchedule,
}


def _error_at(loc: tuple[str, ...], reason: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        "Schedule", [InitErrorDetails(type=_invalid(reason), loc=loc, input=value)]
    )


def _dispatch(value: Any, _handler: Any) -> AnySchedule:
    """Pick the form by its keys, so that errors name ``schedule.<field>`` (not a union member)."""
    if isinstance(value, DailySchedule | WeeklySchedule | MonthlySchedule | ExpressionSchedule):
        return value
    if not isinstance(value, dict):
        raise _invalid('must be an object: {"preset": ..., ...} or {"expression": ..., "time_zone": ...}')
    if "preset" in value and "expression" in value:
        raise _error_at(("expression",), "give a preset or an expression, not both", value["expression"])
    if "expression" in value:
        if not isinstance(value["expression"], str):
            raise _error_at(("expression",), "must be a string: cron(...) or rate(...)", value["expression"])
        return ExpressionSchedule.model_validate(value)
    if "preset" not in value:
        raise _invalid('needs a "preset" (daily, weekly, monthly) or an "expression" (cron(...) or rate(...))')
    preset = value["preset"]
    model = _PRESETS.get(preset) if isinstance(preset, str) else None
    if model is None:
        raise _error_at(("preset",), "must be daily, weekly or monthly (or give an expression)", preset)
    return model.model_validate(value)


Schedule = Annotated[AnySchedule, WrapValidator(_dispatch)]
"""An automation's ``schedule`` field: use it as a pydantic field type, or through :func:`parse_schedule`."""

_ADAPTER: TypeAdapter[AnySchedule] = TypeAdapter(Schedule)


def parse_schedule(data: Any) -> AnySchedule:
    return _ADAPTER.validate_python(data)


def next_runs(
    schedule: AnySchedule | Recurrence, after: datetime, count: int = 5, *, start: datetime | None = None
) -> list[datetime]:
    """The next ``count`` firings strictly after ``after`` (aware UTC datetimes; fewer if it ends)."""
    recurrence = schedule if isinstance(schedule, Recurrence) else schedule.recurrence(start=start)
    return list(islice(recurrence.firings(after), count))


def due(
    schedule: AnySchedule | Recurrence, since: datetime, until: datetime, *, start: datetime | None = None
) -> list[datetime]:
    """The firings in ``(since, until]``: what a scheduler loop ticking at ``until`` fires."""
    recurrence = schedule if isinstance(schedule, Recurrence) else schedule.recurrence(start=start)
    times: list[datetime] = []
    for t in recurrence.firings(since):
        if t > until:
            break
        times.append(t)
    return times
