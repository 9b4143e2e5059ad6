"""The MassMailer stack: composes the constructs of one stage and tags them. Nothing else."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.api import IngestApi
from infra.automation_events import AutomationEvents
from infra.config import StageConfig
from infra.functions import PipelineFunctions
from infra.layer import SharedLayer
from infra.monitoring import Monitoring
from infra.queues import WorkQueues
from infra.scheduler import SendScheduler
from infra.secrets import MailSecrets
from infra.ses import SesEventPublishing
from infra.storage import Storage
from massmailer import spec


class MassMailerStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        bundle_dependencies: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage = config.name
        removal_policy = config.cdk_removal_policy

        storage = Storage(
            self,
            "Storage",
            stage=stage,
            removal_policy=removal_policy,
            empty_buckets_on_delete=config.removal_policy == "destroy",
            access_log_retention_days=config.log_retention_days,
        )
        queues = WorkQueues(self, "Queues", stage=stage)
        secrets = MailSecrets(self, "Secrets", stage=stage, removal_policy=removal_policy)
        scheduler = SendScheduler(
            self, "Scheduler", stage=stage, target_queue=queues.split, removal_policy=removal_policy
        )
        automation_events = AutomationEvents(
            self, "AutomationEvents", stage=stage, target_queue=queues.split, removal_policy=removal_policy
        )
        ses = SesEventPublishing(
            self,
            "Ses",
            stage=stage,
            event_queue=queues.bounce,
            removal_policy=removal_policy,
            track_deliveries=config.sending.track_deliveries,
        )
        layer = SharedLayer(
            self,
            "SharedLayer",
            layer_name=spec.resource_name(stage, "shared"),
            architecture=config.lambda_architecture,
            bundle_dependencies=bundle_dependencies,
            removal_policy=removal_policy,
        )
        functions = PipelineFunctions(
            self,
            "Functions",
            stage=stage,
            service_name=config.service_name,
            sending=config.sending,
            storage=storage,
            queues=queues,
            secrets=secrets,
            scheduler=scheduler,
            automation_events=automation_events,
            ses=ses,
            layer=layer.layer,
            architecture=config.lambda_architecture,
            log_retention=config.log_retention,
            removal_policy=removal_policy,
        )
        api = IngestApi(
            self,
            "Api",
            stage=stage,
            handler=functions.ingest.function,
            rate_limit=config.api.rate_limit,
            burst_limit=config.api.burst_limit,
            log_retention=config.log_retention,
            removal_policy=removal_policy,
        )
        configured_url = config.sending.unsubscribe_base_url
        functions.set_unsubscribe_base_url(str(configured_url).rstrip("/") if configured_url else api.base_url)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            stage=stage,
            service_name=config.service_name,
            alarm_email=config.alarms.email,
            lanes={key: queues[key].queue for key in spec.LANES},
            dead_letter_queues={
                **{q.queue_spec.key: q.dead_letter_queue for q in queues},
                "schedules": scheduler.dead_letter_queue,
            },
            functions={name: fn.function for name, fn in functions.by_name.items()},
            lane_age_seconds=config.alarms.lane_age_seconds,
            bounce_rate_percent=config.alarms.bounce_rate_percent,
            complaint_rate_percent=config.alarms.complaint_rate_percent,
            rate_min_sends=config.alarms.rate_min_sends,
            removal_policy=removal_policy,
        )
        self.api = api
        self.functions = functions
        self.queues = queues

        CfnOutput(self, "ApiUrl", value=api.versioned_url, description="Base URL of the API (SigV4)")
        CfnOutput(self, "UnsubscribeUrl", value=api.unsubscribe_url, description="Public one-click unsubscribe")
        CfnOutput(self, "SmtpSecretName", value=spec.smtp_secret_name(stage), description="Put relay credentials here")
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(
            self,
            "EventBusArn",
            value=automation_events.bus.event_bus_arn,
            description="Put events for event-triggered automations here (grant producers events:PutEvents on it)",
        )

        Tags.of(self).add("app", spec.APP)
        Tags.of(self).add("stage", stage)
        for key, value in config.tags.items():
            Tags.of(self).add(key, value)
