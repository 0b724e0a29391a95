"""One attempt at one delivery, bounded in time; never raises, says whether to try again.

2xx is sent. 429, 5xx, timeouts and lost connections are worth another attempt (429's
Retry-After is honoured). Any other 4xx, or an SMTP refusal of the sender, the recipients or
the login, is permanent: the request itself is wrong and repeating it will not help.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from opsloop.tools.notifications.config import (
    EmailTarget,
    PagerDutyTarget,
    SlackTarget,
    Target,
    WebhookTarget,
)
from opsloop.tools.notifications.formats import (
    email_message,
    pagerduty_body,
    slack_body,
    webhook_body,
    webhook_headers,
)
from opsloop.tools.notifications.spool import Delivery


@dataclass(frozen=True)
class Attempt:
    sent: bool
    error: str = ""
    retry: bool = True  # worth another attempt
    retry_after: float | None = None  # seconds the receiver asked for (429)


def attempt(d: Delivery, target: Target, timeout: float, public_url: str | None) -> Attempt:
    """Send `d` once to `target`."""
    try:
        if isinstance(target, SlackTarget):
            return _post(target.url, _json(slack_body(d, public_url)),
                         {"Content-Type": "application/json"}, timeout)
        if isinstance(target, PagerDutyTarget):
            return _post(target.events_url, _json(pagerduty_body(d, target, public_url)),
                         {"Content-Type": "application/json"}, timeout)
        if isinstance(target, WebhookTarget):
            body = webhook_body(d, public_url)
            headers = webhook_headers(d, target, body, str(int(time.time())))
            return _post(target.url, body, headers, timeout)
        return _mail(d, target, timeout, public_url)
    except Exception as exc:  # a bug in a formatter must not kill the worker
        return Attempt(False, f"{type(exc).__name__}: {exc}", retry=False)


def _json(body: object) -> bytes:
    return json.dumps(body, sort_keys=True, default=str).encode()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Attempt:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"User-Agent": "opsloop", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return Attempt(True)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        error = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
        if exc.code == 429:
            return Attempt(False, error, retry=True, retry_after=_seconds(exc.headers))
        return Attempt(False, error, retry=exc.code >= 500 or exc.code == 408)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, f"{type(exc).__name__}: {reason}", retry=True)


def _seconds(headers: object) -> float | None:
    value = getattr(headers, "get", lambda _: None)("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _mail(d: Delivery, target: EmailTarget, timeout: float, public_url: str | None) -> Attempt:
    msg = email_message(d, target, public_url)
    try:
        tls = ssl.create_default_context(cafile=target.ca_file)  # verifies the host name
        smtp: smtplib.SMTP
        if target.security == "ssl":
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=tls)
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with smtp:
            if target.security == "starttls":
                smtp.starttls(context=tls)
            if target.username and target.password:
                smtp.login(target.username, target.password)
            smtp.send_message(msg)
        return Attempt(True)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
            smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError,
            ssl.SSLCertVerificationError) as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}", retry=False)
    except (smtplib.SMTPException, OSError) as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}", retry=True)
