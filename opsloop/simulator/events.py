"""State changes shared by scheduled scenario events and by actions: deploys, flags, chaos."""

from __future__ import annotations

from typing import Any

from opsloop.models import ChaosExperiment, DeployEvent, ExperimentStatus, FlagChange
from opsloop.simulator.state import (
    Autoscaler,
    ExperimentRecord,
    PendingEvent,
    SimState,
    VersionBehaviour,
)

WARMUP_TICKS = 3  # minutes a restored datastore instance serves from a cold cache


def deploy(state: SimState, service: str, version: str, author: str, kind: str = "deploy") -> str:
    """Switch a service to `version`, record the deploy event, and return the replaced version."""
    svc = state.services[service]
    previous = svc.version
    svc.version = version
    svc.leaked = 0.0  # a deploy replaces every pod, so leaked memory goes with them
    if kind == "rollback" and version in svc.version_history:
        # A rollback drops the bad release from the deployable history.
        svc.version_history = svc.version_history[: svc.version_history.index(version) + 1]
    else:
        svc.version_history.append(version)
    state.deploys.append(
        DeployEvent(
            at=state.now(),
            service=service,
            version=version,
            previous_version=previous,
            author=author,
            kind=kind,
        )
    )
    verb = {"rollback": "rolled back to", "config": "applied config"}.get(kind, "deployed")
    state.log(service, "INFO", f"{verb} version {version} (previous {previous}) by {author}")
    return previous


def set_flag(
    state: SimState, service: str, key: str, enabled: bool, percent: float, author: str
) -> None:
    flag = state.flag(service, key)
    if flag is None:
        raise KeyError(f"no flag {key!r} on service {service!r}")
    state.flag_changes.append(
        FlagChange(
            at=state.now(),
            key=key,
            service=service,
            enabled=enabled,
            from_percent=flag.rollout_percent,
            to_percent=percent,
            author=author,
        )
    )
    flag.enabled = enabled
    flag.rollout_percent = percent
    flag.updated_tick = state.tick
    state.log(
        service,
        "INFO",
        f"flagd: flag {key} updated enabled={str(enabled).lower()} "
        f"rollout={percent:g}% by {author}",
    )


def end_experiment(state: SimState, record: ExperimentRecord, status: ExperimentStatus) -> None:
    """Stop a chaos experiment and run its rollbacks: the held instance comes back, cold."""
    exp = record.experiment
    exp.status = status
    svc = state.services[exp.target_service]
    svc.down_instances.pop(record.instance, None)
    svc.warmup_ticks = WARMUP_TICKS
    word = "aborted" if status is ExperimentStatus.ABORTED else "completed"
    state.log(
        exp.target_service,
        "WARN",
        f"chaos-toolkit: experiment {exp.id} {word}; rollback: restarted {record.instance}",
    )


def _start_experiment(state: SimState, event: PendingEvent) -> None:
    p = event.params
    instance = str(p["instance"])
    exp = ChaosExperiment(
        id=str(p["id"]),
        title=str(p["title"]),
        target_service=event.service,
        status=ExperimentStatus.RUNNING,
        started_at=state.now(),
        steady_state=dict(p.get("steady_state", {})),
        method=list(p.get("method", [])),
        rollbacks=list(p.get("rollbacks", [])),
    )
    state.experiments.append(
        ExperimentRecord(
            experiment=exp,
            instance=instance,
            started_tick=state.tick,
            ends_tick=state.tick + int(p.get("duration_minutes", 120)),
        )
    )
    # -1: the experiment holds the instance down until it ends or is aborted.
    state.services[event.service].down_instances[instance] = -1
    state.log(
        event.service, "WARN", f"chaos-toolkit: experiment {exp.id} terminated instance {instance}"
    )


