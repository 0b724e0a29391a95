"""Performance regressions: per-service baselines, deterministic change points, attribution.

`changepoints` finds where a series' mean steps (ruptures, a fixed penalty scaled to the
series' own noise, a Mann-Whitney U test per change); `series` turns per-minute telemetry
into the 5-minute points it runs on; `baseline` summarises a metric's normal; `attribute`
names the deploy, config or flag change nearest before a change; `regressions` judges which
changes are regressions. Pure arithmetic over numbers and the change feed's records: the
performance agent, `opsloop eval regressions` and bench/changepoints.py all run it.
"""
