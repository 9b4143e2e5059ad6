"""Queues: every spec queue has its DLQ, redrive count, visibility timeout and encryption."""

from __future__ import annotations

import dataclasses

import pytest

from infra.queues import VISIBILITY_TO_TIMEOUT_RATIO, check_visibility
from massmailer import spec
from tests.infra.synthesis import Synthesized


@pytest.mark.parametrize("queue", spec.QUEUES, ids=lambda q: q.key)
def test_queue_redrives_to_its_own_dlq_after_spec_receive_count(synth: Synthesized, queue: spec.QueueSpec) -> None:
    queue_id = synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, queue))
    dlq_id = synth.logical_id("AWS::SQS::Queue", QueueName=spec.dlq_name(synth.stage, queue))

    synth.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": spec.queue_name(synth.stage, queue),
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                "maxReceiveCount": queue.max_receive_count,
            },
        },
    )
    assert queue_id != dlq_id
    assert queue.max_receive_count >= 5  # Lambda counts throttled receives as failures


@pytest.mark.parametrize("queue", spec.QUEUES, ids=lambda q: q.key)
def test_visibility_timeout_is_spec_value_and_covers_six_consumer_timeouts(
    synth: Synthesized, queue: spec.QueueSpec
) -> None:
    queue_props = synth.resources[synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, queue))][
        "Properties"
    ]
    consumer = synth.resources[
        synth.logical_id("AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, queue.consumer))
    ]["Properties"]

    assert queue_props["VisibilityTimeout"] == queue.visibility_timeout_seconds
    assert queue_props["VisibilityTimeout"] >= VISIBILITY_TO_TIMEOUT_RATIO * consumer["Timeout"]


def test_every_queue_is_encrypted_and_refuses_plain_http(synth: Synthesized) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    policies = synth.of_type("AWS::SQS::QueuePolicy").values()

    assert len(queues) == 2 * len(spec.QUEUES) + 1  # queue + DLQ each, plus the schedule DLQ
    for logical_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, logical_id
        tls_denied = [
            policy
            for policy in policies
            if {"Ref": logical_id} in policy["Properties"]["Queues"]
            and any(
                s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                for s in policy["Properties"]["PolicyDocument"]["Statement"]
            )
        ]
        assert tls_denied, f"{logical_id} accepts requests without TLS"


def test_check_visibility_refuses_a_queue_that_can_expire_under_its_consumer() -> None:
    too_short = dataclasses.replace(spec.HIGH_LANE, visibility_timeout_seconds=spec.SENDER.timeout_seconds)

    with pytest.raises(ValueError, match="visibility timeout"):
        check_visibility(too_short)


def test_check_visibility_refuses_an_unknown_consumer() -> None:
    with pytest.raises(ValueError, match="not in spec.FUNCTIONS"):
        check_visibility(dataclasses.replace(spec.HIGH_LANE, consumer="nobody"))
