"""ingest λ: the HTTPS API (API Gateway REST proxy → Powertools resolver, pydantic validation)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from massmailer import automations, intake, wiring
from massmailer.automations import AutomationSpec, TriggerRequest
from massmailer.errors import TemplateError
from massmailer.exports import ExportRecipientsRequest
from massmailer.lifecycle import TransitionNotAllowed
from massmailer.models import CampaignRequest, NestingTooDeep, ResumeRequest, SendRequest, check_json_depth
from massmailer.queues import QueueUnavailable
from massmailer.store import StoreUnavailable

logger = Logger()


def _json_body(raw: str) -> Any:
    """The body, parsed once its nesting is known to be within ``MAX_JSON_DEPTH`` (422 otherwise:
    the parser recurses per level)."""
    try:
        check_json_depth(raw)
    except NestingTooDeep as exc:
        raise RequestValidationError(
            [{"type": "too_deep", "loc": ("body", exc.field), "msg": str(exc), "input": {}, "ctx": {}}]
        ) from None
    return json.loads(raw)


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_json_body)


def _context() -> intake.IntakeContext:
    return app.context.get("intake") or wiring.intake_context()


def _idempotency_key() -> str | None:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    key = headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 200):
        raise intake.Conflict("Idempotency-Key must be 1 to 200 characters")
    return key


def _error(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    body = {"error": message, **({"errors": errors} if errors else {})}
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _accepted(answer: intake.Accepted) -> Response[dict[str, Any]]:
    """The answer; a replay of an Idempotency-Key's first response says so (``Idempotent-Replayed``)."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(answer.status_code, content_types.APPLICATION_JSON, answer.body, headers=headers)


@app.post("/v1/messages")
def post_message(request: SendRequest) -> Response[dict[str, Any]]:
    return _accepted(intake.accept_message(_context(), request, _idempotency_key()))


@app.post("/v1/campaigns")
def post_campaign(request: CampaignRequest) -> Response[dict[str, Any]]:
    return _accepted(intake.accept_campaign(_context(), request, _idempotency_key()))


@app.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> dict[str, Any]:
    return intake.message_status(_context(), message_id)


@app.get("/v1/campaigns")
def list_campaigns() -> dict[str, Any]:
    query = app.current_event.query_string_parameters or {}
    return intake.list_campaigns(
        _context(), query.get("limit"), query.get("cursor"), query.get("status"), query.get("name_prefix")
    )


@app.get("/v1/campaigns/<campaign_id>")
def get_campaign(campaign_id: str) -> dict[str, Any]:
    return intake.campaign_status(_context(), campaign_id)


@app.get("/v1/campaigns/<campaign_id>/recipients")
def campaign_recipients(campaign_id: str) -> dict[str, Any]:
    query = app.current_event.query_string_parameters or {}
    return intake.campaign_recipients(
        _context(), campaign_id, query.get("status"), query.get("limit"), query.get("cursor")
    )


@app.post("/v1/campaigns/<campaign_id>/recipients/export")
def export_recipients(campaign_id: str) -> Response[dict[str, Any]]:
    body = app.current_event.body
    try:
        request = ExportRecipientsRequest.model_validate_json(body) if body and body.strip() else None
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return _error(400, "request body is not valid JSON")
        errors = [{"field": ".".join(map(str, e["loc"])) or "body", "reason": e["msg"]} for e in exc.errors()]
        return _error(422, "request body is invalid", errors)
    answer = intake.export_recipients(_context(), campaign_id, request.status if request else None)
    return Response(202, content_types.APPLICATION_JSON, answer)


@app.get("/v1/exports/<export_id>")
def get_export(export_id: str) -> dict[str, Any]:
    return intake.export_status(_context(), export_id)


@app.post("/v1/campaigns/<campaign_id>/pause")
def pause_campaign(campaign_id: str) -> dict[str, Any]:
    return intake.pause_campaign(_context(), campaign_id)


