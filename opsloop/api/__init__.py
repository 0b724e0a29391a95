"""`opsloop serve`: the HTTP API (Alertmanager webhook, incidents, approvals)."""
