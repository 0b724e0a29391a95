"""The simulated fleet: nine interdependent services and their healthy baseline."""

from __future__ import annotations

from datetime import timedelta

from opsloop.models import DeployEvent
from opsloop.simulator.state import (
    START,
    Autoscaler,
    Call,
    FlagRecord,
    ServiceState,
    SimState,
)


def _svc(**kwargs: object) -> ServiceState:
    return ServiceState.model_validate(kwargs)


def default_services() -> dict[str, ServiceState]:
    """The healthy fleet. Baseline saturation sits around 0.3-0.45 so a 3x surge overloads."""
    services = [
        _svc(
            name="web",
            tier=1,
            team="frontend",
            replicas=6,
            capacity_rps=400,
            base_rps=800,
            calls=[Call(callee="api-gateway", share=1.0, error_share=1.0)],
            latency_p50_ms=18,
            latency_p99_ms=60,
            base_error_ratio=0.0002,
            memory_limit_mb=1024,
            base_memory=0.48,
            disk_size_gb=50,
            disk_data_gb=10,
            disk_logs_gb=4,
            cost_per_replica_hour=0.12,
            version="5.3.1",
            version_history=["5.2.0", "5.3.0", "5.3.1"],
            entrypoint="PageRenderer.render",
            domain_error="RenderError",
        ),
        _svc(
            name="api-gateway",
            tier=1,
            team="edge",
            replicas=6,
            capacity_rps=350,
            base_rps=720,
            calls=[
                Call(callee="checkout", share=0.2, error_share=0.2),
                Call(callee="search", share=0.5, error_share=0.5),
                # Recommendations degrade gracefully: an empty carousel, not a failed page.
                Call(callee="recommendations", share=0.3, error_share=0.05),
            ],
            latency_p50_ms=6,
            latency_p99_ms=30,
            base_error_ratio=0.0002,
            memory_limit_mb=1024,
            base_memory=0.42,
            disk_size_gb=50,
            disk_data_gb=8,
            disk_logs_gb=4,
            cost_per_replica_hour=0.15,
            version="2.9.4",
            version_history=["2.8.7", "2.9.0", "2.9.4"],
            entrypoint="RouteHandler.proxy",
            domain_error="GatewayError",
        ),
        _svc(
            name="checkout",
            tier=1,
            team="checkout",
            replicas=8,
            capacity_rps=40,
            base_rps=140,
            calls=[
                Call(callee="payments", share=0.3, error_share=1.0),
                # Checkout retries inventory reads, so few of its failures surface.
                Call(callee="inventory", share=0.8, error_share=0.3),
                # A cache failure falls back to the database; only some requests fail.
                Call(callee="redis", share=1.0, error_share=0.3),
            ],
            latency_p50_ms=55,
            latency_p99_ms=180,
            base_error_ratio=0.0003,
            memory_limit_mb=2048,
            base_memory=0.55,
            disk_size_gb=50,
            disk_data_gb=8,
            disk_logs_gb=5,
            cost_per_replica_hour=0.25,
            version="2.13.2",
            version_history=["2.12.0", "2.13.0", "2.13.2"],
            entrypoint="OrderService.submit",
            domain_error="PricingError",
        ),
        _svc(
            name="payments",
            tier=1,
            team="payments",
            replicas=4,
            capacity_rps=30,
            base_rps=45,
            external_dependency="payments-provider",
            outage_error_ratio=0.45,
            latency_p50_ms=110,
            latency_p99_ms=400,
            base_error_ratio=0.0005,
            memory_limit_mb=2048,
            base_memory=0.5,
            disk_size_gb=50,
            disk_data_gb=6,
            disk_logs_gb=4,
            cost_per_replica_hour=0.25,
            version="1.22.0",
            version_history=["1.21.3", "1.21.4", "1.22.0"],
            entrypoint="ChargeService.authorize",
            domain_error="ChargeError",
        ),
        _svc(
            name="inventory",
            tier=2,
            team="catalog",
            replicas=4,
            capacity_rps=100,
            base_rps=170,
            calls=[Call(callee="postgres", share=1.0, error_share=1.0)],
            latency_p50_ms=10,
            latency_p99_ms=45,
            base_error_ratio=0.0002,
            prior_error_ratio=0.0003,
            memory_limit_mb=2048,
            base_memory=0.5,
            disk_size_gb=50,
            disk_data_gb=8,
            disk_logs_gb=4,
            cost_per_replica_hour=0.2,
            version="3.4.1",
            version_history=["3.3.0", "3.4.0", "3.4.1"],
            entrypoint="StockService.reserve",
            domain_error="StockError",
        ),
        _svc(
            name="search",
            tier=2,
            team="discovery",
            replicas=6,
            capacity_rps=150,
            base_rps=360,
            calls=[Call(callee="redis", share=1.0, error_share=0.2)],
            latency_p50_ms=35,
            latency_p99_ms=120,
            base_error_ratio=0.0003,
            memory_limit_mb=4096,
            base_memory=0.6,
            disk_size_gb=100,
            disk_data_gb=40,
            disk_logs_gb=5,
            cost_per_replica_hour=0.3,
            version="4.7.3",
            version_history=["4.6.9", "4.7.2", "4.7.3"],
            entrypoint="QueryPlanner.execute",
            domain_error="QueryError",
        ),
        _svc(
            name="recommendations",
            tier=3,
            team="discovery",
            replicas=8,
            capacity_rps=80,
            base_rps=216,
            calls=[Call(callee="postgres", share=0.5, error_share=1.0)],
            latency_p50_ms=25,
            latency_p99_ms=90,
            base_error_ratio=0.0004,
            memory_limit_mb=4096,
            base_memory=0.55,
            disk_size_gb=50,
            disk_data_gb=12,
            disk_logs_gb=4,
            cost_per_replica_hour=0.35,
            version="1.8.3",
            version_history=["1.7.9", "1.8.2", "1.8.3"],
            autoscaler=Autoscaler(min_replicas=8, max_replicas=12, target_cpu=0.6),
            entrypoint="RankingModel.score",
            domain_error="ScoringError",
        ),
        _svc(
            name="postgres",
            tier=1,
            team="data",
            replicas=3,
            capacity_rps=600,
            base_rps=600,
            latency_p50_ms=2,
            latency_p99_ms=12,
            base_error_ratio=0.0001,
            memory_limit_mb=16384,
            base_memory=0.62,
            disk_size_gb=500,
            disk_data_gb=300,
            disk_logs_gb=10,
            cost_per_replica_hour=1.2,
            version="16.4",
            version_history=["16.2", "16.3", "16.4"],
            has_primary=True,
            primary_down_error=0.3,
            primary_down_latency_ms=800,
            entrypoint="Executor.run",
            domain_error="QueryError",
        ),
        _svc(
            name="redis",
            tier=2,
            team="data",
            replicas=3,
            capacity_rps=5000,
            base_rps=4000,
            latency_p50_ms=0.6,
            latency_p99_ms=3,
            base_error_ratio=0.0001,
            memory_limit_mb=8192,
            base_memory=0.55,
            disk_size_gb=50,
            disk_data_gb=10,
            disk_logs_gb=2,
            cost_per_replica_hour=0.4,
            version="7.2.5",
            version_history=["7.0.15", "7.2.4", "7.2.5"],
            has_primary=True,
            # Clients wait out connect timeouts, then fall back to the database.
            primary_down_error=0.2,
            primary_down_latency_ms=520,
            entrypoint="Command.execute",
            domain_error="CommandError",
        ),
    ]
    return {s.name: s for s in services}


