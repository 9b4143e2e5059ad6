"""SES event publishing: configuration set -> SNS topic -> the bounce buffer queue."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.topics import encrypted_topic
from massmailer import spec

SES_SERVICE = "ses.amazonaws.com"


class SesEventPublishing(Construct):
    """The stage's configuration set; its events (``spec.ses_event_types``) reach ``event_queue``.

    The queue receives the SNS envelope (no raw message delivery): the bounce function parses the
    SNS notification and the SES event inside it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        event_queue: sqs.IQueue,
        removal_policy: RemovalPolicy,
        track_deliveries: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.configuration_set_name = spec.configuration_set_name(stage)
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            configuration_set_name=self.configuration_set_name,
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        self.configuration_set_arn = stack.format_arn(
            service="ses", resource="configuration-set", resource_name=self.configuration_set_name
        )

        self.topic = encrypted_topic(
            self,
            "EventsTopic",
            topic_name=spec.topic_name(stage),
            publisher_service=SES_SERVICE,
            removal_policy=removal_policy,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowSesEventPublishing",
                principals=[iam.ServicePrincipal(SES_SERVICE)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": self.configuration_set_arn},
                },
            )
        )
        destination = ses.ConfigurationSetEventDestination(
            self,
            "ToSns",
            configuration_set=self.configuration_set,
            configuration_set_event_destination_name=spec.topic_name(stage),
            destination=ses.EventDestination.sns_topic(self.topic),
            events=[ses.EmailSendingEvent[event_type] for event_type in spec.ses_event_types(track_deliveries)],
        )
        # SES checks it may publish when the destination is created: the topic policy goes first.
        destination.node.add_dependency(self.topic.node.find_child("Policy"))
        self.topic.add_subscription(subscriptions.SqsSubscription(event_queue, raw_message_delivery=False))
