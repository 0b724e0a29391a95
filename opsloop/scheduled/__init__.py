"""Scheduled agents: the work opsloop does on a clock, beside the incidents.

An agent observes production with read-only tools, analyses what it saw into findings, and
may propose changes; proposals go through the incidents' own change path (guardrails ->
approval -> act -> verify -> learn). `base` holds the types an agent is written against,
`agents/` one module per agent, `registry` the table of them.
"""
