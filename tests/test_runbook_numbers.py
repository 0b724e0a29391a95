"""Runbook checks carry no number of their own: an absolute level a check compares a metric
with is the alert policy's level for that metric (alerts.yaml), so the two cannot drift;
everything else is a ratio, slope or deviation against the service's own baseline."""

from __future__ import annotations

import re
from pathlib import Path

from opsloop.policy import Policies
from opsloop.runbooks.load import parse_runbook
from opsloop.settings import REPO_ROOT

LITERAL = re.compile(r"\bvalue\s*(?:>=|<=|>|<)\s*(\d+(?:\.\d+)?)")


def absolute_levels(policies: Policies) -> dict[str, set[float]]:
    """metric -> the absolute thresholds alert rules put on it (ratio rules excluded)."""
    levels: dict[str, set[float]] = {}
    for rule in policies.alerts.rules:
        if getattr(rule, "baseline_offset_minutes", None):
            continue
        levels.setdefault(rule.metric, set()).add(float(rule.threshold))
    return levels


def test_every_absolute_level_in_a_runbook_is_the_alert_policys(shipped_policies: Policies
                                                                ) -> None:
    levels = absolute_levels(shipped_policies)
    strays = []
    for path in sorted(Path(REPO_ROOT / "runbooks").glob("*.md")):
        if path.name == "README.md":
            continue
        runbook = parse_runbook(path)
        for hypothesis in runbook.hypotheses:
            for check in hypothesis.checks:
                if check.tool != "metric_stat":
                    continue
                metric = str(check.args.get("metric", ""))
                for number in LITERAL.findall(check.expect or ""):
                    if float(number) == 0:
                        continue  # "any at all" is no level
                    if float(number) not in levels.get(metric, set()):
                        strays.append(f"{path.name}: {hypothesis.id}.{check.id}: {metric} "
                                      f"{check.expect!r} (alerts.yaml levels: "
                                      f"{sorted(levels.get(metric, set()))})")
    assert not strays, "\n".join(strays)
