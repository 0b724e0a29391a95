"""Signal triage: the status workflow and its history, mission briefs, ranking by evidence,
near-duplicates, concurrent deciders, `opsloop signals`, and the weekly triage board."""

from __future__ import annotations

import argparse
import importlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

import opsloop.agents.signal_triage as triage
from opsloop.agents.signal_triage import (
    DecisionConflict,
    InvalidTransition,
    SignalError,
    UnknownSignal,
    decide,
    load_signals,
    rank,
    score_signal,
)
from opsloop.agents.signals import (
    SignalsLocked,
    SignalStatus,
    derive_signals,
    read_record,
    signal_id,
    signals_lock,
    write_signals,
)
from opsloop.cli import signals as signals_cmd
from opsloop.models import (
    ActionCase,
    ActionResult,
    ActionStatus,
    Anomaly,
    Approval,
    DecisionOutcome,
    Hypothesis,
    Impact,
    Incident,
    IncidentStatus,
    PolicyDecision,
    RemediationAction,
    RemediationProposal,
    Severity,
    Signal,
    Verdict,
    Verification,
)
from opsloop.runbooks.markdown import split_front_matter
from opsloop.scheduled.agents.signal_triage import SignalTriage
from opsloop.scheduled.base import AgentContext, ScheduledAgent
from opsloop.settings import Settings
from opsloop.store import IncidentStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday, ISO week 2026-W49
# The module, not the `main` function `opsloop.cli` re-exports under the same name.
cli_main = importlib.import_module("opsloop.cli.main")


def incident(n: int, *, days_ago: float = 1, service: str = "checkout",
             category: str | None = "memory_leak", action: str = "restart",
             severity: Severity = Severity.SEV3, tier: int = 3, burn: float = 0.0,
             waited_minutes: int | None = None, minutes: int = 10,
             status: IncidentStatus = IncidentStatus.MITIGATED) -> Incident:
    """INC-<n> on `service`, `minutes` long; a human approved its fix after `waited_minutes`
    when given, otherwise policy ran it automatically."""
    opened = NOW - timedelta(days=days_ago)
    act = RemediationAction(id=f"a-{n}", type=action, service=service)
    asked = opened + timedelta(minutes=1)
    case = ActionCase(
        proposal=RemediationProposal(action=act, specialist="remediation",
                                     hypothesis_id=f"h-{n}", confidence=0.9),
        decision=PolicyDecision(
            action_id=act.id, rule=f"remediation.yaml:actions.{action}.{severity.value}",
            outcome=DecisionOutcome.AUTO if waited_minutes is None
            else DecisionOutcome.NEEDS_APPROVAL),
        requested_at=None if waited_minutes is None else asked,
        approval=None if waited_minutes is None else Approval(
            request_id=f"a-{n}", verdict=Verdict.APPROVE, by="alice",
            at=asked + timedelta(minutes=waited_minutes),
            waited_seconds=waited_minutes * 60.0),  # people's time is the wall clock's
        result=ActionResult(action_id=act.id, action=act.describe(), idempotency_key=f"k{n}",
                            status=ActionStatus.SUCCEEDED, at=opened + timedelta(minutes=2)),
    )
    return Incident(
        id=f"INC-{n}", title=f"{service} errors", environment="prod", group_key=f"g{n}",
        services=[service], opened_at=opened, status=status, severity=severity,
        impact=Impact(services=[service], tier=tier, burn_rate_1h=burn),
        root_cause=None if category is None else Hypothesis(
            id=f"h-{n}", cause=category, category=category, service=service, runbook=category,
            confidence=0.9),
        anomalies=[Anomaly(fingerprint=f"fp{n}", starts_at=opened,
                           labels={"alertname": "HighErrorRate", "service": service})],
        actions=[case],
        verification=Verification(passed=True, at=opened + timedelta(minutes=minutes),
                                  window_minutes=5),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path / "work")


