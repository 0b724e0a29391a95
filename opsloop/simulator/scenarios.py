"""The built-in incidents: seeded, reproducible, each a fault scheduled into a healthy fleet.

`expected` is ground truth for tests and evals only; nothing shown to an agent reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opsloop.models import ParamValue
from opsloop.simulator import physics
from opsloop.simulator.events import schedule
from opsloop.simulator.fleet import new_state
from opsloop.simulator.state import SimState

CHAOS_EXPERIMENT_ID = "chaos-redis-primary-loss-20261102"


@dataclass(frozen=True)
class Expected:
    """The answer key: who should handle it, what it is, where, and what fixes it."""

    specialist: str
    category: str
    service: str
    action: str
    params: dict[str, ParamValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    fault_at_minute: int  # minutes after 09:00; negative means it started during the history
    run_minutes: int  # how far a demo may advance looking for alerts
    setup: Callable[[SimState, int], None]  # schedules the fault (and noise) into the state
    expected: Expected
    history_minutes: int = 120  # simulated before 09:00 so baselines and offsets have data
    # False for a fault no alert rule in policies/alerts.yaml catches: only the anomaly
    # detectors (alerts.yaml `detectors:`) can see it.
    rules_cover: bool = True

    def build(self, seed: int) -> SimState:
        """A state at 09:00 with `history_minutes` of telemetry behind it."""
        state = new_state(seed, self.name, self.history_minutes)
        self.setup(state, self.fault_at_minute)
        while state.tick < 0:
            physics.step(state)
        return state


def _bad_deploy(state: SimState, at: int) -> None:
    schedule(state, -110, "deploy", "web", version="5.3.1-cfg2", kind="config", author="frontend")
    schedule(state, -50, "deploy", "recommendations", version="1.8.4", author="discovery-ci")
    schedule(
        state,
        at,
        "deploy",
        "checkout",
        version="2.14.0",
        author="checkout-ci",
        behaviour={
            "error_ratio": 0.3,
            "latency_multiplier": 1.1,
            "exception": "NullPointerException in OrderService.submit",
        },
    )


def _dependency_outage(state: SimState, at: int) -> None:
    schedule(state, -70, "deploy", "search", version="4.7.4", author="discovery-ci")
    schedule(state, at, "region_outage", "payments", region="primary")


def _flag_rollout(state: SimState, at: int) -> None:
    schedule(state, at - 60, "deploy", "inventory", version="3.4.2", author="catalog-ci")
    schedule(
        state,
        at,
        "flag",
        "checkout",
        key="new-checkout-flow",
        enabled=True,
        percent=10,
        variant_error_ratio=0.3,
        author="checkout-release-bot",
    )
    schedule(
        state,
        at + 10,
        "flag",
        "checkout",
        key="new-checkout-flow",
        enabled=True,
        percent=25,
        author="checkout-release-bot",
    )


def _traffic_surge(state: SimState, at: int) -> None:
    # A push notification campaign: the apps hit the gateway directly; the edge takes it all.
    schedule(
        state,
        at - 5,
        "log",
        "api-gateway",
        message="config reload: rate-limit profile 'campaign-nov' loaded",
    )
    for service, multiplier in (
        ("api-gateway", 3.0),
        ("checkout", 1.2),
        ("search", 1.5),
        ("recommendations", 1.5),
    ):
        schedule(state, at, "traffic", service, multiplier=multiplier)


def _memory_leak(state: SimState, at: int) -> None:
    schedule(state, -100, "deploy", "web", version="5.3.1-cfg3", kind="config", author="frontend")
    schedule(
        state,
        at,
        "log",
        "inventory",
        message="stock cache: catalog import job started, caching enabled for 'bundles'",
    )
    schedule(state, at, "leak", "inventory", rate=0.004)


def _disk_filling(state: SimState, at: int) -> None:
    schedule(state, -90, "deploy", "recommendations", version="1.8.4", author="discovery-ci")
    schedule(
        state,
        at,
        "log",
        "search",
        message="log level for com.shop.search.ranking set to DEBUG by discovery-oncall",
    )
    schedule(state, at, "log_growth", "search", gb_per_min=0.22)


def _latency_regression(state: SimState, at: int) -> None:
    schedule(
        state, -80, "deploy", "checkout", version="2.13.2-cfg1", kind="config", author="checkout"
    )
    schedule(
        state,
        at,
        "deploy",
        "search",
        version="4.8.0",
        author="discovery-ci",
        behaviour={"latency_multiplier": 2.5},
    )


def _quiet_slowdown(state: SimState, at: int) -> None:
    # p99 ~1.6x: past the runbook's "well above baseline" (1.5x), under HighLatencyP99's 2x.
    schedule(state, -60, "deploy", "recommendations", version="1.8.4", author="discovery-ci")
    schedule(
        state,
        at,
        "deploy",
        "inventory",
        version="3.5.0",
        author="catalog-ci",
        behaviour={"latency_multiplier": 1.8},
    )


def _cost_runaway(state: SimState, at: int) -> None:
    schedule(
        state,
        at,
        "autoscaler",
        "recommendations",
        target_cpu=0.05,
        max_replicas=40,
        author="infra-bot",
    )


def _slo_slow_burn(state: SimState, at: int) -> None:
    # Half of the 28-day budget (99.9%) was already spent on earlier blips.
    state.services["inventory"].prior_error_ratio = 0.0005
    # ~0.85% overall: above 6x a 99.9% budget (0.6%), below 14.4x (1.44%): a slow burn.
    schedule(state, at, "bad_instance", "inventory", instance="inventory-2", error_ratio=0.034)


def _chaos_experiment(state: SimState, at: int) -> None:
    # An earlier, well-behaved experiment on search: noise an operator has to see past.
    schedule(
        state,
        -100,
        "chaos_start",
        "search",
        id="chaos-search-instance-loss-20261102",
        title="Search loses one replica",
        instance="search-5",
        duration_minutes=15,
        steady_state={
            "title": "search p99 under 400ms",
            "probes": [{"service": "search", "metric": "latency_p99_ms", "tolerance": "< 400"}],
        },
        method=["terminate instance search-5"],
        rollbacks=["restart instance search-5"],
    )
    schedule(
        state,
        at,
        "chaos_start",
        "redis",
        id=CHAOS_EXPERIMENT_ID,
        title="Checkout survives the loss of the redis primary",
        instance="redis-0",
        duration_minutes=180,
        steady_state={
            "title": "checkout p99 under 800ms",
            "probes": [{"service": "checkout", "metric": "latency_p99_ms", "tolerance": "< 800"}],
        },
        method=["terminate redis primary (redis-0) and hold it down for 180 minutes"],
        rollbacks=["restart redis primary (redis-0)"],
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "bad_deploy",
            "Checkout release throws on submit",
            "checkout 2.14.0 throws NullPointerException for ~30% of orders; callers see it too.",
            20,
            90,
            _bad_deploy,
            Expected("incident", "bad_deploy", "checkout", "rollback_deploy"),
        ),
        Scenario(
            "dependency_outage",
            "Payments provider primary region down",
            "The payments provider's primary region stops answering; ~45% of charges fail.",
            25,
            90,
            _dependency_outage,
            Expected(
                "incident", "dependency_outage", "payments", "failover", {"to_region": "secondary"}
            ),
        ),
        Scenario(
            "flag_rollout_errors",
            "new-checkout-flow rollout fails its cohort",
            "new-checkout-flow ramps to 25% on checkout; its cohort fails ~30% of the time.",
            30,
            90,
            _flag_rollout,
            Expected(
                "rollout", "flag_rollout", "checkout", "disable_flag", {"flag": "new-checkout-flow"}
            ),
        ),
        Scenario(
            "traffic_surge",
            "Marketing push triples gateway traffic",
            "A campaign push sends 3x traffic to api-gateway; it saturates and sheds requests.",
            30,
            90,
            _traffic_surge,
            Expected("capacity", "traffic_surge", "api-gateway", "scale_out", {"replicas": 18}),
        ),
        Scenario(
            "memory_leak",
            "Inventory leaks memory until OOM kills",
            "inventory's heap grows ~0.4%/min of its limit; replicas get OOMKilled in turn.",
            20,
            240,
            _memory_leak,
            Expected("remediation", "memory_leak", "inventory", "restart"),
        ),
        Scenario(
            "disk_filling",
            "Search debug logs fill its disk",
            "DEBUG logging on search writes ~0.22GB/min; the volume passes 90% within the run.",
            20,
            240,
            _disk_filling,
            Expected("remediation", "disk_filling", "search", "purge_logs"),
        ),
        Scenario(
            "latency_regression",
            "Search 4.8.0 is 2.5x slower at p99",
            "search 4.8.0 raises its p99 ~2.5x without raising errors.",
            30,
            90,
            _latency_regression,
            Expected("performance", "latency_regression", "search", "rollback_deploy"),
        ),
        Scenario(
            "quiet_slowdown",
            "Inventory 3.5.0 is 1.6x slower at p99, under the 2x alert rule",
            "inventory 3.5.0 raises its p99 ~1.6x without errors; no alert rule fires, only "
            "the anomaly detectors see it.",
            30,
            120,
            _quiet_slowdown,
            Expected("performance", "latency_regression", "inventory", "rollback_deploy"),
            rules_cover=False,
        ),
        Scenario(
            "cost_runaway",
            "Recommendations autoscaler runs away",
            "An HPA change (target CPU 5%, max 40) scales recommendations to 40 replicas on flat "
            "traffic: ~5x cost, CPU near idle.",
            20,
            120,
            _cost_runaway,
            Expected("cost", "cost_runaway", "recommendations", "scale_in", {"replicas": 8}),
        ),
        Scenario(
            "slo_slow_burn",
            "One bad inventory replica burns the error budget slowly",
            "inventory-2 sits on a degraded node and fails ~3.4% of its requests (~0.85% overall) "
            "for hours: a slow burn only the 6h/30m window sees.",
            -170,
            240,
            _slo_slow_burn,
            Expected("health", "slo_burn", "inventory", "replace_instance"),
            history_minutes=360,
        ),
        Scenario(
            "chaos_experiment",
            "Chaos experiment breaches checkout's steady state",
            "A Chaos Toolkit experiment holds the redis primary down; cache misses push checkout "
            "p99 past 800ms and fail some requests.",
            30,
            90,
            _chaos_experiment,
            Expected(
                "resilience",
                "chaos_experiment",
                "redis",
                "abort_experiment",
                {"experiment": CHAOS_EXPERIMENT_ID},
            ),
        ),
    ]
}


class UnknownScenarioError(KeyError):
    """A scenario name that does not exist; the message lists the ones that do."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_scenario(name: str) -> Scenario:
    """The scenario called `name`, or UnknownScenarioError listing the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(
            f"unknown scenario {name!r}; valid scenarios: {', '.join(sorted(SCENARIOS))}"
        ) from None
