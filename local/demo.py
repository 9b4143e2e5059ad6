"""``make demo``: the local runtime, a 1,000-recipient campaign, an SES outage, and what became of it.

Self-contained: it starts the runtime (moto in server mode, the SMTP relay, the SES endpoint with the
mailbox simulator, the functions' execution environments, the scheduler loop) on free ports, drives it
only through the HTTP API and the fault switches — as a user would — and stops it again.

What it shows:

1. an address that unsubscribed earlier (RFC 8058 one-click, through the API) is never mailed;
2. two transactional emails on the high lane: one delivered, one to the mailbox simulator's
   ``complaint@`` (complaint → suppression);
3. a campaign of 1,000 recipients with per-recipient variables, plus a duplicate, the unsubscribed
   address and the simulator's ``success@``, ``bounce@``, ``ooto@`` and ``suppressionlist@``;
4. the operator pauses the campaign part-way (the bar shows PAUSED; emails already handed to a
   provider finish, no new one starts) and resumes it a moment later, where it stopped;
5. SES cut off part-way (``503 ServiceUnavailable``): the sender fails over to the SMTP relay, the
   circuit breaker opens; a short relay hiccup (``451``) makes a few recipients retry later; SES
   comes back;
6. an automation (``POST /v1/automations``): a daily digest at 09:00 Europe/Berlin whose target is a
   CSV in the bucket named by the date, fired once through ``POST …/run-now`` while the campaign goes
   out; its run ends DONE, each of its recipients sent once;
7. a summary: sent per provider, delivered, bounced, complained, suppressed, failed, retried, wall
   time, emails/s — checked against moto's SES record and the outbox: nobody twice, nobody lost.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / ".local" / "demo"
SIMULATOR = "simulator.amazonses.com"
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"]
PLANS = ["free", "pro", "team"]

PAUSE_AT = 0.15  # share of the campaign sent when the operator pauses it
PAUSE_SECONDS = 3.0  # how long it stays paused
CUT_AT = 0.30  # share of the campaign sent when SES is cut off
RELAY_HICCUP_AT = 0.50  # the relay answers 451 for a moment (both providers refuse: retried later)
RELAY_HICCUP_SECONDS = 1.0
RESTORE_AT = 0.70  # SES comes back


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.events.append((time.monotonic() - self.started, text))


def _audience(n: int) -> list[dict[str, Any]]:
    simulator = [
        {"email": f"success@{SIMULATOR}", "variables": {"first_name": "Simulator", "plan": "pro", "n": 0}},
        {"email": f"bounce@{SIMULATOR}", "variables": {"first_name": "Bounce", "plan": "free", "n": 0}},
        {"email": f"ooto+newsletter@{SIMULATOR}", "variables": {"first_name": "Away", "plan": "team", "n": 0}},
        {"email": f"suppressionlist@{SIMULATOR}", "variables": {"first_name": "Listed", "plan": "free", "n": 0}},
    ]
    people = [
        {
            "email": f"{FIRST_NAMES[i % len(FIRST_NAMES)].lower()}.{i:04d}@example.com",
            "variables": {"first_name": FIRST_NAMES[i % len(FIRST_NAMES)], "plan": PLANS[i % len(PLANS)], "n": i},
        }
        for i in range(1, n + 1)
    ]
    first = people[0]
    extras = [
        {"email": first["email"].upper(), "variables": {**first["variables"], "first_name": "(duplicate)"}},
        {"email": "former.customer@example.com", "variables": {"first_name": "Former", "plan": "free", "n": -1}},
    ]
    return simulator + people + extras


CAMPAIGN = {
    "name": "November product news",
    "subject": "{{ first_name }}, what's new on the {{ plan }} plan",
    "text": (
        "Hello {{ first_name }},\n\nhere is what changed on the {{ plan }} plan this month.\n"
        "You are reader #{{ n }}.\n\nUnsubscribe: {{ unsubscribe_url }}\n"
    ),
    "html": (
        "<h1>Hello {{ first_name }}</h1><p>Here is what changed on the <b>{{ plan }}</b> plan this month.</p>"
        "<p>You are reader #{{ n }}.</p><p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
    ),
    # Each recipient gets their plan's PDF, matched by file name in the bucket (attachments/plan-<plan>.pdf).
    "attachments": [{"filename": "plan-{{ plan }}.pdf"}],
}


AUTOMATION_READERS = 20
AUTOMATION_ZONE = "Europe/Berlin"
AUTOMATION_TARGET = "audiences/daily-digest/{scheduled:%Y-%m-%d}.csv"
AUTOMATION = {
    "name": "Daily digest",
    "subject": "{{ first_name }}, your daily digest",
    "text": "Hello {{ first_name }},\n\ntoday's digest.\n\nUnsubscribe: {{ unsubscribe_url }}\n",
    "schedule": {"preset": "daily", "time": "09:00", "time_zone": AUTOMATION_ZONE},
    "target": AUTOMATION_TARGET,
}


def _start_automation(rt: Any) -> tuple[str, dict[str, Any], list[str]]:
    """The daily digest: its readers' CSV for today's date (and the next minute's, should the date
    change meanwhile) in the bucket, the automation created, and one run fired now through the API."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from massmailer.automations import fill_target

    readers = [f"reader.{i:02d}@example.org" for i in range(1, AUTOMATION_READERS + 1)]
    csv = "email,first_name\n" + "".join(f"{a},{FIRST_NAMES[i % len(FIRST_NAMES)]}\n" for i, a in enumerate(readers))
    zone = ZoneInfo(AUTOMATION_ZONE)
    now = datetime.now(UTC)
    for moment in {now, now + timedelta(minutes=1)}:
        key = fill_target(AUTOMATION_TARGET, moment.astimezone(zone))
        rt.client("s3").put_object(Bucket=rt.resources["bucket"], Key=key, Body=csv.encode())
    status, created = rt.api("POST", "/v1/automations", AUTOMATION)
    assert status == 201, created
    status, fired = rt.api("POST", f"/v1/automations/{created['automation_id']}/run-now")
    assert status == 202, fired
    return str(created["automation_id"]), created, readers