def _autoscaler(state: SimState, event: PendingEvent) -> None:
    svc = state.services[event.service]
    p = event.params
    old = svc.autoscaler
    new = Autoscaler(
        enabled=bool(p.get("enabled", True)),
        min_replicas=int(p.get("min_replicas", old.min_replicas if old else svc.replicas)),
        max_replicas=int(p.get("max_replicas", old.max_replicas if old else svc.replicas)),
        target_cpu=float(p.get("target_cpu", old.target_cpu if old else 0.6)),
    )
    svc.autoscaler = new
    before = f"targetCPU {old.target_cpu:.0%}, maxReplicas {old.max_replicas}" if old else "none"
    state.log(
        event.service,
        "INFO",
        f"autoscaler: HorizontalPodAutoscaler {event.service} updated ({before} -> "
        f"targetCPU {new.target_cpu:.0%}, maxReplicas {new.max_replicas}) "
        f"by {p.get('author', 'infra-bot')}",
    )


def _flag(state: SimState, event: PendingEvent) -> None:
    """Change a flag: its state and percent (both optional: kept when absent) and what its
    variants do (`variant_error_ratio` for the `on` cohort; `variant_conversion`, a mapping
    variant -> conversion rate, for an experiment's effect)."""
    p = event.params
    key = str(p["key"])
    flag = state.flag(event.service, key)
    if flag is None:
        raise KeyError(f"no flag {key!r} on service {event.service!r}")
    if "variant_error_ratio" in p:
        flag.variant_error_ratio = float(p["variant_error_ratio"])
    if "variant_conversion" in p:
        rates = {str(v): float(r) for v, r in dict(p["variant_conversion"]).items()}
        bad = [f"{v}={r:g}" for v, r in rates.items() if not 0 <= r <= 1]
        if bad:
            raise ValueError(f"flag {key}: variant_conversion rates must be 0..1: {bad}")
        flag.variant_conversion = {**flag.variant_conversion, **rates}
    if "enabled" in p or "percent" in p:
        set_flag(
            state,
            event.service,
            key,
            bool(p.get("enabled", flag.enabled)),
            float(p.get("percent", flag.rollout_percent)),
            str(p.get("author", "")),
        )


def apply(state: SimState, event: PendingEvent) -> None:
    """Apply one scheduled event to the state at the current tick."""
    svc = state.services[event.service]
    p: dict[str, Any] = event.params
    if event.kind == "deploy":
        version = str(p["version"])
        if "behaviour" in p:
            svc.versions[version] = VersionBehaviour.model_validate(p["behaviour"])
        deploy(
            state, event.service, version, str(p.get("author", "ci")), str(p.get("kind", "deploy"))
        )
    elif event.kind == "flag":
        _flag(state, event)
    elif event.kind == "traffic":
        svc.traffic_multiplier = float(p["multiplier"])
    elif event.kind == "leak":
        svc.leak_rate = float(p["rate"])
    elif event.kind == "log_growth":
        svc.log_growth_gb_per_min = float(p["gb_per_min"])
    elif event.kind == "region_outage":
        region = str(p["region"])
        if bool(p.get("active", True)):
            svc.outage_regions = sorted({*svc.outage_regions, region})
        else:
            svc.outage_regions = [r for r in svc.outage_regions if r != region]
    elif event.kind == "autoscaler":
        _autoscaler(state, event)
    elif event.kind == "chaos_start":
        _start_experiment(state, event)
    elif event.kind == "bad_instance":
        svc.bad_instance = str(p["instance"])
        svc.bad_instance_error = float(p["error_ratio"])
    elif event.kind == "log":
        state.log(event.service, str(p.get("level", "INFO")), str(p["message"]))
    else:
        raise ValueError(f"unknown scheduled event kind {event.kind!r} at tick {event.tick}")


def apply_due(state: SimState) -> None:
    """Apply every pending event scheduled for the current tick (or missed earlier)."""
    if not state.pending or state.pending[0].tick > state.tick:
        return
    due = [e for e in state.pending if e.tick <= state.tick]
    state.pending = [e for e in state.pending if e.tick > state.tick]
    for event in due:
        apply(state, event)


def schedule(state: SimState, tick: int, event: str, service: str, /, **params: Any) -> None:
    """Add a scheduled event, keeping the queue sorted by tick (stable for equal ticks)."""
    state.pending.append(PendingEvent(tick=tick, kind=event, service=service, params=params))
    state.pending.sort(key=lambda e: e.tick)
