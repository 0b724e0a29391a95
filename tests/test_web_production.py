"""The console's production pages against a served simulation: SLOs and error budgets,
scheduled agents with their last runs, and rollouts, read through the API's own functions;
and the incident list's filters on production's clock."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from test_rollouts_agent import FLAG, simulated, with_plan
from test_web_console import BASE, READER, TOKENS, sign_in

from opsloop.api.auth import load_tokens
from opsloop.api.runtime import IntakeRuntime
from opsloop.environments import remote_ref
from opsloop.models import Incident, IncidentStatus, Severity
from opsloop.policy import Policies
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState
from opsloop.simulator.server import SimServer
from opsloop.web.app import create_console_app
from opsloop.web.views import IncidentFilter


@pytest.fixture(scope="module")
def healthy() -> SimState:
    return simulated(5, 40)


@pytest.fixture
def reader(healthy: SimState, settings: Settings, shipped_policies: Policies
           ) -> Iterator[TestClient]:
    server = SimServer(SimEnvironment(copy.deepcopy(healthy)), hold_scenario=True).start()
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, with_plan(shipped_policies), remote_ref(server.url))
    app = create_console_app(runtime, load_tokens(settings))
    try:
        with TestClient(app, base_url=BASE, follow_redirects=False) as client:
            yield sign_in(client, token=READER)
    finally:
        runtime.close_unstarted()
        server.stop()


def test_slos_show_each_objective_with_its_budget_and_burn_rates(
    reader: TestClient, shipped_policies: Policies,
) -> None:
    page = reader.get("/slo")
    assert page.status_code == 200
    assert "no environment configured" not in page.text
    for slo in shipped_policies.health.slos:
        assert f'<td data-label="SLO">{slo.name}</td>' in page.text
    assert page.text.count("<meter") == len(shipped_policies.health.slos)


def test_agents_show_their_schedule_and_last_run(reader: TestClient) -> None:
    page = reader.get("/agents")
    assert page.status_code == 200
    assert "<strong>rollouts</strong>" in page.text
    assert "never" in page.text  # no run yet: said, not left blank


def test_rollouts_show_each_flag_and_its_plan(reader: TestClient) -> None:
    page = reader.get("/rollouts")
    assert page.status_code == 200
    assert f"<code>{FLAG}</code>" in page.text
    assert "steps 5 → 25 → 50 → 100" in page.text and "next 25%" in page.text


def test_without_production_the_pages_say_so(tmp_path_factory: pytest.TempPathFactory,
                                             settings: Settings,
                                             shipped_policies: Policies) -> None:
    settings = settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})
    runtime = IntakeRuntime(settings, shipped_policies)
    app = create_console_app(runtime, load_tokens(settings))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        sign_in(client, token=READER)
        for path in ("/slo", "/agents", "/rollouts"):
            page = client.get(path)
            assert page.status_code == 200
            assert "no environment configured" in page.text, path
    runtime.close_unstarted()


def incident(opened: datetime, **fields: object) -> Incident:
    return Incident(id="INC-1", title="t", environment="e", group_key="g", opened_at=opened,
                    services=["checkout"], **fields)  # type: ignore[arg-type]


def test_the_list_filters_by_status_severity_service_and_age() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    two_hours = incident(now - timedelta(hours=2), status=IncidentStatus.MITIGATED,
                         severity=Severity.SEV2)
    keep, problems = IncidentFilter.parse("mitigated", "SEV2", "checkout", "24h")
    assert problems == [] and keep.keeps(two_hours, now)
    assert not IncidentFilter.parse(None, None, None, "1h")[0].keeps(two_hours, now)
    assert not IncidentFilter.parse("escalated", None, None, None)[0].keeps(two_hours, now)
    assert not IncidentFilter.parse(None, "SEV1", None, None)[0].keeps(two_hours, now)
    assert not IncidentFilter.parse(None, None, "search", None)[0].keeps(two_hours, now)
    ignored, problems = IncidentFilter.parse("nope", "SEV9", None, "1y")
    assert ignored == IncidentFilter() and len(problems) == 3
