"""Runbooks as data: the format (`format`), the check language its checks are written in
(`checks`), markdown reading (`markdown`) and loading any team's runbook (`load`).

Below both the tools and the agents: the index (tools) stores these records and the
reasoner (agents) follows them, and neither is needed to read or validate one.
"""
