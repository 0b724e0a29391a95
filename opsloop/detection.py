"""Anomaly detectors on a production's metrics: scores become alerts like any other.

`MetricDetectors` keeps one streaming detector (`opsloop.detect.Ensemble`) per service and
metric named in alerts.yaml's `detectors:` section. Each call reads the points that arrived
since the last one (the first call reads `history_minutes`, so baselines start warm), scores
them in order, and returns the alerts firing now: a score at or above the threshold for
`for_minutes` consecutive minutes fires (starting at the first of them); it stays firing
until the score has been below the threshold for `for_minutes`; the same series cannot fire
again within `cooldown_minutes` of firing. The whole state is plain JSON (`state`/`restore`),
so a restarted watch continues where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from opsloop.detect import NAME, DetectorSettings, Ensemble
from opsloop.fingerprint import label_fingerprint
from opsloop.models import Anomaly, MetricSeries, ServiceInfo
from opsloop.policy import Policies
from opsloop.policy.schema.alerts import AnomalyDetection, DetectedMetric

MINUTES_PER_DAY = 24 * 60
EVIDENCE_POINTS = 15  # the values shown with an alert: the quarter hour up to it
SOURCE = "detector"


class DetectorTelemetry(Protocol):
    """The part of `opsloop.tools.protocols.Telemetry` the detectors read."""

    def services(self) -> list[ServiceInfo]: ...

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries: ...


def detector_settings(policy: AnomalyDetection) -> DetectorSettings:
    """The ensemble's settings for one-point-a-minute series; no quiet period (the policy's
    duration and cool-down decide when to speak)."""
    return DetectorSettings(
        season_days=policy.season_days,
        block_days=policy.block_minutes / MINUTES_PER_DAY,
        blocks=policy.blocks,
        quiet_days=0.0,
        shift_days=policy.shift_minutes / MINUTES_PER_DAY,
        shift_baseline_days=policy.shift_baseline_minutes / MINUTES_PER_DAY,
        distribution_points=policy.distribution_minutes,  # one point a minute
    )


@dataclass
class _Watched:
    """One service's metric: its detector and where its alert stands."""

    detector: Ensemble
    last_at: datetime | None = None
    run: int = 0  # consecutive minutes at or above the threshold
    run_start: datetime | None = None
    calm: int = 0  # consecutive minutes below it while firing
    firing_since: datetime | None = None
    fired_score: float = 0.0
    peak_score: float = 0.0
    cooldown_until: datetime | None = None
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=EVIDENCE_POINTS))
    evidence: list[float] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        def at(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            "detector": self.detector.state(), "last_at": at(self.last_at), "run": self.run,
            "run_start": at(self.run_start), "calm": self.calm,
            "firing_since": at(self.firing_since), "fired_score": self.fired_score,
            "peak_score": self.peak_score, "cooldown_until": at(self.cooldown_until),
            "recent": list(self.recent), "evidence": self.evidence,
        }

    @classmethod
    def restore(cls, s: dict[str, Any]) -> _Watched:
        def at(text: str | None) -> datetime | None:
            return datetime.fromisoformat(text) if text else None

        w = cls(Ensemble.restore(s["detector"]), at(s["last_at"]), s["run"], at(s["run_start"]),
                s["calm"], at(s["firing_since"]), s["fired_score"], s["peak_score"],
                at(s["cooldown_until"]))
        w.recent.extend(s["recent"])
        w.evidence = list(s["evidence"])
        return w