@pytest.fixture
def store(settings: Settings) -> Iterator[IncidentStore]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    opened = IncidentStore(settings.state_dir / "opsloop.db")
    yield opened
    opened.close()


def file_signals(store: IncidentStore, settings: Settings, *incidents: Incident) -> list[Signal]:
    """Store the incidents and file what learn would for the last one, as learn does."""
    for i in incidents:
        store.save_incident(i)
    *history, last = incidents
    signals = derive_signals(last, history, NOW)
    write_signals(signals, settings.signals_dir)
    return signals


def of_kind(signals: list[Signal], kind: str) -> Signal:
    [found] = [s for s in signals if s.kind == kind]
    return found


@pytest.fixture
def leak(store: IncidentStore, settings: Settings) -> list[Signal]:
    """checkout's memory leak, restarted three times: repeated_incidents and recurring_fix."""
    return file_signals(store, settings, incident(1, days_ago=9), incident(2, days_ago=5),
                        incident(3))


def accept(settings: Settings, ref: str, **kw: Any) -> triage.FiledSignal:
    return decide(settings.signals_dir, ref, SignalStatus.ACCEPTED, by=kw.pop("by", "olivia"),
                  reason=kw.pop("reason", "the leak costs us a restart a week"),
                  at=kw.pop("at", NOW), missions_dir=settings.work_dir / "missions", **kw)


def decline(settings: Settings, ref: str, **kw: Any) -> triage.FiledSignal:
    return decide(settings.signals_dir, ref, SignalStatus.DECLINED, by="olivia",
                  reason="known, already on the roadmap", at=NOW, **kw)


# the workflow -------------------------------------------------------------------------------

def test_accepting_records_who_when_why_and_writes_the_mission_brief(
        leak: list[Signal], settings: Settings, store: IncidentStore) -> None:
    signal = of_kind(leak, "recurring_fix")
    incidents = {i.id: i for i in store.incidents()}
    done = accept(settings, signal.id, incidents=incidents)
    record = read_record(done.path)
    assert record.status is SignalStatus.ACCEPTED
    [change] = record.history
    assert (change.previous, change.status, change.by, change.at, change.reason) == (
        SignalStatus.NEW, SignalStatus.ACCEPTED, "olivia", NOW,
        "the leak costs us a restart a week")
    brief = settings.work_dir / "missions" / f"{signal.id}.md"
    assert record.mission == str(brief) == change.mission
    meta, body = split_front_matter(brief.read_text(encoding="utf-8"))
    assert meta["signal"] == signal.id and meta["accepted_by"] == "olivia"
    assert meta["incidents"] == ["INC-1", "INC-2", "INC-3"]
    assert [line for line in body.splitlines() if line.startswith("## ")] == [
        "## What was seen", "## Evidence", "## Suggested outcome"]
    assert "Accepted by olivia on 2026-11-30 12:00:00Z: the leak costs us a restart a week" in body
    assert signal.suggested_mission in body
    assert any(line.startswith("- INC-3 (") for line in body.splitlines())
    # The signal's own file keeps the learn-step document and adds the triage.
    text = done.path.read_text(encoding="utf-8")
    assert "## Suggested mission" in text and "## Triage" in text
    assert "new → accepted by olivia: the leak costs us a restart a week" in text


def test_a_declined_signal_is_accepted_only_after_it_is_reopened(
        leak: list[Signal], settings: Settings) -> None:
    sid = of_kind(leak, "recurring_fix").id
    decline(settings, sid)
    with pytest.raises(InvalidTransition) as refused:
        accept(settings, sid)
    assert str(refused.value) == (
        f"cannot accept: {sid} is declined (by olivia at 2026-11-30 12:00:00Z: known, already "
        "on the roadmap); reopen it first (`opsloop signals reopen`)")
    assert not (settings.work_dir / "missions").exists()
    decide(settings.signals_dir, sid, SignalStatus.NEW, by="pat", reason="it came back",
           at=NOW + timedelta(hours=1))
    accept(settings, sid, at=NOW + timedelta(hours=2))
    [filed] = [f for f in load_signals(settings.signals_dir) if f.record.id == sid]
    assert [(c.previous.value, c.status.value, c.by) for c in filed.record.history] == [
        ("new", "declined", "olivia"), ("declined", "new", "pat"), ("new", "accepted", "olivia")]