def _automation_run(rt: Any, automation_id: str, timeout: float = 30) -> dict[str, Any]:
    """The automation as ``GET /v1/automations/{id}`` shows it once its last run has ended."""
    deadline = time.monotonic() + timeout
    while True:
        status, automation = rt.api("GET", f"/v1/automations/{automation_id}")
        assert status == 200, automation
        last = automation.get("last_run") or {}
        if last.get("ended_at") or time.monotonic() > deadline:
            return dict(automation)
        time.sleep(0.25)


def _attachments_match(outbox: list[Path], campaign_id: str) -> bool:
    """Every email of the campaign the relay received has exactly one attachment, the PDF of its own plan."""
    checked = 0
    marker = f"X-MassMailer-Campaign: {campaign_id}"
    for path in outbox:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if f"X-MassMailer-Campaign: {message.get('X-MassMailer-Campaign')}" != marker:
            continue  # transactional mail and the automation's digest carry no attachment
        names = [part.get_filename() for part in message.iter_attachments()]
        plan = next((p for p in PLANS if f"on the {p} plan" in str(message["Subject"])), None)
        if names != [f"plan-{plan}.pdf"]:
            return False
        checked += 1
    return checked > 0


class Progress:
    """One status line, redrawn in place on a terminal, printed every few seconds otherwise."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.tty = sys.stdout.isatty()
        self._last_print = 0.0
        self._width = 0
        self._last_state = ("", "")

    def draw(
        self, counts: dict[str, int], ses: int, relay: int, note: str, force: bool = False, status: str = ""
    ) -> None:
        done = counts["sent"] + counts["failed"] + counts["suppressed"]
        share = min(done / self.total, 1.0)
        bar = "█" * int(share * 30) + "░" * (30 - int(share * 30))
        queued = max(self.total - done, 0)
        shown = f" {status}" if status == "PAUSED" else ""
        line = (
            f"  [{bar}] {share:4.0%}{shown}  sent {counts['sent']:>4} (SES {ses}, relay {relay})"
            f" · failed {counts['failed']} · queued {queued} · delivered {counts['delivered']}"
            f" · retried {counts['retried']}{'  ' + note if note else ''}"
        )
        if self.tty:
            pad = max(self._width - len(line), 0)
            sys.stdout.write("\r" + line + " " * pad)
            sys.stdout.flush()
            self._width = len(line)
        elif force or (note, status) != self._last_state or time.monotonic() - self._last_print >= 3:
            print(line, flush=True)
            self._last_print = time.monotonic()
            self._last_state = (note, status)

    def close(self) -> None:
        if self.tty:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _campaign_split(rt: Any, campaign_id: str) -> tuple[list[str], list[str]]:
    """Message ids of the campaign's emails as SES accepted them and as the relay received them."""
    assert rt.ses is not None and rt.relay is not None
    ses = [
        a["tags"].get("message_id", "") for a in list(rt.ses.accepted) if a["tags"].get("campaign_id") == campaign_id
    ]
    marker = f"X-MassMailer-Campaign: {campaign_id}".encode()
    relay = []
    for _, _, data in list(rt.relay.messages):
        if marker in data:
            for line in data.split(b"\r\n"):
                if line.startswith(b"X-MassMailer-Message:"):
                    relay.append(line.split(b":", 1)[1].strip().decode())
                    break
    return ses, relay


