"""One settings model for the whole process (OPSLOOP_* environment variables), passed in."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The checkout's own policies/ and runbooks/ (an editable install runs from the clone).
REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSLOOP_", extra="ignore")

    work_dir: Path = Path("work")
    policies_dir: Path = REPO_ROOT / "policies"
    runbook_dirs: list[Path] = Field(default_factory=lambda: [REPO_ROOT / "runbooks"])
    user: str = Field(default_factory=_default_user)
    seed: int = 7

    # Limits: every loop in the graph is bounded by one of these.
    recursion_limit: int = 40
    max_specialists: int = 3
    tool_calls_per_specialist: int = 60
    runbooks_per_specialist: int = 3
    min_confidence: float = 0.6

    @property
    def state_dir(self) -> Path:
        return self.work_dir / "state"

    @property
    def environments_dir(self) -> Path:
        return self.work_dir / "environments"

    @property
    def postmortems_dir(self) -> Path:
        return self.work_dir / "postmortems"

    @property
    def signals_dir(self) -> Path:
        return self.work_dir / "signals"

    @property
    def warrooms_dir(self) -> Path:
        return self.work_dir / "warrooms"

    @property
    def index_dir(self) -> Path:
        return self.work_dir / "index"
