"""How much of a loop run is production's own work, when production is the embedded simulator.

Against real production a metric read is a Prometheus query and `wait` is real minutes; here
both are the in-process simulator computing series, log lines and physics ticks. That work
is production's, not the loop's, so graph_overhead.py reports it apart: the thread CPU time
spent inside the simulator's parts (metrics, change feed, clock, actuator), counted once per
thread for nested calls. Thread CPU, not wall time: the specialists run in parallel threads
under one interpreter lock, and a wall clock would also count the other threads' turns.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opsloop.simulator.env import SimActuator, SimClock
from opsloop.simulator.telemetry import SimChangeFeed, SimMetrics

_PARTS: list[tuple[type, tuple[str, ...]]] = [
    (SimMetrics, ("metric", "average")),
    (SimChangeFeed, ("services", "logs", "deploys", "flags", "flag_changes", "variant_counts",
                     "experiments", "releases", "sbom")),
    (SimClock, ("wait",)),
    (SimActuator, ("_execute", "_revert", "_stored")),
]


class ProductionTime:
    """Accumulates the simulator's thread CPU seconds while `measuring()` is open."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._on = False
        self._lock = threading.Lock()
        self._depth = threading.local()
        self._installed: list[tuple[type, str, Any]] = []

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0 and self._on:
                    took = time.thread_time() - started
                    with self._lock:
                        self.seconds += took
        return run

    def install(self) -> None:
        for cls, names in _PARTS:
            for name in names:
                original = cls.__dict__[name]
                self._installed.append((cls, name, original))
                setattr(cls, name, self._timed(original))

    def uninstall(self) -> None:
        while self._installed:
            cls, name, original = self._installed.pop()
            setattr(cls, name, original)

    @contextmanager
    def measuring(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def take(self) -> float:
        """Seconds measured since the last take."""
        with self._lock:
            taken, self.seconds = self.seconds, 0.0
        return taken
