"""What to do about the findings that affect one service: a pure function of the findings,
what the service runs, the releases published after it, and severity.yaml's rules.

- **patch**: the lowest newer release whose SBOM no longer carries the finding that drives
  the decision (the most severe one); every other finding it also clears rides along.
- **mitigate**: no published release clears it (no fixed package version exists, or no
  release ships one yet): people are told how to shrink the exposure until one does.
- **signal**: the rules put it below SEV4; the owning team hears of it, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.models import Severity
from opsloop.policy.schema.vulnerability import VulnerabilityPolicy
from opsloop.policy.vulnerability import classify, facts
from opsloop.security.matching import Assessment, assess
from opsloop.security.sbom import Inventory
from opsloop.security.versions import version_key


@dataclass(frozen=True)
class Triaged:
    """One affecting finding with the severity the rules gave it (None: a signal)."""

    assessment: Assessment
    severity: Severity | None
    rule: str

    @property
    def rank(self) -> int:
        return self.severity.rank if self.severity is not None else 5


@dataclass(frozen=True)
class ServicePlan:
    service: str
    running: str
    action: str  # patch | mitigate | signal
    driver: Triaged  # the most severe finding: it decides the action and the release
    findings: list[Triaged] = field(default_factory=list)
    to_version: str | None = None
    clears: list[str] = field(default_factory=list)  # finding IDs the release clears
    mitigation: str = ""


def triage(assessments: list[Assessment], policy: VulnerabilityPolicy) -> list[Triaged]:
    """Each affecting finding with its severity, most severe first (then by ID)."""
    out = []
    for a in assessments:
        if a.affected:
            severity, rule = classify(facts(a, policy), policy)
            out.append(Triaged(a, severity, rule))
    return sorted(out, key=lambda t: (t.rank, -(t.assessment.finding.cvss_score or 0),
                                      t.assessment.finding.id))


def mitigation(t: Triaged, exposed: bool) -> str:
    """A stop-gap people can apply today, from what is known about the finding."""
    a = t.assessment
    package = a.package.name if a.package is not None else "the affected package"
    steps = [f"no release of {a.service} ships a fixed {package} yet"]
    if exposed:
        steps.append(f"restrict internet ingress to {a.service} (WAF rule or allow-list) "
                     "until it does")
    steps.append(f"disable or isolate the code path that uses {package} in {a.service}, "
                 "or remove the dependency")
    steps.append(f"watch {a.service}'s logs and egress for exploitation of {a.finding.id}")
    return "; ".join(steps)


def plan_service(service: str, current: Inventory, newer: list[Inventory],
                 triaged: list[Triaged], policy: VulnerabilityPolicy) -> ServicePlan:
    """The plan for one service's affecting findings (`triaged`, most severe first)."""
    driver = triaged[0]
    if driver.severity is None:
        return ServicePlan(service, current.version, "signal", driver, triaged)
    for release in sorted(newer, key=lambda i: version_key(i.version)):
        if not assess(driver.assessment.finding, release).affected:
            clears = [t.assessment.finding.id for t in triaged
                      if not assess(t.assessment.finding, release).affected]
            return ServicePlan(service, current.version, "patch", driver, triaged,
                               to_version=release.version, clears=clears)
    return ServicePlan(service, current.version, "mitigate", driver, triaged,
                       mitigation=mitigation(driver, service in policy.exposed_services))
