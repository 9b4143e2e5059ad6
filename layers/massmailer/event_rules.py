"""The event rules port: event-triggered automations as EventBridge rules on the stage's bus.

An automation that names an ``event_pattern`` gets one rule on the stage's event bus
(``spec.event_bus_name``), named ``spec.event_rule_prefix(stage) + name``, whose one target is the
split queue. The target's ``InputTransformer`` turns a matching event into the splitter's message::

    {"kind": "automation_event", "automation_id": "<id>", "detail": <the event's detail>}

(the automations' rules add ``"event_id": "<the event's id>"``, to de-duplicate redeliveries)

so an event enters the pipeline exactly as a scheduled run does (EventBridge delivers at least once;
consumers de-duplicate). The queue's resource policy lets the bus's rules with that prefix send to it
(infra/automation_events.py); the ingest function may manage only rules with that prefix, and only
aim them at the split queue.

A pattern is checked here before AWS sees it (the JSON shape EventBridge accepts), and AWS's own
``InvalidEventPatternException`` is turned into the same :class:`InvalidEventPattern`, which names
the field ``event_pattern`` (the API answers 422). Anything else AWS refuses is
:class:`~massmailer.store.StoreUnavailable` (the API answers 503), as for schedules.
"""

from __future__ import annotations

import json
import re
from typing import Any

from massmailer.store import StoreUnavailable

FIELD = "event_pattern"
TARGET_ID = "split"
RULE_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
MAX_PATTERN_BYTES = 4096  # EventBridge's limit on a rule's EventPattern
_MATCHERS = frozenset(
    {"prefix", "suffix", "anything-but", "numeric", "exists", "cidr", "equals-ignore-case", "wildcard"}
)


