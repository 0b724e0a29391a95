"""Incidents, approvals, signals, postmortems and intake state, as JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.bodies import json_model, optional_json_model
from opsloop.api.runtime import IntakeRuntime
from opsloop.environments import UnknownEnvironment
from opsloop.files import documents
from opsloop.models import ApprovalRequest, Incident, IncidentStatus, ParamValue, Verdict
from opsloop.policy.health import SloStatus, budget_exhausted, slo_status
from opsloop.store import StoreError

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)
# A decision is a reason and a few parameters; anything near this size is not one.
DECISION_MAX_BODY_BYTES = 64 * 1024
_SCHEMA_REF = "#/components/schemas/{model}"

Id = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
FileName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.md$")]
Reader = Annotated[Principal, Depends(authorize(Role.READ))]
Approver = Annotated[Principal, Depends(authorize(Role.APPROVE))]


def _runtime(request: Request) -> IntakeRuntime:
    runtime: IntakeRuntime = request.app.state.runtime
    return runtime


def brief(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status.value,
        "severity": incident.severity.value if incident.severity else None,
        "opened_at": incident.opened_at.isoformat(),
        "services": incident.services,
        "environment": incident.environment,
        "root_cause": incident.root_cause.category if incident.root_cause else None,
        "alerts": len(incident.anomalies),
    }


@router.get("/incidents", tags=["incidents"], summary="incidents, oldest first")
def list_incidents(request: Request, _: Reader,
                   status: Annotated[IncidentStatus | None, Query()] = None
                   ) -> list[dict[str, Any]]:
    found: list[Incident] = _runtime(request).read(lambda s: s.incidents())
    return [brief(i) for i in found if status is None or i.status is status]


@router.get("/incidents/{incident_id}", tags=["incidents"],
            summary="one incident in full, with its audit log",
            responses={404: {"description": "no such incident"}})
def show_incident(request: Request, incident_id: Id, _: Reader) -> dict[str, Any]:
    def load(store: Any) -> tuple[Incident, list[Any]]:
        return store.get_incident(incident_id), store.audit_log(incident_id)

    try:
        incident, audit = _runtime(request).read(load)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"incident": incident.model_dump(mode="json"),
            "audit": [a.model_dump(mode="json") for a in audit]}


@router.get("/approvals", tags=["approvals"], summary="actions waiting for a human")
def list_approvals(request: Request, _: Reader) -> list[ApprovalRequest]:
    waiting: list[ApprovalRequest] = _runtime(request).read(lambda s: s.pending())
    return waiting


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=4000)


class Rejection(Decision):
    reason: str = Field(min_length=1, max_length=4000)


_JSON_KINDS = {list: "a list", dict: "an object", type(None): "null"}


def _one_value(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # One message for the value, not one per member of the union it failed.
    try:
        return handler(value)
    except ValidationError:
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise PydanticCustomError("param_value", "must be text, a number or true/false, "
                                                 "not {kind}", {"kind": kind}) from None


class Modification(Decision):
    set: dict[Annotated[str, Field(min_length=1, max_length=100)],
              Annotated[ParamValue, WrapValidator(_one_value)]] = Field(
        min_length=1, max_length=50, description="parameters to change, e.g. {\"replicas\": 12}")


def schema_components() -> dict[str, Any]:
    """The decision bodies, for the OpenAPI document (the routes read them themselves)."""
    components: dict[str, Any] = {}
    for model in (Decision, Rejection, Modification):
        schema = model.model_json_schema(ref_template=_SCHEMA_REF)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _invalid_change() -> type[Exception]:
    """The runner's refusal of a `modify` change outside its allowed range."""
    try:
        from opsloop.policy.changes import InvalidChange
    except ImportError:  # an older runner that does not check changes
        return _NeverRaised
    return InvalidChange


class _NeverRaised(Exception):
    pass


def _decide(runtime: IntakeRuntime, approval_id: str, principal: Principal, verdict: Verdict,
            reason: str, changes: dict[str, ParamValue]) -> JSONResponse:
    if not principal.authenticated:  # `authorize` never admits one: a decision is someone's
        raise HTTPException(401, "a decision needs a bearer token")
    try:
        pending, status = runtime.read(lambda s: s.get_request(approval_id))
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    if status != "pending":
        raise HTTPException(409, f"approval {approval_id} was already decided ({status})")
    try:
        incident = runtime.decide(approval_id, pending.incident_id, verdict, principal.name,
                                  reason, changes)
    except _invalid_change() as exc:  # the approval stays pending: send a corrected change
        raise HTTPException(422, str(exc)) from None
    except (StoreError, UnknownEnvironment) as exc:  # lost the claim, or production is gone
        raise HTTPException(409, str(exc)) from None
    body = {"approval": approval_id, "verdict": verdict.value, "by": principal.name,
            "incident": pending.incident_id}
    if incident is None:
        return JSONResponse(status_code=202, content={**body, "status": "running"})
    return JSONResponse(status_code=200, content={**body, "status": incident.status.value,
                                                  "results": [c.result.model_dump(mode="json")
                                                              for c in incident.actions
                                                              if c.result is not None]})


