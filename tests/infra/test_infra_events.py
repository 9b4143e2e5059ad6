"""SES event publishing, EventBridge Scheduler and secrets."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from massmailer import spec
from tests.infra.synthesis import Synthesized

# CloudFormation spells SES event types in camelCase; spec uses the SESv2 API's upper case.
CFN_EVENT_TYPE = {
    "SEND": "send",
    "REJECT": "reject",
    "BOUNCE": "bounce",
    "COMPLAINT": "complaint",
    "DELIVERY": "delivery",
    "DELIVERY_DELAY": "deliveryDelay",
    "RENDERING_FAILURE": "renderingFailure",
    "OPEN": "open",
    "CLICK": "click",
}


def _topic_id(synth: Synthesized) -> str:
    return synth.logical_id("AWS::SNS::Topic", TopicName=spec.topic_name(synth.stage))


def test_configuration_set_publishes_every_spec_event_type_to_the_events_topic(synth: Synthesized) -> None:
    [destination] = synth.of_type("AWS::SES::ConfigurationSetEventDestination").values()
    props: dict[str, Any] = destination["Properties"]

    assert props["ConfigurationSetName"] == {
        "Ref": synth.logical_id("AWS::SES::ConfigurationSet", Name=spec.configuration_set_name(synth.stage))
    }
    assert props["EventDestination"]["Enabled"] is True
    assert sorted(props["EventDestination"]["MatchingEventTypes"]) == sorted(
        CFN_EVENT_TYPE[t] for t in spec.ses_event_types(synth.config.sending.track_deliveries)
    )
    # Send always (it closes the crash window between SES's acceptance and the sender's record);
    # Delivery only where the stage tracks deliveries.
    assert "send" in props["EventDestination"]["MatchingEventTypes"]
    assert ("delivery" in props["EventDestination"]["MatchingEventTypes"]) is synth.config.sending.track_deliveries
    assert props["EventDestination"]["SnsDestination"] == {"TopicARN": {"Ref": _topic_id(synth)}}


def test_events_topic_is_encrypted_and_ses_may_publish_to_it(synth: Synthesized) -> None:
    topic = synth.resources[_topic_id(synth)]["Properties"]
    [policy] = [
        p
        for p in synth.of_type("AWS::SNS::TopicPolicy").values()
        if {"Ref": _topic_id(synth)} in p["Properties"]["Topics"]
    ]

    assert "KmsMasterKeyId" in topic
    assert any(
        s["Effect"] == "Allow" and s["Principal"] == {"Service": "ses.amazonaws.com"} and s["Action"] == "sns:Publish"
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_bounce_queue_receives_the_sns_envelope(synth: Synthesized) -> None:
    bounce_queue = synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, spec.BOUNCE_QUEUE))
    [subscription] = [
        s
        for s in synth.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": _topic_id(synth)}
    ]
    props = subscription["Properties"]

    assert props["Protocol"] == "sqs"
    assert props["Endpoint"] == {"Fn::GetAtt": [bounce_queue, "Arn"]}
    assert not props.get("RawMessageDelivery", False)


def test_schedule_group_role_and_dead_letter_queue(synth: Synthesized) -> None:
    split_queue = synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, spec.SPLIT_QUEUE))
    schedule_dlq = synth.logical_id("AWS::SQS::Queue", QueueName=spec.schedule_dlq_name(synth.stage))
    synth.logical_id("AWS::Scheduler::ScheduleGroup", Name=spec.schedule_group_name(synth.stage))
    [role_id] = [
        k
        for k, r in synth.of_type("AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "scheduler.amazonaws.com"}
    ]
    [policy] = [p for p in synth.of_type("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]

    sendable = {
        resource["Fn::GetAtt"][0]
        for s in statements
        if "sqs:SendMessage" in s["Action"]
        for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert sendable == {split_queue, schedule_dlq}
    # and the ingest function, which creates the schedules, names that DLQ in each schedule's target
    ingest = synth.logical_id("AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, spec.INGEST.name))
    env = synth.resources[ingest]["Properties"]["Environment"]["Variables"]
    assert env[spec.ENV.schedule_dlq_arn] == {"Fn::GetAtt": [schedule_dlq, "Arn"]}


def test_ses_event_destination_as_template_assertion(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::SES::ConfigurationSetEventDestination",
        {
            "EventDestination": Match.object_like(
                {
                    "MatchingEventTypes": Match.array_equals(
                        [CFN_EVENT_TYPE[t] for t in spec.ses_event_types(synth.config.sending.track_deliveries)]
                    ),
                    "SnsDestination": {"TopicARN": {"Ref": _topic_id(synth)}},
                }
            )
        },
    )


def test_secrets_are_named_by_spec(synth: Synthesized) -> None:
    names = {s["Properties"]["Name"] for s in synth.of_type("AWS::SecretsManager::Secret").values()}

    assert names == {spec.smtp_secret_name(synth.stage), spec.signing_secret_name(synth.stage)}


def test_the_signing_secret_is_generated_as_before_key_ids_and_reads_as_key_k0(synth: Synthesized) -> None:
    """The generated value is a bare 64-character secret, as before key ids existed: a changed
    generator would make CloudFormation generate a new value and break every link already sent.
    The functions read a bare secret as key id k0 (README, "Unsubscribe")."""
    from massmailer.unsubscribe import BARE_KEY_ID, parse_signing_keys

    [signing] = [
        s["Properties"]
        for s in synth.of_type("AWS::SecretsManager::Secret").values()
        if s["Properties"]["Name"] == spec.signing_secret_name(synth.stage)
    ]
    generated = signing["GenerateSecretString"]
    assert "SecretStringTemplate" not in generated and "GenerateStringKey" not in generated
    assert generated["PasswordLength"] == 64 and generated["ExcludePunctuation"] is True
    assert [key.kid for key in parse_signing_keys("x" * generated["PasswordLength"])] == [BARE_KEY_ID]
