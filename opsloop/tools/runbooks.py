"""Runbooks: the markdown format, its validation, and the chromadb index that finds them.

A runbook is YAML front matter (the machine-followable hypotheses, checks and remediation)
followed by the sections people read. The format is written up in runbooks/README.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import chromadb
import yaml
from chromadb.config import Settings as ChromaSettings
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from opsloop.agents.checks import ExpectError, check_expect, template_vars
from opsloop.models import ParamValue
from opsloop.tools.embeddings import HashingEmbeddingFunction
from opsloop.tools.toolbox import TOOLS

SpecialistName = Literal[
    "health", "incident", "remediation", "rollout", "capacity", "performance", "resilience", "cost"
]
_ALERT_BOOST = 0.3  # an alert named in the query is strong evidence of the right runbook
_EXTRA_ALERT_BOOST = 0.1  # each further firing alert it covers: it explains more of the incident


class CheckSpec(BaseModel, extra="forbid"):
    """One diagnostic step: call a tool, compare a field, maybe bind values for later."""

    id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    expect: str | None = None  # no expectation: the check only binds (holds when the tool answers)
    bind: dict[str, str] = Field(default_factory=dict)  # variable -> path in the tool's data
    weight: float = Field(default=1.0, ge=0.0)
    required: bool = False
    refutes: bool = False  # when it holds, it counts against the hypothesis
    description: str = ""

    @field_validator("expect")
    @classmethod
    def _expect_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_expect(value)
            except ExpectError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _tool_exists(self) -> CheckSpec:
        spec = TOOLS.get(self.tool)
        if spec is None:
            raise ValueError(f"unknown tool {self.tool!r}; tools are {', '.join(sorted(TOOLS))}")
        unknown = sorted(set(self.args) - set(spec.params))
        if unknown:
            raise ValueError(f"{self.tool} has no argument(s) {', '.join(unknown)}; "
                             f"it takes {', '.join(spec.params)}")
        if self.required and self.refutes:
            raise ValueError("a check cannot be both required and refutes")
        return self


class ActionTemplate(BaseModel, extra="forbid"):
    """A remediation action with `{var}` placeholders filled from bound values."""

    action: str
    service: str = "{service}"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    reason: str = ""


class HypothesisSpec(BaseModel, extra="forbid"):
    id: str
    category: str
    cause: str
    service: str = "{service}"  # whom the hypothesis blames, e.g. "{dependency}"
    checks: list[CheckSpec] = Field(min_length=1)
    remediation: list[ActionTemplate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _variables_are_bound_before_use(self) -> HypothesisSpec:
        known = {"service"}
        seen: set[str] = set()
        for i, check in enumerate(self.checks):
            if check.id in seen:
                raise ValueError(f"checks[{i}]: duplicate check id {check.id!r}")
            seen.add(check.id)
            used = set().union(*(template_vars(v) for v in check.args.values()),
                               template_vars(check.expect))
            if used - known:
                raise ValueError(f"checks[{i}] ({check.id}) uses {sorted(used - known)} "
                                 "before any earlier check binds it")
            known |= set(check.bind)
        for i, act in enumerate(self.remediation):
            used = template_vars(act.service).union(
                *(template_vars(v) for v in act.params.values()))
            if used - known:
                raise ValueError(f"remediation[{i}] ({act.action}) uses {sorted(used - known)}, "
                                 "which no check binds")
        return self


class Runbook(BaseModel, extra="forbid"):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    specialist: SpecialistName
    alerts: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=lambda: ["*"])
    symptoms: list[str] = Field(default_factory=list)
    hypotheses: list[HypothesisSpec] = Field(default_factory=list)
    file: str = ""
    body: str = ""

    def applies_to(self, service: str) -> bool:
        return any(fnmatch.fnmatchcase(service, pat) for pat in self.services)

    def sections(self) -> dict[str, str]:
        """`## Heading` -> text, in order."""
        out: dict[str, str] = {}
        for block in re.split(r"(?m)^##\s+", self.body)[1:]:
            head, _, text = block.partition("\n")
            out[head.strip()] = text.strip()
        return out


class RunbookProblem(BaseModel):
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class RunbookError(ValueError):
    def __init__(self, problems: list[RunbookProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class RunbookHit(BaseModel):
    runbook_id: str
    title: str
    specialist: str
    score: float = Field(ge=0.0, le=1.0)
    section: str
    file: str
    matched_alerts: list[str] = Field(default_factory=list)


def parse_runbook(path: Path, text: str | None = None) -> Runbook:
    """Parse one runbook file; raises RunbookError naming the file and field."""
    file = str(path)
    text = path.read_text(encoding="utf-8") if text is None else text
    m = re.match(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)(.*)\Z", text, re.S)
    if not m:
        raise RunbookError([RunbookProblem(file=file, field="front matter",
                                           message="file must start with a '---' YAML block")])
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}" if mark is not None else "front matter"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunbookError([RunbookProblem(file=file, field=where,
                                           message=f"invalid YAML: {problem}")]) from exc
    if not isinstance(meta, dict):
        raise RunbookError([RunbookProblem(file=file, field="front matter",
                                           message="front matter must be a mapping")])
    try:
        return Runbook.model_validate({**meta, "file": file, "body": m.group(2)})
    except ValidationError as exc:
        problems = [RunbookProblem(file=file, field=".".join(str(p) for p in e["loc"]) or "-",
                                   message=e["msg"].removeprefix("Value error, "))
                    for e in exc.errors()]
        raise RunbookError(problems) from exc


def _chunks(rb: Runbook) -> list[tuple[str, str]]:
    """(section, text) pairs; the summary chunk carries what an alert would say."""
    summary = "\n".join([
        rb.title, "Alerts: " + ", ".join(rb.alerts), "Symptoms: " + "; ".join(rb.symptoms),
        "Causes: " + "; ".join(f"{h.category.replace('_', ' ')}: {h.cause}" for h in rb.hypotheses),
    ])
    out = [("summary", summary)]
    out += [(name, f"{rb.title}\n{name}\n{text}") for name, text in rb.sections().items() if text]
    return out


class RunbookIndex:
    """Runbooks from one or more folders, embedded into a persistent chromadb collection."""

    def __init__(self, persist_dir: Path, runbook_dirs: list[Path], *,
                 collection: str = "runbooks", dim: int = 512) -> None:
        persist_dir.mkdir(parents=True, exist_ok=True)
        self.runbook_dirs = list(runbook_dirs)
        self.embedder = HashingEmbeddingFunction(dim)
        client = chromadb.PersistentClient(
            path=str(persist_dir), settings=ChromaSettings(anonymized_telemetry=False)
        )
        self._col = client.get_or_create_collection(
            collection, embedding_function=self.embedder,  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "cosine"}},
        )
        self._runbooks: dict[str, Runbook] = {}
        self._problems: list[RunbookProblem] = []
        self.refresh()

    def refresh(self) -> dict[str, int]:
        """Re-read the folders; embed only files whose content changed. Returns counts."""
        stored: dict[str, str] = {}
        for meta in self._col.get(include=["metadatas"])["metadatas"] or []:
            stored[str(meta["file"])] = str(meta["hash"])
        files = sorted({p.resolve() for d in self.runbook_dirs if d.is_dir()
                        for p in d.glob("*.md") if p.name.lower() != "readme.md"})
        runbooks: dict[str, Runbook] = {}
        problems: list[RunbookProblem] = []
        counts = {"indexed": 0, "unchanged": 0, "removed": 0, "broken": 0}
        for path in files:
            raw = path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            try:
                rb = parse_runbook(path, raw.decode("utf-8"))
                if rb.id in runbooks:
                    raise RunbookError([RunbookProblem(
                        file=str(path), field="id",
                        message=f"id {rb.id!r} is already used by {runbooks[rb.id].file}")])
            except (RunbookError, UnicodeDecodeError) as exc:
                problems += exc.problems if isinstance(exc, RunbookError) else [
                    RunbookProblem(file=str(path), field="-", message=f"not UTF-8 text: {exc}")]
                counts["broken"] += 1
                self._drop(str(path))  # a stale copy of a now-broken runbook would mislead
                continue
            runbooks[rb.id] = rb
            if stored.get(str(path)) == digest:
                counts["unchanged"] += 1
                continue
            self._drop(str(path))
            chunks = _chunks(rb)
            self._col.upsert(
                ids=[f"{path}#{i}" for i in range(len(chunks))],
                documents=[text for _, text in chunks],
                metadatas=[{"runbook": rb.id, "file": str(path), "title": rb.title,
                            "specialist": rb.specialist, "alerts": ",".join(rb.alerts),
                            "section": section, "hash": digest} for section, _ in chunks],
            )
            counts["indexed"] += 1
        for gone in set(stored) - {str(p) for p in files}:
            self._drop(gone)
            counts["removed"] += 1
        self._runbooks, self._problems = runbooks, problems
        return counts

    def _drop(self, file: str) -> None:
        self._col.delete(where={"file": file})

    def problems(self) -> list[RunbookProblem]:
        return list(self._problems)

    def runbooks(self) -> list[Runbook]:
        return sorted(self._runbooks.values(), key=lambda r: r.id)

    def get(self, runbook_id: str) -> Runbook:
        try:
            return self._runbooks[runbook_id]
        except KeyError:
            raise KeyError(f"no runbook {runbook_id!r}; known: {', '.join(sorted(self._runbooks))}"
                           ) from None

    def search(self, query: str, k: int = 5, specialist: str | None = None) -> list[RunbookHit]:
        """The k best runbooks for a query, best chunk per runbook, alert names boosted."""
        total = self._col.count()
        if total == 0 or k <= 0:
            return []
        where: Any = {"specialist": specialist} if specialist else None
        res = self._col.query(query_texts=[query], n_results=min(total, max(8 * k, 60)),
                              where=where, include=["metadatas", "distances"])
        best: dict[str, RunbookHit] = {}
        for meta, dist in zip((res["metadatas"] or [[]])[0], (res["distances"] or [[]])[0],
                              strict=False):
            rid = str(meta["runbook"])
            score = max(0.0, min(1.0, 1.0 - float(dist)))  # cosine distance -> similarity
            if rid not in best or score > best[rid].score:
                best[rid] = RunbookHit(runbook_id=rid, title=str(meta["title"]),
                                       specialist=str(meta["specialist"]), score=score,
                                       section=str(meta["section"]), file=str(meta["file"]))
        words = set(re.findall(r"[A-Za-z][\w-]*", query))
        for rb in self._runbooks.values():
            if specialist and rb.specialist != specialist:
                continue
            # Exact alert names only: "HighErrorRate" in the query, not "error" somewhere.
            matched = [a for a in rb.alerts if a in words]
            if not matched:
                continue
            hit = best.get(rb.id) or RunbookHit(runbook_id=rb.id, title=rb.title,
                                                specialist=rb.specialist, score=0.0,
                                                section="summary", file=rb.file)
            boost = _ALERT_BOOST + _EXTRA_ALERT_BOOST * (len(matched) - 1)
            best[rb.id] = hit.model_copy(update={"score": min(1.0, hit.score + boost),
                                                 "matched_alerts": matched})
        return sorted(best.values(), key=lambda h: (-h.score, h.runbook_id))[:k]
