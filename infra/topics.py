"""SNS topics encrypted with a customer-managed KMS key that an AWS service may publish with."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct


def encrypted_topic(
    scope: Construct,
    construct_id: str,
    *,
    topic_name: str,
    publisher_service: str,
    removal_policy: RemovalPolicy,
) -> sns.Topic:
    """A TLS-only topic whose key lets ``publisher_service`` (e.g. "ses.amazonaws.com") publish.

    AWS services cannot publish to topics encrypted with the AWS-managed ``aws/sns`` key, hence a
    customer-managed key (rotated yearly) whose policy admits the service from this account only.
    """
    key = kms.Key(
        scope,
        f"{construct_id}Key",
        description=f"Encrypts SNS topic {topic_name}",
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )
    key.grant(
        iam.ServicePrincipal(
            publisher_service,
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        ),
        "kms:GenerateDataKey*",
        "kms:Decrypt",
    )
    return sns.Topic(scope, construct_id, topic_name=topic_name, master_key=key, enforce_ssl=True)
