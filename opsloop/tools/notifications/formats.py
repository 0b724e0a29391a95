"""What each backend is sent for one delivery: pure functions of the delivery and its target.

Conventions on `data` (the notifier's protocol stays `notify(channel, message, data, key)`):
`incident` (its id: PagerDuty's dedup key, the console link), `severity` (else read from a
`SEV1`..`SEV4` in the message), `rule`, `approval` (an approval id: the Slack message links to
the console's approval queue) and `lifecycle` (trigger / acknowledge / resolve).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from email.message import EmailMessage
from typing import Any

from opsloop.tools.notifications.config import (
    EmailTarget,
    Lifecycle,
    PagerDutyTarget,
    WebhookTarget,
)
from opsloop.tools.notifications.spool import Delivery

SIGNATURE_HEADER = "X-Opsloop-Signature"
TIMESTAMP_HEADER = "X-Opsloop-Timestamp"
DELIVERY_HEADER = "X-Opsloop-Delivery"

# PagerDuty's payload.severity takes exactly these four words.
PAGERDUTY_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
_SEVERITY_IN_TEXT = re.compile(r"\bSEV[1-4]\b")


def lifecycle_of(d: Delivery) -> Lifecycle:
    try:
        return Lifecycle(str(d.data.get("lifecycle", Lifecycle.TRIGGER)))
    except ValueError:
        return Lifecycle.TRIGGER


def severity_of(d: Delivery) -> str | None:
    given = d.data.get("severity")
    if isinstance(given, str) and given in PAGERDUTY_SEVERITY:
        return given
    found = _SEVERITY_IN_TEXT.search(d.message)
    return found.group(0) if found else None


def incident_of(d: Delivery) -> str | None:
    value = d.data.get("incident")
    return str(value) if value else None


def links(d: Delivery, public_url: str | None) -> dict[str, str]:
    """Console links for the delivery (none without a public URL)."""
    if not public_url:
        return {}
    base = public_url.rstrip("/")
    found = {}
    incident = incident_of(d)
    if incident:
        found["incident"] = f"{base}/incidents/{incident}"
    if d.data.get("approval"):
        found["approvals"] = f"{base}/approvals"
    return found


def headline(d: Delivery) -> str:
    incident = incident_of(d)
    lifecycle = lifecycle_of(d)
    if incident is None:
        return f"opsloop: {d.channel}"
    word = {Lifecycle.TRIGGER: "Incident", Lifecycle.ACKNOWLEDGE: "Acknowledged",
            Lifecycle.RESOLVE: "Resolved"}[lifecycle]
    severity = severity_of(d)
    return f"{word} {incident}" + (f" ({severity})" if severity else "")


def facts(d: Delivery) -> list[tuple[str, str]]:
    out = [("Incident", incident_of(d)), ("Severity", severity_of(d)),
           ("Rule", d.data.get("rule")), ("Channel", d.channel)]
    return [(name, str(value)) for name, value in out if value]


def _mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(d: Delivery, public_url: str | None) -> dict[str, Any]:
    """Block Kit: a header, the message, the facts as fields, and buttons into the console."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(d)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(d.message)[:3000]}},
    ]
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{_mrkdwn(value)}"}
              for name, value in facts(d)]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    found = links(d, public_url)
    buttons = []
    if "approvals" in found:
        buttons.append({"type": "button", "text": {"type": "plain_text",
                                                   "text": "Review approvals"},
                        "url": found["approvals"], "style": "primary"})
    if "incident" in found:
        buttons.append({"type": "button", "text": {"type": "plain_text",
                                                   "text": "Open incident"},
                        "url": found["incident"]})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    # `text` is what phones show in the push notification, and the fallback for old clients.
    return {"text": d.message[:3000], "blocks": blocks}


def pagerduty_body(d: Delivery, target: PagerDutyTarget,
                   public_url: str | None) -> dict[str, Any]:
    """Events API v2: one dedup key per incident, so acknowledge and resolve find the trigger."""
    lifecycle = lifecycle_of(d)
    body: dict[str, Any] = {
        "routing_key": target.routing_key,
        "event_action": lifecycle.value,
        "dedup_key": incident_of(d) or d.key,
    }
    if lifecycle is not Lifecycle.TRIGGER:
        return body
    severity = severity_of(d)
    body["payload"] = {
        "summary": d.message[:1024],
        "severity": PAGERDUTY_SEVERITY.get(severity or "", "error"),
        "source": target.source,
        "component": str(d.data.get("service", "")) or None,
        "custom_details": {"channel": d.channel, **d.data},
    }
    if body["payload"]["component"] is None:
        del body["payload"]["component"]
    body["client"] = "opsloop"
    found = links(d, public_url)
    if "incident" in found:
        body["client_url"] = found["incident"]
    return body


def webhook_body(d: Delivery, public_url: str | None) -> bytes:
    """The generic webhook's JSON, as the bytes that are signed and sent."""
    found = links(d, public_url)
    return json.dumps({
        "id": d.id, "key": d.key, "channel": d.channel, "message": d.message,
        "data": d.data, "lifecycle": lifecycle_of(d).value, "created_at": d.created_at,
        "console_url": found.get("approvals") or found.get("incident"),
    }, sort_keys=True, default=str).encode()


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `<timestamp>.<raw body>` with the shared secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_headers(d: Delivery, target: WebhookTarget, body: bytes,
                    timestamp: str) -> dict[str, str]:
    return {"Content-Type": "application/json", DELIVERY_HEADER: str(d.id),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(target.secret, timestamp, body)}


def email_message(d: Delivery, target: EmailTarget, public_url: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[opsloop] {d.message}"[:200]
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.to)
    msg[DELIVERY_HEADER] = str(d.id)
    lines = [d.message, ""] + [f"{name}: {value}" for name, value in facts(d)]
    found = links(d, public_url)
    if found:
        lines += [""] + [f"{'Approval queue' if k == 'approvals' else 'Incident page'}: {url}"
                         for k, url in found.items()]
    msg.set_content("\n".join(lines) + "\n")
    return msg
