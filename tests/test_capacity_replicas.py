"""Replicas as a capacity resource: the replicas recommendations' autoscaler will need against
its maximum, with answer keys from the simulator's physics.

The fleet's recommendations autoscaler runs 8 to 12 replicas at a 60% CPU target, each
replica serving 80 rps. Physics (simulator/physics.py `_read`): CPU = 0.03 + 0.7 x rps /
(replicas x 80), traffic = 216 rps x multiplier x daily_shape(tick). So the replicas the HPA
needs, replicas x CPU / 0.6, reach the maximum of 12 when the traffic reaches
(12 x 0.6 - 12 x 0.03) x 80 / 0.7 = 781.7 rps: the answer key is the minute daily_shape takes
it there. (`test_a_service_at_its_replica_maximum_is_alerted_not_scaled` in
test_capacity_agent.py covers capacity.yaml's own replica bound for the agent's scale-outs.)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from test_capacity_agent import fleet, run_agent

from opsloop.forecast import Crossing
from opsloop.policy import Policies
from opsloop.scheduled.agents.capacity_replicas import decide_replicas
from opsloop.scheduled.base import Analysis
from opsloop.settings import Settings
from opsloop.simulator import physics
from opsloop.simulator.state import START

DAY = 24 * 60
BASE_RPS, CAPACITY_RPS, TARGET, MAX = 216, 80, 0.6, 12  # simulator/fleet.py recommendations


def busier(multiplier: float, days: int = 4) -> tuple[int, str, str, dict[str, Any]]:
    return (-days * DAY, "traffic", "recommendations", {"multiplier": multiplier})


def needed(tick: int, multiplier: float, replicas: int) -> float:
    """What the HPA asks for at `tick` (physics without its noise)."""
    rps = BASE_RPS * multiplier * physics.daily_shape(tick)
    return (0.03 * replicas + 0.7 * rps / CAPACITY_RPS) / TARGET


def hours_to_max(multiplier: float) -> float | None:
    """The answer key: hours after 09:00 Monday until the replicas needed reach the max."""
    tick = next((t for t in range(1, 2 * DAY) if needed(t, multiplier, MAX) >= MAX), None)
    return None if tick is None else tick / 60


def autoscaler(analysis: Analysis) -> dict[str, Any]:
    path = next(p for p in analysis.reports if p.endswith(".json"))
    (row,) = json.loads(Path(path).read_text())["autoscalers"]
    assert row["service"] == "recommendations"
    return dict(row)


def test_an_autoscaler_that_will_hit_its_maximum_today_is_escalated_not_scaled(
        settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(4, busier(3.45)), settings, shipped_policies)
    row = autoscaler(analysis)
    key = hours_to_max(3.45)
    assert key is not None and 2.0 <= key <= 3.0  # ~11:39 on the way to the 14:00 peak
    t = row["time_to_max"]
    # Hourly forecast steps: the crossing is the hour bucket the physics' minute falls in.
    assert abs(t["expected_hours"] - key) <= 1.0
    assert t["earliest"] is not None and t["latest"] is not None
    # Each forecast step is the hour bucket ending at its time: the physics' minute lies
    # inside the 80% interval's buckets.
    physics_at = START + timedelta(hours=key)
    earliest, latest = (datetime.fromisoformat(t[k]) for k in ("earliest", "latest"))
    assert earliest - timedelta(hours=1) < physics_at <= latest
    assert row["autoscaler"] == {"max_replicas": 12, "target_cpu": 0.6,
                                 "source": "capacity.yaml:autoscaling.services.recommendations"}
    assert row["replicas_now"] == 12  # the HPA is already at its max (it rounds up)
    assert (row["decision"]["action"], row["decision"]["rule"]) == (
        "escalate", "capacity.yaml:forecast.lead_time")
    (finding,) = [f for f in analysis.findings if f.subject == "recommendations replicas"]
    assert finding.level == "critical" and finding.kind == "capacity_escalate"
    assert any("raising it is a person's decision" in e for e in finding.evidence)
    # Saturation alone would have scaled recommendations out; at the autoscaler's maximum
    # that is a person's call, so no proposal, and the saturation row says why.
    assert analysis.proposals == []
    sat = next(f for f in analysis.findings if f.subject == "recommendations saturation")
    assert any("withheld: the autoscaler is forecast at its maximum of 12" in e
               for e in sat.evidence)
    md = next(p for p in analysis.reports if p.endswith(".md"))
    assert "## Autoscalers: replicas needed against the maximum" in Path(md).read_text()
    assert "1 autoscaler(s), 1 near their maximum" in analysis.summary
    # With a person needing only 2 h, the same crossing is an alert: lead_time decides.
    capacity = shipped_policies.capacity
    quick = shipped_policies.model_copy(update={"capacity": capacity.model_copy(update={
        "forecast": capacity.forecast.model_copy(update={"lead_time": 120})})})
    again = autoscaler(run_agent(fleet(4, busier(3.45)), settings, quick))
    assert (again["decision"]["action"], again["decision"]["rule"]) == (
        "alert", "capacity.yaml:autoscaling.alert_at")


def test_an_autoscaler_with_headroom_raises_nothing_and_reads_what_physics_says(
        settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(4), settings, shipped_policies)
    row = autoscaler(analysis)
    assert row["decision"]["action"] == "none" and analysis.findings == []
    # The newest hour (08:00-09:00) at 8 replicas: physics' mean over it.
    key = sum(needed(t, 1.0, 8) for t in range(-59, 1)) / 60
    assert abs(row["latest"] - key) <= 0.05 * key
    assert row["replicas_now"] == 8 and hours_to_max(1.0) is None
    assert row["time_to_max"]["expected"] is None


def test_the_change_feeds_autoscaler_update_overrides_the_declared_one(
        settings: Settings, shipped_policies: Policies) -> None:
    raised = (-6 * 60, "autoscaler", "recommendations",
              {"min_replicas": 8, "max_replicas": 16, "target_cpu": 0.6, "author": "dana"})
    analysis = run_agent(fleet(4, busier(3.45), raised), settings, shipped_policies)
    row = autoscaler(analysis)
    assert row["autoscaler"]["max_replicas"] == 16
    assert row["autoscaler"]["source"].startswith("change feed 2026-11-02T03:00")
    # Needs ~12.4 at the peak: under 90% of 16, nothing to raise.
    assert row["decision"]["action"] == "none"
    assert not [f for f in analysis.findings if f.subject == "recommendations replicas"]


def test_decide_replicas_names_the_rule_strictest_first() -> None:
    def at(alert: int | None = None, top: int | None = None) -> dict[str, Crossing]:
        return {"alert_at": Crossing(10.8, 80, alert, alert, None),
                "max": Crossing(12.0, 80, top, top, None)}

    now = decide_replicas(12, 0.9, 12.3, at(0, 0), 8, 60)
    assert (now.action, now.rule) == ("escalate", "capacity.yaml:autoscaling.max")
    soon = decide_replicas(12, 0.9, 11.0, at(1, 5), 8, 60)
    assert (soon.action, soon.rule) == ("escalate", "capacity.yaml:forecast.lead_time")
    later = decide_replicas(12, 0.9, 9.0, at(10, 20), 8, 60)
    assert (later.action, later.rule) == ("alert", "capacity.yaml:autoscaling.alert_at")
    assert "maximum of 12" in later.reason
    near = decide_replicas(12, 0.9, 9.0, at(10, None), 8, 60)
    assert near.action == "alert" and "90% of the maximum" in near.reason
    assert decide_replicas(12, 0.9, 5.0, at(), 8, 60).action == "none"


def test_capacity_yaml_autoscalers_are_checked() -> None:
    import pytest
    from pydantic import ValidationError

    from opsloop.policy.schema.capacity import CapacityPolicy

    base = {"version": 1,
            "resources": {"cpu_utilization": {"scale_at": 0.75, "alert_at": 0.85,
                                              "escalate_at": 0.95}},
            "replicas": {"defaults": {"min": 2, "max": 30}, "max_scale_step": 12}}
    assert CapacityPolicy.model_validate(base).autoscaling.alert_at == 0.9
    with pytest.raises(ValidationError, match="target_cpu"):
        CapacityPolicy.model_validate({**base, "autoscaling": {"services": {
            "web": {"max_replicas": 10, "target_cpu": 60}}}})
