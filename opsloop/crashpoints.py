"""Named points where the crash suite kills the process, as a kill -9 would, at a chosen moment.

`OPSLOOP_CRASH_AT=<point>[#<n>]` makes the n-th arrival (default the first) at `<point>` send
SIGKILL to this process: no exception handler, no `finally`, no flush runs, exactly like a
power cut or the OOM killer. Unset (always, outside the crash suite), a point is one dict
lookup. The points sit just after a side effect and before the record of it, where a crash
is most likely to lose or double work: `checkpoint.saved`, `start.saved`, `decide.claimed`,
`run.invoked`, `act.executed`, `notify.recorded`, `notify.written`, `verify.waited`,
`verify.reverted`, `learn.drafted`.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_ENV = "OPSLOOP_CRASH_AT"
_arrivals: Counter[str] = Counter()


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(_ENV, "").strip()
    if not spec:
        return None
    name, _, nth = spec.partition("#")
    return name, int(nth) if nth.isdigit() and int(nth) > 0 else 1


def crash_point(name: str) -> None:
    """Die here (SIGKILL) when the crash suite asked for this point's n-th arrival."""
    target = _target()
    if target is None or target[0] != name:
        return
    _arrivals[name] += 1
    if _arrivals[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
