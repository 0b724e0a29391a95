"""The base of every file operators edit and opsloop validates: strict, frozen, versioned.

Here rather than in `opsloop.policy` because the tools read operator files too (the PromQL
mapping in policies/prometheus/), and tools sit below the policy engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Every policy object: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyFile(StrictModel):
    """Every policy file starts with `version: 1`, so a future format can be told apart."""

    version: Literal[1]
