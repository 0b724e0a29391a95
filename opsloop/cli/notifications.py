"""`opsloop notifications`: every delivery to a notification backend (pending, sent, failed
with its last error), and `retry ID` to send a failed one again now."""

from __future__ import annotations

import argparse
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.policy import load_policies
from opsloop.settings import Settings
from opsloop.tools.notifications import Delivery, DeliveryState, Notifications, Spool


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("notifications", parents=[common],
                       help="deliveries to Slack, PagerDuty, webhooks and email: list, retry")
    _list_options(p, argparse.SUPPRESS)
    p.set_defaults(handler=list_deliveries, state=None, limit=50, json=False)
    verbs = p.add_subparsers(dest="notifications_command", metavar="VERB")
    ls = verbs.add_parser("list", parents=[common], help="deliveries, newest first (default)")
    _list_options(ls, argparse.SUPPRESS)
    r = verbs.add_parser("retry", parents=[common],
                         help="send a failed delivery again now (its attempts start afresh)")
    r.add_argument("id", metavar="ID", type=int, help="delivery id (from `list`)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=retry)


def _list_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--state", choices=[s.value for s in DeliveryState], default=default,
                   help="only deliveries in this state")
    p.add_argument("--limit", type=int, default=default, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", default=default)


def _spool(settings: Settings) -> Spool | None:
    path = settings.notification_spool
    return Spool(path) if path.exists() else None


def list_deliveries(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    spool = _spool(settings)
    state = DeliveryState(args.state) if args.state else None
    found = [] if spool is None else spool.list(state, limit=max(1, args.limit))
    if args.json:
        ui.json([d.as_json() for d in found])
        return 0
    if not found:
        outbox = settings.work_dir / "notifications.jsonl"
        ui.out.print(f"no deliveries{f' {state.value}' if state else ''}" + (
            f": no backend has been enabled in policies/notifications.yaml ({outbox} holds "
            "every notification)" if spool is None else ""), markup=False)
        return 0
    ui.table("Notification deliveries", ["ID", "State", "Backend", "Channel", "Tries",
                                         "Message", "Last error"],
             [_row(d) for d in found])
    return 0


def _row(d: Delivery) -> list[str]:
    return [str(d.id), d.state.value, d.backend, d.channel, str(d.attempts),
            d.message[:60], (d.last_error or "")[:80]]


def retry(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    if _spool(settings) is None or (found := _spool_get(settings, args.id)) is None:
        raise UserError(f"no delivery {args.id}: see `opsloop notifications list`")
    if found.state is DeliveryState.SENT:
        raise UserError(f"delivery {args.id} was sent at {found.sent_at}: it is not sent twice")
    policies = load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
    plan = policies.notifications.plan(policies_dir=settings.policies_dir)
    if found.backend not in plan.targets:
        raise UserError(f"backend {found.backend!r} is not enabled in "
                        "policies/notifications.yaml: enable it, then retry")
    notifier = Notifications(settings.work_dir / "notifications.jsonl",
                             settings.notification_spool, plan, public_url=settings.public_url,
                             start=False)
    after = notifier.retry_now(args.id)
    assert after is not None
    if args.json:
        ui.json(after.as_json())
    elif after.state is DeliveryState.SENT:
        ui.out.print(f"delivery {after.id} sent to {after.backend}")
    elif after.state is DeliveryState.PENDING:
        ui.out.print(f"delivery {after.id} queued again for {after.backend}: {after.last_error}; "
                     "a running opsloop delivers it")
    else:
        ui.err.print(f"delivery {after.id} to {after.backend} failed: {after.last_error}",
                     markup=False)
    return 0 if after.state is not DeliveryState.FAILED else 1


def _spool_get(settings: Settings, delivery_id: int) -> Delivery | None:
    spool = _spool(settings)
    return None if spool is None else spool.get(delivery_id)
