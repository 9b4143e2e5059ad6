"""Storage: the DynamoDB job table and the S3 bucket for audiences and attachments."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge
from massmailer import spec


def _string_key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: RemovalPolicy,
    empty_on_delete: bool,
    lifecycle_rule: s3.LifecycleRule,
    access_logs: s3.IBucket | None = None,
) -> s3.Bucket:
    """An encrypted bucket that refuses plain HTTP and any public access."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy,
        auto_delete_objects=empty_on_delete,
        lifecycle_rules=[lifecycle_rule],
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix="data/" if access_logs else None,
    )


class Storage(Construct):
    """The job table (``spec.JOB_TABLE``) and the data bucket, with its access-log bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        removal_policy: RemovalPolicy,
        empty_buckets_on_delete: bool,
        access_log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        table_spec = spec.JOB_TABLE
        self.table = dynamodb.Table(
            self,
            "JobTable",
            table_name=spec.table_name(stage),
            partition_key=_string_key(table_spec.partition_key),
            sort_key=_string_key(table_spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=table_spec.ttl_attribute,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        for index in table_spec.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_string_key(index.partition_key),
                sort_key=_string_key(index.sort_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )

        self.access_log_bucket = _private_bucket(
            self,
            "AccessLogs",
            removal_policy=removal_policy,
            empty_on_delete=empty_buckets_on_delete,
            lifecycle_rule=s3.LifecycleRule(expiration=Duration.days(access_log_retention_days)),
        )
        acknowledge(
            self.access_log_bucket,
            "S1",
            "This bucket is the server-access-log target of the data bucket; logging it into "
            "itself would loop and logging it elsewhere adds a bucket with the same problem.",
        )
        self.bucket = _private_bucket(
            self,
            "Data",
            removal_policy=removal_policy,
            empty_on_delete=empty_buckets_on_delete,
            lifecycle_rule=s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
            access_logs=self.access_log_bucket,
        )
        # Recipient exports are downloads, not records: they go after a week (their items' TTL too).
        self.bucket.add_lifecycle_rule(prefix=spec.EXPORT_PREFIX, expiration=Duration.days(spec.EXPORT_RETENTION_DAYS))
