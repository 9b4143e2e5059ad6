"""Functions: runtime, sizing, environment, event sources and least-privilege policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import METRICS_NAMESPACE
from massmailer import spec
from massmailer.settings import Settings
from massmailer.spec import ENV
from tests.infra.synthesis import Synthesized

XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _function(synth: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    logical_id = synth.logical_id("AWS::Lambda::Function", FunctionName=spec.resource_name(synth.stage, name))
    return logical_id, synth.resources[logical_id]["Properties"]


def _event_sources(synth: Synthesized, function_id: str) -> list[dict[str, Any]]:
    return [
        esm["Properties"]
        for esm in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if esm["Properties"]["FunctionName"] == {"Ref": function_id}
    ]


def _queue_arn(synth: Synthesized, queue: spec.QueueSpec) -> dict[str, Any]:
    return {"Fn::GetAtt": [synth.logical_id("AWS::SQS::Queue", QueueName=spec.queue_name(synth.stage, queue)), "Arn"]}


def _statements(synth: Synthesized, function_name: str) -> list[dict[str, Any]]:
    _, props = _function(synth, function_name)
    role_id = props["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _allowed(synth: Synthesized, function_name: str) -> set[str]:
    return {a for s in _statements(synth, function_name) for a in _actions(s)}


@pytest.mark.parametrize("function_spec", spec.FUNCTIONS, ids=lambda f: f.name)
def test_function_is_sized_and_configured_from_spec(synth: Synthesized, function_spec: spec.FunctionSpec) -> None:
    _, props = _function(synth, function_spec.name)

    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == [synth.config.architecture]
    assert props["Handler"] == "handler.handler"
    assert props["Timeout"] == function_spec.timeout_seconds
    assert props["MemorySize"] == function_spec.memory_mb
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert len(props["Layers"]) == 1


def test_functions_get_every_setting_the_shared_package_reads(synth: Synthesized) -> None:
    _, props = _function(synth, spec.SENDER.name)
    env = props["Environment"]["Variables"]

    expected_names = {getattr(ENV, field) for field in ENV.__dataclass_fields__}
    assert expected_names <= set(env), expected_names - set(env)
    assert env[ENV.stage] == synth.stage
    assert env[ENV.providers] == ",".join(synth.config.sending.providers)
    assert env[ENV.max_attempts] == str(synth.config.sending.max_attempts)
    assert env[ENV.maybe_sent_window] == str(synth.config.sending.maybe_sent_window)
    assert float(env[ENV.throttle_budget_hours]) == synth.config.sending.throttle_budget_hours
    assert float(env[ENV.quota_recheck_minutes]) == synth.config.sending.quota_recheck_minutes
    assert env[ENV.configuration_set] == spec.configuration_set_name(synth.stage)
    assert env[ENV.schedule_group] == spec.schedule_group_name(synth.stage)
    assert env["POWERTOOLS_SERVICE_NAME"] == f"massmailer-{synth.stage}"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE


@pytest.mark.parametrize("function_spec", spec.FUNCTIONS, ids=lambda f: f.name)
def test_the_shared_package_reads_every_sending_setting_the_stack_passes(
    synth: Synthesized, function_spec: spec.FunctionSpec
) -> None:
    """Contract between infra and massmailer.settings: a renamed variable fails here, not in AWS."""
    _, props = _function(synth, function_spec.name)
    env = props["Environment"]["Variables"]
    plain = {name: value if isinstance(value, str) else f"<{name}>" for name, value in env.items()}

    settings = Settings.from_env(plain)

    for field, value in synth.config.sending.runtime_values().items():
        assert getattr(settings, field) == value, field
    assert settings.stage == synth.stage
    assert settings.table_name == f"<{ENV.table}>"
    assert settings.configuration_set == spec.configuration_set_name(synth.stage)
    assert settings.schedule_group == spec.schedule_group_name(synth.stage)
    assert settings.signing_secret_arn and settings.smtp_secret_arn


@pytest.mark.parametrize("function_spec", [spec.INGEST, spec.SENDER], ids=lambda f: f.name)
def test_unsubscribe_links_point_at_the_stage_api(synth: Synthesized, function_spec: spec.FunctionSpec) -> None:
    _, props = _function(synth, function_spec.name)

    [rest_api] = synth.of_type("AWS::ApiGateway::RestApi")

    # The links are <base>/v1/unsubscribe?token=…: base is the stage URL (no custom domain configured).
    assert props["Environment"]["Variables"][ENV.unsubscribe_base_url] == {
        "Fn::Join": [
            "",
            [
                "https://",
                {"Ref": rest_api},
                ".execute-api.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                f"/{synth.stage}",
            ],
        ]
    }


def test_log_groups_keep_the_stage_retention(synth: Synthesized) -> None:
    for name in (f.name for f in spec.FUNCTIONS):
        group = synth.logical_id(
            "AWS::Logs::LogGroup", LogGroupName=f"/aws/lambda/{spec.resource_name(synth.stage, name)}"
        )
        assert synth.resources[group]["Properties"]["RetentionInDays"] == synth.config.log_retention_days


@pytest.mark.parametrize("lane", spec.LANES.values(), ids=lambda q: q.key)
def test_sender_drains_each_lane_through_its_own_capped_event_source(synth: Synthesized, lane: spec.QueueSpec) -> None:
    sender_id, _ = _function(synth, spec.SENDER.name)

    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": sender_id},
            "EventSourceArn": _queue_arn(synth, lane),
            "BatchSize": lane.batch_size,
            "MaximumBatchingWindowInSeconds": lane.max_batching_window_seconds,
            "ScalingConfig": {"MaximumConcurrency": synth.config.sending.lane_max_concurrency[lane.key]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_sender_has_exactly_the_two_lane_event_sources(synth: Synthesized) -> None:
    sender_id, _ = _function(synth, spec.SENDER.name)

    sources = {json.dumps(m["EventSourceArn"]) for m in _event_sources(synth, sender_id)}

    assert sources == {json.dumps(_queue_arn(synth, lane)) for lane in spec.LANES.values()}


@pytest.mark.parametrize("queue", [spec.SPLIT_QUEUE, spec.BOUNCE_QUEUE], ids=lambda q: q.key)
def test_splitter_and_bounce_consume_their_queue_with_partial_batch_responses(
    synth: Synthesized, queue: spec.QueueSpec
) -> None:
    consumer_id, _ = _function(synth, queue.consumer)

    [mapping] = _event_sources(synth, consumer_id)

    assert mapping["EventSourceArn"] == _queue_arn(synth, queue)
    assert mapping["BatchSize"] == queue.batch_size
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": queue.max_concurrency}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_no_function_policy_grants_on_every_resource_except_xray_and_the_senders_quota_read(
    synth: Synthesized,
) -> None:
    for function_spec in spec.FUNCTIONS:
        # ses:GetAccount (the daily quota, read while SES is parked) has no resource type: "*" only.
        allowed = XRAY_ACTIONS | ({"ses:GetAccount"} if function_spec == spec.SENDER else set())
        for statement in _statements(synth, function_spec.name):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if "*" in resources:
                assert _actions(statement) <= allowed, (function_spec.name, statement)


def test_the_sender_may_read_the_ses_quota_and_nothing_else_of_the_account(synth: Synthesized) -> None:
    [statement] = [s for s in _statements(synth, spec.SENDER.name) if _actions(s) & {"ses:GetAccount"}]

    assert _actions(statement) == {"ses:GetAccount"}
    assert statement["Resource"] == "*"


def test_only_the_sender_may_send_mail_and_only_as_the_stage_identity(synth: Synthesized) -> None:
    [ses_statement] = [s for s in _statements(synth, spec.SENDER.name) if _actions(s) & {"ses:SendEmail"}]
    resources = json.dumps(ses_statement["Resource"])

    assert _actions(ses_statement) == {"ses:SendEmail", "ses:SendRawEmail"}
    assert f":identity/{synth.config.sending.ses_identity}" in resources
    assert f":configuration-set/{spec.configuration_set_name(synth.stage)}" in resources
    for other in (spec.INGEST, spec.SPLITTER, spec.BOUNCE):
        assert not any(a.startswith("ses:") for a in _allowed(synth, other.name)), other.name


@pytest.mark.parametrize(
    ("function_spec", "prefixes"),
    [
        (spec.INGEST, (spec.AUDIENCE_PREFIX, spec.EXPORT_PREFIX)),
        (spec.SPLITTER, (spec.AUDIENCE_PREFIX,)),
        (spec.SENDER, (spec.ATTACHMENT_PREFIX,)),
    ],
    ids=lambda v: v.name if isinstance(v, spec.FunctionSpec) else "+".join(v),
)
def test_bucket_reads_are_limited_to_the_prefix_each_function_needs(
    synth: Synthesized, function_spec: spec.FunctionSpec, prefixes: tuple[str, ...]
) -> None:
    reads = [
        s for s in _statements(synth, function_spec.name) if any(a.startswith("s3:GetObject") for a in _actions(s))
    ]
    assert reads, function_spec.name
    for statement in reads:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        objects = [json.dumps(r) for r in resources if "/" in json.dumps(r)]
        assert objects and all(any(f"/{p}*" in r for p in prefixes) for r in objects), (function_spec.name, objects)


def test_exports_are_written_only_by_the_splitter_and_read_only_by_ingest_under_their_prefix(
    synth: Synthesized,
) -> None:
    def on_exports(function_name: str) -> list[tuple[set[str], str]]:
        return [
            (_actions(s), json.dumps(s["Resource"]))
            for s in _statements(synth, function_name)
            if f"/{spec.EXPORT_PREFIX}" in json.dumps(s["Resource"])
        ]

    assert on_exports(spec.SPLITTER.name) == [
        ({"s3:PutObject", "s3:AbortMultipartUpload"}, on_exports(spec.SPLITTER.name)[0][1])
    ]
    assert [a for a, _ in on_exports(spec.INGEST.name)] == [{"s3:GetObject"}]
    assert on_exports(spec.SENDER.name) == [] and on_exports(spec.BOUNCE.name) == []
    for function_spec in spec.FUNCTIONS:
        puts = [s for s in _statements(synth, function_spec.name) if "s3:PutObject" in _actions(s)]
        for statement in puts:
            resource = json.dumps(statement["Resource"])
            assert f"/{spec.EXPORT_PREFIX}*" in resource or f"/{spec.AUDIENCE_PREFIX}*" in resource, resource
    rules = synth.of_type("AWS::S3::Bucket")
    expiring = [
        r
        for b in rules.values()
        for r in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
        if r.get("Prefix") == spec.EXPORT_PREFIX
    ]
    assert [r["ExpirationInDays"] for r in expiring] == [spec.EXPORT_RETENTION_DAYS]


def test_only_ingest_manages_schedules_of_the_stage_group(synth: Synthesized) -> None:
    [statement] = [
        s for s in _statements(synth, spec.INGEST.name) if any(a.startswith("scheduler:") for a in _actions(s))
    ]

    assert _actions(statement) == {
        "scheduler:CreateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
        "scheduler:UpdateSchedule",
    }
    assert f":schedule/{spec.schedule_group_name(synth.stage)}/*" in json.dumps(statement["Resource"])
    assert "iam:PassRole" in _allowed(synth, spec.INGEST.name)
    for other in (spec.SPLITTER, spec.SENDER, spec.BOUNCE):
        assert not {a for a in _allowed(synth, other.name) if a.startswith("scheduler:") or a == "iam:PassRole"}


@pytest.mark.parametrize(
    ("function_spec", "queues"),
    [
        (spec.INGEST, {spec.HIGH_LANE, spec.LOW_LANE, spec.SPLIT_QUEUE}),
        (spec.SPLITTER, {spec.HIGH_LANE, spec.LOW_LANE, spec.SPLIT_QUEUE}),
        (spec.SENDER, {spec.HIGH_LANE, spec.LOW_LANE}),
        (spec.BOUNCE, set()),
    ],
    ids=lambda v: v.name if isinstance(v, spec.FunctionSpec) else "",
)
def test_each_function_may_enqueue_only_where_it_must(
    synth: Synthesized, function_spec: spec.FunctionSpec, queues: set[spec.QueueSpec]
) -> None:
    sendable = [
        json.dumps(resource)
        for statement in _statements(synth, function_spec.name)
        if "sqs:SendMessage" in _actions(statement)
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    ]

    assert sorted(sendable) == sorted(json.dumps(_queue_arn(synth, q)) for q in queues)


def test_bounce_function_cannot_enqueue_or_read_secrets(synth: Synthesized) -> None:
    allowed = _allowed(synth, spec.BOUNCE.name)

    assert "sqs:SendMessage" not in allowed
    assert not {a for a in allowed if a.startswith(("secretsmanager:", "s3:"))}


def test_the_splitter_may_write_audiences_for_event_triggered_automations(synth: Synthesized) -> None:
    """An event on the stage's bus reaches the splitter, which accepts the automation's campaign and
    writes its one-recipient audience under audiences/ (moto does not enforce IAM: only this catches it)."""
    puts = [
        json.dumps(s["Resource"])
        for s in _statements(synth, spec.SPLITTER.name)
        if "s3:PutObject" in _actions(s) and f"/{spec.AUDIENCE_PREFIX}*" in json.dumps(s["Resource"])
    ]
    assert puts, "the splitter cannot write audiences/ objects"
