"""People's verbs on an incident over HTTP: acknowledge, assign, note, take over, resolve,
reopen. Each needs the approve role (the people who answer pages), is recorded under the
caller's token name, and answers 409 with the reason when it does not apply now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.bodies import json_model, optional_json_model
from opsloop.api.routes import Id, Reader
from opsloop.api.runtime import IntakeRuntime
from opsloop.models.people import NAME_MAX_CHARS, NOTE_MAX_CHARS, PeopleRefused, PeopleVerb
from opsloop.store import StoreError

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES, tags=["people"])
Responder = Annotated[Principal, Depends(authorize(Role.APPROVE))]
MAX_BODY_BYTES = 16 * 1024
_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON"},
    404: {"description": "no such incident"},
    409: {"description": "the verb does not apply to the incident as it stands (the reason "
                         "says why: already acknowledged, approvals still waiting, ...)"},
    413: {"description": f"the body is over {MAX_BODY_BYTES} bytes"},
    415: {"description": "the body is declared as something other than JSON"},
    422: {"description": "a field is missing or wrong"},
}


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=NOTE_MAX_CHARS)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(min_length=1, max_length=NAME_MAX_CHARS)


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=NOTE_MAX_CHARS)


def _body(model: type[BaseModel], required: bool) -> dict[str, Any]:
    """The request body in the OpenAPI document (the routes read it themselves)."""
    return {"requestBody": {"required": required, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def _apply(runtime: IntakeRuntime, incident_id: str, verb: PeopleVerb, principal: Principal,
           detail: str) -> dict[str, Any]:
    if not principal.authenticated:
        raise HTTPException(401, "this is someone's act: send a bearer token")
    try:
        done = runtime.people(incident_id, verb, principal.name, detail)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    except PeopleRefused as exc:
        raise HTTPException(409, f"{incident_id}: cannot {verb.value.replace('_', ' ')}: "
                                 f"{exc}") from None
    state = runtime.read(lambda s: s.people.state(incident_id))
    return {"event": done.model_dump(mode="json"),
            "people": state.model_dump(mode="json", exclude={"events"})}


def _runtime(request: Request) -> IntakeRuntime:
    runtime: IntakeRuntime = request.app.state.runtime
    return runtime


@router.get("/incidents/{incident_id}/people", summary="who acknowledged, owns, took over or "
            "resolved the incident, and every note", responses={404: _ANSWERS[404]})
def people(request: Request, incident_id: Id, _: Reader) -> dict[str, Any]:
    def load(store: Any) -> Any:
        store.get_incident(incident_id)
        return store.people.state(incident_id)

    try:
        state = _runtime(request).read(load)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    return dict(state.model_dump(mode="json"))


def _simple(verb: PeopleVerb, summary: str) -> None:
    async def route(request: Request, incident_id: Id, principal: Responder) -> dict[str, Any]:
        body = await optional_json_model(request, Reason, MAX_BODY_BYTES)
        return await run_in_threadpool(_apply, _runtime(request), incident_id, verb,
                                       principal, body.reason if body else "")

    route.__name__ = verb.value
    router.post(f"/incidents/{{incident_id}}/{verb.value.replace('_', '')}", summary=summary,
                responses=_ANSWERS, openapi_extra=_body(Reason, required=False))(route)


_simple(PeopleVerb.ACKNOWLEDGE, "acknowledge: a person has it (stops re-paging; PagerDuty "
                                "acknowledges)")
_simple(PeopleVerb.TAKE_OVER, "take over: a person drives; the loop runs nothing more without "
                              "a human's yes and reverts nothing")
_simple(PeopleVerb.RESOLVE, "resolve (PagerDuty resolves); refused while approvals wait")
_simple(PeopleVerb.REOPEN, "reopen a resolved incident")


@router.post("/incidents/{incident_id}/assign", summary="assign the incident to a person",
             responses=_ANSWERS, openapi_extra=_body(Assignment, required=True))
async def assign(request: Request, incident_id: Id, principal: Responder) -> dict[str, Any]:
    body = await json_model(request, Assignment, MAX_BODY_BYTES)
    return await run_in_threadpool(_apply, _runtime(request), incident_id, PeopleVerb.ASSIGN,
                                   principal, body.assignee)


@router.post("/incidents/{incident_id}/notes", summary="add a note to the incident's timeline",
             responses=_ANSWERS, openapi_extra=_body(Note, required=True))
async def note(request: Request, incident_id: Id, principal: Responder) -> dict[str, Any]:
    body = await json_model(request, Note, MAX_BODY_BYTES)
    return await run_in_threadpool(_apply, _runtime(request), incident_id, PeopleVerb.NOTE,
                                   principal, body.text)
