"""Scheduled agents over the API: list with last and next run, history, run one now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from opsloop.api.access import AUTH_RESPONSES, authorize
from opsloop.api.auth import Principal, Role
from opsloop.api.routes import Id, Reader, _runtime
from opsloop.scheduled import registry
from opsloop.scheduled.registry import UnknownAgent
from opsloop.scheduler.driver import status_row
from opsloop.store import StoreError

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)
Operator = Annotated[Principal, Depends(authorize(Role.APPROVE))]


@router.get("/agents", tags=["agents"], summary="scheduled agents: schedule, last and next run",
            responses={409: {"description": "no environment configured: agents do not run"}})
def agents(request: Request, _: Reader) -> list[dict[str, Any]]:
    runtime = _runtime(request)
    if runtime.environment is None:
        raise HTTPException(409, "no environment configured: scheduled agents do not run")
    now = runtime.now() if runtime.env is not None else datetime.now(UTC)
    sched = runtime.scheduler()
    return [status_row(r) for r in sched.statuses(now)]


@router.get("/agents/{name}/runs", tags=["agents"], summary="an agent's runs, newest first",
            responses={404: {"description": "no such agent"}})
def agent_runs(request: Request, name: Id, _: Reader,
               limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    if name not in registry.names():
        raise HTTPException(404, str(UnknownAgent(name)))
    runs = _runtime(request).ledger.history(name, limit=limit)
    return [r.model_dump(mode="json") for r in runs]


@router.post("/agents/{name}/run", tags=["agents"], summary="run an agent now",
             responses={404: {"description": "no such agent"},
                        409: {"description": "it is running already, or no environment"}})
async def run_agent(request: Request, name: Id, _: Operator) -> dict[str, Any]:
    if name not in registry.names():
        raise HTTPException(404, str(UnknownAgent(name)))
    runtime = _runtime(request)
    if runtime.environment is None:
        raise HTTPException(409, "no environment configured: scheduled agents do not run")
    try:
        run = await run_in_threadpool(runtime.run_agent_now, name)
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    return run.model_dump(mode="json")
