"""Alertmanager's webhook payload (version 4): models, and a parser that never loses a good alert.

The envelope is checked first (an unusable envelope rejects the whole request); then every
alert is validated on its own, so one malformed alert is reported by index and field while
the valid alerts of the same batch are still taken in.

A storm's notifications are read the fast way: JSON decoded in Rust (which refuses text that
is not Unicode), the alerts validated as one list with no Python per field, timestamps
parsed once per distinct string. The first thing that way cannot take (a bad alert, a limit
passed, a timestamp refused) sends the whole notification the careful way, alert by alert,
which names every problem; both ways take in the same alerts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

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
_Text = Annotated[str, Field(strict=True)]  # StrictStr for text already known to be Unicode


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


class _WireAlert(TypedDict):
    """`WebhookAlert` as the fast way reads it: the same names, aliases and types, with the
    checks that need Python per value (timestamps, Unicode) left to it."""

    __pydantic_config__ = ConfigDict(extra="ignore", populate_by_name=True)  # type: ignore[misc]

    status: Literal["firing", "resolved"]
    labels: Annotated[dict[_Text, _Text], Field(min_length=1)]
    annotations: NotRequired[dict[_Text, _Text]]
    starts_at: Annotated[_Text, Field(alias="startsAt")]
    ends_at: NotRequired[Annotated[_Text | None, Field(alias="endsAt")]]
    generator_url: NotRequired[Annotated[_Text, Field(alias="generatorURL")]]
    fingerprint: NotRequired[_Text]


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


def _within_limits(labels: dict[str, str], annotations: dict[str, str],
                   limits: PayloadLimits) -> bool:
    """True when `_limit_errors` would find nothing in these labels (at least one) and
    annotations, decided without visiting each pair in Python when the label names have been
    seen before."""
    if not (len(labels) <= limits.max_labels and len(annotations) <= limits.max_annotations
            and max(map(len, labels)) <= limits.max_name_chars
            and max(map(len, labels.values())) <= limits.max_label_value_chars
            and (not annotations
                 or (max(map(len, annotations)) <= limits.max_name_chars
                     and max(map(len, annotations.values()))
                     <= limits.max_annotation_value_chars))):
        return False
    if labels.keys() <= _checked_names:
        return True
    if not all(LABEL_NAME.match(name) for name in labels):
        return False
    if len(_checked_names) > _CHECKED_NAMES_LIMIT:
        _checked_names.clear()
    _checked_names.update(labels)
    return True


_timestamps: dict[str, datetime] = {}  # a storm's alerts share a few startsAt strings
_TIMESTAMPS_LIMIT = 4096


def _timestamp(text: str) -> datetime:
    """`_rfc3339` of a string, remembered."""
    parsed = _timestamps.get(text)
    if parsed is None:
        parsed = _rfc3339(text)
        if len(_timestamps) >= _TIMESTAMPS_LIMIT:
            _timestamps.clear()
        _timestamps[text] = parsed
    return parsed


def _resolved(alert: WebhookAlert, received_at: datetime) -> bool:
    """Resolved by status, or by an endsAt already past (Alertmanager's own `Resolved()`)."""
    return _is_resolved(alert.status, alert.ends_at, received_at)


def _is_resolved(status: str, ends: datetime | None, received_at: datetime) -> bool:
    if status == "resolved":
        return True
    return ends is not None and ends.year > _ZERO_TIME_YEAR and ends <= received_at


def to_anomaly(alert: WebhookAlert, received_at: datetime) -> Anomaly:
    """The alert as an `Anomaly`, fingerprinted from its labels the way Alertmanager does."""
    return Anomaly.model_validate(_anomaly_fields(alert, received_at,
                                                  label_fingerprint(alert.labels)))


def _anomaly_fields(alert: WebhookAlert, received_at: datetime,
                    fingerprint: str) -> dict[str, Any]:
    return _fields(alert.status, alert.labels, alert.annotations, alert.starts_at,
                   alert.ends_at, alert.generator_url, received_at, fingerprint)


def _fields(status: str, labels: dict[str, str], annotations: dict[str, str],
            starts: datetime, ends: datetime | None, generator_url: str,
            received_at: datetime, fingerprint: str) -> dict[str, Any]:
    """An `Anomaly`'s fields from an alert's (Go's zero endsAt is no end at all)."""
    resolved = _is_resolved(status, ends, received_at)
    return {
        "fingerprint": fingerprint,
        "status": AnomalyStatus.RESOLVED if resolved else AnomalyStatus.FIRING,
        "labels": labels,
        "annotations": annotations,
        "starts_at": starts,
        "ends_at": ends if ends and ends.year > _ZERO_TIME_YEAR else None,
        "source": "alertmanager",
        "generator_url": generator_url,
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


def _decoded(raw: bytes) -> tuple[Any, bool]:
    """The body as JSON, and whether it was decoded in Rust: then every string in it is valid
    Unicode (lone surrogates are refused there). What that decoder refuses (a byte order
    mark, UTF-16, lone surrogates, deep nesting, bad JSON) is decoded, or refused, by
    `decode_json`, so the answer never depends on which decoder read it."""
    try:
        return pydantic_core.from_json(raw), True
    except ValueError:
        return decode_json(raw), False


def parse_webhook(
    raw: bytes, received_at: datetime, limits: PayloadLimits | None = None
) -> WebhookBatch:
    """Parse one notification body. Raises PayloadError when the envelope is unusable."""
    limits = limits or PayloadLimits()
    if len(raw) > limits.max_body_bytes:
        raise PayloadError(413, [FieldError("body", f"{len(raw)} bytes; at most "
                                                    f"{limits.max_body_bytes}")])
    data, unicode_checked = _decoded(raw)
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
    fields = (_fields_at_once(message.alerts, received_at, limits) if unicode_checked
              else None)
    if fields is None:
        fields = _fields_alert_by_alert(message.alerts, received_at, limits, batch.rejected)
    batch.anomalies = _ANOMALY_LIST.validate_python(fields)
    return batch


_WIRE_ALERTS = TypeAdapter(list[_WireAlert])
_ALERT_LIST = TypeAdapter(list[WebhookAlert])
_ANOMALY_LIST = TypeAdapter(list[Anomaly])


def _fields_at_once(items: list[Any], received_at: datetime,
                    limits: PayloadLimits) -> list[dict[str, Any]] | None:
    """The anomalies' fields when every alert is good, read as one list; None at the first
    alert that is not (then the careful way reads them again, to name every problem)."""
    try:
        alerts = _WIRE_ALERTS.validate_python(items)
    except ValidationError:
        return None
    read = []
    try:
        for alert in alerts:
            labels = alert["labels"]
            annotations = alert.get("annotations", {})
            if not _within_limits(labels, annotations, limits):
                return None
            ends = alert.get("ends_at")
            read.append((alert["status"], labels, annotations, _timestamp(alert["starts_at"]),
                         None if ends is None else _timestamp(ends),
                         alert.get("generator_url", "")))
    except ValueError:  # a timestamp refused
        return None
    fingerprints = label_fingerprints([r[1] for r in read])
    return [_fields(*r, received_at, fp) for r, fp in zip(read, fingerprints, strict=True)]


def _fields_alert_by_alert(items: list[Any], received_at: datetime, limits: PayloadLimits,
                           rejected: list[FieldError]) -> list[dict[str, Any]]:
    """The anomalies' fields of the good alerts; each problem with the others is added to
    `rejected`, named by index and field."""
    good: list[WebhookAlert] = []
    for index, alert in _validated(items, rejected):
        if _within_limits(alert.labels, alert.annotations, limits):
            good.append(alert)
            continue
        problems = _limit_errors(index, alert, limits)
        if problems:
            rejected.extend(problems)
        else:
            good.append(alert)
    fingerprints = label_fingerprints([alert.labels for alert in good])
    return [_anomaly_fields(alert, received_at, fp)
            for alert, fp in zip(good, fingerprints, strict=True)]


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
