"""Cost over the API: planned activity the cost agent will not raise — list, add, remove.

The marks are `opsloop cost planned`'s own (opsloop.scheduled.agents.cost_planned, in
state/cost-feedback.json); adding and removing one is an operator's decision (Role.APPROVE),
recorded as the caller's identity.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from opsloop.alertmanager import FieldError, PayloadError
from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.bodies import json_model
from opsloop.api.routes import DECISION_MAX_BODY_BYTES, Id, Reader, _runtime
from opsloop.api.runtime import IntakeRuntime
from opsloop.scheduled.agents import cost_planned
from opsloop.scheduled.agents.cost import feedback_path

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)
Operator = Annotated[Principal, Depends(authorize(Role.APPROVE))]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class PlannedActivity(BaseModel):
    """Spend someone expects: a service (and region / usage type, else all), from..to, why."""

    model_config = ConfigDict(extra="forbid")

    service: Name
    region: Name | None = None
    usage_type: Name | None = None
    start: AwareDatetime = Field(description="from (ISO 8601 with a time zone)")
    end: AwareDatetime = Field(description="to (ISO 8601 with a time zone), after start")
    reason: Annotated[str, Field(min_length=1, max_length=4000)]

    @model_validator(mode="after")
    def _ends_after_start(self) -> PlannedActivity:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start "
                             f"{self.start.isoformat()}")
        return self


def _identity(principal: Principal) -> str:
    if not principal.authenticated:  # `authorize` never admits one: a mark is someone's
        raise HTTPException(401, "marking planned activity needs a bearer token")
    return principal.name


def _services(runtime: IntakeRuntime) -> list[str] | None:
    """Production's services when it is known (a mark for another is refused); None when
    there is no production, or it does not answer (the mark is kept unchecked then)."""
    if runtime.env is None:
        return None
    try:
        return [s.name for s in runtime.env.services()]
    except Exception as exc:  # a remote production down must not refuse a person's mark
        runtime.errors = [*runtime.errors[-49:], f"cost planned: services not read: {exc!r}"]
        return None


def _problem(exc: cost_planned.PlannedError) -> HTTPException:
    return HTTPException(409, str(exc))


@router.get("/cost/planned", tags=["cost"], summary="every planned-activity mark",
            responses={409: {"description": "the marks file is unreadable"}})
def list_planned(request: Request, _: Reader) -> list[dict[str, Any]]:
    try:
        return cost_planned.list_planned(feedback_path(_runtime(request).settings))
    except cost_planned.PlannedError as exc:
        raise _problem(exc) from None


@router.post("/cost/planned", tags=["cost"], status_code=201,
             summary="mark spend as planned activity: the cost agent lists it, does not raise "
                     "it",
             responses={201: {"description": "recorded: the mark, with its id"},
                        400: {"description": "the body is not JSON"},
                        409: {"description": "the marks file is unreadable"},
                        413: {"description": f"the body is over {DECISION_MAX_BODY_BYTES} "
                                             f"bytes"},
                        415: {"description": "the body is declared as something other than "
                                             "JSON"},
                        422: {"description": "a field of the body is wrong (or names a "
                                             "service production does not have)"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": PlannedActivity.model_json_schema()}}}})
async def add_planned(request: Request, principal: Operator) -> JSONResponse:
    body = await json_model(request, PlannedActivity, DECISION_MAX_BODY_BYTES)
    by, runtime = _identity(principal), _runtime(request)
    known = await run_in_threadpool(_services, runtime)
    if known is not None and body.service not in known:
        raise PayloadError(422, [FieldError(
            "body.service", f"{body.service!r}: production has no such service (it has "
                            f"{', '.join(sorted(known))})")])
    try:
        mark = await run_in_threadpool(
            cost_planned.add_planned, feedback_path(runtime.settings), service=body.service,
            region=body.region, usage_type=body.usage_type, start=body.start, end=body.end,
            why=body.reason, by=by, at=runtime.now())
    except cost_planned.PlannedError as exc:
        raise _problem(exc) from None
    return JSONResponse(status_code=201, content=mark)


@router.delete("/cost/planned/{mark_id}", tags=["cost"], summary="remove a planned-activity mark",
               responses={404: {"description": "no mark with that id"},
                          409: {"description": "the marks file is unreadable"}})
def remove_planned(request: Request, mark_id: Id, principal: Operator) -> dict[str, Any]:
    _identity(principal)
    try:
        return cost_planned.remove_planned(feedback_path(_runtime(request).settings), mark_id)
    except cost_planned.UnknownMark as exc:
        raise HTTPException(404, str(exc)) from None
    except cost_planned.PlannedError as exc:
        raise _problem(exc) from None