def _decision_route(summary: str, body: str, required: bool) -> dict[str, Any]:
    return {
        "tags": ["approvals"],
        "summary": summary,
        "responses": {
            200: {"description": "decided; the incident ran to its next stop"},
            202: {"description": "decided; the incident is still running (verification "
                                 "window)"},
            400: {"description": "the body is not JSON"},
            404: {"description": "no such approval"},
            409: {"description": "already decided"},
            413: {"description": f"the body is over {DECISION_MAX_BODY_BYTES} bytes"},
            415: {"description": "the body is declared as something other than JSON"},
            422: {"description": "a field is wrong, or a change is outside its allowed range "
                                 "(the approval stays pending)"},
        },
        "openapi_extra": {"requestBody": {"required": required, "content": {
            "application/json": {"schema": {"$ref": _SCHEMA_REF.format(model=body)}}}}},
    }


@router.post("/approvals/{approval_id}/approve",
             **_decision_route("approve and run the action", "Decision", required=False))
async def approve(request: Request, approval_id: Id, principal: Approver) -> JSONResponse:
    body = await optional_json_model(request, Decision, DECISION_MAX_BODY_BYTES)
    return await run_in_threadpool(_decide, _runtime(request), approval_id, principal,
                                   Verdict.APPROVE, body.reason if body else "", {})


@router.post("/approvals/{approval_id}/reject",
             **_decision_route("reject the action (a reason is required)", "Rejection",
                               required=True))
async def reject(request: Request, approval_id: Id, principal: Approver) -> JSONResponse:
    body = await json_model(request, Rejection, DECISION_MAX_BODY_BYTES)
    return await run_in_threadpool(_decide, _runtime(request), approval_id, principal,
                                   Verdict.REJECT, body.reason, {})


@router.post("/approvals/{approval_id}/modify",
             **_decision_route("change parameters, then run the action", "Modification",
                               required=True))
async def modify(request: Request, approval_id: Id, principal: Approver) -> JSONResponse:
    body = await json_model(request, Modification, DECISION_MAX_BODY_BYTES)
    return await run_in_threadpool(_decide, _runtime(request), approval_id, principal,
                                   Verdict.MODIFY, body.reason, body.set)


def _listing(directory: Path) -> list[dict[str, Any]]:
    return [{"name": p.name, "bytes": p.stat().st_size} for p in documents(directory)]


def _document(directory: Path, name: str, what: str) -> dict[str, str]:
    path = directory / name
    # The name pattern already forbids separators; resolve() guards symlinks out of the dir.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.md", name) or path not in documents(
            directory, name):
        raise HTTPException(404, f"no {what} named {name!r}")
    return {"name": name, "markdown": path.read_text(encoding="utf-8")}


@router.get("/signals", tags=["learn"], summary="improvement signals filed")
def list_signals(request: Request, _: Reader) -> list[dict[str, Any]]:
    return _listing(_runtime(request).settings.signals_dir)


@router.get("/signals/{name}", tags=["learn"], summary="one signal (markdown)",
            responses={404: {"description": "no such signal"}})
def get_signal(request: Request, name: FileName, _: Reader) -> dict[str, str]:
    return _document(_runtime(request).settings.signals_dir, name, "signal")


@router.get("/postmortems", tags=["learn"], summary="postmortem drafts")
def list_postmortems(request: Request, _: Reader) -> list[dict[str, Any]]:
    return _listing(_runtime(request).settings.postmortems_dir)


@router.get("/postmortems/{name}", tags=["learn"], summary="one postmortem draft (markdown)",
            responses={404: {"description": "no such postmortem"}})
def get_postmortem(request: Request, name: FileName, _: Reader) -> dict[str, str]:
    return _document(_runtime(request).settings.postmortems_dir, name, "postmortem")


@router.get("/intake", tags=["intake"], summary="intake counters: received, deduplicated, ...")
def intake_state(request: Request, _: Reader) -> dict[str, Any]:
    runtime = _runtime(request)
    return {**runtime.grouper.snapshot(), "errors": runtime.errors[-10:]}


@router.get("/slo", tags=["health"], summary="SLO burn rates and error budget left",
            responses={409: {"description": "no environment configured to measure"}})
def slos(request: Request, _: Reader) -> list[dict[str, Any]]:
    runtime = _runtime(request)
    if runtime.env is None:
        raise HTTPException(409, "no environment configured (OPSLOOP_SERVE_ENVIRONMENT)")
    policies = runtime.policies
    out = []
    for slo in policies.health.slos:
        status: SloStatus = slo_status(slo, runtime.env, policies.health.burn_rate_windows)
        out.append({**status.model_dump(mode="json"),
                    "change_freeze": budget_exhausted(slo.service, policies, runtime.env)})
    return out