class MetricDetectors:
    """Every (service, metric) the policy names, scored minute by minute."""

    def __init__(self, policy: AnomalyDetection, environment: str = "prod") -> None:
        self.policy = policy
        self.environment = environment
        self.settings = detector_settings(policy)
        self.series: dict[tuple[str, str], _Watched] = {}
        self.fired = 0  # alerts raised since this object was made (for tests and benches)

    def observe(self, telemetry: DetectorTelemetry, now: datetime) -> list[Anomaly]:
        """Score every new point up to `now`; the detector alerts firing at `now`."""
        out: list[Anomaly] = []
        for info in telemetry.services():
            if not self.policy.applies_to(info.name):
                continue
            for watched_metric in self.policy.metrics:
                w = self._feed(telemetry, info.name, watched_metric.metric, now)
                if w.firing_since is not None:
                    out.append(self._alert(info, watched_metric, w))
        return out

    def _feed(self, telemetry: DetectorTelemetry, service: str, metric: str,
              now: datetime) -> _Watched:
        key = (service, metric)
        w = self.series.get(key)
        if w is None:
            w = self.series[key] = _Watched(Ensemble(MINUTES_PER_DAY, self.settings))
            minutes = max(self.policy.history_minutes, 1)
        else:
            if w.last_at is not None and w.last_at >= now:
                return w
            minutes = (
                int((now - w.last_at).total_seconds() // 60) + 1 if w.last_at else 1
            )
        try:
            points = telemetry.metric(service, metric, minutes).points
        except KeyError:  # a backend without this metric for this service: nothing to score
            return w
        for point in points:
            if point.at > now or (w.last_at is not None and point.at <= w.last_at):
                continue
            self._step(w, point.at, point.value)
        return w

    def _step(self, w: _Watched, at: datetime, value: float) -> None:
        w.detector.update(value)
        score = w.detector.level
        w.last_at = at
        w.recent.append(value)
        p = self.policy
        if score >= p.threshold:
            w.run += 1
            w.calm = 0
            if w.run == 1:
                w.run_start = at
            w.peak_score = max(w.peak_score, score) if w.firing_since else w.peak_score
        else:
            w.run = 0
            w.run_start = None
            if w.firing_since is not None:
                w.calm += 1
                if w.calm >= p.for_minutes:
                    w.firing_since = None
        cooling = w.cooldown_until is not None and at < w.cooldown_until
        if w.run >= p.for_minutes and w.firing_since is None and not cooling:
            w.firing_since = w.run_start
            w.fired_score = w.peak_score = score
            w.cooldown_until = at + timedelta(minutes=p.cooldown_minutes)
            w.evidence = list(w.recent)
            w.calm = 0
            self.fired += 1

    def _alert(self, info: ServiceInfo, watched: DetectedMetric, w: _Watched) -> Anomaly:
        assert w.firing_since is not None
        labels = {
            "env": self.environment,
            **({"team": info.team} if info.team else {}),
            **self.policy.labels,
            "alertname": self.policy.alertname,
            "service": info.name,
            "metric": watched.metric,
        }
        values = ", ".join(f"{v:.4g}" for v in w.evidence)
        annotations = {
            "summary": f"{info.name}: {watched.metric} is anomalous "
                       f"(score {w.fired_score:.2f} >= {self.policy.threshold:.2f})",
            "description": f"The anomaly detector scored {watched.metric} of {info.name} at "
                           f"or above {self.policy.threshold:.2f} for "
                           f"{self.policy.for_minutes} minutes: unlike its recent past.",
            "metric": watched.metric,
            "score": f"{w.fired_score:.3f}",
            "detector": NAME,
            "evidence": f"{watched.metric}, the {len(w.evidence)} minutes up to firing: "
                        f"{values}",
        }
        if watched.runbook:
            annotations["runbook"] = watched.runbook
        if watched.action:
            annotations["action"] = watched.action
        return Anomaly(
            fingerprint=label_fingerprint(labels),
            labels=labels,
            annotations=annotations,
            starts_at=w.firing_since,
            source=SOURCE,
            generator_url=f"opsloop://detector/{watched.metric}?service={info.name}",
        )

    def state(self) -> dict[str, Any]:
        """Every detector's memory and alert state, as JSON data."""
        return {f"{s}/{m}": w.state() for (s, m), w in self.series.items()}

    @classmethod
    def restore(cls, policy: AnomalyDetection, state: dict[str, Any],
                environment: str = "prod") -> MetricDetectors:
        d = cls(policy, environment)
        for key, s in state.items():
            service, _, metric = key.partition("/")
            d.series[(service, metric)] = _Watched.restore(s)
        return d


def save_detectors(detectors: MetricDetectors, path: Path) -> None:
    """The detectors' memory, written atomically (a temp file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(detectors.state(), fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_detectors(policies: Policies, path: Path, warn: Callable[[str], None],
                   environment: str) -> MetricDetectors | None:
    """The detectors alerts.yaml asks for, continuing from `path` when it holds their memory;
    an unreadable file is named and the detectors start afresh (they relearn; nothing else
    is lost)."""
    policy = policies.alerts.detectors
    if policy is None:
        return None
    if path.exists():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            return MetricDetectors.restore(policy, state, environment)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warn(f"{path}: detector memory cannot be read ({exc}); the detectors start afresh")
    return MetricDetectors(policy, environment)
