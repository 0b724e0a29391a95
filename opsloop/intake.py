"""Intake: deduplicate by fingerprint, drop what silences and inhibitions cover, group into
incidents by `group_by` (Alertmanager semantics), and open an incident once its group has
waited `group_wait`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsloop.models import Anomaly, AnomalyStatus, Incident
from opsloop.policy.schema.intake import IntakePolicy


@dataclass
class AlertGroup:
    key: str
    labels: dict[str, str]
    first_seen: datetime
    alerts: dict[str, Anomaly] = field(default_factory=dict)  # by fingerprint
    incident_id: str | None = None


class AlertGrouper:
    """Many alerts, one incident: the state Alertmanager keeps between webhook calls."""

    def __init__(self, policy: IntakePolicy, environment: str, new_id: Callable[[], str]) -> None:
        self.policy = policy
        self.environment = environment
        self.new_id = new_id
        self.groups: dict[str, AlertGroup] = {}
        self.silenced: list[Anomaly] = []
        self.inhibited: list[Anomaly] = []

    def group_labels(self, anomaly: Anomaly) -> dict[str, str]:
        if "..." in self.policy.group_by:  # Alertmanager's "group by every label"
            return dict(anomaly.labels)
        return {k: anomaly.labels.get(k, "") for k in self.policy.group_by}

    def _silenced(self, anomaly: Anomaly, now: datetime) -> bool:
        return any(s.silences(anomaly.labels, now) for s in self.policy.silences)

    def _inhibited(self, anomaly: Anomaly, firing: list[Anomaly]) -> bool:
        sources = [a.labels for a in firing if a.fingerprint != anomaly.fingerprint]
        return any(rule.inhibits(anomaly.labels, sources) for rule in self.policy.inhibit_rules)

    def ingest(self, anomalies: list[Anomaly], now: datetime) -> None:
        firing = [a for a in anomalies if a.status is AnomalyStatus.FIRING]
        for anomaly in anomalies:
            if self._silenced(anomaly, now):
                self.silenced.append(anomaly)
                continue
            if self._inhibited(anomaly, firing):
                self.inhibited.append(anomaly)
                continue
            labels = self.group_labels(anomaly)
            key = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
            group = self.groups.get(key)
            if group is None:
                if anomaly.status is AnomalyStatus.RESOLVED:
                    continue  # a resolution for an alert we never saw opens nothing
                group = self.groups[key] = AlertGroup(key=key, labels=labels, first_seen=now)
            # Re-sent alerts replace the stored copy: same fingerprint, one alert.
            group.alerts[anomaly.fingerprint] = anomaly

    def due(self, now: datetime) -> list[Incident]:
        """Incidents for groups that have waited `group_wait` and are not yet open."""
        wait = timedelta(minutes=self.policy.group_wait_minutes)
        opened: list[Incident] = []
        for group in self.groups.values():
            firing = [a for a in group.alerts.values() if a.status is AnomalyStatus.FIRING]
            if group.incident_id is not None or not firing or now - group.first_seen < wait:
                continue
            group.incident_id = self.new_id()
            services = sorted({a.service for a in firing if a.service})
            names = sorted({a.name for a in firing})
            opened.append(
                Incident(
                    id=group.incident_id,
                    title=f"{', '.join(names)} on {', '.join(services) or 'unknown service'}",
                    environment=self.environment,
                    group_key=group.key,
                    group_labels=group.labels,
                    anomalies=sorted(firing, key=lambda a: (a.starts_at, a.fingerprint)),
                    services=services,
                    opened_at=now,
                )
            )
        return opened
