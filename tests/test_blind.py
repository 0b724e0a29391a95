"""Blind runs: no scenario, case, fault or variant name reaches the model.

Every built-in scenario (through `watch`, as `opsloop demo` runs it) and every eval case
(through the eval driver) goes round the loop on the model path, against the scripted
loopback server. Everything the model is sent (each request body), every prompt and data
block rendered, every tool output, and what every tool would answer about every service of
each production afterwards (plus the log, deploy, flag and experiment records behind them)
is then searched for the names that would give the answer away.

A name is matched as an identifier: case-insensitive, `-`, `_` and `/` alike, bounded by
anything that is not a letter or a digit, so `sim:bad_deploy-7-1a2b`, `exp-bad-deploy`
and `simulated/bad-deploy-late` are found, and `Bad_Deploy` is too. Prose is not: a runbook
saying "memory leak" uses the trade's words, the same for every scenario.

What may legitimately carry a name, and is searched only for the names outside the runbook
library (case ids, variant names, scenario names no runbook uses):
- the runbook library's own vocabulary: the scenarios are named after the runbook categories
  the model has to choose among, so runbook ids, hypothesis ids and categories appear in the
  `runbooks` block, in `run_runbook_checks` (its schema and results), in the alert
  annotation that names the alert rule's runbook, and in the `record` the postmortem
  narrative is written from (the loop's own diagnosis, after the fact). They are the same for
  every scenario and say nothing about which one runs;
- the model's own messages (the assistant turns sent back) are not searched at all.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from llm_server import model_settings

from opsloop import environments
from opsloop.cli.main import main
from opsloop.environments import origin_of
from opsloop.evals.cases import Case, load_cases
from opsloop.evals.driver import Harness
from opsloop.evals.overlay import overlay_policies
from opsloop.evals.runner import run_case
from opsloop.evals.suite import case_workdir
from opsloop.graph.runner import OperateLoop
from opsloop.llm import prompting
from opsloop.llm.testing import ScriptedServer
from opsloop.models import Incident
from opsloop.models.catalog import ACTION_TYPES
from opsloop.policy import load_policies
from opsloop.settings import REPO_ROOT, Settings
from opsloop.simulator import SCENARIOS
from opsloop.simulator.server import FAULT_KINDS
from opsloop.tools.protocols import Clock, Telemetry
from opsloop.tools.runbook_index import RunbookIndex
from opsloop.tools.toolbox import Toolbox
from opsloop.watch import run_scenario

CASES = load_cases(REPO_ROOT / "evals" / "cases")
WINDOW = 24 * 60  # minutes: more than any production here holds

# One-word names are ordinary words the loop uses for what they mean, and are left out:
# `novel` (no runbook explains it: a diagnosis outcome and a record field), `healthy` (a
# variant with no built-in fault), and the simulator's one-word event kinds, which are also
# the names of tools, records and log lines (recent_deploys, flag_states, log_search).
ORDINARY = frozenset({"novel", "healthy", "deploy", "flag", "traffic", "leak", "log",
                      "autoscaler"})
# Identifiers of the loop's own that contain a name: `set_flag_rollout` is an action type.
OWN_IDENTIFIERS = frozenset(ACTION_TYPES)
# Keys whose values come from the runbook library (see the module docstring).
RUNBOOK_KEYS = frozenset({"runbook", "category", "hypothesis"})
RUNBOOK_BLOCKS = frozenset({"runbooks", "record"})

_BLOCK = re.compile(r'<data kind="(?P<kind>[a-z_]+)" trust="untrusted">\n(?P<body>.*?)\n</data>',
                    re.S)


def _key(name: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


def _pattern(keys: Iterable[str]) -> re.Pattern[str]:
    words = sorted(keys, key=len, reverse=True)  # the longest name wins where names nest
    alternatives = "|".join(r"[-_/]".join(map(re.escape, k.split("-"))) for k in words)
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.I)


def forbidden_names(cases: list[Case]) -> set[str]:
    """Scenario names, fault names, case ids and variant names, as written in their sources."""
    names = set(SCENARIOS) | {s.expected.category for s in SCENARIOS.values()} | set(FAULT_KINDS)
    for case in cases:
        names |= {case.id, case.id.rsplit("/", 1)[-1]}
        names |= {e.root_cause.category for e in case.expected}
        if case.simulation is not None:
            names.add(case.simulation.base)
            names |= {e.kind for e in case.simulation.events}
    return names


@dataclass(frozen=True)
class Finding:
    name: str
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.name!r} in {self.where}: …{self.excerpt}…"


class Vocabulary:
    """The forbidden names; those the runbook library also uses pass only in runbook fields."""

    def __init__(self, names: Iterable[str], runbook_words: Iterable[str]) -> None:
        self.names = {_key(n) for n in names} - ORDINARY
        self.runbook_words = {_key(w) for w in runbook_words} & self.names
        self.pattern = _pattern(self.names)
        self.own = _pattern({_key(i) for i in OWN_IDENTIFIERS})
        # Conversations are resent whole: each text is searched once, and reported where it
        # was first seen.
        self._searched: dict[tuple[str, bool], list[Finding]] = {}

    def find(self, text: str, where: str, in_runbook: bool = False) -> list[Finding]:
        if (text, in_runbook) not in self._searched:
            self._searched[text, in_runbook] = self._search(text, where, in_runbook)
        return self._searched[text, in_runbook]

    def _search(self, text: str, where: str, in_runbook: bool) -> list[Finding]:
        masked = self.own.sub(lambda m: " " * len(m.group()), text)
        out = []
        for m in self.pattern.finditer(masked):
            key = _key(m.group())
            if in_runbook and key in self.runbook_words:
                continue
            out.append(Finding(key, where, text[max(0, m.start() - 60):m.end() + 40]))
        return out

    def walk(self, value: Any, where: str, in_runbook: bool = False) -> Iterator[Finding]:
        """Every string (and key) in a JSON value; runbook fields as the docstring says."""
        if isinstance(value, dict):
            for k, v in value.items():
                inner = in_runbook or k in RUNBOOK_KEYS
                yield from self.find(str(k), where, inner)
                yield from self.walk(v, f"{where}.{k}", inner)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from self.walk(v, f"{where}[{i}]", in_runbook)
        elif isinstance(value, str):
            yield from self.text(value, where, in_runbook)
        elif value is not None:
            yield from self.find(str(value), where, in_runbook)

    def text(self, text: str, where: str, in_runbook: bool = False) -> Iterator[Finding]:
        """Prose with `<data>` blocks in it: the blocks decoded and walked, the rest searched."""
        for m in _BLOCK.finditer(text):
            kind = m.group("kind")
            try:
                payload = json.loads(m.group("body"))
            except json.JSONDecodeError:
                payload = m.group("body")
            yield from self.walk(payload, f"{where}<{kind}>", in_runbook or kind in RUNBOOK_BLOCKS)
        yield from self.find(_BLOCK.sub(" ", text), where, in_runbook)


@dataclass
class Seen:
    """What the model was sent, what was rendered for it, what the tools answered."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (prompt file, text)
    blocks: list[tuple[str, Any]] = field(default_factory=list)  # (kind, payload)
    tool_outputs: list[tuple[str, Any]] = field(default_factory=list)  # (tool, result)
    incidents: dict[str, list[Incident]] = field(default_factory=dict)  # by scenario/case
    demo_settings: Settings | None = None
    case_dirs: dict[str, Path] = field(default_factory=dict)


