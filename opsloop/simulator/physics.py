"""One simulated minute: traffic, saturation, errors and latency flowing from callees to callers."""

from __future__ import annotations

import math
import random

from opsloop.models import ExperimentStatus
from opsloop.models.catalog import METRICS
from opsloop.simulator import events, flags, logs
from opsloop.simulator.reading import Reading
from opsloop.simulator.state import ServiceState, SimState

OOM_AT = 0.97  # memory fraction at which the kernel OOM-kills a replica
OOM_DOWN_TICKS = 2  # minutes a killed replica takes to come back
GC_PRESSURE_AT = 0.85
DISK_FULL_AT = 0.97


def daily_shape(tick: int) -> float:
    """Mild diurnal traffic curve: lowest around 02:00, highest around 14:00."""
    hour = 9 + tick / 60
    return 1.0 + 0.06 * math.sin(2 * math.pi * (hour - 8) / 24)


def queue_factor(saturation: float) -> float:
    """Latency multiplier from queueing: flat when idle, steep past ~85%, capped by timeouts."""
    if saturation <= 0.6:
        return 1.0
    if saturation <= 0.85:
        return 1.0 + 2.0 * (saturation - 0.6)
    return min(1.5 + 30.0 * (saturation - 0.85), 12.0)


def call_order(state: SimState) -> list[str]:
    """Services with callees before callers, so each caller sees this minute's callee state."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for call in state.services[name].calls:
            if call.callee in state.services:
                visit(call.callee)
        order.append(name)

    for name in sorted(state.services):
        visit(name)
    return order


def _advance_timers(state: SimState) -> None:
    for svc in state.services.values():
        for inst, left in list(svc.down_instances.items()):
            if left > 0:
                if left == 1:
                    del svc.down_instances[inst]
                else:
                    svc.down_instances[inst] = left - 1
        if svc.restarting_ticks > 0:
            svc.restarting_ticks -= 1
        if svc.warmup_ticks > 0:
            svc.warmup_ticks -= 1
    for rec in state.experiments:
        running = rec.experiment.status is ExperimentStatus.RUNNING
        if running and state.tick >= rec.ends_tick:
            events.end_experiment(state, rec, ExperimentStatus.COMPLETED)


def _memory_and_disk(svc: ServiceState) -> str | None:
    """Leak memory and grow logs; OOM-kill a replica when memory hits the limit."""
    svc.leaked += svc.leak_rate
    if svc.log_growth_gb_per_min:
        room = svc.disk_size_gb - svc.disk_data_gb
        svc.disk_logs_gb = min(svc.disk_logs_gb + svc.log_growth_gb_per_min, room)
    if svc.memory() < OOM_AT or svc.replicas == 0:
        return None
    # Replicas leak in step, so one dies at a time and takes its share of the leak with it.
    svc.oom_kills += 1
    instance = f"{svc.name}-{svc.oom_kills % svc.replicas}"
    svc.leaked -= svc.leaked / svc.replicas
    svc.down_instances[instance] = OOM_DOWN_TICKS
    return instance


def _combine(ratios: list[float]) -> float:
    ok = 1.0
    for r in ratios:
        ok *= 1.0 - min(max(r, 0.0), 1.0)
    return 1.0 - ok


def _read(
    state: SimState, svc: ServiceState, done: dict[str, Reading], rng: random.Random
) -> Reading:
    oom = _memory_and_disk(svc)
    instances = set(svc.instances())
    down = [i for i in svc.down_instances if i in instances]
    up = max(svc.replicas - len(down) - (1 if svc.restarting_ticks else 0), 0)
    rps = svc.base_rps * daily_shape(state.tick) * svc.traffic_multiplier
    rps *= 1.0 + rng.gauss(0.0, 0.015)
    saturation = min(rps / (up * svc.capacity_rps), 5.0) if up else 5.0
    memory = min(svc.memory() + rng.gauss(0.0, 0.004), 1.0)
    disk = (svc.disk_data_gb + svc.disk_logs_gb) / svc.disk_size_gb
    behaviour = svc.behaviour()

    causes: dict[str, float] = {"base": svc.base_error_ratio * rng.uniform(0.6, 1.4)}
    jitter = 1.0 + rng.gauss(0.0, 0.04)
    if behaviour.error_ratio:
        causes["defect"] = behaviour.error_ratio * jitter
    for flag in state.flags:
        if flag.service == svc.name and flag.enabled and flag.variant_error_ratio:
            cohort = flags.on_share(flag)  # the keys flagd serves `on`, not the nominal percent
            causes[f"flag:{flag.key}"] = cohort * flag.variant_error_ratio * jitter
    outage = svc.region in svc.outage_regions
    if outage:
        causes["outage"] = svc.outage_error_ratio * jitter
    primary_down = svc.has_primary and f"{svc.name}-0" in down
    if primary_down:
        causes["primary_down"] = svc.primary_down_error * jitter
    if oom:
        causes["oom"] = 0.3 / max(svc.replicas, 1)  # in-flight requests on the killed replica
    if svc.bad_instance in instances and svc.bad_instance not in down:
        causes["bad_instance"] = svc.bad_instance_error / svc.replicas * jitter
    if saturation > 1.0:
        causes["overload"] = 1.0 - 1.0 / saturation
    if memory > GC_PRESSURE_AT + 0.03:
        causes["gc"] = (memory - GC_PRESSURE_AT - 0.03) * 0.1
    if disk > DISK_FULL_AT:
        causes["disk_full"] = min(0.3, (disk - DISK_FULL_AT) / (1 - DISK_FULL_AT) * 0.3)

    upstream: dict[str, float] = {}
    for call in svc.calls:
        callee = done.get(call.callee)
        if callee is not None:
            upstream[call.callee] = call.error_share * callee.error
    error = _combine([*causes.values(), *upstream.values()])

    slow = queue_factor(saturation) * (1.0 + max(0.0, memory - GC_PRESSURE_AT) * 6.0)
    if svc.region != "primary":
        slow *= 1.15  # cross-region round trips
    tail = behaviour.latency_multiplier
    p50 = svc.latency_p50_ms * slow * (1.0 + (tail - 1.0) * 0.4)
    p99 = svc.latency_p99_ms * slow * tail
    if outage:  # calls to the dead region hang until the client timeout
        p50, p99 = p50 * 1.6, max(p99, 3000.0)
    extra = svc.primary_down_latency_ms if primary_down else 0.0
    if svc.warmup_ticks and not primary_down:
        extra = svc.primary_down_latency_ms * 0.3
    p50 += extra * 0.6
    p99 += extra
    own_p99 = p99 * (1.0 + rng.gauss(0.0, 0.03))
    p50 *= 1.0 + rng.gauss(0.0, 0.02)
    latency_ratio = own_p99 / svc.latency_p99_ms
    p99 = own_p99
    for call in svc.calls:
        callee = done.get(call.callee)
        if callee is not None:
            p50 += call.share * callee.p50
            p99 += call.share * callee.p99
    p99 = max(p99, p50)
    p95 = p50 + 0.65 * (p99 - p50)

    cpu = 0.03 + 0.7 * min(saturation, 1.3) + max(0.0, memory - GC_PRESSURE_AT) * 1.5
    cpu = min(max(cpu + rng.gauss(0.0, 0.008), 0.0), 1.0)
    return Reading(
        rps=rps,
        error=error,
        p50=p50,
        p95=p95,
        p99=p99,
        cpu=cpu,
        memory=memory,
        disk=disk,
        saturation=saturation,
        cost=svc.replicas * svc.cost_per_replica_hour,
        replicas=svc.replicas,
        latency_ratio=latency_ratio,
        causes=causes,
        upstream=upstream,
        oom_instance=oom,
    )


def _autoscale(state: SimState, svc: ServiceState, reading: Reading) -> None:
    """An HPA: scale towards replicas*cpu/target, up by 2 per 2 minutes, down by 1 per 5."""
    scaler = svc.autoscaler
    if scaler is None or not scaler.enabled:
        return
    since = state.tick - scaler.last_change_tick
    desired = math.ceil(svc.replicas * reading.cpu / scaler.target_cpu)
    desired = min(max(desired, scaler.min_replicas), scaler.max_replicas)
    new = svc.replicas
    if desired > svc.replicas and since >= 2:
        new = min(desired, svc.replicas + 2)
    elif desired < svc.replicas and since >= 5:
        new = svc.replicas - 1
    if new != svc.replicas:
        state.log(
            svc.name,
            "INFO",
            f"autoscaler: scaled {svc.name} from {svc.replicas} to {new} replicas "
            f"(cpu {reading.cpu:.0%}, target {scaler.target_cpu:.0%})",
        )
        svc.replicas = new
        scaler.last_change_tick = state.tick


def _record(state: SimState, name: str, r: Reading) -> None:
    values = (
        round(r.rps, 1),
        round(r.error, 5),
        round(r.p50, 2),
        round(r.p95, 2),
        round(r.p99, 2),
        round(r.cpu, 4),
        round(r.memory, 4),
        round(r.disk, 4),
        round(r.saturation, 4),
        round(r.cost, 2),
        float(r.replicas),
    )
    series = state.series.setdefault(name, {})
    for metric, value in zip(METRICS, values, strict=True):
        series.setdefault(metric, []).append(value)


def step(state: SimState) -> None:
    """Advance the world by one minute and record its telemetry and logs."""
    state.tick += 1
    # Per-tick RNG: the same seed and tick always draw the same noise, whatever ran before.
    rng = random.Random(f"{state.seed}:{state.tick}")
    events.apply_due(state)
    _advance_timers(state)
    done: dict[str, Reading] = {}
    for name in call_order(state):
        done[name] = _read(state, state.services[name], done, rng)
    for name, reading in done.items():
        _record(state, name, reading)
        for flag in state.flags:
            if flag.service == name and flags.splits_traffic(flag):
                flags.count_variants(state, flag, reading)
        logs.emit(state, state.services[name], reading, done, rng)
        _autoscale(state, state.services[name], reading)
