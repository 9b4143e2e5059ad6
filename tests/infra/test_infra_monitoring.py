"""Monitoring: an alarm on every DLQ, lane age, function health, bounce and complaint rates."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import METRICS_NAMESPACE
from massmailer import spec
from tests.infra.synthesis import Synthesized


def _alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]


def _queue_alarms(synth: Synthesized, queue_id: str, metric_name: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in _alarms(synth)
        if alarm.get("MetricName") == metric_name
        and alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]


def _dlq_names(stage: str) -> list[str]:
    return [spec.dlq_name(stage, q) for q in spec.QUEUES] + [spec.schedule_dlq_name(stage)]


def test_every_dead_letter_queue_alarms_on_its_first_message(synth: Synthesized) -> None:
    for name in _dlq_names(synth.stage):
        dlq = synth.logical_id("AWS::SQS::Queue", QueueName=name)

        [alarm] = _queue_alarms(synth, dlq, "ApproximateNumberOfMessagesVisible")

        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["AlarmActions"], f"the {name} alarm notifies nobody"


def test_every_queue_with_a_redrive_policy_is_covered_by_a_dlq_alarm(synth: Synthesized) -> None:
    """Catches a queue added to the stack without going through the spec (and its alarm)."""
    targets = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in synth.of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }

    assert targets
    for dlq in targets:
        assert _queue_alarms(synth, dlq, "ApproximateNumberOfMessagesVisible"), dlq


@pytest.mark.parametrize("lane", spec.LANES.values(), ids=lambda q: q.key)
def test_each_lane_alarms_when_its_oldest_message_is_too_old(synth: Synthesized, lane: spec.QueueSpec) -> None:
    queue = synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, lane))

    [alarm] = _queue_alarms(synth, queue, "ApproximateAgeOfOldestMessage")

    assert alarm["Threshold"] == synth.config.alarms.lane_age_seconds[lane.key]


@pytest.mark.parametrize("metric_name", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(synth: Synthesized, metric_name: str) -> None:
    for function_spec in spec.FUNCTIONS:
        function = synth.logical_id(
            "AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, function_spec.name)
        )
        matching = [
            a
            for a in _alarms(synth)
            if a.get("MetricName") == metric_name
            and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        ]
        assert len(matching) == 1, (function_spec.name, metric_name)


@pytest.mark.parametrize(
    ("metric_name", "threshold_field"),
    [("Bounces", "bounce_rate_percent"), ("Complaints", "complaint_rate_percent")],
)
def test_reputation_rate_alarms_use_the_custom_metrics_and_stage_thresholds(
    synth: Synthesized, metric_name: str, threshold_field: str
) -> None:
    [alarm] = [
        a
        for a in _alarms(synth)
        if "Metrics" in a
        and any(m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == metric_name for m in a["Metrics"])
    ]
    stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    [expression] = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]

    assert {s["MetricName"] for s in stats} == {metric_name, "EmailsSent"}
    for stat in stats:
        assert stat["Namespace"] == METRICS_NAMESPACE
        assert stat["Dimensions"] == [{"Name": "service", "Value": f"{spec.APP}-{synth.stage}"}]
    assert "100 *" in expression and "/ sent" in expression
    assert alarm["Threshold"] == getattr(synth.config.alarms, threshold_field)


def test_dashboard_exists(synth: Synthesized) -> None:
    synth.logical_id("AWS::CloudWatch::Dashboard", DashboardName=spec.resource_name(synth.stage, "operations"))


def test_alarm_topic_mails_the_stage_address_if_configured(synth: Synthesized) -> None:
    emails = [
        s["Properties"]["Endpoint"]
        for s in synth.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]

    assert emails == ([synth.config.alarms.email] if synth.config.alarms.email else [])
