"""The retrieval eval: labelled alerts -> expected runbook, per embedding backend.

Cases live in evals/retrieval/alerts.yaml over the runbooks in `runbook_dirs` (opsloop's own
and a corpus written in other teams' styles). For each backend the index is built afresh in
a temporary directory, every alert is searched with the query the loop would build, and:

- recall@1 / recall@3: the expected runbook is first / in the first three (cases with one);
- MRR: mean of 1/rank of the expected runbook (0 when it is not in the top 10);
- no-match precision: of the alerts answered "no good match", the share that truly have none;
  no-match recall: of the alerts that have none, the share answered "no good match".

Each backend is also run on a name-free variant of the queries (`description`: the alert's
summary and description only, no alert name and no labels), which is what a semantic
backend is for: matching what people wrote rather than an identifier the runbook repeats.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError

from opsloop.settings import REPO_ROOT, Settings
from opsloop.tools.retrieval.backends import EmbeddingBackend
from opsloop.tools.retrieval.embedders import EmbeddingBackendError
from opsloop.tools.retrieval.query import alert_query
from opsloop.tools.runbook_index import RunbookIndex

CASES_FILE = REPO_ROOT / "evals" / "retrieval" / "alerts.yaml"
_DEPTH = 10
QueryVariant = Literal["alert", "description"]
VARIANTS: tuple[QueryVariant, ...] = get_args(QueryVariant)


class AlertSpec(BaseModel, extra="forbid"):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    description: str = ""

    def query(self, variant: QueryVariant = "alert") -> str:
        notes = {"summary": self.summary, "description": self.description}
        if variant == "description":
            return alert_query("", {}, notes) or self.name  # never an empty query
        return alert_query(self.name, self.labels, notes)


class RetrievalCase(BaseModel, extra="forbid"):
    expect: str | None
    kind: Literal["named", "paraphrased", "neighbour", "no-match"]
    alert: AlertSpec


class RetrievalSet(BaseModel, extra="forbid"):
    runbook_dirs: list[Path]
    cases: list[RetrievalCase] = Field(min_length=1)


def load_set(path: Path = CASES_FILE) -> RetrievalSet:
    """The labelled set; ValueError names the file and the field that is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        labelled = RetrievalSet.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from exc
    dirs = [(path.parent / d).resolve() for d in labelled.runbook_dirs]
    return labelled.model_copy(update={"runbook_dirs": dirs})


def evaluate(settings: Settings, backend: str | None = None, *,
             cases_file: Path = CASES_FILE, variant: QueryVariant = "alert"
             ) -> dict[str, float | int | str]:
    """recall@1, recall@3, MRR and no-match precision for one backend (default: settings')."""
    return evaluate_variants(settings, backend, cases_file=cases_file, variants=(variant,))[0]


def evaluate_variants(settings: Settings, backend: str | None = None, *,
                      cases_file: Path = CASES_FILE, variants: tuple[QueryVariant, ...] = VARIANTS
                      ) -> list[dict[str, float | int | str]]:
    """One row per query variant, all over one index build."""
    labelled = load_set(cases_file)
    chosen = EmbeddingBackend.from_settings(settings, backend)
    with tempfile.TemporaryDirectory(prefix="opsloop-retrieval-eval-") as tmp:
        started = time.perf_counter()
        index = RunbookIndex(Path(tmp), labelled.runbook_dirs, backend=chosen,
                             no_match_threshold=settings.no_match_threshold)
        build_s = time.perf_counter() - started
        known = {rb.id for rb in index.runbooks()}
        missing = sorted({c.expect for c in labelled.cases if c.expect} - known)
        if missing:
            raise ValueError(f"{cases_file}: expected runbook(s) not in the corpus: "
                             f"{', '.join(missing)}")
        head: dict[str, float | int | str] = {
            "backend": chosen.describe(), "queries": len(labelled.cases),
            "runbooks": len(known), "chunks": index.chunk_count(),
            "problems": len(index.problems())}
        return [{**head, "query": v, **_score(index, labelled.cases, v),
                 "build_seconds": round(build_s, 3)} for v in variants]


