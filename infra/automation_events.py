"""The stage's EventBridge bus for event-triggered automations, and who may put rules on it.

Each event-triggered automation is one rule on this bus (created at run time by the ingest function,
``massmailer.event_rules``), named with ``spec.event_rule_prefix(stage)``, whose one target is the
split queue with an ``InputTransformer``. So:

* the **bus** is the stage's own (``spec.event_bus_name``), not the account's default bus: a dev and
  a prod stage in one account never see each other's events, producers are granted
  ``events:PutEvents`` on this bus alone, and the AWS service events that flood the default bus
  never reach the automations' patterns;
* the **split queue** lets EventBridge send to it only from rules of this bus with that prefix
  (``aws:SourceArn``); the queue is SQS-encrypted (SSE-SQS), so no key policy is involved;
* the **ingest function** may ``PutRule``/``DeleteRule``/``RemoveTargets`` on those rules only, and
  ``PutTargets`` only with the split queue as target (``events:TargetArn``). SQS targets need no
  role, so there is no ``iam:PassRole``.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from massmailer import spec

RULE_MANAGEMENT_ACTIONS = ("events:PutRule", "events:DeleteRule", "events:RemoveTargets")
TARGET_ACTION = "events:PutTargets"


class AutomationEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        target_queue: sqs.IQueue,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.bus_name = spec.event_bus_name(stage)
        self.bus = events.EventBus(self, "Bus", event_bus_name=self.bus_name)
        self.bus.apply_removal_policy(removal_policy)
        self.target_queue = target_queue
        # Every automation rule of this bus (names are chosen at run time, under the stage's prefix).
        self.rules_arn = stack.format_arn(
            service="events", resource="rule", resource_name=f"{self.bus_name}/{spec.event_rule_prefix(stage)}*"
        )
        target_queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AutomationRulesSend",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[target_queue.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": self.rules_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )

    def grant_manage_rules(self, grantee: iam.IGrantable) -> None:
        """Put and delete the automation rules of this bus, aiming them at the target queue only."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(RULE_MANAGEMENT_ACTIONS), resource_arns=[self.rules_arn]
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[TARGET_ACTION],
            resource_arns=[self.rules_arn],
            conditions={"ArnEquals": {"events:TargetArn": self.target_queue.queue_arn}},
        )