def test_an_accepted_signal_stays_with_discovery(leak: list[Signal], settings: Settings) -> None:
    sid = of_kind(leak, "recurring_fix").id
    accept(settings, sid)
    with pytest.raises(InvalidTransition, match=f"cannot accept {sid}: it is already accepted"):
        accept(settings, sid)
    with pytest.raises(InvalidTransition, match=f"cannot decline: {sid} is accepted .*mission"):
        decline(settings, sid)


def test_bad_merges_and_unknown_ids_name_the_id_and_status(
        leak: list[Signal], settings: Settings) -> None:
    repeated, fix = of_kind(leak, "repeated_incidents").id, of_kind(leak, "recurring_fix").id

    def merge(ref: str, into: str | None) -> None:
        decide(settings.signals_dir, ref, SignalStatus.MERGED, by="olivia", reason="same leak",
               at=NOW, into=into)

    with pytest.raises(InvalidTransition, match=f"cannot merge {fix} into itself"):
        merge(fix, fix)
    with pytest.raises(UnknownSignal, match="no signal 'sig-0000000000000000'"):
        merge(fix, "sig-0000000000000000")
    with pytest.raises(UnknownSignal, match="no signal 'sig-nope'"):
        decline(settings, "sig-nope")
    with pytest.raises(SignalError, match=f"say which signal {fix} merges into"):
        merge(fix, None)
    merge(fix, repeated[:12])  # a unique prefix is enough
    with pytest.raises(InvalidTransition, match=f"cannot merge {repeated} into {fix} is merged "
                                                f"into {repeated}"):
        merge(repeated, fix)
    with pytest.raises(InvalidTransition, match=f"cannot merge {fix}: it is already merged"):
        merge(fix, repeated)
    with pytest.raises(SignalError, match="say why"):
        decide(settings.signals_dir, repeated, SignalStatus.DECLINED, by="o", reason=" ", at=NOW)
    # Nothing refused was written.
    [filed] = [f for f in load_signals(settings.signals_dir) if f.record.id == repeated]
    assert filed.record.status is SignalStatus.NEW and filed.record.history == []


# old files, learn and concurrency -------------------------------------------------------------

OLD_FORMAT = """---
id: sig-0123456789abcdef
kind: toil
title: scale_out ran automatically in 5 incidents in 30 days
created_at: '2026-10-01T08:00:00+00:00'
incidents:
- INC-1
evidence:
- 'INC-1 (2026-10-01 08:00:00Z, SEV2, mitigated): checkout errors'
suggested_mission: Remove the toil.
---

# scale\\_out ran automatically in 5 incidents in 30 days

## Evidence

- INC-1

## Suggested mission

Remove the toil.
"""


def test_a_signal_file_from_before_triage_reads_as_new_and_can_be_decided(
        settings: Settings) -> None:
    settings.signals_dir.mkdir(parents=True)
    path = settings.signals_dir / "2026-10-01-toil-01234567.md"
    path.write_text(OLD_FORMAT, encoding="utf-8")
    [filed] = load_signals(settings.signals_dir)
    assert filed.record.status is SignalStatus.NEW and filed.record.history == []
    # Not in any store: counted as one incident with the severity its evidence line names.
    score = score_signal(filed.record, [], {})
    assert (score.score, score.missing, score.severities) == (5.0, ["INC-1"], {"SEV2": 1})
    decline(settings, "0123456789ab")
    meta, _ = split_front_matter(path.read_text(encoding="utf-8"))
    assert meta["status"] == "declined" and meta["title"] == filed.record.title
    assert meta["history"][0]["reason"] == "known, already on the roadmap"