def findings(seen: Seen, vocabulary: Vocabulary) -> Iterator[Finding]:
    for n, body in enumerate(seen.requests):
        for i, message in enumerate(body.get("messages", [])):
            if message.get("role") == "assistant":
                continue  # the model's own words
            content = message.get("content")
            where = f"request {n} message {i} ({message.get('role')})"
            if isinstance(content, str):
                yield from vocabulary.text(content, where)
            else:
                yield from vocabulary.walk(content, where)
        rest = {k: v for k, v in body.items() if k != "messages"}
        yield from vocabulary.walk(rest, f"request {n}")
    for name, text in seen.prompts:
        yield from vocabulary.text(text, f"prompt {name}")
    for kind, payload in seen.blocks:
        yield from vocabulary.walk(payload, f"block {kind}", kind in RUNBOOK_BLOCKS)
    for tool, output in seen.tool_outputs:
        yield from vocabulary.walk(output, f"tool {tool}")


Production = tuple[Telemetry, Clock | None]


def _record_renders(mp: pytest.MonkeyPatch, seen: Seen, productions: list[Production]) -> None:
    """Catch every prompt, data block and tool output, and each production tools ran on."""
    prompt, data_block, call = prompting.prompt, prompting.data_block, Toolbox.call
    init = Toolbox.__init__

    def recording_prompt(name: str, **values: object) -> str:
        text = prompt(name, **values)
        seen.prompts.append((name, text))
        return text

    def recording_block(kind: str, payload: Any) -> str:
        seen.blocks.append((kind, json.loads(json.dumps(payload, default=str))))
        return data_block(kind, payload)

    def recording_call(self: Toolbox, tool: str, args: Any = None, **kwargs: Any) -> Any:
        result = call(self, tool, args, **kwargs)
        seen.tool_outputs.append((tool, result.model_dump(mode="json")))
        return result

    def recording_init(self: Toolbox, telemetry: Telemetry, allowed: set[str] | None = None,
                       **kwargs: Any) -> None:
        init(self, telemetry, allowed, **kwargs)
        if not any(known is telemetry for known, _ in productions):
            productions.append((telemetry, kwargs.get("clock")))

    swaps: dict[Callable[..., Any], Callable[..., Any]] = {
        prompt: recording_prompt, data_block: recording_block}
    for module in [m for n, m in list(sys.modules.items()) if n.startswith("opsloop")]:
        for attr, value in list(vars(module).items()):
            for original, recording in swaps.items():
                if value is original:
                    mp.setattr(module, attr, recording)
    mp.setattr(Toolbox, "call", recording_call)
    mp.setattr(Toolbox, "__init__", recording_init)


