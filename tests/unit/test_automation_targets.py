"""An automation's target key template, filled with the run's scheduled time on its time zone's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from massmailer.automations import AutomationSpec, fill_target

BASE = {"name": "n", "subject": "s", "text": "t", "target": "audiences/{scheduled:%Y-%m-%d}/c.csv"}


def test_the_target_is_filled_on_the_wall_clock_of_the_schedules_time_zone() -> None:
    spec = AutomationSpec.model_validate(
        {**BASE, "schedule": {"preset": "daily", "time": "00:30", "time_zone": "Europe/Berlin"}}
    )
    scheduled = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 December in Berlin

    assert fill_target(spec.target, spec.scheduled_local(scheduled)) == "audiences/2026-12-01/c.csv"


@pytest.mark.parametrize(
    ("template", "filled"),
    [
        ("audiences/{scheduled}.jsonl", "audiences/2026-03-29.jsonl"),
        ("audiences/{scheduled:%Y/%m}/{scheduled:%H%M}.csv", "audiences/2026/03/0230.csv"),
        ("audiences/fixed.csv", "audiences/fixed.csv"),
    ],
)
def test_each_scheduled_field_is_replaced(template: str, filled: str) -> None:
    assert fill_target(template, datetime(2026, 3, 29, 2, 30)) == filled


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("audiences/{date}.csv", "{scheduled"),
        ("audiences/{scheduled:%Y}.txt", ".csv"),
        ("exports/{scheduled:%Y}.csv", "audiences/"),
    ],
)
def test_a_target_that_cannot_make_an_audience_key_names_the_field(target: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AutomationSpec.model_validate(
            {**BASE, "target": target, "schedule": {"preset": "daily", "time": "09:00", "time_zone": "UTC"}}
        )
    (error,) = caught.value.errors()
    assert error["loc"] == ("target",)
    assert reason in error["msg"]
