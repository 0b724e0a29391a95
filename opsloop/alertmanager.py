"""Alertmanager's webhook payload (version 4): models, and a parser that never loses a good alert.

The envelope is checked first (an unusable envelope rejects the whole request); then every
alert is validated on its own, so one malformed alert is reported by index and field while
the valid alerts of the same batch are still taken in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from opsloop.fingerprint import label_fingerprint, label_fingerprints
from opsloop.models import Anomaly, AnomalyStatus

# Prometheus' classic label name syntax, which Alertmanager 0.25 enforces on alerts.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Go's zero time.Time, which Alertmanager sends as endsAt while an alert still fires.
_ZERO_TIME_YEAR = 1


@dataclass(frozen=True)
class PayloadLimits:
    """Sizes beyond which a payload is refused: memory is finite and storms are not."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_alerts: int = 100_000
    max_labels: int = 64
    max_annotations: int = 64
    max_name_chars: int = 256
    max_label_value_chars: int = 4096
    max_annotation_value_chars: int = 65536


def _rfc3339(value: Any) -> datetime:
    """An RFC 3339 timestamp string; numbers and naive times are refused, not guessed at."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:64]!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value[:64]!r} has no UTC offset (RFC 3339 requires one, e.g. Z)")
    return parsed.astimezone(UTC)


def _unicode(value: str) -> str:
    """JSON may carry lone surrogates (\\ud800); they are not text and cannot be stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone UTF-16 surrogate; not valid Unicode text") from None
    return value


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
StrictStr = Annotated[str, Field(strict=True), AfterValidator(_unicode)]


class WebhookAlert(BaseModel):
    """One alert as Alertmanager posts it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[StrictStr, StrictStr] = Field(min_length=1)
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: StrictStr = Field(default="", alias="generatorURL")
    fingerprint: StrictStr = ""


class WebhookMessage(BaseModel):
    """The envelope of Alertmanager's webhook notification, version 4 (alerts kept raw)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: StrictStr = Field(default="", alias="groupKey")
    truncated_alerts: Annotated[int, Field(strict=True, ge=0)] = Field(
        default=0, alias="truncatedAlerts"
    )
    status: Literal["firing", "resolved"] = "firing"
    receiver: StrictStr = ""
    group_labels: dict[StrictStr, StrictStr] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[StrictStr, StrictStr] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, alias="commonAnnotations"
    )
    external_url: StrictStr = Field(default="", alias="externalURL")
    alerts: list[Any]


class _Envelope(BaseModel):
    """What must be right for a body to be a notification at all."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    alerts: list[Any]


@dataclass(frozen=True)
class FieldError:
    """One problem, located like `alerts[3].labels.service`."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


