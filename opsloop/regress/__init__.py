"""Performance regressions: per-service baselines, deterministic change points, attribution."""
