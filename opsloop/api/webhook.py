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
413 beyond the size limits; 415 for a body declared as anything but JSON. `rejected`
counts alerts refused, `detail` every problem with them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from opsloop.alertmanager import (
    PayloadLimits,
    WebhookAlert,
    WebhookBatch,
    WebhookMessage,
    parse_webhook,
)
from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.bodies import error_detail, read_body, require_json
from opsloop.api.runtime import IntakeRuntime
from opsloop.intake import IntakeStats

router = APIRouter(tags=["intake"], responses=AUTH_RESPONSES)

_SCHEMA_REF = "#/components/schemas/{model}"


class WebhookPayload(WebhookMessage):
    """Documentation only: the envelope with its alerts spelled out."""

    alerts: list[WebhookAlert]


def schema_components() -> dict[str, Any]:
    schema = WebhookPayload.model_json_schema(by_alias=True, ref_template=_SCHEMA_REF)
    components = schema.pop("$defs", {})
    components["AlertmanagerWebhook"] = schema
    return dict(components)


def take_in(runtime: IntakeRuntime, raw: bytes,
            limits: PayloadLimits) -> tuple[WebhookBatch, IntakeStats]:
    """Parse one notification and group its alerts (raises PayloadError for the envelope)."""
    batch = parse_webhook(raw, datetime.now(UTC), limits)
    return batch, runtime.ingest(batch.anomalies)


@router.post(
    "/api/v1/alerts/alertmanager",
    summary="receive an Alertmanager webhook notification (version 4)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": _SCHEMA_REF.format(model="AlertmanagerWebhook")}}}}},
    responses={
        200: {"description": "every alert taken in"},
        400: {"description": "the body is not JSON"},
        413: {"description": "the body or the alert count is over the limit"},
        415: {"description": "the body is declared as something other than JSON"},
        422: {"description": "fields are wrong; the valid alerts were still taken in"},
    },
)
async def alertmanager_webhook(
    request: Request, principal: Principal = Depends(authorize(Role.INGEST))  # noqa: B008
) -> JSONResponse:
    runtime: IntakeRuntime = request.app.state.runtime
    limits = PayloadLimits(max_body_bytes=runtime.settings.api_max_body_bytes)
    require_json(request)
    raw = await read_body(request, limits.max_body_bytes)
    # A storm's notification takes seconds to parse and group: off the event loop, so health
    # checks and other requests are answered meanwhile.
    batch, done = await run_in_threadpool(take_in, runtime, raw, limits)
    counts = {
        "accepted": len(batch.anomalies),
        "rejected": len(batch.message.alerts) - len(batch.anomalies),  # alerts, not errors
        "deduplicated": done.deduplicated,
        "silenced": done.silenced,
        "inhibited": done.inhibited,
        "resolved": done.resolved,
    }
    if batch.rejected:
        return JSONResponse(status_code=422,
                            content={"detail": error_detail(batch.rejected), **counts})
    return JSONResponse(status_code=200, content=counts)
