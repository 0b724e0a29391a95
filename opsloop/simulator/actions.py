"""What each remediation action really does to the simulated production, and how to undo it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsloop.models import ExperimentStatus, ParamValue, RemediationAction
from opsloop.security.versions import compare
from opsloop.simulator import events, sbom
from opsloop.simulator.state import Autoscaler, ServiceState, SimState

MAX_REPLICAS = 50
REGIONS = ("primary", "secondary")
ACTOR = "opsloop"

Undo = dict[str, Any]
Params = dict[str, ParamValue]
Outcome = tuple[str, Undo]  # (what happened, how to undo it; {} when it cannot be undone)


class ActionError(ValueError):
    """The action cannot run as asked; the message says why and what would work."""


def _int(params: Params, name: str) -> int:
    value = params[name]
    if isinstance(value, bool):
        raise ActionError(f"parameter {name}={value!r} must be an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int):
        return value
    raise ActionError(f"parameter {name}={value!r} must be an integer")


def _float(params: Params, name: str) -> float:
    value = params[name]
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except ValueError:
        raise ActionError(f"parameter {name}={value!r} must be a number") from None


def _rollback(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    history = svc.version_history
    earlier = history[:-1] if history[-1:] == [svc.version] else list(history)
    if "to_version" in params:
        target = str(params["to_version"])
        if target == svc.version:
            raise ActionError(f"{svc.name} already runs version {target}")
        if target not in earlier:
            raise ActionError(
                f"{svc.name} has no deployed version {target!r}; known: {', '.join(earlier)}"
            )
    elif earlier:
        target = earlier[-1]
    else:
        raise ActionError(f"{svc.name} has no previous version to roll back to")
    replaced = events.deploy(state, svc.name, target, ACTOR, kind="rollback")
    return (
        f"rolled back {svc.name} from {replaced} to {target}",
        {"kind": "redeploy", "service": svc.name, "version": replaced},
    )


def _deploy_version(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    # Forward only, to a published release: going back is rollback_deploy's job.
    target = str(params["to_version"])
    published = sbom.releases(state, svc.name)
    if target not in published:
        raise ActionError(f"{svc.name} has no published release {target!r}; "
                          f"releases: {', '.join(published)}")
    if compare(target, svc.version) <= 0:
        raise ActionError(f"{target} is not newer than the {svc.version} {svc.name} runs; "
                          "use rollback_deploy to go back")
    replaced = events.deploy(state, svc.name, target, ACTOR)
    return (f"deployed {svc.name} {target} (was {replaced})",
            {"kind": "redeploy", "service": svc.name, "version": replaced})


def _restart(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    svc.leaked = 0.0
    svc.restarting_ticks = 2  # rolling: one replica out at a time for two minutes
    held = [i for i, left in svc.down_instances.items() if left < 0]
    svc.down_instances = {i: -1 for i in held}
    state.log(svc.name, "INFO", f"rolling restart of {svc.replicas} replicas requested by {ACTOR}")
    detail = f"restarted {svc.replicas} replicas of {svc.name} (version {svc.version})"
    if held:
        state.log(
            svc.name,
            "WARN",
            f"instance {', '.join(held)} still terminated by a chaos "
            "experiment; restart had no effect on it",
        )
        detail += f"; {', '.join(held)} stays down (held by a running chaos experiment)"
    return detail, {}


def _unhealthiest(svc: ServiceState) -> str:
    instances = svc.instances()
    if svc.bad_instance in instances:
        return svc.bad_instance
    down = [i for i in svc.down_instances if i in instances]
    return down[0] if down else instances[-1]


def _replace(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    if svc.replicas == 0:
        raise ActionError(f"{svc.name} has no running instances to replace")
    instance = str(params["instance"]) if "instance" in params else _unhealthiest(svc)
    if instance not in svc.instances():
        raise ActionError(
            f"{svc.name} has no instance {instance!r}; instances: {', '.join(svc.instances())}"
        )
    if svc.down_instances.get(instance) == -1:
        state.log(
            svc.name,
            "WARN",
            f"replacement for {instance} terminated again by a running chaos experiment",
        )
        return f"replaced {instance}, but a running chaos experiment keeps it down", {}
    svc.down_instances.pop(instance, None)
    if instance == svc.bad_instance:
        svc.bad_instance = None
        svc.bad_instance_error = 0.0
    svc.leaked -= svc.leaked / svc.replicas
    state.log(
        svc.name, "INFO", f"instance {instance} drained and replaced on a new node by {ACTOR}"
    )
    return f"replaced instance {instance} of {svc.name}", {}


def _scale(state: SimState, svc: ServiceState, params: Params, up: bool) -> Outcome:
    target = _int(params, "replicas")
    if not 1 <= target <= MAX_REPLICAS:
        raise ActionError(f"replicas={target} is outside 1..{MAX_REPLICAS}")
    if up and target <= svc.replicas:
        raise ActionError(
            f"scale_out target {target} is not above the current {svc.replicas} "
            "replicas; use scale_in to shrink"
        )
    if not up and target >= svc.replicas:
        raise ActionError(
            f"scale_in target {target} is not below the current {svc.replicas} "
            "replicas; use scale_out to grow"
        )
    undo: Undo = {
        "kind": "scale",
        "service": svc.name,
        "replicas": svc.replicas,
        "autoscaler": svc.autoscaler.model_dump() if svc.autoscaler else None,
    }
    previous = svc.replicas
    svc.replicas = target
    if svc.autoscaler is not None:
        # Pin the autoscaler, or it would undo a manual scale within minutes.
        svc.autoscaler.min_replicas = svc.autoscaler.max_replicas = target
        svc.autoscaler.last_change_tick = state.tick
    state.log(
        svc.name, "INFO", f"scaled {svc.name} from {previous} to {target} replicas by {ACTOR}"
    )
    pinned = " (autoscaler pinned)" if svc.autoscaler else ""
    return f"scaled {svc.name} from {previous} to {target} replicas{pinned}", undo


def _flag(state: SimState, svc: ServiceState, params: Params, percent: float | None) -> Outcome:
    key = str(params["flag"])
    flag = state.flag(svc.name, key)
    if flag is None:
        known = [f.key for f in state.flags if f.service == svc.name]
        raise ActionError(f"{svc.name} has no flag {key!r}; flags: {', '.join(known) or 'none'}")
    if percent is not None and not 0 <= percent <= 100:
        raise ActionError(f"percent={percent:g} must be between 0 and 100")
    undo: Undo = {
        "kind": "flag",
        "service": svc.name,
        "flag": key,
        "enabled": flag.enabled,
        "percent": flag.rollout_percent,
    }
    # A manual change halts the flag's progressive rollout plan, as flagd kill switches do.
    state.pending = [
        e
        for e in state.pending
        if not (e.kind == "flag" and e.service == svc.name and e.params.get("key") == key)
    ]
    if percent is None:
        events.set_flag(state, svc.name, key, False, 0.0, ACTOR)
        return f"disabled flag {key} on {svc.name} (was {undo['percent']:g}%)", undo
    events.set_flag(state, svc.name, key, percent > 0, percent, ACTOR)
    return f"set flag {key} on {svc.name} to {percent:g}% (was {undo['percent']:g}%)", undo


def _failover(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    region = str(params.get("to_region", "secondary"))
    if region not in REGIONS:
        raise ActionError(f"to_region={region!r} is not a region; regions: {', '.join(REGIONS)}")
    if region == svc.region:
        raise ActionError(f"{svc.name} already serves from region {region}")
    previous, svc.region = svc.region, region
    what = svc.external_dependency or svc.name
    state.log(
        svc.name,
        "WARN",
        f"failover: {what} traffic switched from region {previous} to {region} by {ACTOR}",
    )
    return (
        f"failed {what} over from {previous} to {region}",
        {"kind": "region", "service": svc.name, "region": previous},
    )


def _purge(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    freed = max(svc.disk_logs_gb - 0.5, 0.0)  # the file being written stays
    svc.disk_logs_gb -= freed
    state.log(
        svc.name, "INFO", f"purged rotated logs under /var/log/{svc.name}: freed {freed:.1f}GB"
    )
    return f"purged {freed:.1f}GB of logs on {svc.name}", {}


def _expand(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    size = _int(params, "size_gb")
    if size <= svc.disk_size_gb:
        raise ActionError(
            f"size_gb={size} must be larger than the current "
            f"{svc.disk_size_gb:g}GB (volumes only grow)"
        )
    if size > 16 * svc.disk_size_gb:
        raise ActionError(f"size_gb={size} is more than 16x the current {svc.disk_size_gb:g}GB")
    previous, svc.disk_size_gb = svc.disk_size_gb, float(size)
    state.log(
        svc.name,
        "INFO",
        f"volume /var/lib/{svc.name} expanded from {previous:g}GB to {size}GB by {ACTOR}",
    )
    return f"expanded {svc.name} volume from {previous:g}GB to {size}GB", {}


def _abort(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    exp_id = str(params["experiment"])
    record = next((r for r in state.experiments if r.experiment.id == exp_id), None)
    if record is None:
        known = [r.experiment.id for r in state.experiments]
        raise ActionError(f"no chaos experiment {exp_id!r}; known: {', '.join(known) or 'none'}")
    exp = record.experiment
    if exp.target_service != svc.name:
        raise ActionError(f"experiment {exp_id} targets {exp.target_service}, not {svc.name}")
    if exp.status is not ExperimentStatus.RUNNING:
        raise ActionError(f"experiment {exp_id} is not running (status {exp.status.value})")
    events.end_experiment(state, record, ExperimentStatus.ABORTED)
    return f"aborted chaos experiment {exp_id} and ran its rollbacks ({record.instance})", {}


def _gameday(state: SimState, svc: ServiceState, params: Params) -> Outcome:
    # Chaos Toolkit's engine runs a GameDay over HTTP: opsloop's chaos actuator serves this
    # production to it and takes the action before it gets here; a simulator never runs an
    # engine against itself.
    raise ActionError(f"run_chaos_experiment({params.get('experiment')}) is run by opsloop's "
                      "chaos actuator (Chaos Toolkit against the served simulator), not inside "
                      "the simulator")


Handler = Callable[[SimState, ServiceState, Params], Outcome]

# type -> (handler, optional params, required params)
HANDLERS: dict[str, tuple[Handler, frozenset[str], frozenset[str]]] = {
    "rollback_deploy": (_rollback, frozenset({"to_version"}), frozenset()),
    "deploy_version": (_deploy_version, frozenset(), frozenset({"to_version"})),
    "restart": (_restart, frozenset(), frozenset()),
    "replace_instance": (_replace, frozenset({"instance"}), frozenset()),
    "scale_out": (lambda s, v, p: _scale(s, v, p, True), frozenset(), frozenset({"replicas"})),
    "scale_in": (lambda s, v, p: _scale(s, v, p, False), frozenset(), frozenset({"replicas"})),
    "disable_flag": (lambda s, v, p: _flag(s, v, p, None), frozenset(), frozenset({"flag"})),
    "set_flag_rollout": (
        lambda s, v, p: _flag(s, v, p, _float(p, "percent")),
        frozenset(),
        frozenset({"flag", "percent"}),
    ),
    "failover": (_failover, frozenset({"to_region"}), frozenset()),
    "purge_logs": (_purge, frozenset(), frozenset()),
    "expand_volume": (_expand, frozenset(), frozenset({"size_gb"})),
    "abort_experiment": (_abort, frozenset(), frozenset({"experiment"})),
    "run_chaos_experiment": (_gameday, frozenset(), frozenset({"experiment"})),
}


def run(state: SimState, action: RemediationAction) -> tuple[str, Undo]:
    """Apply an action to the state. Raises ActionError, with a readable reason, if it cannot."""
    spec = HANDLERS.get(action.type)
    if spec is None:
        raise ActionError(f"unknown action type {action.type!r}; known: {', '.join(HANDLERS)}")
    handler, optional, required = spec
    svc = state.services.get(action.service)
    if svc is None:
        raise ActionError(
            f"unknown service {action.service!r}; services: {', '.join(sorted(state.services))}"
        )
    given = set(action.params)
    if missing := required - given:
        raise ActionError(f"{action.type} needs parameter(s) {', '.join(sorted(missing))}")
    if extra := given - required - optional:
        allowed = ", ".join(sorted(required | optional)) or "none"
        raise ActionError(
            f"{action.type} does not take parameter(s) {', '.join(sorted(extra))}; "
            f"allowed: {allowed}"
        )
    return handler(state, svc, action.params)


def undo(state: SimState, plan: Undo) -> str:
    """Apply an undo plan recorded by `run`. Raises ActionError if the plan is unusable."""
    svc = state.services.get(str(plan.get("service", "")))
    if svc is None:
        raise ActionError(f"undo plan names an unknown service: {plan!r}")
    kind = plan.get("kind")
    if kind == "redeploy":
        version = str(plan["version"])
        events.deploy(state, svc.name, version, f"{ACTOR} (revert)")
        return f"redeployed {svc.name} {version}"
    if kind == "scale":
        svc.replicas = int(plan["replicas"])
        scaler = plan.get("autoscaler")
        svc.autoscaler = Autoscaler.model_validate(scaler) if scaler else None
        if svc.autoscaler is not None:
            svc.autoscaler.last_change_tick = state.tick
        state.log(svc.name, "INFO", f"scaled {svc.name} back to {svc.replicas} replicas (revert)")
        return f"scaled {svc.name} back to {svc.replicas} replicas"
    if kind == "flag":
        events.set_flag(
            state,
            svc.name,
            str(plan["flag"]),
            bool(plan["enabled"]),
            float(plan["percent"]),
            f"{ACTOR} (revert)",
        )
        return f"restored flag {plan['flag']} on {svc.name} to {float(plan['percent']):g}%"
    if kind == "region":
        svc.region = str(plan["region"])
        state.log(svc.name, "WARN", f"failover reverted: serving from region {svc.region}")
        return f"{svc.name} back on region {svc.region}"
    raise ActionError(f"undo plan has unknown kind {kind!r}")
