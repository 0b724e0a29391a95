"""Intake: deduplicate by fingerprint, drop what silences and inhibitions cover, group into
incidents by `group_by` (Alertmanager semantics), and open an incident once its group has
waited `group_wait`.

An open group is flushed again, at most every `group_interval`, when it changed (new alerts,
resolutions), and after `repeat_interval` when it did not; a group whose alerts have all
resolved closes, so the next firing alert with its labels starts a new incident. A
`threading.Lock` makes one grouper safe to share between a web server's request threads.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsloop.models import Anomaly, AnomalyStatus, Incident
from opsloop.policy.schema.intake import InhibitRule, IntakePolicy, all_match

RECENT_DROPPED = 1000  # silenced / inhibited alerts kept for inspection; counters keep the rest


@dataclass
class AlertGroup:
    key: str
    labels: dict[str, str]
    first_seen: datetime
    alerts: dict[str, Anomaly] = field(default_factory=dict)  # by fingerprint
    incident_id: str | None = None
    last_flush: datetime | None = None
    notified: set[str] = field(default_factory=set)  # firing fingerprints at the last flush
    changed: bool = False

    def firing(self) -> list[Anomaly]:
        return [a for a in self.alerts.values() if a.status is AnomalyStatus.FIRING]


@dataclass(frozen=True)
class GroupUpdate:
    """A flush of an open incident's group: what is new, what resolved, whether it closed."""

    incident_id: str
    group_key: str
    new_firing: list[Anomaly]
    resolved: list[Anomaly]
    firing_count: int
    closed: bool  # every alert resolved: the group is gone
    repeat: bool = False  # nothing changed; re-notified after repeat_interval


@dataclass
class IntakeStats:
    received: int = 0
    deduplicated: int = 0
    silenced: int = 0
    inhibited: int = 0
    resolved: int = 0
    unknown_resolutions: int = 0  # resolutions of alerts intake never saw firing
    incidents_opened: int = 0
    groups_closed: int = 0

    def add(self, other: IntakeStats) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


class Inhibitor:
    """Which firing alerts can mute which, indexed so a storm is checked in constant time.

    Alertmanager mutes a target while *any* firing alert matches a rule's source matchers with
    equal values of the `equal` labels, from this batch or an earlier one. Per rule we keep the
    firing sources by their `equal` values, and apart those sources that also match the target
    matchers: such a two-sided alert cannot mute another two-sided one.
    """

    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = rules
        self._sources: list[dict[tuple[str, ...], set[str]]] = [{} for _ in rules]
        self._both: list[dict[tuple[str, ...], set[str]]] = [{} for _ in rules]

    @staticmethod
    def _key(rule: InhibitRule, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in rule.equal)

    def observe(self, anomaly: Anomaly) -> None:
        for i, rule in enumerate(self.rules):
            if not all_match(rule.source_matchers, anomaly.labels):
                continue
            key = self._key(rule, anomaly.labels)
            fp = anomaly.fingerprint
            if anomaly.status is AnomalyStatus.FIRING:
                self._sources[i].setdefault(key, set()).add(fp)
                if all_match(rule.target_matchers, anomaly.labels):
                    self._both[i].setdefault(key, set()).add(fp)
                continue
            for index in (self._sources[i], self._both[i]):
                fps = index.get(key)
                if fps is not None:
                    fps.discard(fp)
                    if not fps:
                        del index[key]

    def inhibits(self, anomaly: Anomaly) -> bool:
        for i, rule in enumerate(self.rules):
            if not all_match(rule.target_matchers, anomaly.labels):
                continue
            key = self._key(rule, anomaly.labels)
            sources = self._sources[i].get(key)
            if not sources:
                continue
            if all_match(rule.source_matchers, anomaly.labels):
                if sources - self._both[i].get(key, set()):
                    return True
            else:
                return True
        return False


def representatives(firing: list[Anomaly], limit: int | None) -> list[Anomaly]:
    """Up to `limit` alerts standing for a group: one per (alertname, service) first.

    A storm of 100,000 pod alerts should not make a 100,000-entry incident record that every
    checkpoint copies; the record keeps every distinct kind of alert and the earliest ones.
    """
    ordered = sorted(firing, key=lambda a: (a.starts_at, a.fingerprint))
    if limit is None or len(ordered) <= limit:
        return ordered
    seen: set[tuple[str, str | None]] = set()
    picked: list[Anomaly] = []
    rest: list[Anomaly] = []
    for anomaly in ordered:
        kind = (anomaly.name, anomaly.service)
        (rest if kind in seen else picked).append(anomaly)
        seen.add(kind)
    chosen = (picked + rest)[:limit]
    return sorted(chosen, key=lambda a: (a.starts_at, a.fingerprint))


