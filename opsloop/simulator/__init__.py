"""The embedded offline default environment: a simulated production fleet with scenarios."""

from opsloop.models.catalog import METRICS
from opsloop.simulator.env import SimEnvironment
from opsloop.simulator.scenarios import (
    SCENARIOS,
    Expected,
    Scenario,
    UnknownScenarioError,
    get_scenario,
)
from opsloop.simulator.state import SimState

__all__ = [
    "METRICS",
    "SCENARIOS",
    "Expected",
    "Scenario",
    "SimEnvironment",
    "SimState",
    "UnknownScenarioError",
    "get_scenario",
]
