"""POST /api/v1/alerts/alertmanager: Alertmanager's webhook receiver (payload version 4).

Point an Alertmanager receiver at it:

    receivers:
      - name: opsloop
        webhook_configs:
          - url: http://127.0.0.1:8080/api/v1/alerts/alertmanager
            http_config: {authorization: {credentials: <an ingest token>}}

Answers 200 when every alert was taken in; 422 naming each refused alert by index and
field while the valid alerts of the same batch are still taken in (Alertmanager does not
retry a 4xx, and a retry would be deduplicated anyway); 400 for a body that is not JSON;
413 beyond the size limits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from opsloop.alertmanager import (
    FieldError,
    PayloadError,
    PayloadLimits,
    WebhookAlert,
    WebhookMessage,
    parse_webhook,
)
from opsloop.api.app import authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.runtime import IntakeRuntime

router = APIRouter(tags=["intake"])
MAX_ERRORS_SHOWN = 50

_SCHEMA_REF = "#/components/schemas/{model}"


class WebhookPayload(WebhookMessage):
    """Documentation only: the envelope with its alerts spelled out."""

    alerts: list[WebhookAlert]


def schema_components() -> dict[str, Any]:
    schema = WebhookPayload.model_json_schema(by_alias=True, ref_template=_SCHEMA_REF)
    components = schema.pop("$defs", {})
    components["AlertmanagerWebhook"] = schema
    return dict(components)


def _errors(errors: list[FieldError]) -> list[dict[str, str]]:
    shown = [e.as_dict() for e in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append({"loc": "alerts", "msg": f"and {len(errors) - MAX_ERRORS_SHOWN} more"})
    return shown


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (a declared length is trusted
    only to refuse early, never to accept)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadError(413, [FieldError("body", f"{declared} bytes; at most {limit}")])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(413, [FieldError("body", f"more than {limit} bytes")])
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/v1/alerts/alertmanager",
    summary="receive an Alertmanager webhook notification (version 4)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": _SCHEMA_REF.format(model="AlertmanagerWebhook")}}}}},
    responses={
        200: {"description": "every alert taken in"},
        400: {"description": "the body is not JSON"},
        413: {"description": "the body or the alert count is over the limit"},
        422: {"description": "fields are wrong; the valid alerts were still taken in"},
    },
)
async def alertmanager_webhook(
    request: Request, principal: Principal = Depends(authorize(Role.INGEST))  # noqa: B008
) -> JSONResponse:
    runtime: IntakeRuntime = request.app.state.runtime
    limits = PayloadLimits(max_body_bytes=runtime.settings.api_max_body_bytes)
    try:
        raw = await _body(request, limits.max_body_bytes)
        batch = parse_webhook(raw, datetime.now(UTC), limits)
    except PayloadError as exc:
        return JSONResponse(status_code=exc.status, content={"detail": _errors(exc.errors)})
    done = runtime.ingest(batch.anomalies)
    counts = {
        "accepted": len(batch.anomalies),
        "rejected": len(batch.rejected),
        "deduplicated": done.deduplicated,
        "silenced": done.silenced,
        "inhibited": done.inhibited,
        "resolved": done.resolved,
    }
    if batch.rejected:
        return JSONResponse(status_code=422,
                            content={"detail": _errors(batch.rejected), **counts})
    return JSONResponse(status_code=200, content=counts)
