"""``make demo``: a small campaign through the real handlers, AWS emulated by moto, SMTP on loopback.

What it shows: the API accepting a campaign and a transactional email, the splitter dropping a
duplicate and a suppressed address, the sender sending through SES until SES is cut off part-way
and then failing over to the SMTP relay (whose outbox you can open), and an SES hard-bounce
notification travelling SNS → SQS → bounce handler and suppressing the address.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTBOX = ROOT / ".local" / "outbox"


def _quiet() -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "massmailer-demo")
    logging.basicConfig(level=logging.ERROR)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)


def main() -> int:  # noqa: PLR0915 - a linear script reads best
    _quiet()
    import boto3
    from moto import mock_aws

    from lambdas.bounce import handler as bounce_handler
    from lambdas.ingest import handler as ingest_handler
    from lambdas.sender import handler as sender_handler
    from lambdas.splitter import handler as splitter_handler
    from local.apigw import api_event
    from local.event_source import SqsEventSource, drain
    from local.lambda_context import LambdaContext
    from local.provision import provision
    from local.ses_events import bounce_event
    from local.smtp_relay import SmtpRelay
    from massmailer import spec, wiring
    from massmailer.addresses import address_key
    from massmailer.splitting import recipient_message_id

    started = time.monotonic()
    OUTBOX.mkdir(parents=True, exist_ok=True)
    for old in OUTBOX.glob("*.eml"):
        old.unlink()

    with mock_aws(), SmtpRelay(OUTBOX) as relay:
        resources = provision("demo", from_address="news@massmailer.test")
        os.environ.update(resources["env"])
        os.environ.update(
            {
                "MM_SMTP_HOST": "127.0.0.1",
                "MM_SMTP_PORT": str(relay.port),
                "MM_SIGNING_KEY": "demo-signing-key",
                "MM_PROVIDERS": "ses,smtp",
                "MM_SES_MAX_RATE": "5000",
                "MM_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080",
            }
        )
        wiring.reset()

        def api(method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
            response = ingest_handler.handler(api_event(method, path, body), LambdaContext("ingest"))
            return response["statusCode"], json.loads(response["body"])

        # A suppressed address (an earlier unsubscribe), then a campaign that includes it and a duplicate.
        wiring.store().suppress("former.customer@example.com", "unsubscribe")
        names = [
            "ada",
            "grace",
            "alan",
            "edsger",
            "barbara",
            "donald",
            "frances",
            "john",
            "margaret",
            "ken",
            "dennis",
            "radia",
            "leslie",
            "tony",
            "niklaus",
            "bjarne",
            "guido",
            "linus",
            "katherine",
            "annie",
        ]
        audience = [
            {"email": f"{n}@example.com", "variables": {"first_name": n.title(), "n": i}} for i, n in enumerate(names)
        ]
        audience.append({"email": "ADA@example.com", "variables": {"first_name": "Ada again", "n": 99}})  # duplicate
        audience.append({"email": "former.customer@example.com", "variables": {"first_name": "Former", "n": 98}})
        status, campaign = api(
            "POST",
            "/v1/campaigns",
            {
                "name": "Demo newsletter",
                "subject": "{{ first_name }}, your November digest",
                "text": "Hello {{ first_name }}! You are reader #{{ n }}.\nUnsubscribe: {{ unsubscribe_url }}",
                "html": "<h1>Hello {{ first_name }}!</h1><p>You are reader #{{ n }}.</p>",
                "audience": audience,
            },
        )
        assert status == 202, campaign
        status, message = api(
            "POST",
            "/v1/messages",
            {
                "to": "receipts@example.com",
                "subject": "Your receipt {{ order }}",
                "text": "Order {{ order }} confirmed.",
                "variables": {"order": "A-1001"},
            },
        )
        assert status == 202, message

        # SES accepts the first 8 sends, then goes down: the rest fails over to the SMTP relay.
        ses_calls = {"n": 0}

        def ses_outage(**_: Any) -> None:
            ses_calls["n"] += 1
            if ses_calls["n"] > 8:
                from botocore.exceptions import EndpointConnectionError

                raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")

        wiring.client("sesv2").meta.events.register("before-call.sesv2.SendEmail", ses_outage)

        sqs = boto3.client("sqs")
        queues = {q.key: q for q in spec.QUEUES}

        def source(key: str, handler: Any) -> SqsEventSource:
            return SqsEventSource(sqs, resources["queues"][key], queues[key], handler, failed_visibility=0)

        drain(
            [
                source("split", splitter_handler.handler),
                source("high", sender_handler.handler),
                source("low", sender_handler.handler),
            ]
        )

        # SES reports a hard bounce for one recipient it delivered to: SNS → SQS → bounce handler.
        store = wiring.store()
        first = store.get_message(recipient_message_id(campaign["campaign_id"], audience[0]["email"]))
        bounced = first if first and first.get("provider") == "ses" else None
        assert bounced is not None, "the first recipient should have gone out through SES"
        sns = boto3.client("sns")
        sns.publish(
            TopicArn=resources["topic_arn"],
            Message=json.dumps(
                bounce_event(
                    bounced["provider_message_id"],
                    bounced["email"],
                    {"message_id": bounced["message_id"], "campaign_id": campaign["campaign_id"]},
                )
            ),
        )
        drain([source("bounce", bounce_handler.handler)])

        # Report.
        _, report = api("GET", f"/v1/campaigns/{campaign['campaign_id']}")
        _, receipt = api("GET", f"/v1/messages/{message['message_id']}")
        print(f"\nCampaign {campaign['campaign_id']} — {report['status']}")
        print(f"{'recipient':<32} {'status':<10} {'provider':<8} attempts")
        seen: set[str] = set()
        for member in audience:
            key = address_key(member["email"])
            if key in seen:
                print(f"{member['email']:<32} {'(duplicate, dropped)'}")
                continue
            seen.add(key)
            record = store.get_message(recipient_message_id(campaign["campaign_id"], member["email"]))
            if record is None:
                print(f"{member['email']:<32} {'SKIPPED':<10} {'-':<8} 0   (suppressed before sending)")
                continue
            provider = record.get("provider") or "-"
            print(f"{member['email']:<32} {record['status']:<10} {provider:<8} {record.get('attempts', 0)}")
        print(f"\nTransactional {message['message_id']}: {receipt['status']} via {receipt['provider']}")
        counts = report["counts"]
        print("\nCounts: " + ", ".join(f"{k}={v}" for k, v in counts.items() if v or k in ("sent", "queued", "failed")))
        ses_sent = min(ses_calls["n"], 8)
        print(f"Sent via SES: {ses_sent}; via SMTP relay: {len(relay.messages)} (outbox: {OUTBOX.relative_to(ROOT)}/)")
        print(f"Suppressed now: {bounced['email']} (hard bounce), former.customer@example.com (unsubscribe)")
        print(f"Wall time: {time.monotonic() - started:.1f} s")
        wiring.provider_chain().close()
        ok = counts["sent"] == 20 and counts["queued"] == 0 and counts["suppressed"] == 1 and counts["duplicates"] == 1
        wiring.reset()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