def _ask_everything(production: Production, seen: Seen) -> None:
    """Every tool on every service, and every record behind them: all a model could ask for."""
    telemetry, clock = production
    everything = Toolbox(telemetry, clock=clock)
    services = telemetry.services()
    seen.tool_outputs.append(("services", [s.model_dump(mode="json") for s in services]))
    for service in (s.name for s in services):
        for tool in everything.describe():
            args = {"service": service, "metric": "error_ratio", "pattern": ".", "minutes": WINDOW}
            everything.call(tool["name"], {k: v for k, v in args.items()
                                           if k in tool["parameters"]})
        records = [*telemetry.logs(service, WINDOW, None, limit=100_000),
                   *telemetry.deploys(service, WINDOW), *telemetry.flags(service),
                   *telemetry.flag_changes(service, WINDOW), *telemetry.experiments(service)]
        seen.tool_outputs.append((f"records of {service}",
                                  [r.model_dump(mode="json") for r in records]))


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    """Every scenario and every eval case round the loop once, on the scripted model."""
    tmp = tmp_path_factory.mktemp("blind")
    out = Seen()
    productions: list[Production] = []
    with pytest.MonkeyPatch.context() as mp, ScriptedServer() as server:
        _record_renders(mp, out, productions)
        settings = model_settings(tmp / "demo", server)
        out.demo_settings = settings
        loop = OperateLoop(settings)
        try:
            for name in sorted(SCENARIOS):
                out.incidents[name] = run_scenario(loop, name, 7, lambda _m: None).incidents
        finally:
            loop.close()
        base = model_settings(tmp / "evals", server)
        policies = load_policies(base.policies_dir, allow_unsafe=True)  # as suite.py does
        runbooks = RunbookIndex.from_settings(base)
        harness = Harness(settings=base, policies=policies, runbooks=runbooks)
        for case in CASES:
            case_policies = (overlay_policies(base.policies_dir, case.policies, tmp / "policies")
                             if case.policies else policies)
            workdir = case_workdir(tmp / "evals", "scripted", case.id, 1)
            run = run_case(case, harness, case_policies, workdir, "scripted", 1)
            assert run.error is None, f"{case.id}: {run.error}"
            out.incidents[case.id] = run.incidents
            out.case_dirs[case.id] = workdir
        out.requests = [e.request for e in server.exchanges]
        for production in list(productions):
            _ask_everything(production, out)
    yield out


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory: pytest.TempPathFactory) -> Vocabulary:
    index = RunbookIndex.from_settings(Settings(work_dir=tmp_path_factory.mktemp("index")))
    words = [w for rb in index.runbooks() for h in rb.hypotheses for w in (rb.id, h.id, h.category)]
    return Vocabulary(forbidden_names(CASES), words)