def test_learn_refiling_a_decided_signal_keeps_the_decision_and_adds_evidence(
        leak: list[Signal], store: IncidentStore, settings: Settings) -> None:
    sid = of_kind(leak, "recurring_fix").id
    decline(settings, sid)
    file_signals(store, settings, incident(1, days_ago=9), incident(2, days_ago=5), incident(3),
                 incident(4, days_ago=0))
    [filed] = [f for f in load_signals(settings.signals_dir) if f.record.id == sid]
    assert filed.record.status is SignalStatus.DECLINED and len(filed.record.history) == 1
    assert filed.record.incidents == ["INC-1", "INC-2", "INC-3", "INC-4"]
    assert len(list(settings.signals_dir.glob("*-recurring_fix-*.md"))) == 1


def test_of_two_people_deciding_at_once_the_second_is_refused(
        leak: list[Signal], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = of_kind(leak, "recurring_fix").id
    slow_write = triage.atomic_write

    def slow(path: Path, text: str) -> Path:
        time.sleep(0.2)  # widen the read-then-write window a lock must close
        return slow_write(path, text)

    monkeypatch.setattr(triage, "atomic_write", slow)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def decider(who: str, to: SignalStatus) -> None:
        start.wait()
        try:
            decide(settings.signals_dir, sid, to, by=who, reason=f"{who} decided", at=NOW,
                   expect=SignalStatus.NEW, missions_dir=settings.work_dir / "missions")
            outcomes[who] = "ok"
        except SignalError as err:
            outcomes[who] = err

    threads = [threading.Thread(target=decider, args=("ann", SignalStatus.ACCEPTED)),
               threading.Thread(target=decider, args=("bob", SignalStatus.DECLINED))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(str(type(o).__name__) for o in outcomes.values()) == ["DecisionConflict", "str"]
    [winner] = [who for who, o in outcomes.items() if o == "ok"]
    [refusal] = [o for o in outcomes.values() if isinstance(o, DecisionConflict)]
    assert f"{sid} is " in str(refusal) and f"by {winner}" in str(refusal)
    assert "it was new when you looked" in str(refusal)
    [filed] = [f for f in load_signals(settings.signals_dir) if f.record.id == sid]
    assert [c.by for c in filed.record.history] == [winner]


def test_a_decision_waits_for_the_lock_and_says_so_when_it_cannot_have_it(
        leak: list[Signal], settings: Settings) -> None:
    sid = of_kind(leak, "recurring_fix").id
    with signals_lock(settings.signals_dir), pytest.raises(SignalsLocked, match="signals"):
        decline(settings, sid, lock_timeout=0.1)
    assert read_record(next(settings.signals_dir.glob("*-recurring_fix-*.md"))).status \
        is SignalStatus.NEW
    with pytest.raises(DecisionConflict, match=f"{sid} is new; it was declined when you looked"):
        decline(settings, sid, expect=SignalStatus.DECLINED)


# ranking and grouping ---------------------------------------------------------------------

def test_the_score_adds_up_the_documented_evidence(store: IncidentStore,
                                                   settings: Settings) -> None:
    # SEV2 on a tier-1 service (4 x 2 = 8 points), burning 14.4x for 60 minutes of a 30-day
    # budget (2%, 0.4 points), a human approving after 30 minutes (0.5 h + 0.25 h manual step
    # = 0.75 h of toil, 1.5 points), plus 1 for the incident.
    one = incident(1, severity=Severity.SEV2, tier=1, burn=14.4, waited_minutes=30, minutes=60)
    store.save_incident(one)
    record = load_signals_for(settings, Signal(
        id=signal_id("toil", "restart"), kind="toil", title="t", evidence=[],
        suggested_mission="m", incidents=["INC-1"], created_at=NOW))
    score = score_signal(record, [], {"INC-1": one})
    assert score.impact_points == 8.0
    assert score.budget_burned == pytest.approx(0.02)
    assert (score.approval_wait_hours, score.manual_steps, score.toil_hours) == (0.5, 1, 0.75)
    assert score.score == pytest.approx(1 + 8 + 0.4 + 1.5)
    assert score.estimated == ["error budget burned", "toil from manual steps and escalations"]
    # Without a measured burn rate the budget is unknown, not zero.
    calm = one.model_copy(update={"impact": None})
    assert score_signal(record, [], {"INC-1": calm}).budget_burned is None
    # The environment's clock moving while nobody was asked is not a person's wait: only the
    # wall-clock wait the answer recorded counts as toil.
    [case] = one.actions
    assert case.approval is not None
    unmeasured = one.model_copy(update={"actions": [case.model_copy(update={
        "approval": case.approval.model_copy(update={"waited_seconds": None})})]})
    assert score_signal(record, [], {"INC-1": unmeasured}).approval_wait_hours == 0


def load_signals_for(settings: Settings, signal: Signal) -> triage.SignalRecord:
    write_signals([signal], settings.signals_dir)
    [filed] = [f for f in load_signals(settings.signals_dir) if f.record.id == signal.id]
    return filed.record


def test_ranking_follows_the_evidence_and_changes_when_it_does(
        store: IncidentStore, settings: Settings) -> None:
    quiet = [incident(n, service="search", category="disk_full", action="scale_out")
             for n in (1, 2, 3)]
    loud = [incident(n, severity=Severity.SEV1, tier=1, waited_minutes=40,
                     status=IncidentStatus.ESCALATED) for n in (4, 5, 6)]
    file_signals(store, settings, *quiet)
    file_signals(store, settings, *loud)
    filed = load_signals(settings.signals_dir)
    incidents = {i.id: i for i in store.incidents()}
    order = [(r.kind, r.subject) for r in rank(filed, incidents, NOW)]
    assert order.index(("repeated_incidents", "service checkout (memory leak)")) < \
        order.index(("repeated_incidents", "service search (disk full)"))
    # The same signals, but checkout's incidents were minor and nobody waited: search leads.
    mild = {k: v.model_copy(update={"severity": Severity.SEV4, "impact": None,
                                    "status": IncidentStatus.MITIGATED,
                                    "actions": [c.model_copy(update={"approval": None})
                                                for c in v.actions]})
            if v.services == ["checkout"] else v for k, v in incidents.items()}
    flipped = [(r.kind, r.subject) for r in rank(filed, mild, NOW)]
    assert flipped.index(("repeated_incidents", "service search (disk full)")) < \
        flipped.index(("repeated_incidents", "service checkout (memory leak)"))


def test_near_duplicates_share_a_group_and_exact_duplicates_are_marked(
        leak: list[Signal], store: IncidentStore, settings: Settings) -> None:
    file_signals(store, settings, *[incident(n, service="search", category="disk_full",
                                             action="scale_out") for n in (7, 8, 9)])
    # The same kind resting on the same incidents under another subject, filed later: an exact
    # duplicate of the older signal (equal scores rank the older one first).
    write_signals([Signal(id=signal_id("recurring_fix", "recurring_fix", "checkout", "kill"),
                          kind="recurring_fix", title="kill on checkout", evidence=[],
                          suggested_mission="m", incidents=["INC-1", "INC-2", "INC-3"],
                          created_at=NOW + timedelta(hours=1))], settings.signals_dir)
    rows = {r.id: r for r in rank(load_signals(settings.signals_dir),
                                  {i.id: i for i in store.incidents()}, NOW)}
    repeated, fix = of_kind(leak, "repeated_incidents").id, of_kind(leak, "recurring_fix").id
    assert rows[repeated].group == rows[fix].group == "checkout / memory_leak"
    assert rows[fix].subject == "checkout restart"
    assert fix in rows[repeated].related
    search = [r for r in rows.values() if r.group == "search / disk_full"]
    assert search and not set(rows[repeated].related) & {r.id for r in search}
    dupe = signal_id("recurring_fix", "recurring_fix", "checkout", "kill")
    assert rows[dupe].duplicate_of == fix and rows[fix].duplicate_of is None


def test_a_merged_signal_leaves_the_board_and_its_evidence_counts_for_the_other(
        leak: list[Signal], store: IncidentStore, settings: Settings) -> None:
    file_signals(store, settings, incident(10, service="cart"), incident(11, service="cart"),
                 incident(12, service="cart"))
    incidents = {i.id: i for i in store.incidents()}
    cart = next(r for r in rank(load_signals(settings.signals_dir), incidents, NOW)
                if r.subject == "service cart (memory leak)")
    target = of_kind(leak, "repeated_incidents").id
    before = next(r for r in rank(load_signals(settings.signals_dir), incidents, NOW)
                  if r.id == target)
    decide(settings.signals_dir, cart.id, SignalStatus.MERGED, by="olivia", into=target,
           reason="the same leak library", at=NOW)
    after = {r.id: r for r in rank(load_signals(settings.signals_dir), incidents, NOW)}
    assert cart.id not in after and after[target].merged_in == [cart.id]
    assert after[target].score.incidents == [*before.score.incidents, "INC-10", "INC-11",
                                             "INC-12"]
    assert after[target].score.score > before.score.score


# the command line -------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, capsys: pytest.CaptureFixture[str]
        ) -> Any:
    """`opsloop ...` against this test's work dir; registers `signals` if main does not yet."""
    built = cli_main.build_parser

    def build() -> argparse.ArgumentParser:
        parser = built()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "signals" not in sub.choices:
            signals_cmd.register(sub, cli_main._common())
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build)

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main.main([*args, "--work-dir", str(settings.work_dir)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_signals_list_ranks_and_filters(leak: list[Signal], cli: Any) -> None:
    code, out, _ = cli("signals", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["id"] for r in rows} == {s.id for s in leak}
    assert [r["score"]["score"] for r in rows] == sorted(
        (r["score"]["score"] for r in rows), reverse=True)
    fix = of_kind(leak, "recurring_fix").id
    assert cli("signals", "decline", fix, "--reason", "later", "--by", "pat")[0] == 0
    code, out, _ = cli("signals", "list", "--status", "new", "--json")
    assert code == 0 and fix not in {r["id"] for r in json.loads(out)}
    code, out, _ = cli("signals", "list", "--status", "declined")
    assert code == 0 and fix in out and "declined" in out and "score" in out


def test_signals_accept_show_and_refusals_from_the_command_line(
        leak: list[Signal], cli: Any, settings: Settings) -> None:
    sid = of_kind(leak, "recurring_fix").id
    code, out, err = cli("signals", "accept", sid, "--reason", "worth a sprint", "--by", "ana")
    assert code == 0, err
    assert f"{sid} accepted; mission brief at" in out
    assert (settings.work_dir / "missions" / f"{sid}.md").is_file()
    code, out, _ = cli("signals", "show", sid, "--json")
    shown = json.loads(out)
    assert shown["record"]["status"] == "accepted"
    assert shown["record"]["history"][0]["by"] == "ana"
    code, out, _ = cli("signals", "show", sid)
    assert "new → accepted by ana: worth a sprint" in out
    for args, message in (
        (("accept", sid, "--reason", "again"), f"cannot accept {sid}: it is already accepted"),
        (("decline", "sig-doesnotexist", "--reason", "x"), "no signal 'sig-doesnotexist'"),
        (("merge", sid, "--into", sid, "--reason", "x"), "cannot merge: "),
        (("merge", of_kind(leak, "repeated_incidents").id, "--into", "sig-gone", "--reason",
          "x"), "no signal 'sig-gone'"),
        (("show", "nope"), "no signal 'nope'"),
    ):
        code, out, err = cli("signals", *args)
        assert code == 1, (args, out, err)
        assert message in err and "Traceback" not in err


# the weekly triage board ------------------------------------------------------------------

def context(settings: Settings, store: IncidentStore, due_at: datetime) -> AgentContext:
    # The triage reads signals and the incident store only: no policies, no telemetry.
    return AgentContext(run_id="run-1", agent="signal-triage", due_at=due_at, now=due_at,
                        settings=settings, policies=cast(Any, None),
                        telemetry=cast(Any, None), store=store)


def test_the_weekly_board_ranks_new_signals_and_lists_the_weeks_decisions(
        leak: list[Signal], store: IncidentStore, settings: Settings) -> None:
    file_signals(store, settings, *[incident(n, service="search", category="disk_full",
                                             action="scale_out") for n in (7, 8, 9)])
    fix = of_kind(leak, "recurring_fix").id
    accept(settings, fix, at=NOW - timedelta(days=2))
    old = of_kind(leak, "repeated_incidents").id
    decline(settings, old)  # at NOW: the board covers the week *before* its due time
    before = {p.name: p.read_bytes() for p in settings.signals_dir.iterdir()}
    agent: ScheduledAgent = SignalTriage()  # mypy checks it meets the protocol
    assert agent.name == "signal-triage"
    ctx = context(settings, store, NOW)
    analysis = agent.analyse(ctx, json.loads(json.dumps(agent.observe(ctx))))
    md, js = settings.work_dir / "reports" / "signals-2026-W49.md", \
        settings.work_dir / "reports" / "signals-2026-W49.json"
    assert analysis.reports == [str(md), str(js)]
    board = json.loads(js.read_text(encoding="utf-8"))
    new = [r["id"] for r in board["new"]]
    assert fix not in new and old not in new and new
    assert [r["score"]["score"] for r in board["new"]] == sorted(
        (r["score"]["score"] for r in board["new"]), reverse=True)
    assert [(d["id"], d["status"], d["by"]) for d in board["decisions"]] == [
        (fix, "accepted", "olivia")]
    assert board["missions"] == [str(settings.work_dir / "missions" / f"{fix}.md")]
    assert [f.subject for f in analysis.findings] == new[: SignalTriage.top]
    text = md.read_text(encoding="utf-8")
    assert "## New signals, highest score first" in text and new[0] in text
    assert "olivia" in text and "the leak costs us a restart a week" in text
    # It never decides: every signal file is byte for byte what it was.
    assert {p.name: p.read_bytes() for p in settings.signals_dir.iterdir()} == before
    # A re-run for the same week overwrites the board.
    again = agent.analyse(ctx, agent.observe(context(settings, store, NOW + timedelta(hours=3))))
    assert again.reports == analysis.reports
    assert sorted(p.name for p in (settings.work_dir / "reports").iterdir()) == [
        "signals-2026-W49.json", "signals-2026-W49.md"]


def test_the_board_marks_exact_duplicates_as_candidates_to_merge(
        leak: list[Signal], store: IncidentStore, settings: Settings) -> None:
    dupe = signal_id("recurring_fix", "recurring_fix", "checkout", "kill")
    write_signals([Signal(id=dupe, kind="recurring_fix", title="kill on checkout", evidence=[],
                          suggested_mission="m", incidents=["INC-1", "INC-2", "INC-3"],
                          created_at=NOW + timedelta(hours=1))], settings.signals_dir)
    agent = SignalTriage()
    ctx = context(settings, store, NOW)
    agent.analyse(ctx, agent.observe(ctx))
    board = json.loads((settings.work_dir / "reports" / "signals-2026-W49.json").read_text())
    fix = of_kind(leak, "recurring_fix").id
    assert board["duplicates"] == [{"id": dupe, "duplicate_of": fix}]
    text = (settings.work_dir / "reports" / "signals-2026-W49.md").read_text()
    assert f"`opsloop signals merge {dupe} --into {fix} --reason ...`" in text
    assert read_record(next(settings.signals_dir.glob(f"*-{dupe[4:12]}.md"))).status \
        is SignalStatus.NEW