class AlertGrouper:
    """Many alerts, one incident: the state Alertmanager keeps between webhook calls."""

    def __init__(
        self,
        policy: IntakePolicy,
        environment: str,
        new_id: Callable[[], str],
        max_anomalies: int | None = None,
    ) -> None:
        self.policy = policy
        self.environment = environment
        self.new_id = new_id
        self.max_anomalies = max_anomalies
        self.groups: dict[str, AlertGroup] = {}
        self.silenced: deque[Anomaly] = deque(maxlen=RECENT_DROPPED)
        self.inhibited: deque[Anomaly] = deque(maxlen=RECENT_DROPPED)
        self.stats = IntakeStats()
        self.inhibitor = Inhibitor(policy.inhibit_rules)
        self._lock = threading.Lock()

    def group_labels(self, anomaly: Anomaly) -> dict[str, str]:
        if "..." in self.policy.group_by:  # Alertmanager's "group by every label"
            return dict(anomaly.labels)
        return {k: anomaly.labels.get(k, "") for k in self.policy.group_by}

    def _silenced(self, anomaly: Anomaly, now: datetime) -> bool:
        return any(s.silences(anomaly.labels, now) for s in self.policy.silences)

    def ingest(self, anomalies: Iterable[Anomaly], now: datetime) -> IntakeStats:
        """Take a batch in; returns what became of it (the totals are in `stats`)."""
        batch = list(anomalies)
        counts = IntakeStats()
        with self._lock:
            for anomaly in batch:  # sources first: an alert in this batch mutes its peers
                self.inhibitor.observe(anomaly)
            for anomaly in batch:
                self._ingest_one(anomaly, now, counts)
            self.stats.add(counts)
        return counts

    def _ingest_one(self, anomaly: Anomaly, now: datetime, counts: IntakeStats) -> None:
        counts.received += 1
        if self._silenced(anomaly, now):
            counts.silenced += 1
            self.silenced.append(anomaly)
            return
        if anomaly.status is AnomalyStatus.FIRING and self.inhibitor.inhibits(anomaly):
            counts.inhibited += 1
            self.inhibited.append(anomaly)
            return
        labels = self.group_labels(anomaly)
        key = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        group = self.groups.get(key)
        resolved = anomaly.status is AnomalyStatus.RESOLVED
        if group is None:
            if resolved:
                counts.unknown_resolutions += 1
                return  # a resolution for an alert we never saw opens nothing
            group = self.groups[key] = AlertGroup(key=key, labels=labels, first_seen=now)
        previous = group.alerts.get(anomaly.fingerprint)
        if previous is None and resolved:
            counts.unknown_resolutions += 1
            return
        if previous is not None and previous.status is anomaly.status:
            counts.deduplicated += 1  # re-sent: same fingerprint, one alert
        else:
            group.changed = True
            if resolved:
                counts.resolved += 1
        # Re-sent alerts replace the stored copy (annotations and endsAt may have moved on).
        group.alerts[anomaly.fingerprint] = anomaly

    def due(self, now: datetime) -> list[Incident]:
        """Incidents for groups that have waited `group_wait` and are not yet open."""
        wait = timedelta(minutes=self.policy.group_wait_minutes)
        opened: list[Incident] = []
        with self._lock:
            for group in self.groups.values():
                if group.incident_id is not None or now - group.first_seen < wait:
                    continue
                firing = group.firing()
                if not firing:
                    continue
                group.incident_id = self.new_id()
                group.last_flush = now
                group.notified = {a.fingerprint for a in firing}
                group.changed = False
                self.stats.incidents_opened += 1
                opened.append(self._incident(group, firing, now))
            self._drop_quiet_groups(now)
        return opened

    def _incident(self, group: AlertGroup, firing: list[Anomaly], now: datetime) -> Incident:
        assert group.incident_id is not None
        services = sorted({a.service for a in firing if a.service})
        names = sorted({a.name for a in firing})
        return Incident(
            id=group.incident_id,
            title=f"{', '.join(names)} on {', '.join(services) or 'unknown service'}",
            environment=self.environment,
            group_key=group.key,
            group_labels=group.labels,
            anomalies=representatives(firing, self.max_anomalies),
            services=services,
            opened_at=now,
        )

    def _drop_quiet_groups(self, now: datetime) -> None:
        """Groups that resolved before they ever opened an incident go away."""
        wait = timedelta(minutes=self.policy.group_wait_minutes)
        quiet = [
            k for k, g in self.groups.items()
            if g.incident_id is None and now - g.first_seen >= wait and not g.firing()
        ]
        for key in quiet:
            del self.groups[key]

    def updates(self, now: datetime) -> list[GroupUpdate]:
        """Flushes of open groups: changed ones every `group_interval`, unchanged ones every
        `repeat_interval`; a group whose alerts all resolved is flushed one last time, closed."""
        interval = timedelta(minutes=self.policy.group_interval_minutes)
        repeat = timedelta(minutes=self.policy.repeat_interval_minutes)
        out: list[GroupUpdate] = []
        with self._lock:
            for key, group in list(self.groups.items()):
                if group.incident_id is None or group.last_flush is None:
                    continue
                since = now - group.last_flush
                if not (group.changed and since >= interval) and since < repeat:
                    continue
                firing = group.firing()
                fps = {a.fingerprint for a in firing}
                update = GroupUpdate(
                    incident_id=group.incident_id,
                    group_key=key,
                    new_firing=[a for a in firing if a.fingerprint not in group.notified],
                    resolved=[
                        a for a in group.alerts.values()
                        if a.status is AnomalyStatus.RESOLVED and a.fingerprint in group.notified
                    ],
                    firing_count=len(firing),
                    closed=not firing,
                    repeat=not group.changed,
                )
                out.append(update)
                if update.closed:
                    del self.groups[key]
                    self.stats.groups_closed += 1
                    continue
                # Resolved alerts have been told; forget them so memory follows what fires.
                group.alerts = {a.fingerprint: a for a in firing}
                group.notified = fps
                group.last_flush = now
                group.changed = False
        return out

    def snapshot(self) -> dict[str, int]:
        """Counters and sizes for health endpoints and benchmarks."""
        with self._lock:
            stats = dict(vars(self.stats))
            stats["groups_open"] = len(self.groups)
            stats["alerts_held"] = sum(len(g.alerts) for g in self.groups.values())
        return stats