@pytest.mark.slow
def test_no_scenario_case_fault_or_variant_name_reaches_the_model(
        seen: Seen, vocabulary: Vocabulary) -> None:
    assert len(seen.requests) > len(SCENARIOS) + len(CASES)  # the model path really ran
    assert seen.prompts and seen.blocks
    asked = {tool for tool, _ in seen.tool_outputs}
    assert {"services", "log_search", "recent_deploys", "flag_states", "running_experiments",
            "records of checkout"} <= asked
    found = list(dict.fromkeys(findings(seen, vocabulary)))
    assert not found, f"{len(found)} leak(s):\n" + "\n".join(map(str, found[:15]))


def test_the_search_finds_a_planted_name(vocabulary: Vocabulary) -> None:
    incident = {"id": "INC-0001", "environment": "sim:3f9a0c12d4e5", "title": "HighErrorRate"}
    assert not list(vocabulary.walk(incident, "incident"))
    for field_name, planted in [("environment", "sim:bad_deploy-7-0348d3"),
                                ("environment", "sim:eval-simulated/hard-two-incidents"),
                                ("title", "HighErrorRate on checkout (Memory-Leak-Fast)"),
                                ("version", "2.14.0-flag_rollout_errors"),
                                ("experiment", "exp-slo-slow-burn")]:
        leaked = {**incident, field_name: planted}
        assert list(vocabulary.walk(leaked, "incident")), planted
    # A runbook field may name its runbook, never a case.
    assert not list(vocabulary.walk({"runbook": "bad-deploy"}, "alert"))
    assert list(vocabulary.walk({"runbook": "recorded/bad-deploy-web"}, "alert"))
    # Inside tool output, wherever it sits.
    line = {"message": "GET /cart 500 (variant disk-filling-seed2)"}
    assert [f.name for f in vocabulary.walk(line, "log")] == ["disk-filling-seed2"]
    text = 'go\n<data kind="tool_result" trust="untrusted">\n{"status":"ok","data":' \
           '{"deploys":[{"version":"cost_runaway"}]}}\n</data>'
    assert [f.name for f in vocabulary.text(text, "tool")] == ["cost-runaway"]


def test_a_name_planted_in_the_environment_reference_is_found_in_what_the_model_saw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vocabulary: Vocabulary) -> None:
    # The reference as it was before issue 9: the scenario's name, its seed, a suffix.
    monkeypatch.setattr(environments, "opaque_ref", lambda kind: f"{kind}:memory_leak-7-0348d3")
    with ScriptedServer() as server:
        loop = OperateLoop(model_settings(tmp_path, server))
        try:
            run_scenario(loop, "memory_leak", 7, lambda _m: None)
        finally:
            loop.close()
        requests = [e.request for e in server.exchanges]
    found = list(dict.fromkeys(findings(Seen(requests=requests), vocabulary)))
    assert {f.name for f in found} == {"memory-leak"}
    assert all(".environment" in f.where for f in found)


@pytest.mark.slow
def test_every_environment_reference_is_opaque(seen: Seen) -> None:
    refs = {i.environment for incidents in seen.incidents.values() for i in incidents}
    assert refs and all(re.fullmatch(r"(sim|recorded):[0-9a-f]{12}", r) for r in refs), refs
    assert len(refs) == sum(1 for incidents in seen.incidents.values() if incidents)


@pytest.mark.slow
def test_where_an_incident_came_from_is_kept_beside_it(
        seen: Seen, capsys: pytest.CaptureFixture[str]) -> None:
    assert seen.demo_settings is not None
    [incident] = seen.incidents["memory_leak"]
    origin = origin_of(incident.environment, seen.demo_settings)
    assert origin is not None and (origin.scenario, origin.seed) == ("memory_leak", 7)
    assert main(["show", incident.id, "--work-dir", str(seen.demo_settings.work_dir)]) == 0
    assert "(scenario memory_leak, seed 7)" in capsys.readouterr().out

    case_id = "recorded/bad-deploy-web"
    [incident] = seen.incidents[case_id]
    case_settings = Settings(work_dir=seen.case_dirs[case_id])
    origin = origin_of(incident.environment, case_settings)
    assert origin is not None and origin.case == case_id
