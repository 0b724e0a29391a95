"""One case run, whatever its kind: incidents on a simulation or a recording, or a
scheduled agent on a simulation. A failure inside the loop is a result, not a crash."""

from __future__ import annotations

import time
from pathlib import Path

from opsloop.evals.agent_driver import run_agent_case
from opsloop.evals.cases import Case, CaseError
from opsloop.evals.driver import CaseRun, Harness, replay_case, simulate_case
from opsloop.policy import Policies

RUNNERS = {"simulated": simulate_case, "recorded": replay_case, "agent": run_agent_case}


def run_case(case: Case, harness: Harness, policies: Policies, workdir: Path,
             model: str, run: int) -> CaseRun:
    """Run the case once; a failure inside the loop is recorded, not raised."""
    out = CaseRun(case_id=case.id, model=model, run=run)
    started = time.perf_counter()
    try:
        RUNNERS[case.kind](case, harness, policies, workdir, out)
    except CaseError:
        raise
    except Exception as exc:  # the loop failing on a case is a result, not a harness crash
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - started
    for incident in out.incidents:
        if incident.postmortem_path and Path(incident.postmortem_path).exists():
            out.postmortems[incident.id] = Path(incident.postmortem_path).read_text(
                encoding="utf-8")
    return out