def _simulator_outcomes(rt: Any, campaign_id: str, addresses: list[str]) -> tuple[list[str], int]:
    """Status, provider and soft-bounce count of each simulator recipient (read from the job table)."""
    from massmailer.splitting import recipient_message_id
    from massmailer.store import Stores

    store = Stores.dynamo(rt.resource("dynamodb").Table(rt.resources["table"]))
    lines, replies = [], 0
    for address in addresses:
        record = store.messages.get_message(recipient_message_id(campaign_id, address)) or {}
        soft = int(record.get("soft_bounces") or 0)
        replies += soft
        suppressed = " · suppressed" if store.suppressions.is_suppressed(address) else ""
        extra = f" · {soft} out-of-office repl{'y' if soft == 1 else 'ies'}" if soft else ""
        lines.append(
            f"{address:<40} {record.get('status', '-'):<10} via {record.get('provider') or '-'}{extra}{suppressed}"
        )
    return lines, replies


def _settled(rt: Any) -> bool:
    assert rt.ses is not None
    lanes = ("high", "low", "split", "bounce")
    return rt.ses.publisher.pending == 0 and all(rt.depth(key) == 0 for key in lanes)


def _earlier_email(rt: Any, address: str, campaign_id: str) -> str:
    """The record of an email an earlier campaign sent ``address``, and its unsubscribe token."""
    from datetime import UTC, datetime

    from massmailer.models import Lane, MessageRecord, Status
    from massmailer.splitting import recipient_message_id
    from massmailer.store import Stores
    from massmailer.unsubscribe import Unsubscriber, parse_signing_keys

    store = Stores.dynamo(rt.resource("dynamodb").Table(rt.resources["table"]))
    message_id = recipient_message_id(campaign_id, address)
    record = MessageRecord(
        message_id=message_id,
        email=address,
        campaign_id=campaign_id,
        status=Status.DELIVERED,
        lane=Lane.LOW,
        created_at=datetime.now(UTC),
    )
    store.messages.create_message(record, {"from_address": rt.config.from_address})
    keys = parse_signing_keys(rt.function_env()["MM_SIGNING_KEYS"])
    return Unsubscriber(keys=keys, base_url=rt.api_url).token(message_id)


