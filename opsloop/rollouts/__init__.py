"""Progressive rollouts on flagd: flag files (`flagd`, `source`), rollout plans as data
(`plan`) and their analysis with Argo Rollouts' semantics (`analysis`).

Pure data and arithmetic below policy: nothing here decides what may run; the rollout agent
(opsloop.scheduled.agents.rollouts) turns analyses into proposals for the guardrails.
"""
