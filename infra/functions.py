"""The four pipeline functions (ingest, splitter, sender, bounce): environment, event sources and
least-privilege grants.

Who may do what:

* ingest   — table read/write, put/read audiences in the bucket, enqueue single messages on their lane
             (high by default, low on request) and campaigns on the split queue, manage schedules in
             the stage's group (and pass their role), put/delete the automation rules (name prefix)
             of the stage's event bus, aimed at the split queue only, read the signing key.
* splitter — table read/write, read audiences (under ``audiences/`` only), enqueue on the high/low
             lanes and the split queue (continuations); write recipient exports (s3:PutObject and
             s3:AbortMultipartUpload under ``exports/`` only).
* ingest also reads ``exports/`` (s3:GetObject only): the download links it presigns carry its rights.
* sender   — table read/write, consume and re-enqueue (retries) on both lanes, SES
             SendEmail/SendRawEmail for the stage's identity and configuration set, SES GetAccount
             (the daily quota, read while SES is parked), read the SMTP and signing secrets.
* bounce   — table read/write, consume the bounce queue.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.automation_events import AutomationEvents
from infra.config import METRICS_NAMESPACE, SendingConfig
from infra.function import MailerFunction
from infra.nag import wildcard_action, wildcard_resource
from infra.queues import WorkQueues
from infra.scheduler import SendScheduler
from infra.secrets import MailSecrets
from infra.ses import SesEventPublishing
from infra.storage import Storage
from massmailer import spec
from massmailer.spec import ENV

SES_SEND_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")


class PipelineFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        service_name: str,
        sending: SendingConfig,
        storage: Storage,
        queues: WorkQueues,
        secrets: MailSecrets,
        scheduler: SendScheduler,
        automation_events: AutomationEvents,
        ses: SesEventPublishing,
        layer: lambda_.ILayerVersion,
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._storage = storage
        environment = _environment(
            stage=stage,
            service_name=service_name,
            sending=sending,
            storage=storage,
            queues=queues,
            secrets=secrets,
            scheduler=scheduler,
            automation_events=automation_events,
            ses=ses,
        )
        self.by_name: dict[str, MailerFunction] = {
            function_spec.name: MailerFunction(
                self,
                function_spec.name.title(),
                stage=stage,
                function_spec=function_spec,
                layer=layer,
                architecture=architecture,
                environment=environment,
                log_retention=log_retention,
                removal_policy=removal_policy,
            )
            for function_spec in spec.FUNCTIONS
        }
        self.ingest = self.by_name[spec.INGEST.name]
        self.splitter = self.by_name[spec.SPLITTER.name]
        self.sender = self.by_name[spec.SENDER.name]
        self.bounce = self.by_name[spec.BOUNCE.name]

        self._add_event_sources(queues, sending)
        for fn in self.by_name.values():
            self._grant_table(fn)
        self._grant_ingest(queues, secrets, scheduler)
        self._grant_automation_rules(automation_events)
        self._grant_splitter(queues)
        self._grant_sender(queues, secrets, ses, sending.ses_identity)
        # bounce: the job table and its own event source, nothing else.

    def set_unsubscribe_base_url(self, url: str) -> None:
        """Base URL of the public unsubscribe route: the sender puts it in List-Unsubscribe links."""
        for fn in (self.ingest, self.sender):
            fn.add_environment(ENV.unsubscribe_base_url, url)

    def _add_event_sources(self, queues: WorkQueues, sending: SendingConfig) -> None:
        """One event source per queue; each lane gets its own, so bulk mail cannot starve the high lane."""
        for work_queue in queues:
            queue_spec = work_queue.queue_spec
            self.by_name[queue_spec.consumer].function.add_event_source(
                event_sources.SqsEventSource(
                    work_queue.queue,
                    batch_size=queue_spec.batch_size,
                    max_batching_window=Duration.seconds(queue_spec.max_batching_window_seconds),
                    max_concurrency=sending.lane_max_concurrency.get(queue_spec.key, queue_spec.max_concurrency),
                    report_batch_item_failures=True,
                )
            )

    def _grant_ingest(self, queues: WorkQueues, secrets: MailSecrets, scheduler: SendScheduler) -> None:
        ingest = self.ingest
        self._grant_bucket_put(ingest, spec.AUDIENCE_PREFIX)
        self._grant_bucket_read(
            ingest, "an audience_object's header, checked before a campaign is accepted", spec.AUDIENCE_PREFIX
        )
        for queue in (queues.high, queues.low):  # a single message goes on the lane it asks for
            queue.grant_send_messages(ingest.function)
        queues.split.grant_send_messages(ingest.function)  # campaigns sent now
        scheduler.grant_manage_schedules(ingest.function)  # campaigns sent later (send_at), automations
        ingest.acknowledge_wildcards(
            "The ingest function creates, reads, updates and deletes schedules (a campaign's send_at, "
            "an automation's recurrence) "
            "whose names are chosen at run time; access is limited to schedules of this stage's group.",
            wildcard_resource(self, scheduler.schedules_arn),
        )
        secrets.signing_key.grant_read(ingest.function)  # verifies unsubscribe tokens
        self._grant_exports(ingest, "ReadRecipientExports", ("s3:GetObject",), "presigns download links")

    def _grant_automation_rules(self, automation_events: AutomationEvents) -> None:
        automation_events.grant_manage_rules(self.ingest.function)  # event-triggered automations
        self.ingest.acknowledge_wildcards(
            "The ingest function puts and deletes one EventBridge rule per event-triggered automation, "
            "named at run time; access is limited to rules with the stage's prefix on the stage's bus, "
            "and targets to the split queue.",
            wildcard_resource(self, automation_events.rules_arn),
        )

    def _grant_splitter(self, queues: WorkQueues) -> None:
        self._grant_bucket_read(
            self.splitter, "audiences (CSV/JSONL) uploaded by ingest or operators", spec.AUDIENCE_PREFIX
        )
        # An event-triggered automation's campaign is accepted in the splitter (kind automation_event),
        # which writes its inline audience under audiences/ as ingest does for POST /v1/campaigns.
        self._grant_bucket_put(self.splitter, spec.AUDIENCE_PREFIX)
        for queue in (queues.high, queues.low, queues.split):  # batches on the lanes, continuations
            queue.grant_send_messages(self.splitter.function)
        self._grant_exports(
            self.splitter,
            "WriteRecipientExports",
            ("s3:PutObject", "s3:AbortMultipartUpload"),
            "writes CSV exports by multipart upload",
        )

    def _grant_sender(
        self, queues: WorkQueues, secrets: MailSecrets, ses: SesEventPublishing, ses_identity: str
    ) -> None:
        sender = self.sender
        for queue in (queues.high, queues.low):
            queue.grant_send_messages(sender.function)  # retries are re-enqueued with a delay
        sender.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="SendThroughSes",
                actions=list(SES_SEND_ACTIONS),
                resources=[
                    Stack.of(self).format_arn(service="ses", resource="identity", resource_name=ses_identity),
                    ses.configuration_set_arn,
                ],
            )
        )
        sender.function.add_to_role_policy(
            iam.PolicyStatement(sid="ReadSesQuota", actions=["ses:GetAccount"], resources=["*"])
        )
        sender.acknowledge_wildcards(
            "ses:GetAccount (read-only: the account's sending quota, read while SES is parked for its daily "
            "quota) has no resource type, so IAM accepts only Resource '*' for it; it is the only action there.",
            wildcard_resource(self, "*"),
        )
        secrets.smtp.grant_read(sender.function)
        secrets.signing_key.grant_read(sender.function)  # signs List-Unsubscribe tokens
        self._grant_bucket_read(sender, "attachments matched by file name", spec.ATTACHMENT_PREFIX)

    def _grant_exports(self, fn: MailerFunction, sid: str, actions: tuple[str, ...], purpose: str) -> None:
        """Exactly ``actions`` on the objects under ``exports/`` of the data bucket (S3-managed keys)."""
        objects = self._storage.bucket.arn_for_objects(f"{spec.EXPORT_PREFIX}*")
        fn.function.add_to_role_policy(iam.PolicyStatement(sid=sid, actions=list(actions), resources=[objects]))
        fn.acknowledge_wildcards(
            f"The function {purpose}: object keys under {spec.EXPORT_PREFIX} of the one data bucket are "
            "chosen at run time (one per export).",
            wildcard_resource(self, objects),
        )

    def _grant_table(self, fn: MailerFunction) -> None:
        table = self._storage.table
        table.grant_read_write_data(fn.function)
        fn.acknowledge_wildcards(
            f"Read/write on the job table includes its indexes ({', '.join(i.name for i in spec.JOB_TABLE.indexes)}: "
            "provider message id -> message record); the wildcard covers only this table's indexes.",
            wildcard_resource(self, f"{table.table_arn}/index/*"),
        )

    def _grant_bucket_read(self, fn: MailerFunction, purpose: str, prefix: str = "") -> None:
        bucket = self._storage.bucket
        bucket.grant_read(fn.function, f"{prefix}*")
        fn.acknowledge_wildcards(
            f"Read access to the objects {('under ' + prefix + ' ') if prefix else ''}of the one data bucket "
            f"({purpose}); object keys are chosen at run time. The s3:GetObject*/GetBucket*/List* action "
            "groups are CDK's read grant.",
            wildcard_resource(self, bucket.arn_for_objects(f"{prefix}*")),
            wildcard_action("s3:GetObject*"),
            wildcard_action("s3:GetBucket*"),
            wildcard_action("s3:List*"),
        )

    def _grant_bucket_put(self, fn: MailerFunction, prefix: str) -> None:
        bucket = self._storage.bucket
        bucket.grant_put(fn.function, f"{prefix}*")
        fn.acknowledge_wildcards(
            f"Uploads are limited to keys under {prefix} of the one data bucket; the key names are "
            "generated per audience. s3:Abort* (abort multipart upload) is part of CDK's put grant.",
            wildcard_resource(self, bucket.arn_for_objects(f"{prefix}*")),
            wildcard_action("s3:Abort*"),
        )


def _environment(
    *,
    stage: str,
    service_name: str,
    sending: SendingConfig,
    storage: Storage,
    queues: WorkQueues,
    secrets: MailSecrets,
    scheduler: SendScheduler,
    automation_events: AutomationEvents,
    ses: SesEventPublishing,
) -> dict[str, str]:
    """The variables ``massmailer.settings.Settings.from_env`` reads (names from ``spec.ENV``)."""
    environment = {
        ENV.stage: stage,
        ENV.table: storage.table.table_name,
        ENV.bucket: storage.bucket.bucket_name,
        ENV.high_queue_url: queues.high.queue_url,
        ENV.low_queue_url: queues.low.queue_url,
        ENV.split_queue_url: queues.split.queue_url,
        ENV.configuration_set: ses.configuration_set_name,
        ENV.smtp_secret_arn: secrets.smtp.secret_arn,
        ENV.signing_secret_arn: secrets.signing_key.secret_arn,
        ENV.schedule_group: scheduler.group_name,
        ENV.scheduler_role_arn: scheduler.role.role_arn,
        ENV.schedule_dlq_arn: scheduler.dead_letter_queue.queue_arn,
        ENV.event_bus: automation_events.bus_name,
        "POWERTOOLS_SERVICE_NAME": service_name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }
    names = {field: getattr(ENV, field) for field in ENV.__dataclass_fields__}
    for field, value in sending.runtime_values().items():
        environment[names[field]] = _env_value(value)
    return environment


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
