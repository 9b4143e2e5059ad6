"""The stage's EventBridge bus for event-triggered automations: the bus, the queue permission, the grants."""

from __future__ import annotations

import json
from typing import Any

from massmailer import spec
from tests.infra.synthesis import Synthesized
from tests.infra.test_infra_functions import _actions, _allowed, _statements

RULE_ACTIONS = {"events:PutRule", "events:DeleteRule", "events:RemoveTargets", "events:PutTargets"}


def _rules_arn_text(synth: Synthesized) -> str:
    return f":rule/{spec.event_bus_name(synth.stage)}/{spec.event_rule_prefix(synth.stage)}*"


def _split_queue_id(synth: Synthesized) -> str:
    return synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, spec.SPLIT_QUEUE))


def test_the_stage_has_its_own_event_bus_and_functions_know_its_name(synth: Synthesized) -> None:
    synth.logical_id("AWS::Events::EventBus", Name=spec.event_bus_name(synth.stage))
    ingest = synth.logical_id("AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, "ingest"))
    variables = synth.resources[ingest]["Properties"]["Environment"]["Variables"]
    assert variables[spec.ENV.event_bus] == spec.event_bus_name(synth.stage)


def test_only_ingest_manages_the_automation_rules_and_aims_them_at_the_split_queue_only(synth: Synthesized) -> None:
    statements = [s for s in _statements(synth, spec.INGEST.name) if any(a.startswith("events:") for a in _actions(s))]

    assert {a for s in statements for a in _actions(s)} == RULE_ACTIONS
    for statement in statements:
        assert _rules_arn_text(synth) in json.dumps(statement["Resource"])  # the prefix's rules, not every rule
    [put_targets] = [s for s in statements if "events:PutTargets" in _actions(s)]
    assert _actions(put_targets) == {"events:PutTargets"}
    assert put_targets["Condition"] == {
        "ArnEquals": {"events:TargetArn": {"Fn::GetAtt": [_split_queue_id(synth), "Arn"]}}
    }
    for other in (spec.SPLITTER, spec.SENDER, spec.BOUNCE):
        assert not {a for a in _allowed(synth, other.name) if a.startswith("events:")}


def test_rules_of_the_stage_bus_may_send_to_the_split_queue_and_nothing_else_may(synth: Synthesized) -> None:
    queue_id = _split_queue_id(synth)
    statements: list[dict[str, Any]] = [
        s
        for p in synth.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]

    [statement] = statements
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert _rules_arn_text(synth) in json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
    other_queues = [
        p for p in synth.of_type("AWS::SQS::QueuePolicy").values() if {"Ref": queue_id} not in p["Properties"]["Queues"]
    ]
    assert "events.amazonaws.com" not in json.dumps(other_queues)
