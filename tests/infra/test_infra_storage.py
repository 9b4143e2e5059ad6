"""Storage: the job table matches spec.JOB_TABLE; the data bucket is private, encrypted, logged."""

from __future__ import annotations

from massmailer import spec
from tests.infra.synthesis import Synthesized


def test_job_table_keys_and_indexes_match_spec(synth: Synthesized) -> None:
    table = spec.JOB_TABLE
    props = synth.resources[synth.logical_id("AWS::DynamoDB::Table", TableName=spec.table_name(synth.stage))][
        "Properties"
    ]

    assert props["KeySchema"] == [
        {"AttributeName": table.partition_key, "KeyType": "HASH"},
        {"AttributeName": table.sort_key, "KeyType": "RANGE"},
    ]
    assert [
        (gsi["IndexName"], gsi["KeySchema"], gsi["Projection"]["ProjectionType"])
        for gsi in props["GlobalSecondaryIndexes"]
    ] == [
        (
            index.name,
            [
                {"AttributeName": index.partition_key, "KeyType": "HASH"},
                {"AttributeName": index.sort_key, "KeyType": "RANGE"},
            ],
            "ALL",
        )
        for index in table.indexes
    ]
    key_names = {table.partition_key, table.sort_key} | {
        name for index in table.indexes for name in (index.partition_key, index.sort_key)
    }
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == dict.fromkeys(
        key_names, "S"
    )


def test_job_table_is_on_demand_recoverable_expiring_and_encrypted(synth: Synthesized) -> None:
    props = synth.resources[synth.logical_id("AWS::DynamoDB::Table", TableName=spec.table_name(synth.stage))][
        "Properties"
    ]

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": spec.JOB_TABLE.ttl_attribute, "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_table_survives_stack_deletion_only_where_the_stage_retains_data(synth: Synthesized) -> None:
    table = synth.resources[synth.logical_id("AWS::DynamoDB::Table", TableName=spec.table_name(synth.stage))]

    expected = "Retain" if synth.config.removal_policy == "retain" else "Delete"
    assert table["DeletionPolicy"] == expected
    assert table["Properties"].get("DeletionProtectionEnabled", False) is (expected == "Retain")


def test_buckets_are_private_encrypted_and_tls_only(synth: Synthesized) -> None:
    buckets = synth.of_type("AWS::S3::Bucket")
    policies = synth.of_type("AWS::S3::BucketPolicy").values()

    assert len(buckets) == 2  # data + its access logs
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert any(
            p["Properties"]["Bucket"] == {"Ref": logical_id}
            and any(
                s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                for s in p["Properties"]["PolicyDocument"]["Statement"]
            )
            for p in policies
        ), f"{logical_id} accepts plain HTTP"


def test_data_bucket_writes_server_access_logs(synth: Synthesized) -> None:
    logged = [b for b in synth.of_type("AWS::S3::Bucket").values() if "LoggingConfiguration" in b["Properties"]]

    assert len(logged) == 1
