"""Create MassMailer's resources from ``massmailer.spec`` — the same spec the CDK stack reads.

Used by the local runtime (against moto in server mode) and by the integration tests (moto in
process). Returns the environment the functions read, as ``massmailer.settings`` expects it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3

from massmailer import spec
from massmailer.spec import ENV, JOB_TABLE, QUEUES

LOCAL_ACCOUNT = "123456789012"


def create_job_table(dynamodb: Any, name: str) -> None:
    """The job table as ``massmailer.spec.JOB_TABLE`` describes it: keys, the provider-id GSI, TTL."""
    index = JOB_TABLE.indexes
    attrs = (
        {JOB_TABLE.partition_key, JOB_TABLE.sort_key} | {i.partition_key for i in index} | {i.sort_key for i in index}
    )
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)],
        KeySchema=[
            {"AttributeName": JOB_TABLE.partition_key, "KeyType": "HASH"},
            {"AttributeName": JOB_TABLE.sort_key, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": i.name,
                "KeySchema": [
                    {"AttributeName": i.partition_key, "KeyType": "HASH"},
                    {"AttributeName": i.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for i in index
        ],
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": JOB_TABLE.ttl_attribute}
    )


def _queue(sqs: Any, stage: str, queue: spec.QueueSpec) -> tuple[str, str]:
    dlq_url = sqs.create_queue(
        QueueName=spec.dlq_name(stage, queue),
        Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_days * 86400)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=spec.queue_name(stage, queue),
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(queue.retention_days * 86400),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}),
        },
    )["QueueUrl"]
    return url, dlq_url


def provision(
    stage: str = "local",
    *,
    from_address: str = "noreply@massmailer.test",
    session: Any = None,
    endpoint_url: str | None = None,
    service_endpoints: Mapping[str, str] | None = None,
    track_deliveries: bool = True,
) -> dict[str, Any]:
    """Create every resource; return ``{"env": {...}, "queues": {key: url}, "dlqs": {key: url}, ...}``.

    ``endpoint_url`` points the clients at an emulator (the local runtime's moto server), and
    ``service_endpoints`` one service at another (``{"dynamodb": url}``); without them the clients use
    the standard settings (``AWS_ENDPOINT_URL`` or AWS itself; moto in process for the tests).
    """
    session = session or boto3.session.Session()

    def client(service: str) -> Any:
        url = (service_endpoints or {}).get(service) or endpoint_url
        return session.client(service, **({"endpoint_url": url} if url else {}))

    dynamodb = client("dynamodb")
    sqs = client("sqs")
    s3 = client("s3")
    sns = client("sns")
    sesv2 = client("sesv2")
    scheduler = client("scheduler")
    iam = client("iam")
    events = client("events")
    region = session.region_name or "us-east-1"

    table = spec.table_name(stage)
    create_job_table(dynamodb, table)
    bucket = spec.resource_name(stage, "data")
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})

    queues: dict[str, str] = {}
    dlqs: dict[str, str] = {}
    for queue in QUEUES:
        queues[queue.key], dlqs[queue.key] = _queue(sqs, stage, queue)

    # SES: the sending identity, a configuration set publishing events to SNS, SNS -> bounce queue.
    domain = from_address.rpartition("@")[2]
    sesv2.create_email_identity(EmailIdentity=domain)
    sesv2.create_email_identity(EmailIdentity=from_address)
    config_set = spec.configuration_set_name(stage)
    event_types = spec.ses_event_types(track_deliveries)
    topic_arn = sns.create_topic(Name=spec.topic_name(stage))["TopicArn"]
    sesv2.create_configuration_set(ConfigurationSetName=config_set)
    try:
        sesv2.create_configuration_set_event_destination(
            ConfigurationSetName=config_set,
            EventDestinationName="sns",
            EventDestination={
                "Enabled": True,
                "MatchingEventTypes": list(event_types),
                "SnsDestination": {"TopicArn": topic_arn},
            },
        )
    except Exception:  # noqa: S110 - older moto versions lack event destinations; the simulator publishes anyway
        pass
    bounce_arn = sqs.get_queue_attributes(QueueUrl=queues["bounce"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=bounce_arn)

    group = spec.schedule_group_name(stage)
    scheduler.create_schedule_group(Name=group)
    # Where EventBridge Scheduler puts invocations it could not deliver (a schedule's DeadLetterConfig).
    schedule_dlq_url = sqs.create_queue(
        QueueName=spec.schedule_dlq_name(stage), Attributes={"MessageRetentionPeriod": str(14 * 86400)}
    )["QueueUrl"]
    role_arn = iam.create_role(
        RoleName=spec.resource_name(stage, "scheduler"),
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "scheduler.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]

    # The stage's EventBridge bus: automations' rules send matching events to the split queue. moto
    # delivers PutEvents to SQS targets itself, InputTransformer included (no emulation needed).
    event_bus = spec.event_bus_name(stage)
    events.create_event_bus(Name=event_bus)

    env = {
        ENV.stage: stage,
        ENV.table: table,
        ENV.bucket: bucket,
        ENV.high_queue_url: queues["high"],
        ENV.low_queue_url: queues["low"],
        ENV.split_queue_url: queues["split"],
        ENV.configuration_set: config_set,
        ENV.from_address: from_address,
        ENV.schedule_group: group,
        ENV.scheduler_role_arn: role_arn,
        ENV.schedule_dlq_arn: sqs.get_queue_attributes(QueueUrl=schedule_dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"],
        ENV.event_bus: event_bus,
    }
    return {
        "env": env,
        "queues": queues,
        "dlqs": dlqs,
        "topic_arn": topic_arn,
        "bucket": bucket,
        "table": table,
        "schedule_group": group,
        "schedule_dlq": schedule_dlq_url,
        "event_bus": event_bus,
        "configuration_set": config_set,
        # What the configuration set publishes, and where (moto stores no event destinations).
        "event_destinations": {config_set: {"topic_arn": topic_arn, "event_types": list(event_types)}},
    }