def _past_deploys(services: dict[str, ServiceState]) -> list[DeployEvent]:
    """Each service's recent releases, days before the simulation, so history is not empty."""
    events: list[DeployEvent] = []
    for i, svc in enumerate(services.values()):
        history = svc.version_history
        for j in range(1, len(history)):
            days_ago = (len(history) - j) * 3 + (i % 3)
            events.append(
                DeployEvent(
                    at=START - timedelta(days=days_ago, hours=(i * 5) % 7 + 1),
                    service=svc.name,
                    version=history[j],
                    previous_version=history[j - 1],
                    author=f"{svc.team}-ci",
                )
            )
    return sorted(events, key=lambda e: e.at)


def default_flags() -> list[FlagRecord]:
    """Flags already in production; the healthy ones stay harmless."""
    return [
        FlagRecord(
            key="new-checkout-flow",
            service="checkout",
            enabled=False,
            rollout_percent=0,
            updated_tick=-20_000,
            owner="checkout",
        ),
        FlagRecord(
            key="semantic-ranking",
            service="search",
            enabled=True,
            rollout_percent=100,
            updated_tick=-60_000,
            owner="discovery",
        ),
        FlagRecord(
            key="rec-model-v7",
            service="recommendations",
            enabled=True,
            rollout_percent=50,
            updated_tick=-9_000,
            owner="discovery",
        ),
        FlagRecord(
            key="dark-mode",
            service="web",
            enabled=True,
            rollout_percent=100,
            updated_tick=-200_000,
            owner="frontend",
        ),
    ]


def new_state(seed: int, scenario: str, history_minutes: int) -> SimState:
    """A healthy fleet whose history will be simulated from `-history_minutes` up to tick 0."""
    services = default_services()
    return SimState(
        seed=seed,
        scenario=scenario,
        tick=-history_minutes - 1,
        history_start=-history_minutes,
        services=services,
        flags=default_flags(),
        deploys=_past_deploys(services),
        series={name: {} for name in services},
        logs={name: [] for name in services},
    )
