"""Intake: deduplicate by fingerprint, drop what silences and inhibitions cover, group into
incidents by `group_by` (Alertmanager semantics), and open an incident once its group has
waited `group_wait`.

An open group is flushed again, at most every `group_interval`, when it changed (new alerts,
resolutions), and after `repeat_interval` when it did not; a group whose alerts have all
resolved closes, so the next firing alert with its labels starts a new incident. A
`threading.Lock` makes one grouper safe to share between a web server's request threads.

Given an `IntakeState`, each step (a batch taken in, incidents opened, groups flushed) is
written through before it returns, and undone in memory if the write fails; a new grouper on
the same state carries on where the last one stopped. The incident's status never ends a
group, only its alerts resolving do (as in Alertmanager): a mitigated, escalated or rejected
incident whose alerts still fire takes their re-sends, where a new incident would run the
loop, and remediate, again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from opsloop.intake_state import AlertGroup, IntakeState, IntakeWrite
from opsloop.models import Anomaly, AnomalyStatus, Incident
from opsloop.policy.schema.intake import InhibitRule, IntakePolicy, compile_matchers

__all__ = ["AlertGroup", "AlertGrouper", "GroupUpdate", "IntakeStats", "representatives"]

RECENT_DROPPED = 1000  # silenced / inhibited alerts kept for inspection; counters keep the rest
_GROUP_KEYS_REMEMBERED = 65_536


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
        self._source_match = [compile_matchers(rule.source_matchers) for rule in rules]
        self._target_match = [compile_matchers(rule.target_matchers) for rule in rules]
        self._sources: list[dict[tuple[str, ...], set[str]]] = [{} for _ in rules]
        self._both: list[dict[tuple[str, ...], set[str]]] = [{} for _ in rules]

    @staticmethod
    def _key(rule: InhibitRule, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in rule.equal)

    def observe_all(self, anomalies: list[Anomaly]) -> None:
        """`observe` each, in order."""
        if self.rules:
            for anomaly in anomalies:
                self.observe(anomaly)

    def observe(self, anomaly: Anomaly) -> None:
        for i, rule in enumerate(self.rules):
            if not self._source_match[i](anomaly.labels):
                continue
            key = self._key(rule, anomaly.labels)
            fp = anomaly.fingerprint
            if anomaly.status is AnomalyStatus.FIRING:
                self._sources[i].setdefault(key, set()).add(fp)
                if self._target_match[i](anomaly.labels):
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
            if not self._target_match[i](anomaly.labels):
                continue
            key = self._key(rule, anomaly.labels)
            sources = self._sources[i].get(key)
            if not sources:
                continue
            if self._source_match[i](anomaly.labels):
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
        state: IntakeState | None = None,
    ) -> None:
        self.policy = policy
        self.environment = environment
        self.new_id = new_id
        self.max_anomalies = max_anomalies
        self.state = state
        self.groups: dict[str, AlertGroup] = state.load() if state is not None else {}
        self.silenced: deque[Anomaly] = deque(maxlen=RECENT_DROPPED)
        self.inhibited: deque[Anomaly] = deque(maxlen=RECENT_DROPPED)
        self.stats = IntakeStats()
        self.inhibitor = Inhibitor(policy.inhibit_rules)
        # Silence.silences, with the matchers compiled once (a storm checks every alert).
        self._silences = [(s.starts_at, s.ends_at, compile_matchers(s.matchers))
                          for s in policy.silences]
        # Firing alerts held before a restart still mute their targets. Sources that were
        # themselves silenced or inhibited are not held; their next re-send restores them.
        for group in self.groups.values():
            for anomaly in group.firing():
                self.inhibitor.observe(anomaly)
        self._keys: dict[tuple[str, ...], str] = {}  # group_by values -> group key
        self._lock = threading.Lock()

    def group_labels(self, anomaly: Anomaly) -> dict[str, str]:
        if "..." in self.policy.group_by:  # Alertmanager's "group by every label"
            return dict(anomaly.labels)
        return {k: anomaly.labels.get(k, "") for k in self.policy.group_by}

    @staticmethod
    def group_key(labels: dict[str, str]) -> str:
        return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

    def _key_of(self, labels: dict[str, str]) -> str:
        """`group_key(group_labels(...))`, remembered by the `group_by` values (a storm has
        thousands of alerts and a handful of groups)."""
        names = self.policy.group_by
        if "..." in names:
            return self.group_key(dict(labels))
        values = tuple([labels.get(name, "") for name in names])
        key = self._keys.get(values)
        if key is None:
            key = self.group_key(dict(zip(names, values, strict=True)))
            if len(self._keys) >= _GROUP_KEYS_REMEMBERED:
                self._keys.clear()
            self._keys[values] = key
        return key

    def _silenced(self, anomaly: Anomaly, now: datetime) -> bool:
        return any(starts <= now < ends and match(anomaly.labels)
                   for starts, ends, match in self._silences)

    @contextmanager
    def _step(self) -> Iterator[tuple[IntakeWrite, dict[str, AlertGroup | None]]]:
        """One change to the groups, under the lock: the body records what it changed and each
        group as it was before; the change is then written through. If the body or the write
        fails, memory is put back too and the error raised, so memory never holds what the
        disk does not (the webhook's 500 makes Alertmanager retry)."""
        write = IntakeWrite()
        before: dict[str, AlertGroup | None] = {}
        try:
            yield write, before
            if self.state is not None:
                self.state.commit(write)
        except BaseException:
            for key, group in before.items():
                if group is None:
                    self.groups.pop(key, None)
                else:
                    self.groups[key] = group
            raise

    def ingest(self, anomalies: Iterable[Anomaly], now: datetime) -> IntakeStats:
        """Take a batch in; returns what became of it (the totals are in `stats`). With a
        state, the batch is on disk when this returns."""
        batch = list(anomalies)
        counts = IntakeStats()
        with self._lock:
            # Sources first: an alert in this batch mutes its peers.
            self.inhibitor.observe_all(batch)
            with self._step() as (write, before):
                self._ingest_all(batch, now, counts, write, before)
            self.stats.add(counts)
        return counts

    def _ingest_all(self, batch: list[Anomaly], now: datetime, counts: IntakeStats,
                    write: IntakeWrite, before: dict[str, AlertGroup | None]) -> None:
        """Each alert in turn: silenced, inhibited, or into its group (new, re-sent, resolved).
        Written as one loop with its lookups bound once: a storm runs it 100,000 times."""
        silences = [match for starts, ends, match in self._silences if starts <= now < ends]
        inhibitor = self.inhibitor if self.inhibitor.rules else None
        groups, key_of, stateful = self.groups, self._key_of, self.state is not None
        changed_groups, written = write.groups, write.alerts
        firing = AnomalyStatus.FIRING
        counts.received += len(batch)
        for anomaly in batch:
            labels = anomaly.labels
            if silences and any(match(labels) for match in silences):
                counts.silenced += 1
                self.silenced.append(anomaly)
                continue
            status = anomaly.status
            if status is firing and inhibitor is not None and inhibitor.inhibits(anomaly):
                counts.inhibited += 1
                self.inhibited.append(anomaly)
                continue
            key = key_of(labels)
            group = groups.get(key)
            resolved = status is not firing
            if group is None:
                if resolved:
                    counts.unknown_resolutions += 1
                    continue  # a resolution for an alert we never saw opens nothing
                before.setdefault(key, None)
                group = groups[key] = AlertGroup(key=key, labels=self.group_labels(anomaly),
                                                 first_seen=now)
                changed_groups[key] = group
            fingerprint = anomaly.fingerprint
            previous = group.alerts.get(fingerprint)
            if previous is None:
                if resolved:
                    counts.unknown_resolutions += 1
                    continue
            elif previous.status is status:
                counts.deduplicated += 1  # re-sent: same fingerprint, one alert
                if previous == anomaly:
                    continue  # nothing to write
            if stateful and key not in before:
                before[key] = group.copy()
            if previous is None or previous.status is not status:
                group.changed = True
                changed_groups[key] = group
                if resolved:
                    counts.resolved += 1
            # Re-sent alerts replace the stored copy (annotations and endsAt may have moved on).
            group.alerts[fingerprint] = anomaly
            written.append((key, anomaly))

    def due(self, now: datetime) -> list[Incident]:
        """Incidents for groups that have waited `group_wait` and are not yet open."""
        wait = timedelta(minutes=self.policy.group_wait_minutes)
        opened: list[Incident] = []
        with self._lock:
            with self._step() as (write, before):
                for key, group in self.groups.items():
                    if group.incident_id is not None or now - group.first_seen < wait:
                        continue
                    firing = group.firing()
                    if firing:
                        before[key] = replace(group)  # the fields set below are rebound
                        group.incident_id = self.new_id()
                        group.last_flush = now
                        group.notified = {a.fingerprint for a in firing}
                        group.changed = False
                        write.groups[key] = group
                        write.flushed.append(key)
                        opened.append(self._incident(group, firing, now))
                self._drop_quiet_groups(now, write, before)
            self.stats.incidents_opened += len(opened)
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

    def _drop_quiet_groups(self, now: datetime, write: IntakeWrite,
                           before: dict[str, AlertGroup | None]) -> None:
        """Groups that resolved before they ever opened an incident go away."""
        wait = timedelta(minutes=self.policy.group_wait_minutes)
        quiet = [
            k for k, g in self.groups.items()
            if g.incident_id is None and now - g.first_seen >= wait and not g.firing()
        ]
        for key in quiet:
            before[key] = self.groups.pop(key)
            write.removed.append(key)

    def updates(self, now: datetime,
                record: Callable[[list[GroupUpdate]], None] | None = None) -> list[GroupUpdate]:
        """Flushes of open groups: changed ones every `group_interval`, unchanged ones every
        `repeat_interval`; a group whose alerts all resolved is flushed one last time, closed.

        `record` is called with the flushes before they are written through: if it fails,
        they are undone and come again next time; a kill between the two repeats a flush
        rather than losing one."""
        interval = timedelta(minutes=self.policy.group_interval_minutes)
        repeat = timedelta(minutes=self.policy.repeat_interval_minutes)
        out: list[GroupUpdate] = []
        with self._lock:
            with self._step() as (write, before):
                for group in list(self.groups.values()):
                    if group.incident_id is None or group.last_flush is None:
                        continue
                    since = now - group.last_flush
                    if (group.changed and since >= interval) or since >= repeat:
                        out.append(self._flush(group, now, write, before))
                if out and record is not None:
                    record(out)
            self.stats.groups_closed += sum(u.closed for u in out)
        return out

    def _flush(self, group: AlertGroup, now: datetime, write: IntakeWrite,
               before: dict[str, AlertGroup | None]) -> GroupUpdate:
        assert group.incident_id is not None
        key = group.key
        firing = group.firing()
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
        if update.closed:
            before[key] = self.groups.pop(key)
            write.removed.append(key)
            return update
        before[key] = replace(group)  # the fields set below are rebound, not mutated
        # Resolved alerts have been told; forget them so memory follows what fires.
        group.alerts = {a.fingerprint: a for a in firing}
        group.notified = {a.fingerprint for a in firing}
        group.last_flush = now
        group.changed = False
        write.groups[key] = group
        write.forgotten.append(key)
        write.flushed.append(key)
        return update

    def adopt(self, incident: Incident, now: datetime) -> bool:
        """Take back the group of an incident opened before intake state was kept (an
        upgraded state dir): its recorded alerts count as notified, so their re-sends join
        it. False when its group is already held."""
        with self._lock:
            if incident.group_key in self.groups:
                return False
            group = AlertGroup(
                key=incident.group_key, labels=dict(incident.group_labels),
                first_seen=incident.opened_at, incident_id=incident.id, last_flush=now,
                alerts={a.fingerprint: a for a in incident.anomalies},
            )
            group.notified = {a.fingerprint for a in group.firing()}
            with self._step() as (write, before):
                before[group.key] = None
                self.groups[group.key] = group
                write.groups[group.key] = group
                write.alerts += [(group.key, a) for a in group.alerts.values()]
                write.flushed.append(group.key)
            for anomaly in group.firing():
                self.inhibitor.observe(anomaly)
        return True

    def opened(self, now: datetime) -> list[Incident]:
        """The incident of every group that opened one, rebuilt from what the group holds:
        for a restart to re-record one whose opening did not reach the incident store."""
        with self._lock:
            return [self._incident(g, g.firing(), g.last_flush or now)
                    for g in self.groups.values() if g.incident_id is not None]

    def snapshot(self) -> dict[str, int]:
        """Counters and sizes for health endpoints and benchmarks."""
        with self._lock:
            stats = dict(vars(self.stats))
            stats["groups_open"] = len(self.groups)
            stats["alerts_held"] = sum(len(g.alerts) for g in self.groups.values())
        return stats