class InvalidEventPattern(ValueError):
    """A pattern EventBridge would refuse; ``field`` is ``event_pattern`` or a path below it."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.field = f"{FIELD}.{path}" if path else FIELD
        self.reason = reason
        super().__init__(f"{self.field}: {reason}")


def _check_values(values: list[Any], path: str) -> None:
    if not values:
        raise InvalidEventPattern("must list at least one value to match", path)
    for value in values:
        if isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in _MATCHERS:
                raise InvalidEventPattern(
                    f"{json.dumps(value)[:80]} is not a matcher; use one of {', '.join(sorted(_MATCHERS))}", path
                )
        elif isinstance(value, list):
            raise InvalidEventPattern("values are strings, numbers, true/false/null or matcher objects", path)


def _check_object(pattern: dict[str, Any], path: str) -> None:
    if not pattern:
        raise InvalidEventPattern("must not be empty", path)
    for key, value in pattern.items():
        here = f"{path}.{key}" if path else key
        if key == "$or" and isinstance(value, list):
            for i, alternative in enumerate(value):
                if not isinstance(alternative, dict):
                    raise InvalidEventPattern("each $or alternative must be an object", f"{here}[{i}]")
                _check_object(alternative, f"{here}[{i}]")
        elif isinstance(value, dict):
            _check_object(value, here)
        elif isinstance(value, list):
            _check_values(value, here)
        else:
            raise InvalidEventPattern(
                f"must be an object or an array of values to match (e.g. [{json.dumps(value)}])", here
            )


def validate_pattern(pattern: Any) -> str:
    """The pattern as the JSON text PutRule takes, or :class:`InvalidEventPattern` naming where it is wrong."""
    if not isinstance(pattern, dict):
        raise InvalidEventPattern('must be an object, e.g. {"detail-type": ["user.signed_up"]}')
    _check_object(pattern, "")
    text = json.dumps(pattern, separators=(",", ":"))
    if len(text.encode()) > MAX_PATTERN_BYTES:
        raise InvalidEventPattern(f"is {len(text.encode())} bytes; EventBridge takes at most {MAX_PATTERN_BYTES}")
    return text


def automation_event_input(automation_id: str) -> dict[str, str]:
    """The constant part of the message a matching event becomes (``detail`` is added by the rule)."""
    return {"kind": "automation_event", "automation_id": automation_id}


def input_transformer(constants: dict[str, Any], *, event_id: bool = False) -> dict[str, Any]:
    """``{**constants, "detail": <$.detail>, "event_id": "<$.id>"}`` as an EventBridge
    ``InputTransformer``; ``"event_id"`` only with ``event_id`` (the event's id, a string, so the
    consumer can de-duplicate deliveries; the automations' rules ask for it)."""
    if "detail" in constants or "event_id" in constants:
        raise ValueError("the input template's constants must not set 'detail' or 'event_id': the event's go there")
    body = json.dumps(constants, separators=(", ", ": "))
    if "<" in body or ">" in body:  # would read as an input path placeholder
        raise ValueError("the input template's constants must not contain '<' or '>'")
    start = body[:-1] + (", " if constants else "") + '"detail": <detail>'
    if not event_id:
        return {"InputPathsMap": {"detail": "$.detail"}, "InputTemplate": start + "}"}
    template = start + ', "event_id": "<event_id>"}'
    return {"InputPathsMap": {"detail": "$.detail", "event_id": "$.id"}, "InputTemplate": template}


class EventRules:
    """Rules on the stage's bus, each sending what matches to a queue (the split queue)."""

    def __init__(self, client: Any, bus_name: str, rule_prefix: str) -> None:
        self._client = client
        self._bus = bus_name
        self._prefix = rule_prefix

    def rule_name(self, name: str) -> str:
        rule = f"{self._prefix}{name}"
        if not RULE_NAME.match(rule):
            raise ValueError(f"rule name {rule!r}: 1-64 of letters, digits, '.', '-' and '_'")
        return rule

    def put(
        self,
        name: str,
        pattern: dict[str, Any],
        queue_arn: str,
        input_template: dict[str, Any],
        *,
        event_id: bool = False,
    ) -> str:
        """Create or replace the rule ``name`` (PutRule, then PutTargets); returns the rule's ARN.

        ``input_template`` holds the message's constant fields (:func:`automation_event_input`); the
        rule adds the event's ``detail``. To pause an automation, :meth:`delete` its rule and ``put`` it
        again on resume: moto (which the local runtime and the tests run on) delivers to a DISABLED
        rule's targets as if it were enabled, so ``State: DISABLED`` would pause nothing locally.
        """
        text = validate_pattern(pattern)
        transformer = input_transformer(input_template, event_id=event_id)
        rule = self.rule_name(name)
        try:
            arn = self._client.put_rule(
                Name=rule,
                EventBusName=self._bus,
                EventPattern=text,
                State="ENABLED",
                Description="MassMailer automation trigger",
            )["RuleArn"]
        except self._client.exceptions.InvalidEventPatternException as exc:
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            raise InvalidEventPattern(message) from exc
        except Exception as exc:
            raise StoreUnavailable(f"put rule {rule}: {exc}") from exc
        try:
            answer = self._client.put_targets(
                Rule=rule,
                EventBusName=self._bus,
                Targets=[{"Id": TARGET_ID, "Arn": queue_arn, "InputTransformer": transformer}],
            )
        except Exception as exc:
            raise StoreUnavailable(f"put targets of rule {rule}: {exc}") from exc
        if answer.get("FailedEntryCount"):
            failed = answer.get("FailedEntries") or [{}]
            raise StoreUnavailable(f"put targets of rule {rule}: {failed[0].get('ErrorMessage', 'refused')}")
        return str(arn)

    def delete(self, name: str) -> None:
        """Remove the rule's target, then the rule; one already gone is fine."""
        rule = self.rule_name(name)
        try:
            self._client.remove_targets(Rule=rule, EventBusName=self._bus, Ids=[TARGET_ID])
            self._client.delete_rule(Name=rule, EventBusName=self._bus)
        except self._client.exceptions.ResourceNotFoundException:
            return
        except Exception as exc:
            raise StoreUnavailable(f"delete rule {rule}: {exc}") from exc
