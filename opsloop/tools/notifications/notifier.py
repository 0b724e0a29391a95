"""The loop's notifier: the outbox line first (the record), then deliveries in the background.

`notify` never blocks on the network and never raises into the loop: it writes the outbox,
queues one delivery per routed backend in the spool, wakes that backend's worker and returns.
Each backend has its own daemon thread, so a backend that is down (or slow to time out) only
delays its own deliveries. Retries are scheduled in the spool (exponential backoff with
jitter), so they survive a restart, and a process resumes what another left pending.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from opsloop.tools.notifications.config import DeliveryPlan, RetryPlan, Target
from opsloop.tools.notifications.send import Attempt, attempt
from opsloop.tools.notifications.spool import Delivery, DeliveryState, Spool
from opsloop.tools.notify import NoticeLedger, OutboxNotifier

log = logging.getLogger("opsloop.notifications")

IDLE_POLL_SECONDS = 5.0  # a worker also looks for rows another process queued or retried


def backoff(retry: RetryPlan, failed_attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: the initial delay doubled per failure, capped, with
    "equal jitter" (half fixed, half random) so backends recovering are not hit in step; at
    least what a 429's Retry-After asked for, within the cap."""
    ceiling = min(retry.backoff_max_seconds,
                  retry.backoff_initial_seconds * 2 ** max(0, failed_attempts - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry.backoff_max_seconds))
    return delay


def deliver_one(spool: Spool, d: Delivery, target: Target, retry: RetryPlan,
                public_url: str | None) -> Attempt:
    """One attempt at a claimed delivery, and its outcome recorded."""
    result = attempt(d, target, retry.timeout_seconds, public_url)
    if result.sent:
        spool.mark_sent(d.id)
    else:
        failed = d.attempts + 1
        again = result.retry and failed < retry.attempts
        when = time.time() + backoff(retry, failed, result.retry_after) if again else None
        spool.mark_attempt_failed(d.id, f"attempt {failed}/{retry.attempts}: {result.error}",
                                  when)
        (log.info if again else log.warning)("notification %s to %s: %s%s", d.id, d.backend,
                                             result.error, "" if again else " (gave up)")
    return result


class _Worker(threading.Thread):
    def __init__(self, spool: Spool, target: Target, retry: RetryPlan,
                 public_url: str | None) -> None:
        super().__init__(name=f"opsloop-notify-{target.name}", daemon=True)
        self.spool, self.target, self.retry, self.public_url = spool, target, retry, public_url
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        lease = self.retry.timeout_seconds * 3 + 5  # an attempt always ends well within it
        while not self.stopping.is_set():
            try:
                batch = self.spool.claim(self.target.name, lease)
                for d in batch:
                    deliver_one(self.spool, d, self.target, self.retry, self.public_url)
                if batch:
                    continue
                due = self.spool.next_due(self.target.name)
            except Exception:  # a locked or broken spool: log, wait, try again
                log.exception("notification worker %s", self.target.name)
                due = None
            wait = IDLE_POLL_SECONDS if due is None else min(IDLE_POLL_SECONDS,
                                                             max(0.05, due - time.time()))
            self.wake.wait(wait)
            self.wake.clear()


class Notifications:
    """The `Notifier` the loop uses: outbox, spool and one worker per enabled backend."""

    def __init__(self, outbox: Path, spool_path: Path, plan: DeliveryPlan,
                 ledger: NoticeLedger | None = None, public_url: str | None = None,
                 start: bool = True) -> None:
        self.outbox = OutboxNotifier(outbox, ledger)
        self.plan = plan
        self.public_url = public_url
        self.spool = Spool(spool_path) if plan.targets else None
        self.workers: dict[str, _Worker] = {}
        if self.spool is not None and start:
            for name, target in plan.targets.items():
                self.workers[name] = _acquire(self.spool, target, plan.retry, public_url)

    def notify(self, channel: str, message: str, data: dict[str, Any],
               key: str | None = None) -> str:
        """Outbox now, other backends in the background; never raises."""
        try:
            where = self.outbox.notify(channel, message, data, key)
        except Exception as exc:
            log.exception("could not write the notification outbox")
            where = f"{channel} (outbox write failed: {type(exc).__name__})"
        backends = self.plan.backends_for(channel)
        if not backends or self.spool is None:
            return where
        try:
            self.spool.enqueue(key or f"once:{uuid.uuid4().hex}", channel, message, data,
                               backends)
        except Exception as exc:
            log.exception("could not queue notification deliveries")
            return f"{where}; NOT queued for {', '.join(backends)} ({type(exc).__name__})"
        for name in backends:
            if name in self.workers:
                self.workers[name].wake.set()
        return f"{where}, and to {', '.join(backends)}"

    def drain(self, seconds: float) -> bool:
        """Wait up to `seconds` until no delivery is due now or being sent (those waiting
        for a retry later do not count); whether it got there."""
        if self.spool is None:
            return True
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not any(self.spool.unsettled(name) for name in self.plan.targets):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Let go of this notifier's workers (stopped when nothing else in the process uses
        them); what is still queued stays in the spool for the next process."""
        workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            _release(worker)

    def retry_now(self, delivery_id: int) -> Delivery | None:
        """A failed delivery sent again now, in this thread (the CLI's `retry`)."""
        assert self.spool is not None
        d = self.spool.retry(delivery_id)
        if d is None or d.state is not DeliveryState.PENDING:
            return d
        target = self.plan.targets.get(d.backend)
        if target is None:
            return d  # the backend is disabled now: stays pending until it is enabled
        claimed = self.spool.claim_id(delivery_id, self.plan.retry.timeout_seconds * 3 + 5)
        if claimed is not None:  # else a worker took it first, and sends it
            deliver_one(self.spool, claimed, target, self.plan.retry, self.public_url)
        return self.spool.get(delivery_id)


# One worker per (spool, backend) in a process, however many notifiers are built on it (the
# API builds a loop per worker thread or per request): they share it, counted.
_shared_lock = threading.Lock()
_shared: dict[tuple[Path, Target, RetryPlan, str | None], tuple[_Worker, int]] = {}


def _acquire(spool: Spool, target: Target, retry: RetryPlan, public_url: str | None) -> _Worker:
    key = (spool.path.resolve(), target, retry, public_url)
    with _shared_lock:
        if not _shared:
            atexit.unregister(_drain_at_exit)
            atexit.register(_drain_at_exit)
        found = _shared.get(key)
        if found is None or not found[0].is_alive():
            found = (_Worker(spool, target, retry, public_url), 0)
            found[0].start()
        _shared[key] = (found[0], found[1] + 1)
        return found[0]


def _release(worker: _Worker) -> None:
    with _shared_lock:
        key = next((k for k, (w, _) in _shared.items() if w is worker), None)
        if key is None:
            return
        users = _shared[key][1] - 1
        if users > 0:
            _shared[key] = (worker, users)
            return
        del _shared[key]
    worker.stopping.set()
    worker.wake.set()
    worker.join(timeout=worker.retry.timeout_seconds + 1)


def _drain_at_exit() -> None:
    """A short-lived command (an approval from the CLI) gets a moment to deliver what it
    queued; whatever is left is resumed by the next process that starts a worker."""
    with _shared_lock:
        workers = [w for w, _ in _shared.values()]
    if not workers:
        return
    end = time.monotonic() + max(w.retry.drain_seconds_at_exit for w in workers)
    while time.monotonic() < end:
        try:
            if not any(w.spool.unsettled(w.target.name) for w in workers):
                break
        except Exception:
            break
        time.sleep(0.05)
    for worker in workers:
        worker.stopping.set()
        worker.wake.set()
