"""The console's pages (GET). Each needs a session (else off to sign in) and reads through
the same runtime and functions as the API; the fragments are what live updates fetch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse

from opsloop.agents.signal_triage import load_signals, rank
from opsloop.agents.signals import SignalStatus
from opsloop.api import agent_routes, rollout_routes, routes
from opsloop.models import Incident, IncidentStatus, Severity
from opsloop.store import StoreError
from opsloop.web import postmortems as pm
from opsloop.web import views
from opsloop.web.context import ConsoleError, Viewer, console, page_viewer, render

router = APIRouter(include_in_schema=False)
Signed = Annotated[Viewer, Depends(page_viewer)]
IncidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
DocName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.md$")]


def _list_context(request: Request, status: str | None, severity: str | None,
                  service: str | None, age: str | None) -> dict[str, Any]:
    runtime = console(request).runtime
    keep, problems = views.IncidentFilter.parse(status, severity, service, age)
    found, services = views.incidents(runtime, keep)
    waiting = len(runtime.read(lambda s: s.pending()))
    people = runtime.read(lambda s: s.people.states([i.id for i in found]))
    return {"incidents": found, "people": people, "services": services, "filter": keep,
            "problems": problems,
            "statuses": list(IncidentStatus), "severities": list(Severity),
            "ages": list(views.Age), "waiting": waiting}


@router.get("/", response_class=HTMLResponse)
def incident_list(request: Request, viewer: Signed, status: str | None = None,
                  severity: str | None = None, service: str | None = None,
                  age: str | None = None) -> HTMLResponse:
    return render(request, "incidents.html", viewer,
                  **_list_context(request, status, severity, service, age))


@router.get("/fragments/incidents", response_class=HTMLResponse)
def incident_rows(request: Request, viewer: Signed, status: str | None = None,
                  severity: str | None = None, service: str | None = None,
                  age: str | None = None) -> HTMLResponse:
    return render(request, "_incident_rows.html", viewer, show_flash=False,
                  **_list_context(request, status, severity, service, age))


def _incident(request: Request, incident_id: str) -> dict[str, Any]:
    found = views.incident_detail(console(request).runtime, incident_id)
    if found is None:
        raise ConsoleError(404, f"no incident {incident_id!r}")
    return found


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: IncidentId, viewer: Signed) -> HTMLResponse:
    return render(request, "incident.html", viewer, **_incident(request, incident_id))


@router.get("/fragments/incidents/{incident_id}", response_class=HTMLResponse)
def incident_fragment(request: Request, incident_id: IncidentId,
                      viewer: Signed) -> HTMLResponse:
    return render(request, "_incident_body.html", viewer, show_flash=False,
                  **_incident(request, incident_id))


@router.get("/approvals", response_class=HTMLResponse)
def approval_queue(request: Request, viewer: Signed) -> HTMLResponse:
    return render(request, "approvals.html", viewer,
                  approvals=views.pending(console(request).runtime))


@router.get("/postmortems", response_class=HTMLResponse)
def postmortem_list(request: Request, viewer: Signed) -> HTMLResponse:
    folder = console(request).runtime.settings.postmortems_dir
    return render(request, "postmortems.html", viewer, drafts=pm.listing(folder))


@router.get("/postmortems/{name}", response_class=HTMLResponse)
def postmortem_page(request: Request, name: DocName, viewer: Signed,
                    edit: bool = False) -> HTMLResponse:
    folder = console(request).runtime.settings.postmortems_dir
    try:
        draft = pm.read(folder, name)
    except pm.PostmortemError as exc:
        raise ConsoleError(exc.status, str(exc)) from None
    return render(request, "postmortem.html", viewer, draft=draft, editing=edit)


@router.get("/warrooms/{name}", response_class=HTMLResponse)
def warroom_page(request: Request, name: DocName, viewer: Signed) -> HTMLResponse:
    folder = console(request).runtime.settings.warrooms_dir
    try:
        record = pm.read(folder, name)
    except pm.PostmortemError as exc:
        raise ConsoleError(exc.status, str(exc).replace("postmortem", "war room")) from None
    return render(request, "warroom.html", viewer, record=record)


def signal_board(request: Request) -> dict[str, Any]:
    runtime = console(request).runtime
    problems: list[str] = []
    filed = load_signals(runtime.settings.signals_dir, problems)
    ids = {i for f in filed for i in f.record.incidents}

    def known(store: Any) -> dict[str, Incident]:
        found = {}
        for incident_id in ids:
            try:
                found[incident_id] = store.get_incident(incident_id)
            except StoreError:
                continue  # the score counts it without detail and says so
        return found

    incidents = runtime.read(known)
    ranked = rank(filed, incidents, datetime.now(UTC))
    columns: dict[SignalStatus, list[Any]] = {s: [] for s in SignalStatus}
    for row in ranked:
        columns[row.status].append(row)
    merged = [f.record for f in filed if f.record.status is SignalStatus.MERGED]
    return {"columns": columns, "merged": merged, "problems": problems,
            "records": {f.record.id: f.record for f in filed}, "incidents": incidents}


@router.get("/signals", response_class=HTMLResponse)
def signals(request: Request, viewer: Signed) -> HTMLResponse:
    return render(request, "signals.html", viewer, **signal_board(request))


def _api_rows(request: Request, viewer: Viewer, read: Any) -> tuple[list[Any], str | None]:
    """Rows from an API read function, or the reason it has none (e.g. no environment)."""
    try:
        return read(request, viewer.principal), None
    except HTTPException as exc:
        return [], str(exc.detail)


@router.get("/slo", response_class=HTMLResponse)
def slo_page(request: Request, viewer: Signed) -> HTMLResponse:
    rows, problem = _api_rows(request, viewer, routes.slos)
    return render(request, "slo.html", viewer, slos=rows, problem=problem)


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request, viewer: Signed) -> HTMLResponse:
    rows, problem = _api_rows(request, viewer, agent_routes.agents)
    return render(request, "agents.html", viewer, agents=rows, problem=problem)


@router.get("/rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request, viewer: Signed) -> HTMLResponse:
    rows, problem = _api_rows(request, viewer, rollout_routes.list_rollouts)
    return render(request, "rollouts.html", viewer, flags=rows, problem=problem)
