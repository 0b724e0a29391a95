"""Helpers that wrote the generalisation cases (issue 11): recorded cases by hand, as data.

Run `python evals/cases/generalisation/_generator/build.py` to rewrite every case folder
from cases_*.py (deterministic: each case seeds its own noise). The answer keys live in
cases_*.py too; they were written before the suite first ran and must not be changed to fit
what opsloop answers.
"""
from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]  # evals/cases/generalisation
BEFORE = 99   # the first point is this many minutes before `now`
AFTER = 30    # what production does if nothing changes, after `now`
RUNBOOKS = {"HighErrorRate": "high-error-rate", "HighLatencyP99": "latency-regression",
            "MemoryHigh": "memory-leak", "DiskFilling": "disk-filling",
            "SaturationHigh": "capacity-saturation", "CostAnomaly": "cost-anomaly"}


def t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def iso(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rnd(v: float) -> float:
    if v == 0:
        return 0.0
    if abs(v) >= 100:
        return round(v, 1)
    if abs(v) >= 1:
        return round(v, 3)
    return float(f"{v:.4g}")


class Str(str):
    pass


def _str_rep(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


class FlowList(list):
    pass


def _flow_rep(dumper, data):
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


yaml.add_representer(FlowList, _flow_rep)


def _text_rep(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


yaml.add_representer(str, _text_rep)


def dump(obj) -> str:
    return yaml.dump(obj, sort_keys=False, width=100, allow_unicode=True)


class Case:
    def __init__(self, name: str, *, now: str, onset: str | None, title: str, source: str,
                 description: str, tags: list[str], seed: int = 1):
        self.name = name
        self.now = t(now)
        self.onset = t(onset) if onset else None
        self.title = title
        self.source = source
        self.description = description
        self.tags = tags
        self.services: list[dict] = []
        self.tiers: dict[str, int] = {}
        self.metrics: dict[str, dict[str, list[float]]] = {}
        self.priors: dict[str, dict[str, float]] = {}
        self.logs: dict[str, list[tuple[datetime, str, str]]] = {}
        self.alerts: list[dict] = []
        self.deploys: list[dict] = []
        self.flags: dict | None = None
        self.outcomes: list[dict] = []
        self.expected: dict | list | None = None
        self.policies: dict = {}
        self.rng = random.Random(seed)
        self.human = None

    # -- time ------------------------------------------------------------------
    def at(self, rel: float) -> datetime:
        """`rel` minutes from now (negative: before)."""
        return self.now + timedelta(minutes=rel)

    def rel_onset(self, rel: float) -> datetime:
        assert self.onset is not None
        return self.onset + timedelta(minutes=rel)

    def onset_rel(self) -> int:
        assert self.onset is not None
        return int((self.onset - self.now).total_seconds() // 60)

    # -- topology --------------------------------------------------------------
    def service(self, name, tier, team, deps, replicas, version, region="primary"):
        self.services.append({"name": name, "tier": tier, "team": team,
                              "dependencies": FlowList(deps), "replicas": replicas,
                              "version": version, "region": region})
        self.tiers[name] = tier

    # -- metrics ---------------------------------------------------------------
    def series(self, base: float, *changes, noise: float = 0.03, floor: float = 0.0,
               cap: float | None = None) -> list[float]:
        """changes: (rel_minute, value) steps or (rel_minute, value, ramp_minutes) ramps,
        relative to now; values hold until the next change."""
        out = []
        cur = base
        plan = sorted(changes, key=lambda c: c[0])
        for i in range(BEFORE + 1 + AFTER):
            rel = i - BEFORE
            v = base
            for ch in plan:
                start = ch[0]
                if rel < start:
                    break
                target = ch[1]
                ramp = ch[2] if len(ch) > 2 else 0
                prev = v
                if ramp and rel < start + ramp:
                    v = prev + (target - prev) * (rel - start + 1) / ramp
                else:
                    v = target
            cur = v
            jitter = 1 + self.rng.gauss(0, noise) if noise else 1
            val = max(floor, cur * jitter)
            if cap is not None:
                val = min(cap, val)
            out.append(rnd(val))
        return out

    def m(self, service: str, **metrics: list[float]):
        self.metrics.setdefault(service, {}).update(metrics)

    def prior(self, service: str, **means: float):
        self.priors.setdefault(service, {}).update(means)

    # -- logs ------------------------------------------------------------------
    def log(self, service: str, rel: float, level: str, message: str):
        self.logs.setdefault(service, []).append((self.at(rel), level, message))

    def every(self, service: str, start: float, end: float, step: float, level: str,
              message, offset_s: int = 0):
        """A line each `step` minutes from `start` to `end` (relative to now)."""
        n = 0
        rel = start
        while rel <= end:
            msg = message(n, self.at(rel)) if callable(message) else message
            self.logs.setdefault(service, []).append(
                (self.at(rel) + timedelta(seconds=offset_s), level, msg))
            rel += step
            n += 1

    # -- alerts ----------------------------------------------------------------
    def alert(self, alertname: str, service: str, rel: float, summary: str, description: str,
              severity: str = "page", runbook: str | None = "default"):
        ann = {"summary": summary, "description": description}
        rb = RUNBOOKS.get(alertname) if runbook == "default" else runbook
        if rb:
            ann["runbook"] = rb
        self.alerts.append({"alertname": alertname, "service": service, "at": self.at(rel),
                            "severity": severity, "annotations": ann})

    # -- changes ---------------------------------------------------------------
    def deploy(self, rel: float, service: str, version: str, previous: str, author: str,
               kind: str = "deploy"):
        self.deploys.append({"at": iso(self.at(rel)), "service": service, "version": version,
                             "previous_version": previous, "author": author, "kind": kind})

    def outcome(self, when: dict, note: str, series: dict):
        self.outcomes.append({"when": when, "note": note, "series": series})

    # -- writing ---------------------------------------------------------------
    def write(self):
        folder = ROOT / self.name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "alerts").mkdir(parents=True)
        body = " ".join(self.description.split())
        desc = f"Source: {self.source}\n\n{body}\n"
        case = {"kind": "recorded", "title": self.title, "description": desc,
                "tags": self.tags}
        if self.human:
            case["human"] = self.human
        pol = {"severity": {"tiers": {"services": dict(self.tiers)}}}
        for k, v in self.policies.items():
            pol[k] = v
        case["policies"] = pol
        rec = {"now": iso(self.now)}
        if self.onset:
            rec["onset"] = iso(self.onset)
        case["recording"] = rec
        case["expected"] = self.expected
        (folder / "case.yaml").write_text(dump(case), encoding="utf-8")
        (folder / "services.yaml").write_text(
            "# The fleet as the service catalog listed it during the incident.\n"
            + dump(self.services), encoding="utf-8")
        start = iso(self.at(-BEFORE))
        metrics = {svc: {name: {"start": start, "values": FlowList(vals)}
                         for name, vals in ms.items()} for svc, ms in self.metrics.items()}
        (folder / "metrics.yaml").write_text(
            f"# Prometheus series, one point a minute from {start}; points after now "
            f"({iso(self.now)}) are what production did if nothing was changed.\n"
            + dump(metrics), encoding="utf-8")
        if self.priors:
            (folder / "priors.yaml").write_text(
                "# Long-run means before the recording (28-day SLO windows).\n"
                + dump(self.priors), encoding="utf-8")
        if self.logs:
            (folder / "logs").mkdir()
            for svc, lines in self.logs.items():
                lines = sorted(lines, key=lambda x: x[0])
                (folder / "logs" / f"{svc}.log").write_text(
                    "".join(f"{iso(a)} {lvl} {msg}\n" for a, lvl, msg in lines),
                    encoding="utf-8")
        if self.deploys:
            (folder / "deploys.yaml").write_text(dump(sorted(self.deploys,
                                                             key=lambda d: d["at"])),
                                                 encoding="utf-8")
        if self.flags:
            (folder / "flags.yaml").write_text(dump(self.flags), encoding="utf-8")
        if self.outcomes:
            outs = []
            for o in self.outcomes:
                series = {svc: {name: {"values": FlowList(vals)} for name, vals in ms.items()}
                          for svc, ms in o["series"].items()}
                outs.append({"when": o["when"], "note": o["note"], "series": series})
            (folder / "outcomes.yaml").write_text(
                "# What production did after an action (values start the minute after it).\n"
                + dump(outs), encoding="utf-8")
        for i, a in enumerate(sorted(self.alerts, key=lambda a: a["at"]), 1):
            body = {
                "version": "4", "groupKey": '{}:{env="production"}', "truncatedAlerts": 0,
                "status": "firing", "receiver": "opsloop",
                "groupLabels": {"env": "production"}, "commonLabels": {"env": "production"},
                "commonAnnotations": {}, "externalURL": "https://alertmanager.example.net",
                "alerts": [{
                    "status": "firing",
                    "labels": {"alertname": a["alertname"], "service": a["service"],
                               "env": "production", "severity": a["severity"]},
                    "annotations": a["annotations"],
                    "startsAt": iso(a["at"]), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://prometheus.example.net/graph?g0.expr="
                                    + a["alertname"],
                }],
            }
            (folder / "alerts" / f"{i:02d}-{a['service']}.json").write_text(
                json.dumps(body, indent=2) + "\n", encoding="utf-8")

    def after(self, base: float, *changes, n: int = 30, noise: float = 0.03) -> list[float]:
        """An outcome's series: `n` minutes from the minute after the action."""
        out = []
        plan = sorted(changes, key=lambda c: c[0])
        for i in range(n):
            v = base
            for ch in plan:
                if i < ch[0]:
                    break
                ramp = ch[2] if len(ch) > 2 else 0
                ramping = ramp and i < ch[0] + ramp
                v = v + (ch[1] - v) * (i - ch[0] + 1) / ramp if ramping else ch[1]
            out.append(rnd(max(0.0, v * (1 + self.rng.gauss(0, noise)))))
        return out