def _score(index: RunbookIndex, cases: list[RetrievalCase],
           variant: QueryVariant) -> dict[str, float | int | str]:
    ranks: list[int | None] = []
    said_none: list[bool] = []
    tops: list[float] = []
    latencies: list[float] = []
    for case in cases:
        t0 = time.perf_counter()
        answer = index.answer(case.alert.query(variant), k=_DEPTH)
        latencies.append(time.perf_counter() - t0)
        ids = [h.runbook_id for h in answer.hits]
        ranks.append(ids.index(case.expect) + 1 if case.expect in ids else None)
        said_none.append(answer.no_match)
        tops.append(answer.hits[0].score if answer.hits else 0.0)
    positive = [r for r, c in zip(ranks, cases, strict=True) if c.expect]
    truth_none = [c.expect is None for c in cases]
    answered_none = sum(said_none)
    right_none = sum(s and t for s, t in zip(said_none, truth_none, strict=True))
    latencies.sort()
    return {
        "recall_at_1": round(sum(r == 1 for r in positive) / len(positive), 4),
        "recall_at_3": round(sum(r is not None and r <= 3 for r in positive) / len(positive), 4),
        "mrr": round(sum(1 / r for r in positive if r) / len(positive), 4),
        "no_match_precision": round(right_none / answered_none, 4) if answered_none else 0.0,
        "no_match_recall": round(right_none / sum(truth_none), 4) if any(truth_none) else 0.0,
        "threshold": index.threshold,
        "suggested_threshold": suggest_threshold(tops, truth_none),
        "query_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
    }


def suggest_threshold(tops: list[float], truth_none: list[bool]) -> float:
    """The cut on the best hit's score that best separates "no runbook" from the rest."""
    cuts = sorted(set(tops))
    candidates = [0.0] + [(a + b) / 2 for a, b in itertools.pairwise(cuts)]

    def correct(cut: float) -> int:
        return sum((t < cut) == none for t, none in zip(tops, truth_none, strict=True))

    best: float = max(candidates, key=lambda c: (correct(c), -c))
    return round(best, 4)


def misses(settings: Settings, backend: str | None = None) -> list[dict[str, object]]:
    """Every case the backend got wrong, with what it answered: for people tuning retrieval."""
    labelled = load_set()
    with tempfile.TemporaryDirectory(prefix="opsloop-retrieval-eval-") as tmp:
        index = RunbookIndex(Path(tmp), labelled.runbook_dirs,
                             backend=EmbeddingBackend.from_settings(settings, backend),
                             no_match_threshold=settings.no_match_threshold)
        out: list[dict[str, object]] = []
        for case in labelled.cases:
            answer = index.answer(case.alert.query(), k=3)
            top = [f"{h.runbook_id} {h.score:.2f} (v{h.vector:.2f} l{h.lexical:.2f})"
                   for h in answer.hits]
            first = answer.hits[0].runbook_id if answer.hits else None
            wrong = (answer.no_match != (case.expect is None)) or (
                case.expect is not None and first != case.expect)
            if wrong:
                out.append({"alert": case.alert.name, "kind": case.kind, "expect": case.expect,
                            "no_match": answer.no_match, "top": top})
        return out


def evaluate_backends(settings: Settings, names: list[str],
                      progress: Callable[[str], None] | None = None,
                      variants: tuple[QueryVariant, ...] = VARIANTS,
                      ) -> list[dict[str, float | int | str]]:
    """One row per backend and query variant; a backend that cannot run gives a row with
    its `error`."""
    rows: list[dict[str, float | int | str]] = []
    for name in names:
        if progress is not None:
            progress(name)
        try:
            rows.extend(evaluate_variants(settings, name, variants=variants))
        except EmbeddingBackendError as exc:
            rows.append({"backend": name, "error": str(exc)})
    return rows
