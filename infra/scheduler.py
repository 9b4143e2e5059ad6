"""EventBridge Scheduler: the stage's schedule group, the role schedules run as, and their DLQ.

Schedules themselves (one-time ``send_at`` campaigns, and one recurring schedule per automation)
are created at run time by the ingest function (``massmailer.schedules``); each targets the split
queue and dead-letters into ``dead_letter_queue`` (its ``DeadLetterConfig``).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from infra.queues import encrypted_queue
from massmailer import spec

SCHEDULE_DLQ_RETENTION_DAYS = 14
# Create/get/delete: a campaign's one-time send_at; update too: an automation's recurring schedule
# (PATCH, and pause/resume as State DISABLED/ENABLED). Nothing else, and only on this group's schedules.
SCHEDULE_MANAGEMENT_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
    "scheduler:UpdateSchedule",
)


class SendScheduler(Construct):
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
        self.group_name = spec.schedule_group_name(stage)
        self.group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=self.group_name, removal_policy=removal_policy
        )
        self.dead_letter_queue = encrypted_queue(
            self,
            "Dlq",
            queue_name=spec.schedule_dlq_name(stage),
            retention_days=SCHEDULE_DLQ_RETENTION_DAYS,
        )
        acknowledge(
            self.dead_letter_queue,
            "SQS3",
            "This queue is itself a dead-letter queue: EventBridge Scheduler puts schedule "
            "invocations it could not deliver here (DeadLetterConfig of each schedule's target).",
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            description=f"Role EventBridge Scheduler assumes to run the {self.group_name} schedules",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
        )
        target_queue.grant_send_messages(self.role)
        self.dead_letter_queue.grant_send_messages(self.role)
        # Every schedule in this group, whatever its name (names are chosen at run time).
        self.schedules_arn = stack.format_arn(
            service="scheduler", resource="schedule", resource_name=f"{self.group_name}/*"
        )

    def grant_manage_schedules(self, grantee: iam.IGrantable) -> iam.Grant:
        """Create/get/update/delete schedules of this group, and hand them the execution role."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(SCHEDULE_MANAGEMENT_ACTIONS), resource_arns=[self.schedules_arn]
        )
        self.role.grant_pass_role(grantee)
        return grant
