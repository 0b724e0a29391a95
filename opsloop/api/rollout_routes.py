"""Rollouts over the API: the flags and one managed flag as the rollouts agent sees it, and
the outcome owner's verbs (advance, hold, resume, kill, answer) as the caller's identity.

The verbs are `opsloop rollouts`' own (opsloop.graph.rollout_owner): advance and kill take
the rollouts agent's change path, the others are kept in the owner file.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.bodies import json_model, optional_json_model
from opsloop.api.routes import DECISION_MAX_BODY_BYTES, Id, Reader, _runtime
from opsloop.api.runtime import DECISION_WAIT_SECONDS, IntakeRuntime
from opsloop.environments import Production, UnknownEnvironment, open_environment
from opsloop.graph import rollout_owner as owner
from opsloop.graph.runner import OperateLoop
from opsloop.rollouts.owner import FlagOwnerState, OwnerBook, OwnerFileError
from opsloop.scheduled.agents.rollouts import pending_answers
from opsloop.store import StoreError

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)
Owner = Annotated[Principal, Depends(authorize(Role.APPROVE))]
Result = TypeVar("Result")
Reason = Annotated[str, Field(max_length=4000)]
Required = Annotated[str, Field(min_length=1, max_length=4000)]


class Advance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: int | None = Field(default=None, ge=1, le=100,
                           description="a step of the plan above the current percent "
                                       "(default: the next step)")
    reason: Reason = ""


class Hold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Required


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = ""


class Kill(Hold):
    pass


class AnswerKill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Literal["temporary", "rework"]
    reason: Reason = ""


_READ: dict[int | str, dict[str, Any]] = {
    404: {"description": "rollouts.yaml does not manage the flag, or production has no such "
                         "flag"},
    409: {"description": "no environment configured, or the owner file is unreadable"},
}


def _verb_route(summary: str, body: type[BaseModel], required: bool,
                extra: dict[int, dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "tags": ["rollouts"], "summary": summary,
        "responses": {
            **(extra or {}),
            400: {"description": "the body is not JSON"},
            404: _READ[404],
            409: {"description": "not possible now (held, not killed, not a step above the "
                                 "current one, an advance already waiting), or no "
                                 "environment"},
            413: {"description": f"the body is over {DECISION_MAX_BODY_BYTES} bytes"},
            415: {"description": "the body is declared as something other than JSON"},
            422: {"description": "a field of the body is wrong"},
        },
        "openapi_extra": {"requestBody": {"required": required, "content": {
            "application/json": {"schema": body.model_json_schema()}}}},
    }


def _against_production(runtime: IntakeRuntime, work: Callable[[Production], Result]
                        ) -> Result:
    """`work` on a production opened for it; the verbs' refusals as 404 and 409."""
    if runtime.environment is None:
        raise HTTPException(409, "no environment configured: rollouts need production "
                                 "(OPSLOOP_SERVE_ENVIRONMENT)")
    try:
        production = open_environment(runtime.environment, runtime.settings)
    except UnknownEnvironment as exc:
        raise HTTPException(409, str(exc)) from None
    try:
        return work(production)
    except owner.UnknownFlag as exc:
        raise HTTPException(404, str(exc)) from None
    except (owner.NotPossible, OwnerFileError, StoreError, UnknownEnvironment) as exc:
        raise HTTPException(409, str(exc)) from None
    finally:
        production.close()


def _identity(principal: Principal) -> str:
    if not principal.authenticated:  # `authorize` never admits one: a decision is someone's
        raise HTTPException(401, "an owner's decision needs a bearer token")
    return principal.name


@router.get("/rollouts", tags=["rollouts"],
            summary="every flag, its percent, and its plan when rollouts.yaml manages it",
            responses={409: _READ[409]})
def list_rollouts(request: Request, _: Reader) -> list[dict[str, Any]]:
    runtime = _runtime(request)
    return _against_production(
        runtime, lambda p: owner.flag_rows(runtime.policies, p.flags()))


@router.get("/rollouts/{flag}", tags=["rollouts"],
            summary="one managed flag: step, analysis, budget, owner's decisions, the agent's "
                    "decision now",
            responses=_READ)
def show_rollout(request: Request, flag: Id, _: Reader) -> dict[str, Any]:
    runtime = _runtime(request)

    def detail(production: Production) -> dict[str, Any]:
        answers = runtime.read(lambda s: pending_answers(s, production.now()))
        return owner.flag_detail(runtime.policies, production, flag,
                                 OwnerBook(runtime.settings.state_dir), answers)

    return _against_production(runtime, detail)


def _state(flag: str, verb: str, by: str, state: FlagOwnerState) -> dict[str, Any]:
    return {"flag": flag, "verb": verb, "by": by,
            **state.model_dump(mode="json", exclude_none=True)}


def _change(flag: str, verb: str, by: str, change: owner.OwnerChange) -> dict[str, Any]:
    record = change.record
    case = record.actions[0]
    return {"flag": flag, "verb": verb, "by": by, "record": record.id,
            "status": record.status.value, "waiting": change.waiting,
            "decision": case.decision.model_dump(mode="json") if case.decision else None,
            "approval": case.approval.model_dump(mode="json") if case.approval else None,
            "result": case.result.model_dump(mode="json") if case.result else None}


