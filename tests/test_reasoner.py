"""The offline reasoner solves each built-in fault on the evidence, and changes its mind
when the evidence changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from opsloop.agents.reasoner import diagnose
from opsloop.agents.specialist_tools import runbook_tool
from opsloop.agents.specialists import SPECIALISTS
from opsloop.detection import MetricDetectors
from opsloop.models import Anomaly, DeployEvent, Diagnosis, ExperimentStatus, Incident
from opsloop.observe import AlertRule, evaluate_rules
from opsloop.policy.loader import load_policies
from opsloop.simulator import SCENARIOS, SimEnvironment
from opsloop.tools.runbook_index import RunbookIndex
from opsloop.tools.toolbox import Toolbox

REPO = Path(__file__).resolve().parent.parent
TOOL_BUDGET = 60  # Settings.tool_calls_per_specialist
DETECTORS = load_policies(REPO / "policies").alerts.detectors
assert DETECTORS is not None


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RunbookIndex:
    return RunbookIndex(tmp_path_factory.mktemp("index"), [REPO / "runbooks"])


@pytest.fixture(scope="module")
def rules() -> list[AlertRule]:
    policies = load_policies(REPO / "policies")
    return [AlertRule.model_validate(r.model_dump()) for r in policies.alerts.rules]


def _burn_alert(env: SimEnvironment, service: str) -> Anomaly:
    """What the SLO evaluator raises for a slow burn (it runs outside the alert rules)."""
    labels = {
        "alertname": "ErrorBudgetBurn",
        "service": service,
        "slo": f"{service}-availability",
        "window": "6h/30m",
        "severity": "page",
    }
    return Anomaly(
        fingerprint=f"burn-{service}",
        labels=labels,
        starts_at=env.now(),
        annotations={
            "summary": f"{service}: SLO {service}-availability burning "
            "error budget 6.1x over 6h and 6.4x over 30m",
            "runbook": "slo-burn",
        },
        source="slo",
    )


def fired(name: str, rules: list[AlertRule], seed: int = 7) -> tuple[SimEnvironment, Incident]:
    """Advance past the fault until alert rules fire; the incident is what they say."""
    scenario = SCENARIOS[name]
    env = SimEnvironment.create(name, seed)
    # A fault no rule covers is seen by the anomaly detectors, as the watch runs them.
    detectors = None if scenario.rules_cover else MetricDetectors(DETECTORS)
    anomalies: list[Anomaly] = []
    waited = 0
    while waited < scenario.run_minutes:
        env.wait(2)
        waited += 2
        found = detectors.observe(env, env.now()) if detectors is not None else []
        if waited > max(scenario.fault_at_minute, 0):
            anomalies = evaluate_rules(rules, env, env.now()) + found
            if anomalies:
                break
    if not anomalies:  # a slow burn trips no threshold rule; the SLO evaluator reports it
        anomalies = [_burn_alert(env, scenario.expected.service)]
    services = sorted({a.service for a in anomalies if a.service})
    incident = Incident(
        id="INC-7",
        title=f"{anomalies[0].name} on {', '.join(services)}",
        environment="sim",
        group_key="sim",
        anomalies=anomalies,
        services=services,
        opened_at=env.now(),
    )
    return env, incident


def run(
    specialist: str, env: SimEnvironment, incident: Incident, index: RunbookIndex
) -> tuple[Diagnosis, Toolbox]:
    toolbox = Toolbox(env, allowed=set(SPECIALISTS[specialist].tools), max_calls=TOOL_BUDGET,
                      clock=env)
    return diagnose(specialist, incident, toolbox, index), toolbox


@pytest.mark.parametrize("seed", [7, 3])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_builtin_fault_is_diagnosed_and_fixed(
    name: str, seed: int, rules: list[AlertRule], index: RunbookIndex
) -> None:
    expected = SCENARIOS[name].expected
    env, incident = fired(name, rules, seed)
    diagnosis, toolbox = run(expected.specialist, env, incident, index)
    top = diagnosis.top
    assert top is not None, diagnosis.summary
    assert (top.category, top.service) == (expected.category, expected.service), diagnosis.summary
    assert top.confidence >= 0.6
    assert diagnosis.proposals, diagnosis.summary
    action = diagnosis.proposals[0].action
    assert (action.type, action.service) == (expected.action, expected.service)
    for key, value in expected.params.items():
        assert action.params.get(key) == value, action.describe()
    assert action.id == f"{incident.id}-{expected.specialist}-a1"
    assert all(e.holds is not None for e in top.evidence)  # every check was answered
    assert toolbox.calls < TOOL_BUDGET


def test_ids_are_unique_and_rationale_cites_evidence(
    rules: list[AlertRule], index: RunbookIndex
) -> None:
    env, incident = fired("dependency_outage", rules)
    diagnosis, _ = run("incident", env, incident, index)
    ids = [p.action.id for p in diagnosis.proposals]
    assert len(ids) == len(set(ids)) >= 1
    assert "Evidence:" in diagnosis.proposals[0].rationale
    # The callers are victims: the fix goes to payments, not to checkout or the gateway.
    assert {p.action.service for p in diagnosis.proposals} == {"payments"}


Mutation = Callable[[SimEnvironment], None]


def _age_deploy(service: str, hours: int) -> Mutation:
    def mutate(env: SimEnvironment) -> None:
        env.state.deploys = [
            d.model_copy(update={"at": d.at - timedelta(hours=hours)})
            if d.service == service and d.at > env.now() - timedelta(hours=1)
            else d
            for d in env.state.deploys
        ]

    return mutate


def _drop_deploys(service: str) -> Mutation:
    def mutate(env: SimEnvironment) -> None:
        env.state.deploys = [d for d in env.state.deploys if d.service != service]

    return mutate


def _drop_flag_changes(env: SimEnvironment) -> None:
    env.state.flag_changes = []


def _experiment_over(env: SimEnvironment) -> None:
    for record in env.state.experiments:
        record.experiment.status = ExperimentStatus.COMPLETED  # the fault itself stays


def _traffic_grew(service: str) -> Mutation:
    def mutate(env: SimEnvironment) -> None:
        rps = env.state.series[service]["requests_per_second"]
        rps[-30:] = [v * 3 for v in rps[-30:]]

    return mutate


def _instance_untagged(env: SimEnvironment) -> None:
    # The same errors, but no longer pinned to one instance: a fleet-wide fault.
    env.state.logs["inventory"] = [(tick, level, msg.replace("[inventory-2] ", ""))
                                   for tick, level, msg in env.state.logs["inventory"]]


def _disk_static(env: SimEnvironment) -> None:
    disk = env.state.series["search"]["disk_utilization"]
    disk[:] = [disk[-1]] * len(disk)


@pytest.mark.parametrize(
    "name,mutate,lost",
    [
        ("bad_deploy", _age_deploy("checkout", 3), "rollback_deploy"),
        ("bad_deploy", _drop_deploys("checkout"), "rollback_deploy"),
        ("latency_regression", _age_deploy("search", 3), "rollback_deploy"),
        ("flag_rollout_errors", _drop_flag_changes, "disable_flag"),
        ("chaos_experiment", _experiment_over, "abort_experiment"),
        ("cost_runaway", _traffic_grew("recommendations"), "scale_in"),
        ("memory_leak", _traffic_grew("inventory"), "restart"),
        ("disk_filling", _disk_static, "purge_logs"),
    ("slo_slow_burn", _instance_untagged, "replace_instance"),
    ],
)
def test_when_the_evidence_changes_the_answer_changes(
    name: str, mutate: Mutation, lost: str, rules: list[AlertRule], index: RunbookIndex
) -> None:
    expected = SCENARIOS[name].expected
    env, incident = fired(name, rules)
    before, _ = run(expected.specialist, env, incident, index)
    assert lost in {p.action.type for p in before.proposals}
    mutate(env)
    after, _ = run(expected.specialist, env, incident, index)
    assert lost not in {p.action.type for p in after.proposals}, after.summary
    assert (
        after.top is None or after.top.category != expected.category or after.top.confidence < 0.6
    )


def _certificate_expired(service: str) -> Mutation:
    # The provider answers, but every handshake fails: the errors become TLS failures.
    def mutate(env: SimEnvironment) -> None:
        tls = ("TLS handshake to provider.example.net:443 failed: x509: certificate has "
               "expired or is not yet valid")
        env.state.logs[service] = [
            (tick, level, tls if level == "ERROR" else msg)
            for tick, level, msg in env.state.logs[service]
        ]

    return mutate


def test_tls_failures_at_the_failing_dependency_are_not_an_outage_to_fail_over(
    rules: list[AlertRule], index: RunbookIndex
) -> None:
    env, incident = fired("dependency_outage", rules)
    _certificate_expired("payments")(env)
    diagnosis, _ = run("incident", env, incident, index)
    top = diagnosis.top
    assert top is not None, diagnosis.summary
    assert (top.category, top.service) == ("certificate_expiry", "payments"), diagnosis.summary
    assert "failover" not in {p.action.type for p in diagnosis.proposals}
    caller_view = next(h for h in diagnosis.hypotheses
                       if h.category == "dependency_outage" and h.service == "payments")
    assert caller_view.confidence == 0.0  # refuted, not merely outranked


def test_a_release_that_ran_clean_before_a_provider_failed_is_not_rolled_back(
    rules: list[AlertRule], index: RunbookIndex
) -> None:
    env, incident = fired("dependency_outage", rules)
    # A harmless release of the failing service, inside the "errors follow the deploy" window.
    env.state.deploys.append(DeployEvent(
        at=env.now() - timedelta(minutes=13), service="payments", version="1.22.1",
        previous_version="1.22.0", author="payments-ci", kind="deploy"))
    diagnosis, _ = run("incident", env, incident, index)
    top = diagnosis.top
    assert top is not None, diagnosis.summary
    assert (top.category, top.service) == ("dependency_outage", "payments"), diagnosis.summary
    assert [p.action.type for p in diagnosis.proposals] == ["failover"]
    release = next(h for h in diagnosis.hypotheses if h.category == "bad_deploy")
    assert release.confidence < 0.6  # still listed, with the evidence that argued against it


def test_below_the_threshold_hypotheses_are_kept_but_nothing_is_proposed(
    rules: list[AlertRule],
    index: RunbookIndex,
) -> None:
    env, incident = fired("bad_deploy", rules)
    toolbox = Toolbox(env, allowed=set(SPECIALISTS["incident"].tools), clock=env)
    diagnosis = diagnose("incident", incident, toolbox, index, min_confidence=1.01)
    assert diagnosis.top is not None and diagnosis.top.category == "bad_deploy"
    assert diagnosis.top.remediation and diagnosis.proposals == []
    assert "below the 101%" in diagnosis.summary


def test_a_tiny_budget_degrades_instead_of_crashing(
    rules: list[AlertRule], index: RunbookIndex
) -> None:
    env, incident = fired("bad_deploy", rules)
    toolbox = Toolbox(env, allowed=set(SPECIALISTS["incident"].tools), max_calls=1, clock=env)
    diagnosis = diagnose("incident", incident, toolbox, index)
    assert diagnosis.proposals == []
    assert "tool budget used up" in diagnosis.summary


def test_an_unbound_remediation_variable_drops_the_action_with_a_note(
    tmp_path: Path,
    rules: list[AlertRule],
) -> None:
    books = tmp_path / "books"
    books.mkdir()
    text = (REPO / "runbooks" / "bad-deploy.md").read_text()
    # Bind previous_version from a field the tool does not return.
    text = text.replace(
        "previous_version: latest.previous_version", "previous_version: latest.no_such_field"
    )
    (books / "bad-deploy.md").write_text(text)
    index = RunbookIndex(tmp_path / "idx", [books])
    env, incident = fired("bad_deploy", rules)
    diagnosis, _ = run("incident", env, incident, index)
    assert diagnosis.top is not None and diagnosis.top.category == "bad_deploy"
    assert diagnosis.proposals == []
    assert (
        "dropped rollback_deploy" in diagnosis.summary and "previous_version" in diagnosis.summary
    )


@pytest.mark.parametrize("name", ["bad_deploy", "disk_filling", "traffic_surge"])
def test_the_models_runbook_tool_suggests_exactly_what_the_reasoner_proposes(
    name: str, rules: list[AlertRule], index: RunbookIndex
) -> None:
    expected = SCENARIOS[name].expected
    env, incident = fired(name, rules)
    diagnosis, _ = run(expected.specialist, env, incident, index)
    top = diagnosis.top
    assert top is not None and diagnosis.proposals, diagnosis.summary
    runbook = index.get(top.runbook)
    hypothesis = top.id.removeprefix(f"{runbook.id}.").split("@")[0]
    toolbox = Toolbox(env, allowed=set(SPECIALISTS[expected.specialist].tools), clock=env)
    tool = runbook_tool([runbook], toolbox)
    answer = tool.handler({"runbook": runbook.id, "hypothesis": hypothesis, "service": top.service})
    assert answer["status"] == "ok" and answer["confidence"] == top.confidence
    suggested = [(a["type"], a["service"], a["params"]) for a in answer["suggested_actions"]]
    proposed = [(p.action.type, p.action.service, p.action.params) for p in diagnosis.proposals
                if p.hypothesis_id == top.id]
    assert suggested == proposed