@app.post("/v1/campaigns/<campaign_id>/resume")
def resume_campaign(campaign_id: str) -> Response[dict[str, Any]]:
    body = app.current_event.body
    try:
        request = ResumeRequest.model_validate_json(body) if body and body.strip() else ResumeRequest()
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return _error(400, "request body is not valid JSON")
        errors = [{"field": ".".join(map(str, e["loc"])) or "body", "reason": e["msg"]} for e in exc.errors()]
        return _error(422, "request body is invalid", errors)
    answer = intake.resume_campaign(_context(), campaign_id, request.acknowledge)
    return Response(200, content_types.APPLICATION_JSON, answer)


@app.post("/v1/campaigns/<campaign_id>/cancel")
def cancel_campaign(campaign_id: str) -> dict[str, Any]:
    return intake.cancel_campaign(_context(), campaign_id)


def _automations() -> automations.AutomationContext:
    return app.context.get("automations") or wiring.automation_context()


def _invalid_body(exc: ValidationError) -> Response:
    errors = [{"field": ".".join(map(str, e["loc"])) or "body", "reason": e["msg"]} for e in exc.errors()]
    return _error(422, "request body is invalid", errors)


@app.post("/v1/automations")
def post_automation(request: AutomationSpec) -> Response[dict[str, Any]]:
    answer = automations.create(_automations(), request, _idempotency_key())
    return Response(201, content_types.APPLICATION_JSON, answer)


@app.get("/v1/automations")
def list_automations() -> dict[str, Any]:
    query = app.current_event.query_string_parameters or {}
    return automations.list_automations(_automations(), query.get("limit"), query.get("cursor"))


@app.get("/v1/automations/<automation_id>")
def get_automation(automation_id: str) -> dict[str, Any]:
    return automations.view(_automations(), automation_id)


@app.patch("/v1/automations/<automation_id>")
def patch_automation(automation_id: str) -> Response[dict[str, Any]]:
    body = app.current_event.body
    try:
        changes = json.loads(body) if body and body.strip() else None
    except ValueError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(changes, dict):
        return _error(422, "request body is invalid", [{"field": "body", "reason": "must be a JSON object"}])
    try:
        answer = automations.patch(_automations(), automation_id, changes)
    except ValidationError as exc:
        return _invalid_body(exc)
    return Response(200, content_types.APPLICATION_JSON, answer)


@app.delete("/v1/automations/<automation_id>")
def delete_automation(automation_id: str) -> Response[None]:
    automations.delete(_automations(), automation_id)
    return Response(204, content_types.APPLICATION_JSON, None)


@app.post("/v1/automations/<automation_id>/pause")
def pause_automation(automation_id: str) -> dict[str, Any]:
    return automations.pause(_automations(), automation_id)


@app.post("/v1/automations/<automation_id>/resume")
def resume_automation(automation_id: str) -> dict[str, Any]:
    return automations.resume(_automations(), automation_id)


@app.post("/v1/automations/<automation_id>/run-now")
def run_automation_now(automation_id: str) -> Response[dict[str, Any]]:
    return Response(202, content_types.APPLICATION_JSON, automations.run_now(_automations(), automation_id))


@app.post("/v1/automations/<automation_id>/trigger")
def trigger_automation(automation_id: str, request: TriggerRequest) -> Response[dict[str, Any]]:
    return _accepted(automations.trigger(_automations(), automation_id, request, _idempotency_key()))


@app.get("/v1/automations/<automation_id>/runs")
def automation_runs(automation_id: str) -> dict[str, Any]:
    query = app.current_event.query_string_parameters or {}
    return automations.list_runs(_automations(), automation_id, query.get("limit"), query.get("cursor"))


@app.get("/v1/automations/<automation_id>/runs/<run_id>")
def automation_run(automation_id: str, run_id: str) -> dict[str, Any]:
    return automations.get_run(_automations(), automation_id, run_id)


# Pages for people (HTML, never JSON): no caching, no referrer (the token is in the URL), no scripts.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