def _with_loop(runtime: IntakeRuntime, work: Callable[[OperateLoop], Result]) -> Result:
    loop = OperateLoop(runtime.settings, runtime.policies)
    try:
        return work(loop)
    finally:
        loop.close()


def _changing(runtime: IntakeRuntime, flag: str, verb: str, by: str,
              work: Callable[[OperateLoop, Production, str], owner.OwnerChange]
              ) -> JSONResponse:
    """Run a change on a worker; its answer when it ends within a moment, else 202 (the
    verification window takes production's minutes). A refusal is known at once."""

    def run() -> owner.OwnerChange:
        env_ref = runtime.environment or ""
        return _against_production(runtime, lambda p: _with_loop(
            runtime, lambda loop: work(loop, p, env_ref)))

    future = runtime.pool.submit(run)
    try:
        change = future.result(timeout=DECISION_WAIT_SECONDS)
    except FutureTimeout:
        def failed(done: Future[owner.OwnerChange]) -> None:
            exc = done.exception()
            if exc is not None:  # the caller already has its 202: keep the failure on record
                runtime.errors = [*runtime.errors[-49:],
                                  f"rollouts {verb} {flag} by {by} failed: {exc!r}"]

        future.add_done_callback(failed)
        return JSONResponse(status_code=202, content={"flag": flag, "verb": verb, "by": by,
                                                      "status": "running"})
    return JSONResponse(status_code=200, content=_change(flag, verb, by, change))


_CHANGE_ANSWERS = {200: {"description": "done: the change record, its decision, approval and "
                                        "result"},
                   202: {"description": "started; still running (verification window): "
                                        "GET the flag or the change record later"}}


@router.post("/rollouts/{flag}/advance",
             **_verb_route("advance a flag to its plan's next step (or `to`), through the "
                           "change path; the caller's request is the plan's approval",
                           Advance, required=False, extra=_CHANGE_ANSWERS))
async def advance(request: Request, flag: Id, principal: Owner) -> JSONResponse:
    body = await optional_json_model(request, Advance, DECISION_MAX_BODY_BYTES) or Advance()
    by, runtime = _identity(principal), _runtime(request)
    return await run_in_threadpool(
        _changing, runtime, flag, "advance", by,
        lambda loop, p, ref: owner.advance(loop, p, ref, flag, body.to, by, body.reason))


@router.post("/rollouts/{flag}/kill",
             **_verb_route("switch a flag off now (disable_flag), through the change path",
                           Kill, required=True, extra=_CHANGE_ANSWERS))
async def kill(request: Request, flag: Id, principal: Owner) -> JSONResponse:
    body = await json_model(request, Kill, DECISION_MAX_BODY_BYTES)
    by, runtime = _identity(principal), _runtime(request)
    return await run_in_threadpool(
        _changing, runtime, flag, "kill", by,
        lambda loop, p, ref: owner.kill(loop, p, ref, flag, by, body.reason))


@router.post("/rollouts/{flag}/hold",
             **_verb_route("stop the agent advancing a flag (a failing step is still "
                           "killed)", Hold, required=True))
async def hold(request: Request, flag: Id, principal: Owner) -> dict[str, Any]:
    body = await json_model(request, Hold, DECISION_MAX_BODY_BYTES)
    by, runtime = _identity(principal), _runtime(request)
    book = OwnerBook(runtime.settings.state_dir)
    state = await run_in_threadpool(_against_production, runtime, lambda p: owner.hold(
        book, runtime.policies, p, flag, by, body.reason))
    return _state(flag, "hold", by, state)


@router.post("/rollouts/{flag}/resume",
             **_verb_route("let the agent advance a held flag again", Resume, required=False))
async def resume(request: Request, flag: Id, principal: Owner) -> dict[str, Any]:
    body = await optional_json_model(request, Resume, DECISION_MAX_BODY_BYTES) or Resume()
    by, runtime = _identity(principal), _runtime(request)
    book = OwnerBook(runtime.settings.state_dir)
    state = await run_in_threadpool(_against_production, runtime, lambda p: owner.resume(
        book, runtime.policies, p, flag, by, body.reason))
    return _state(flag, "resume", by, state)


@router.post("/rollouts/{flag}/answer",
             **_verb_route("answer a kill: temporary (the owner re-enables it) or rework",
                           AnswerKill, required=True))
async def answer(request: Request, flag: Id, principal: Owner) -> dict[str, Any]:
    body = await json_model(request, AnswerKill, DECISION_MAX_BODY_BYTES)
    by, runtime = _identity(principal), _runtime(request)
    book = OwnerBook(runtime.settings.state_dir)
    state = await run_in_threadpool(_against_production, runtime, lambda p: owner.answer(
        book, runtime.policies, p, flag, body.answer, by, body.reason))
    return _state(flag, "answer", by, state)
