"""What people do in the console (POST), each behind a session, its CSRF token and a role.

Approval decisions go through the API's own `_decide` (the runtime's `OperateLoop.decide`,
a modification checked against policy first): one mechanism for the CLI, the API and here.
Signals move with `opsloop signals`' `decide`; postmortems with web.postmortems.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from opsloop.agents.signal_triage import DecisionConflict, SignalError, UnknownSignal, decide
from opsloop.agents.signals import SignalsLocked, SignalStatus
from opsloop.api.auth import Role
from opsloop.api.routes import _decide
from opsloop.models import ParamValue, Verdict
from opsloop.models.people import PeopleRefused, PeopleVerb
from opsloop.store import StoreError
from opsloop.web import postmortems as pm
from opsloop.web import views
from opsloop.web.context import ConsoleError, Viewer, action_form, console, render, safe_next
from opsloop.web.pages import DocName, signal_board

router = APIRouter(include_in_schema=False)
ApprovalId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
SignalRef = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
MAX_REASON_CHARS = 4000  # as the API's Decision body
PEOPLE_VERBS = {"acknowledge": PeopleVerb.ACKNOWLEDGE, "assign": PeopleVerb.ASSIGN,
                "note": PeopleVerb.NOTE, "takeover": PeopleVerb.TAKE_OVER,
                "resolve": PeopleVerb.RESOLVE, "reopen": PeopleVerb.REOPEN}
VERBS = {"accept": SignalStatus.ACCEPTED, "decline": SignalStatus.DECLINED,
         "merge": SignalStatus.MERGED, "reopen": SignalStatus.NEW}


def _done(request: Request, viewer: Viewer, message: str, to: str) -> RedirectResponse:
    console(request).sessions.flash(viewer.session.id, message)
    return RedirectResponse(safe_next(to), status_code=303)


def _reason(form: dict[str, str], required: bool) -> str:
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"the reason is over {MAX_REASON_CHARS} characters")
    if required and not reason:
        raise ValueError("a rejection needs a reason: say why, for the record")
    return reason


def _changes(form: dict[str, str], current: dict[str, ParamValue]) -> dict[str, ParamValue]:
    """`KEY=VALUE` lines as typed; only those that differ from the action as proposed.
    Policy types and bounds them (opsloop.policy.changes) before anything is recorded."""
    changes: dict[str, ParamValue] = {}
    for number, raw in enumerate(form.get("changes", "").splitlines()[:50], start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number} {line[:80]!r}: write KEY=VALUE")
        key, value = key.strip(), value.strip()
        if str(current.get(key, "")) != value or key not in current:
            changes[key] = value
    if not changes:
        raise ValueError("nothing changed: edit a value (or add KEY=VALUE), or approve as is")
    return changes


async def _answer(request: Request, approval_id: str, verdict: Verdict) -> Response:
    viewer, form = await action_form(request, Role.APPROVE)
    runtime = console(request).runtime
    back = form.get("back") or "/approvals"
    try:
        reason = _reason(form, required=verdict is Verdict.REJECT)
        changes: dict[str, ParamValue] = {}
        if verdict is Verdict.MODIFY:
            pending, _ = runtime.read(lambda s: s.get_request(approval_id))
            changes = _changes(form, pending.action.params)
        answer = await run_in_threadpool(_decide, runtime, approval_id, viewer.principal,
                                         verdict, reason, changes)
    except StoreError as exc:  # no such approval
        return _refused(request, viewer, approval_id, 404, str(exc), form)
    except ValueError as exc:
        return _refused(request, viewer, approval_id, 422, str(exc), form)
    except HTTPException as exc:  # 404 no such approval, 409 decided, 422 policy refused
        return _refused(request, viewer, approval_id, exc.status_code, str(exc.detail), form)
    body = json.loads(bytes(answer.body))
    state = ("still running (verification window)" if answer.status_code == 202
             else f"now {body['status']}")
    return _done(request, viewer, f"{verdict.value}d {approval_id} as {viewer.name}: incident "
                                  f"{body['incident']} is {state}", back)


def _refused(request: Request, viewer: Viewer, approval_id: str, status: int, message: str,
             form: dict[str, str]) -> Response:
    """The queue again with the refusal beside the approval and what was typed kept: nothing
    was recorded, and the approval still waits."""
    waiting = views.pending(console(request).runtime)
    listed = any(a["request"].id == approval_id for a in waiting)
    return render(request, "approvals.html", viewer, status=status, approvals=waiting,
                  errors={approval_id: message}, typed={approval_id: form},
                  error=None if listed else f"{approval_id}: {message}")


@router.post("/incidents/{incident_id}/people/{verb}")
async def people(request: Request, incident_id: ApprovalId, verb: str) -> Response:
    """A person's verb on the incident: the runtime's one path (checked, audited, paged)."""
    viewer, form = await action_form(request, Role.APPROVE)
    chosen = PEOPLE_VERBS.get(verb)
    if chosen is None:
        raise ConsoleError(404, f"no incident verb {verb[:40]!r}; verbs: "
                                f"{', '.join(PEOPLE_VERBS)}")
    runtime = console(request).runtime
    try:
        done = await run_in_threadpool(runtime.people, incident_id, chosen, viewer.name,
                                       form.get("detail", "")[:MAX_REASON_CHARS + 1])
    except StoreError as exc:
        raise ConsoleError(404, str(exc)) from None
    except PeopleRefused as exc:
        found = views.incident_detail(runtime, incident_id)
        if found is None:
            raise ConsoleError(404, f"no incident {incident_id!r}") from None
        return render(request, "incident.html", viewer, status=409,
                      people_error=f"cannot {chosen.value.replace('_', ' ')}: {exc}", **found)
    return _done(request, viewer, f"{incident_id} {done.verb.past} by {viewer.name}",
                 f"/incidents/{incident_id}")


@router.post("/approvals/{approval_id}/approve")
async def approve(request: Request, approval_id: ApprovalId) -> Response:
    return await _answer(request, approval_id, Verdict.APPROVE)


@router.post("/approvals/{approval_id}/reject")
async def reject(request: Request, approval_id: ApprovalId) -> Response:
    return await _answer(request, approval_id, Verdict.REJECT)


@router.post("/approvals/{approval_id}/modify")
async def modify(request: Request, approval_id: ApprovalId) -> Response:
    return await _answer(request, approval_id, Verdict.MODIFY)


def _postmortem_refused(request: Request, viewer: Viewer, name: str,
                        exc: pm.PostmortemError, typed: str | None) -> Response:
    folder = console(request).runtime.settings.postmortems_dir
    try:
        draft = pm.read(folder, name)
    except pm.PostmortemError:
        raise ConsoleError(exc.status, str(exc)) from None
    return render(request, "postmortem.html", viewer, status=exc.status, draft=draft,
                  editing=typed is not None, error=str(exc), typed=typed)


@router.post("/postmortems/{name}")
async def save_postmortem(request: Request, name: DocName) -> Response:
    viewer, form = await action_form(request, Role.APPROVE)
    folder = console(request).runtime.settings.postmortems_dir
    try:
        pm.save(folder, name, form.get("markdown", ""), form.get("version", ""), viewer.name)
    except pm.PostmortemError as exc:
        return _postmortem_refused(request, viewer, name, exc, form.get("markdown", ""))
    return _done(request, viewer, f"saved {name} as {viewer.name}", f"/postmortems/{name}")


@router.post("/postmortems/{name}/mark")
async def mark_postmortem(request: Request, name: DocName) -> Response:
    viewer, form = await action_form(request, Role.APPROVE)
    folder = console(request).runtime.settings.postmortems_dir
    what = form.get("mark", "")
    try:
        pm.mark(folder, name, what, form.get("version", ""), viewer.name)
    except pm.PostmortemError as exc:
        return _postmortem_refused(request, viewer, name, exc, None)
    return _done(request, viewer, f"{name} marked {what} by {viewer.name}",
                 f"/postmortems/{name}")


@router.post("/signals/{signal_id}/{verb}")
async def move_signal(request: Request, signal_id: SignalRef, verb: str) -> Response:
    viewer, form = await action_form(request, Role.APPROVE)
    to = VERBS.get(verb)
    if to is None:
        raise ConsoleError(404, f"no signal verb {verb[:40]!r}; verbs: {', '.join(VERBS)}")
    settings = console(request).runtime.settings
    board = signal_board(request)
    expect = form.get("expect") or None
    try:
        expected = SignalStatus(expect) if expect else None
        done = decide(settings.signals_dir, signal_id, to, by=viewer.name,
                      reason=form.get("reason", "")[:MAX_REASON_CHARS], at=datetime.now(UTC),
                      into=form.get("into") or None, expect=expected,
                      missions_dir=settings.work_dir / "missions",
                      incidents=board["incidents"])
    except (SignalError, SignalsLocked, ValueError) as exc:
        status = (404 if isinstance(exc, UnknownSignal) else
                  409 if isinstance(exc, SignalsLocked | DecisionConflict) else 422)
        return render(request, "signals.html", viewer, status=status,
                      error=f"{signal_id}: {exc}", **board)
    record = done.record
    return _done(request, viewer, f"{record.id} {record.status.value} by {viewer.name}",
                 "/signals")