def run(recipients: int) -> int:  # noqa: PLR0915 - a linear script reads best
    from local.runtime import LocalRuntime, RuntimeConfig

    timeline = Timeline()
    print("MassMailer demo — the whole pipeline on loopback: moto (AWS), an SMTP relay, the real handlers\n")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    config = RuntimeConfig(api_port=0, state_dir=STATE_DIR, failed_visibility=2, write_state_file=False)
    rt = LocalRuntime(config)
    try:
        rt.start()
        up_in = time.monotonic() - timeline.started
        print(f"  runtime up in {up_in:.1f} s — API {rt.api_url}, AWS {rt.aws_url}, outbox {_rel(config.outbox_dir)}")

        # 1. Someone unsubscribed from an earlier campaign (one-click, RFC 8058): October's email to
        #    them is on record; its link shows a page (a scanner's GET changes nothing), the mailbox
        #    provider's one-click POST unsubscribes.
        token = _earlier_email(rt, "former.customer@example.com", "cmp-october")
        status, page = rt.api("GET", f"/v1/unsubscribe?token={token}")
        assert status == 200 and '<form method="post"' in page, (status, page)
        status, page = rt.api(
            "POST",
            f"/v1/unsubscribe?token={token}",
            b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200, (status, page)

        # 2. Transactional mail on the high lane.
        receipts = {}
        for to, subject in (
            (f"success@{SIMULATOR}", "Your receipt {{ order }}"),
            (f"complaint@{SIMULATOR}", "Order {{ order }} shipped"),
        ):
            status, body = rt.api(
                "POST",
                "/v1/messages",
                {
                    "to": to,
                    "subject": subject,
                    "text": "Order {{ order }}: thank you!",
                    "variables": {"order": "A-1001"},
                },
            )
            assert status == 202, body
            receipts[to] = body["message_id"]

        # 3. The campaign, with an attachment per plan uploaded to the bucket first.
        for plan in PLANS:
            rt.client("s3").put_object(
                Bucket=rt.resources["bucket"],
                Key=f"attachments/plan-{plan}.pdf",
                Body=f"%PDF-1.4\n% MassMailer demo: what's new on the {plan} plan\n".encode(),
            )
        # 3b. The automation, fired once now: its run goes out alongside the campaign.
        automation_id, automation, readers = _start_automation(rt)
        timeline.note(f"automation {automation_id} created, run fired (POST /v1/automations/{{id}}/run-now)")
        audience = _audience(recipients)
        status, campaign = rt.api("POST", "/v1/campaigns", {**CAMPAIGN, "audience": audience}, timeout=60)
        assert status == 202, campaign
        campaign_id = campaign["campaign_id"]
        print(f"  campaign {campaign_id}: {len(audience)} audience entries accepted (202)\n")
        timeline.note("campaign accepted")

        # 4. Watch it go out; pause and resume it; cut SES off part-way, a relay hiccup, SES back.
        progress = Progress(total=len(audience))
        paused = resumed = False
        resume_at = paused_for = 0.0
        handed_at_pause = handed_at_resume = -1  # emails a provider accepted (SES record + outbox)
        cut = hiccup = restored = False
        hiccup_ends = 0.0
        first_sent = last_sent = None
        previous_sent = 0
        note = ""
        deadline = time.monotonic() + 150
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            status, report = rt.api("GET", f"/v1/campaigns/{campaign_id}")
            counts = report["counts"]
            total = max(counts["total"], 1)
            if counts["total"]:
                progress.total = counts["total"]
            now = time.monotonic()
            if counts["sent"] != previous_sent:
                first_sent = first_sent or now
                last_sent = now
                previous_sent = counts["sent"]
            if not paused and counts["sent"] >= PAUSE_AT * total:
                status, answer = rt.api("POST", f"/v1/campaigns/{campaign_id}/pause")
                assert status == 200 and answer["status"] == "PAUSED", answer
                paused, resume_at, note = True, now + PAUSE_SECONDS, "⏸ paused by the operator"
                handed_at_pause = sum(map(len, _campaign_split(rt, campaign_id)))
                timeline.note(f"paused at {handed_at_pause} handed to a provider (POST /v1/campaigns/{{id}}/pause)")
            elif paused and not resumed and now >= resume_at:
                handed_at_resume = sum(map(len, _campaign_split(rt, campaign_id)))
                status, answer = rt.api("POST", f"/v1/campaigns/{campaign_id}/resume")
                assert status == 200 and answer["status"] == "SENDING", answer
                resumed, note = True, "▶ resumed"
                paused_for = now - (resume_at - PAUSE_SECONDS)
                timeline.note(
                    f"resumed at {handed_at_resume} handed to a provider (POST /v1/campaigns/{{id}}/resume; "
                    f"{handed_at_resume - handed_at_pause} finished during the pause: sends already started)"
                )
            elif resumed and not cut and counts["sent"] >= CUT_AT * total:
                rt.set_faults(mode="down")
                cut, note = True, "⚡ SES down → relay"
                timeline.note(f"SES cut off at {counts['sent']} sent (503 ServiceUnavailable)")
            elif cut and not hiccup and counts["sent"] >= RELAY_HICCUP_AT * total:
                rt.set_faults(smtp="throttle")
                hiccup, hiccup_ends, note = True, now + RELAY_HICCUP_SECONDS, "⚡ SES down, relay 451"
                timeline.note(f"relay answers 451 for {RELAY_HICCUP_SECONDS:.0f} s at {counts['sent']} sent")
            elif hiccup and hiccup_ends and now >= hiccup_ends:
                rt.set_faults(smtp=None)
                hiccup_ends, note = 0.0, "⚡ SES down → relay"
            if cut and not restored and not hiccup_ends and counts["sent"] >= RESTORE_AT * total:
                rt.reset_faults()
                restored, note = True, "SES restored"
                timeline.note(
                    f"SES restored at {counts['sent']} sent (the circuit breaker lets it back after its cool-down)"
                )
            ses_ids, relay_ids = _campaign_split(rt, campaign_id)
            progress.draw(counts, len(ses_ids), len(relay_ids), note, status=report["status"])
            done = counts["sent"] + counts["failed"] + counts["suppressed"] >= counts["total"] > 0
            if done and report["split_done"]:
                break
            time.sleep(0.25)
        sending_done = time.monotonic()
        if not restored:
            rt.reset_faults()
        timeline.note("every recipient settled")
        # Let SES's last events reach the bounce function.
        settle_deadline = time.monotonic() + 30
        while time.monotonic() < settle_deadline and not _settled(rt):
            status, report = rt.api("GET", f"/v1/campaigns/{campaign_id}")
            counts = report["counts"]
            ses_ids, relay_ids = _campaign_split(rt, campaign_id)
            progress.draw(counts, len(ses_ids), len(relay_ids), "waiting for SES events")
            time.sleep(0.5)
        status, report = rt.api("GET", f"/v1/campaigns/{campaign_id}")
        counts = report["counts"]
        ses_ids, relay_ids = _campaign_split(rt, campaign_id)
        progress.draw(counts, len(ses_ids), len(relay_ids), "", force=True)
        progress.close()

        # 5. Check and report.
        moto_record = {m["id"] for m in rt.ses_record()}
        accepted_ids = {a["id"] for a in list(rt.ses.accepted)} if rt.ses else set()
        messages = {to: rt.api("GET", f"/v1/messages/{mid}")[1] for to, mid in receipts.items()}
        simulated, ooto = _simulator_outcomes(
            rt, campaign_id, [m["email"] for m in audience if SIMULATOR in m["email"]]
        )
        sent_ids = ses_ids + relay_ids
        automation = _automation_run(rt, automation_id)
        run = automation.get("last_run") or {}
        run_counts = run.get("counts") or {}
        run_ses, run_relay = _campaign_split(rt, run["campaign_id"]) if run.get("campaign_id") else ([], [])
        run_ids = run_ses + run_relay
        run_ok = (
            run.get("status") == "DONE"
            and len(run_ids) == len(set(run_ids)) == run_counts.get("sent") == len(readers)
            and run_counts.get("failed") == 0
        )
        exactly_once = len(sent_ids) == len(set(sent_ids)) == counts["sent"]
        nothing_lost = counts["sent"] + counts["failed"] + counts["suppressed"] == counts["total"]
        ses_agrees = accepted_ids <= moto_record
        # The pause is not sending time (the bench compares this rate across runs).
        sending_seconds = (last_sent or sending_done) - (first_sent or timeline.started) - paused_for
        wall = time.monotonic() - timeline.started
        rows = [
            ("audience entries", f"{len(audience):,}"),
            ("recipients after de-duplication", f"{counts['total']:,}"),
            ("duplicates dropped", f"{counts['duplicates']}"),
            ("suppressed (never sent)", f"{counts['suppressed']}"),
            ("sent via SES (primary)", f"{len(ses_ids):,}"),
            ("sent via SMTP relay (failover)", f"{len(relay_ids):,}"),
            ("delivered (SES Delivery events)", f"{counts['delivered']:,}"),
            ("bounced (hard: suppressed)", f"{counts['bounced']}"),
            (
                "soft-bounced",
                f"{counts['soft_bounced']}  (+ {ooto} out-of-office repl{'y' if ooto == 1 else 'ies'} after delivery)",
            ),
            ("complained", f"{counts['complained']}  + transactional: {messages[f'complaint@{SIMULATOR}']['status']}"),
            ("failed", f"{counts['failed']}"),
            ("retried (throttled or transient)", f"{counts['retried']}"),
            ("wall time (start to stop)", f"{wall:.1f} s  (runtime up in {up_in:.1f} s)"),
            ("throughput while sending", f"{counts['sent'] / max(sending_seconds, 0.001):.1f} emails/s"),
            ("paused (not counted as sending)", f"{paused_for:.1f} s"),
        ]
        print(f"\n  Campaign {campaign_id} — {report['status']}\n")
        width = max(len(k) for k, _ in rows)
        print("  " + "─" * (width + 24))
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
        print("  " + "─" * (width + 24))
        print()
        for at, text in timeline.events:
            print(f"  {at:6.1f} s  {text}")
        print()
        print(
            f"  {'✓' if exactly_once else '✗'} every recipient sent exactly once (SES record + outbox: {len(sent_ids)})"
        )
        print(
            f"  {'✓' if nothing_lost else '✗'} nobody lost: sent + failed + suppressed = recipients ({counts['total']})"
        )
        print(
            f"  {'✓' if resumed else '✗'} paused part-way for {PAUSE_SECONDS:.0f} s and resumed where it stopped"
            f" ({handed_at_pause} → {handed_at_resume} handed to a provider while paused: sends already started)"
        )
        print(f"  {'✓' if ses_agrees else '✗'} moto's SES record holds every message SES accepted ({len(moto_record)})")
        attached = _attachments_match(rt.outbox(), campaign_id)
        print(f"  {'✓' if attached else '✗'} every campaign email in the outbox carries its plan's PDF attachment")
        print(
            f"  {'✓' if run_ok else '✗'} automation run {run.get('status', '-')}: each of its {len(readers)} readers"
            f" sent exactly once ({len(run_ids)})"
        )
        print(
            f"\n  automation {automation_id} “{automation['name']}” — daily 09:00 {AUTOMATION_ZONE}"
            f" ({automation['schedule_expression']['expression']}), next run {automation.get('next_run')}"
        )
        print(
            f"    run {run.get('run_id', '-')} ({run.get('trigger', '-')}) {run.get('status', '-')}:"
            f" target {fill_target_for(run)}, sent {run_counts.get('sent', 0)} (SES {len(run_ses)},"
            f" relay {len(run_relay)}) · failed {run_counts.get('failed', 0)}"
            f" · warnings {run.get('warnings', 0)}"
        )
        print("\n  mailbox simulator (SES events → bounce function):")
        for line in simulated:
            print(f"    {line}")
        for to, record in messages.items():
            print(f"    {to:<40} {record['status']:<10} via {record.get('provider')} (transactional)")
        print(f"\n  outbox: {_rel(config.outbox_dir)} ({len(rt.outbox())} .eml files)   logs: {_rel(config.logs_dir)}")
        ok = run_ok and resumed and exactly_once and nothing_lost and ses_agrees and attached and counts["failed"] == 0
    finally:
        print("  stopping the runtime…", flush=True)
        rt.stop()
    print(f"  done in {time.monotonic() - timeline.started:.1f} s — every process the demo started has exited.")
    return 0 if ok else 1


def fill_target_for(run: dict[str, Any]) -> str:
    """The target key the run read (from its log's campaign event)."""
    for event in run.get("log") or []:
        if event.get("target"):
            return str(event["target"])
    return "-"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd())) + "/"
    except ValueError:
        return str(path) + "/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MassMailer's self-contained local demo")
    parser.add_argument("--recipients", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        return run(args.recipients)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