class PayloadError(ValueError):
    """The request as a whole is unusable; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in errors))
        self.status = status
        self.errors = errors


@dataclass
class WebhookBatch:
    """What one notification brought: the envelope, the good alerts, and what was refused."""

    message: WebhookMessage
    anomalies: list[Anomaly] = field(default_factory=list)
    rejected: list[FieldError] = field(default_factory=list)


def _loc(prefix: str, parts: tuple[int | str, ...]) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_errors(prefix: str, exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        # pydantic reports dict keys and the `[key]` step of a constrained value alike.
        parts = tuple(p for p in err["loc"] if p not in ("[key]",))
        errors.append(FieldError(_loc(prefix, parts), err["msg"]))
    return errors


def _limit_errors(index: int, alert: WebhookAlert, limits: PayloadLimits) -> list[FieldError]:
    where = f"alerts[{index}]"
    errors: list[FieldError] = []
    for kind, pairs, most, value_chars in (
        ("labels", alert.labels, limits.max_labels, limits.max_label_value_chars),
        ("annotations", alert.annotations, limits.max_annotations,
         limits.max_annotation_value_chars),
    ):
        if len(pairs) > most:
            errors.append(FieldError(f"{where}.{kind}", f"{len(pairs)} entries; at most {most}"))
            continue
        for name, value in pairs.items():
            if len(name) > limits.max_name_chars:
                errors.append(FieldError(f"{where}.{kind}",
                                         f"a name is {len(name)} characters; at most "
                                         f"{limits.max_name_chars}"))
            elif kind == "labels" and not LABEL_NAME.match(name):
                errors.append(FieldError(f"{where}.labels.{name}",
                                         "not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"))
            if len(value) > value_chars:
                errors.append(FieldError(f"{where}.{kind}.{name[:64]}",
                                         f"value is {len(value)} characters; at most "
                                         f"{value_chars}"))
    return errors


_checked_names: set[str] = set()  # label names already found valid (names repeat in a storm)
_CHECKED_NAMES_LIMIT = 65_536


def _within_limits(alert: WebhookAlert, limits: PayloadLimits) -> bool:
    """True when `_limit_errors` would find nothing, decided without visiting each pair in
    Python when the label names have been seen before."""
    labels, annotations = alert.labels, alert.annotations
    if not (len(labels) <= limits.max_labels and len(annotations) <= limits.max_annotations
            and max(map(len, labels)) <= limits.max_name_chars
            and max(map(len, annotations), default=0) <= limits.max_name_chars
            and max(map(len, labels.values())) <= limits.max_label_value_chars
            and max(map(len, annotations.values()), default=0)
            <= limits.max_annotation_value_chars):
        return False
    if labels.keys() <= _checked_names:
        return True
    if not all(LABEL_NAME.match(name) for name in labels):
        return False
    if len(_checked_names) > _CHECKED_NAMES_LIMIT:
        _checked_names.clear()
    _checked_names.update(labels)
    return True


def _resolved(alert: WebhookAlert, received_at: datetime) -> bool:
    """Resolved by status, or by an endsAt already past (Alertmanager's own `Resolved()`)."""
    if alert.status == "resolved":
        return True
    ends = alert.ends_at
    return ends is not None and ends.year > _ZERO_TIME_YEAR and ends <= received_at


def to_anomaly(alert: WebhookAlert, received_at: datetime) -> Anomaly:
    """The alert as an `Anomaly`, fingerprinted from its labels the way Alertmanager does."""
    return Anomaly.model_validate(_anomaly_fields(alert, received_at,
                                                  label_fingerprint(alert.labels)))


def _anomaly_fields(alert: WebhookAlert, received_at: datetime,
                    fingerprint: str) -> dict[str, Any]:
    resolved = _resolved(alert, received_at)
    ends = alert.ends_at if alert.ends_at and alert.ends_at.year > _ZERO_TIME_YEAR else None
    return {
        "fingerprint": fingerprint,
        "status": AnomalyStatus.RESOLVED if resolved else AnomalyStatus.FIRING,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at,
        "ends_at": ends,
        "source": "alertmanager",
        "generator_url": alert.generator_url,
    }


def decode_json(raw: bytes) -> Any:
    """The request body as JSON, or a PayloadError that says what is wrong with it."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise PayloadError(400, [FieldError("body", "not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            400, [FieldError("body", f"not JSON: {exc.msg} at line {exc.lineno} column "
                                     f"{exc.colno}")]
        ) from None
    except RecursionError:
        raise PayloadError(400, [FieldError("body", "JSON nested too deeply")]) from None


def parse_webhook(
    raw: bytes, received_at: datetime, limits: PayloadLimits | None = None
) -> WebhookBatch:
    """Parse one notification body. Raises PayloadError when the envelope is unusable."""
    limits = limits or PayloadLimits()
    if len(raw) > limits.max_body_bytes:
        raise PayloadError(413, [FieldError("body", f"{len(raw)} bytes; at most "
                                                    f"{limits.max_body_bytes}")])
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise PayloadError(422, [FieldError("body", f"expected a JSON object, got "
                                                    f"{type(data).__name__}")])
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(422, _pydantic_errors("", exc)) from None
    if len(envelope.alerts) > limits.max_alerts:
        raise PayloadError(413, [FieldError("alerts", f"{len(envelope.alerts)} alerts; at most "
                                                      f"{limits.max_alerts} per request")])
    problems: list[FieldError] = []
    try:
        message = WebhookMessage.model_validate(data)
    except ValidationError as exc:
        # A bad receiver name or common label costs no alert: they are reported, and the
        # alerts are read on their own.
        problems = _pydantic_errors("", exc)
        message = WebhookMessage(version="4", alerts=envelope.alerts)
    batch = WebhookBatch(message=message, rejected=problems)
    good: list[WebhookAlert] = []
    for index, alert in _validated(message.alerts, batch.rejected):
        if _within_limits(alert, limits):
            good.append(alert)
            continue
        problems = _limit_errors(index, alert, limits)
        if problems:
            batch.rejected.extend(problems)
        else:
            good.append(alert)
    fingerprints = label_fingerprints([alert.labels for alert in good])
    batch.anomalies = _ANOMALY_LIST.validate_python(
        [_anomaly_fields(alert, received_at, fp)
         for alert, fp in zip(good, fingerprints, strict=True)])
    return batch


_ALERT_LIST = TypeAdapter(list[WebhookAlert])
_ANOMALY_LIST = TypeAdapter(list[Anomaly])


def _validated(items: list[Any], rejected: list[FieldError]) -> list[tuple[int, WebhookAlert]]:
    """(index, alert) for each valid alert; each invalid one is added to `rejected`.

    The whole list is validated at once; only a list with a bad alert in it is validated
    again alert by alert, so the good ones are kept and each bad one is named."""
    try:
        return list(enumerate(_ALERT_LIST.validate_python(items)))
    except ValidationError:
        pass
    out = []
    for index, item in enumerate(items):
        try:
            out.append((index, WebhookAlert.model_validate(item)))
        except ValidationError as exc:
            rejected.extend(_pydantic_errors(f"alerts[{index}]", exc))
    return out
