"""The API's edges through the ingest handler (API Gateway events, the in-memory stores): the
Idempotency-Key's answers (replay marked, 409 with Retry-After) and bad input that must be a 4xx
naming the field — never a 5xx, never accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.ingest import handler as ingest_handler
from massmailer import intake
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import MAX_JSON_DEPTH, MAX_STORED_CONTENT_BYTES, SendRequest, check_json_depth
from massmailer.store import Stores
from tests.support import api_event, context


@pytest.fixture
def ctx() -> intake.IntakeContext:
    stores = Stores.in_memory()
    return intake.IntakeContext(
        campaigns=stores.campaigns,
        messages=stores.messages,
        suppressions=stores.suppressions,
        idempotency=stores.idempotency,
        queue=InMemoryQueue(),
        blobs=InMemoryBlobs(),
        schedules=None,
        from_address="noreply@example.com",
    )


def _post(
    ctx: intake.IntakeContext, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    response = ingest_handler.handler(api_event("POST", path, body, headers), context("ingest"), ctx)
    names = {k.lower(): ",".join(map(str, v)) for k, v in (response.get("multiValueHeaders") or {}).items()}
    names.update({k.lower(): str(v) for k, v in (response.get("headers") or {}).items()})
    return response["statusCode"], names, json.loads(response["body"] or "null")


def _queued(ctx: intake.IntakeContext) -> int:
    return sum(len(items) for items in ctx.queue.sent.values())  # type: ignore[attr-defined]


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


MESSAGE = {"to": "jane@example.com", "subject": "Receipt", "text": "Thanks"}
CAMPAIGN = {"name": "n", "subject": "s", "text": "t", "audience": [{"email": "a@example.com"}]}


# -- Idempotency-Key ---------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), [("/v1/messages", MESSAGE), ("/v1/campaigns", CAMPAIGN)])
def test_a_finished_key_replays_the_first_response_marked_as_a_replay(
    ctx: intake.IntakeContext, path: str, body: dict[str, Any]
) -> None:
    status, headers, first = _post(ctx, path, body, {"Idempotency-Key": "k-1"})
    assert status == 202 and "idempotent-replayed" not in headers

    again_status, again_headers, again = _post(ctx, path, body, {"idempotency-key": "k-1"})

    assert (again_status, again) == (202, first) and again_headers["idempotent-replayed"] == "true"
    assert _queued(ctx) == 1
    other_status, _, other = _post(ctx, path, {**body, "text": "other"}, {"Idempotency-Key": "k-1"})
    assert other_status == 422 and _fields(other) == ["Idempotency-Key"]


def test_a_key_in_flight_gets_409_with_retry_after(ctx: intake.IntakeContext) -> None:
    request_hash = intake._request_hash(SendRequest.model_validate(MESSAGE).model_dump(mode="json", by_alias=True))
    assert ctx.idempotency.begin("message:k-2", request_hash, {"message_id": "msg-1"}).mine

    status, headers, body = _post(ctx, "/v1/messages", MESSAGE, {"Idempotency-Key": "k-2"})

    assert status == 409 and int(headers["retry-after"]) >= 1 and _fields(body) == ["Idempotency-Key"]
    assert _queued(ctx) == 0


# -- bad input: a 4xx naming the field, never a 5xx --------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _raw_message(variables: str) -> str:
    """A message body as raw JSON text, with ``variables`` given as raw JSON text too."""
    return '{"to": "jane@example.com", "subject": "s", "text": "t", "variables": ' + variables + "}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 5000])
def test_json_nested_past_the_limit_in_variables_is_422_naming_the_field(ctx: intake.IntakeContext, depth: int) -> None:
    raw = _raw_message('{"deep": ' + _nested(depth) + "}")
    status, _, body = _post(ctx, "/v1/messages", raw)
    assert status == 422 and _fields(body) == ["variables"] and "32 levels" in body["errors"][0]["reason"]
    assert _queued(ctx) == 0


def test_json_nested_past_the_limit_in_an_audience_is_422_naming_the_field(ctx: intake.IntakeContext) -> None:
    raw = json.dumps({**CAMPAIGN, "audience": [{"email": "a@example.com", "variables": {}}]})
    raw = raw.replace('"variables": {}', '"variables": {"x": ' + _nested(5000) + "}")
    status, _, body = _post(ctx, "/v1/campaigns", raw)
    assert status == 422 and _fields(body) == ["audience"]


def test_json_within_the_limit_is_accepted(ctx: intake.IntakeContext) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH - 2):  # the body and variables are two of the levels
        deep = [deep]
    status, _, _ = _post(ctx, "/v1/messages", {**MESSAGE, "variables": {"deep": deep}})
    assert status == 202


def test_the_depth_scan_ignores_brackets_inside_strings() -> None:
    check_json_depth(json.dumps({"text": "[" * 5000 + '\\"{' * 100}))


def test_a_5000_deep_value_given_to_the_model_is_refused_not_a_recursion_error() -> None:
    deep: Any = {}
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(ValidationError) as refused:
        SendRequest.model_validate({**MESSAGE, "variables": deep})
    assert refused.value.errors()[0]["loc"] == ("variables",)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_tokens_are_refused_naming_the_field(ctx: intake.IntakeContext, token: str) -> None:
    raw = _raw_message('{"total": ' + token + "}")
    status, _, body = _post(ctx, "/v1/messages", raw)
    assert status == 422 and _fields(body) == ["variables"] and "total" in body["errors"][0]["reason"]
    assert _queued(ctx) == 0


def test_nan_in_a_campaign_audience_is_refused(ctx: intake.IntakeContext) -> None:
    raw = json.dumps({**CAMPAIGN, "audience": [{"email": "a@example.com", "variables": {"n": float("nan")}}]})
    status, _, body = _post(ctx, "/v1/campaigns", raw)
    assert status == 422 and _fields(body)[0].startswith("audience")


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/campaigns"])
def test_content_too_large_for_one_item_is_413_naming_the_limit(ctx: intake.IntakeContext, path: str) -> None:
    big = {"html": "é" * 200_000, "text": "中" * 200_000}  # within html/text's 200,000 characters each
    status, _, body = _post(ctx, path, {**(MESSAGE if path == "/v1/messages" else CAMPAIGN), **big})
    assert status == 413 and _fields(body) == ["html/text"] and str(MAX_STORED_CONTENT_BYTES) in body["error"]
    assert _queued(ctx) == 0 and not ctx.blobs.objects  # type: ignore[attr-defined]


def test_a_request_refused_before_any_write_leaves_its_key_free(ctx: intake.IntakeContext) -> None:
    missing = {**CAMPAIGN, "audience": None, "audience_object": "audiences/missing.csv"}
    status, _, body = _post(ctx, "/v1/campaigns", missing, {"Idempotency-Key": "k-3"})
    assert status == 422 and _fields(body) == ["audience_object"]

    status, _, _ = _post(ctx, "/v1/campaigns", CAMPAIGN, {"Idempotency-Key": "k-3"})  # corrected, same key

    assert status == 202


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/messages", {**MESSAGE, "to": "x" * 65 + "@example.com"}, "to"),
        ("/v1/messages", {**MESSAGE, "reply_to": "ü" * 33 + "@example.com"}, "reply_to"),
        ("/v1/campaigns", {**CAMPAIGN, "audience": [{"email": "x" * 65 + "@example.com"}]}, "audience"),
    ],
)
def test_a_local_part_over_64_octets_is_422(
    ctx: intake.IntakeContext, path: str, body: dict[str, Any], field: str
) -> None:
    status, _, answer = _post(ctx, path, body)
    assert status == 422 and any(f.startswith(field) for f in _fields(answer))
    assert any("64" in e["reason"] for e in answer["errors"])


@pytest.mark.parametrize("name", ["X-MassMailer-Message", "x-massmailer-campaign", "X-MASSMAILER-Anything"])
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/campaigns"])
def test_every_x_massmailer_header_is_reserved(ctx: intake.IntakeContext, path: str, name: str) -> None:
    base = MESSAGE if path == "/v1/messages" else CAMPAIGN
    status, _, body = _post(ctx, path, {**base, "headers": {name: "mine"}})
    assert status == 422 and _fields(body) == ["headers"] and name in body["errors"][0]["reason"]
    assert _queued(ctx) == 0


def test_other_x_headers_are_still_allowed(ctx: intake.IntakeContext) -> None:
    status, _, _ = _post(ctx, "/v1/messages", {**MESSAGE, "headers": {"X-MassMailerish": "ok", "X-Order": "42"}})
    assert status == 202
