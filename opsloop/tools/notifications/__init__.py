"""Notifications that leave the machine: the outbox first (the record), then a durable spool
that background workers deliver to Slack, PagerDuty, signed webhooks and email."""

from opsloop.tools.notifications.config import (
    DeliveryPlan,
    EmailTarget,
    Lifecycle,
    PagerDutyTarget,
    RetryPlan,
    SlackTarget,
    Target,
    WebhookTarget,
)
from opsloop.tools.notifications.notifier import Notifications
from opsloop.tools.notifications.spool import Delivery, DeliveryState, Spool

__all__ = [
    "Delivery",
    "DeliveryPlan",
    "DeliveryState",
    "EmailTarget",
    "Lifecycle",
    "Notifications",
    "PagerDutyTarget",
    "RetryPlan",
    "SlackTarget",
    "Spool",
    "Target",
    "WebhookTarget",
]
