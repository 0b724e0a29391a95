"""Verification by rescan: after a security patch (`deploy_version`), the finding it was
proposed for must be gone from the SBOM of the release that now runs. The check joins the
action's health checks, so a patch that leaves the finding in place is judged no effect and
reverted like any action that did not help."""

from __future__ import annotations

from opsloop.graph.context import LoopContext
from opsloop.models import ActionCase, VerificationCheck
from opsloop.policy.rollback import judge
from opsloop.security.inbox import read_inbox
from opsloop.security.matching import assess
from opsloop.security.sbom import SbomError, read_sbom

PATCH_ACTION = "deploy_version"


def rescan_checks(ctx: LoopContext, case: ActionCase) -> list[VerificationCheck]:
    """`rescan <finding>` on the service: 0 when its running release no longer carries the
    finding, 1 when it still does (it did before the patch: the proposal was made for it)."""
    if case.action.type != PATCH_ACTION:
        return []
    service, finding_id = case.action.service, case.proposal.hypothesis_id
    finding = next((f for f in read_inbox(ctx.settings.state_dir).findings
                    if finding_id in f.ids()), None)
    name = f"rescan {finding_id}"
    try:
        inventory = read_sbom(f"{service} SBOM", ctx.telemetry.sbom(service))
    except (KeyError, SbomError):
        inventory = None
    # Nothing to rescan against counts as still present: a patch is never taken on trust.
    still = finding is None or inventory is None or assess(finding, inventory).affected
    check = VerificationCheck(name=name, service=service, observed=float(still),
                              threshold=0.0, ok=not still)
    return [judge(check, 1.0, ctx.policies.rollback.outcomes)]
