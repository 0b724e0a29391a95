"""The race suite: approve, reject, modify and resume the same approval from several
processes at once. Exactly one decision wins; the losers say so and exit non-zero; the
incident runs once (one learn, a checkpoint history with no fork).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from crash_harness import as_json, check_invariants, child_env, command, run

pytestmark = pytest.mark.slow

SEED = 20261130
ROUNDS = 3


def _forks(work: Path, thread: str) -> int:
    """Checkpoints of the incident's thread with more than one child: a split history, in
    the loop itself or inside a subgraph (the change path, where the approval waits)."""
    with sqlite3.connect(work / "state" / "checkpoints.sqlite") as db:
        rows = db.execute(
            "SELECT checkpoint_ns, parent_checkpoint_id FROM checkpoints WHERE thread_id=? AND "
            "parent_checkpoint_id IS NOT NULL "
            "GROUP BY checkpoint_ns, parent_checkpoint_id HAVING COUNT(*) > 1",
            (thread,)).fetchall()
    return len(rows)


def _change_paths(work: Path, thread: str) -> int:
    """How many times the change path started: each run has a namespace of its own."""
    with sqlite3.connect(work / "state" / "checkpoints.sqlite") as db:
        [(count,)] = db.execute(
            "SELECT COUNT(DISTINCT checkpoint_ns) FROM checkpoints WHERE thread_id=? AND "
            "checkpoint_ns LIKE 'change:%'", (thread,)).fetchall()
    return int(count)


def test_concurrent_deciders_exactly_one_wins(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    template = tmp_path / "template"
    [row] = as_json(run(template, "demo", "--scenario", "bad_deploy", "--json"))
    [waiting] = as_json(run(template, "approvals", "--json"))
    deciders = {
        "alice": ["approve", waiting["id"], "--by", "alice"],
        "bob": ["approve", waiting["id"], "--by", "bob"],
        "carol": ["reject", waiting["id"], "--by", "carol", "--reason", "not now"],
        "dave": ["modify", waiting["id"], "--by", "dave", "--set", "to_version=2.13.2"],
    }
    report = []
    for round_ in range(ROUNDS):
        work = tmp_path / f"round-{round_}"
        shutil.copytree(template, work)
        order = list(deciders)
        rng.shuffle(order)
        started = time.monotonic()
        procs = {
            name: subprocess.Popen(command(work, *deciders[name]), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=child_env())
            for name in order
        }
        resumer = subprocess.Popen(command(work, "resume", row["incident"]),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=child_env())
        outcomes = {name: (p.wait(timeout=180), *p.communicate()) for name, p in procs.items()}
        resumer.wait(timeout=180)
        seconds = time.monotonic() - started
        winners = [name for name, (code, _, _) in outcomes.items() if code == 0]
        assert len(winners) == 1, outcomes
        for name, (code, _, err) in outcomes.items():
            if name in winners:
                continue
            assert code != 0 and "Traceback" not in err, (name, err)
            assert "being run right now" in err or "already decided" in err, (name, err)
        assert "Traceback" not in resumer.communicate()[1]
        incident = as_json(run(work, "show", row["incident"], "--json"))["incident"]
        assert [c["approval"]["by"] for c in incident["actions"] if c["approval"]] == winners
        assert _forks(work, row["incident"]) == 0
        assert _change_paths(work, row["incident"]) == 1
        findings = check_invariants(work)
        assert not findings.problems, findings.problems
        report.append(f"round {round_}: {order} -> {winners[0]} won, "
                      f"{len(outcomes) - 1} refused, {incident['status']}, {seconds:.1f} s")
    print("\n".join(["", f"race suite: {ROUNDS} rounds of {len(deciders)} deciders + resume",
                     *report]))
