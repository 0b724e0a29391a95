"""Resilience GameDays: Chaos Toolkit experiments, run by the real engine."""