@app.route("/v1/unsubscribe", method=["GET", "POST"])
def unsubscribe() -> Response[str]:
    """GET shows the page (changes nothing); POST with List-Unsubscribe=One-Click unsubscribes."""
    event = app.current_event
    token = (event.query_string_parameters or {}).get("token") or ""
    if event.http_method == "POST":
        content_type = {k.lower(): v for k, v in (event.headers or {}).items()}.get("content-type")
        page = intake.unsubscribe(_context(), token, event.decoded_body, content_type)
    else:
        page = intake.unsubscribe_page(_context(), token)
    return Response(page.status, "text/html; charset=utf-8", page.html, headers=_PAGE_HEADERS)


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response:
    errors = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
            "reason": e.get("msg", e["type"]),
        }
        for e in exc.errors()
    ]
    status = 400 if any(e["type"] == "json_invalid" for e in exc.errors()) else 422
    return _error(status, "request body is invalid" if status == 422 else "request body is not valid JSON", errors)


@app.exception_handler(TemplateError)
def _bad_template(exc: TemplateError) -> Response:
    return _error(422, str(exc), [{"field": "html/text/subject", "reason": str(exc)}])


@app.exception_handler(ValueError)
def _bad_value(exc: ValueError) -> Response:
    return _error(400, str(exc))


@app.exception_handler(intake.Conflict)
def _conflict(exc: intake.Conflict) -> Response:
    return _error(422, str(exc), [{"field": "Idempotency-Key", "reason": str(exc)}])


@app.exception_handler(intake.KeyInFlight)
def _in_flight(exc: intake.KeyInFlight) -> Response:
    body = {"error": str(exc), "errors": [{"field": "Idempotency-Key", "reason": str(exc)}]}
    return Response(409, content_types.APPLICATION_JSON, body, headers={"Retry-After": str(exc.retry_after)})


@app.exception_handler(intake.ContentTooLarge)
def _too_large(exc: intake.ContentTooLarge) -> Response:
    return _error(413, str(exc), [{"field": "html/text", "reason": str(exc)}])


@app.exception_handler(intake.UnusableAudience)
def _unusable_audience(exc: intake.UnusableAudience) -> Response:
    return _error(422, str(exc), [{"field": "audience_object", "reason": str(exc)}])


@app.exception_handler(TransitionNotAllowed)
def _not_allowed(exc: TransitionNotAllowed) -> Response:
    return _error(409, str(exc))


@app.exception_handler(automations.AutomationConflict)
def _automation_conflict(exc: automations.AutomationConflict) -> Response:
    return _error(409, str(exc))


@app.exception_handler(intake.NotExportable)
def _not_exportable(exc: intake.NotExportable) -> Response:
    return _error(409, str(exc))


@app.exception_handler(intake.AcknowledgementRequired)
def _unacknowledged(exc: intake.AcknowledgementRequired) -> Response:
    return _error(422, str(exc), [{"field": "acknowledge", "reason": str(exc)}])


@app.exception_handler(intake.InvalidQuery)
def _invalid_query(exc: intake.InvalidQuery) -> Response:
    return _error(422, str(exc), [{"field": exc.field, "reason": exc.reason}])


@app.exception_handler(intake.NotFound)
def _not_found(exc: intake.NotFound) -> Response:
    return _error(404, str(exc))


@app.exception_handler([StoreUnavailable, QueueUnavailable])
def _unavailable(exc: Exception) -> Response:
    logger.exception("store or queue unavailable")
    return _error(503, "temporarily unavailable, retry with the same Idempotency-Key")


@logger.inject_lambda_context(clear_state=True)
def handler(
    event: dict[str, Any],
    context: Any,
    ctx: intake.IntakeContext | None = None,
    automation_ctx: automations.AutomationContext | None = None,
) -> dict[str, Any]:
    app.append_context(intake=ctx, automations=automation_ctx)
    return app.resolve(event, context)
