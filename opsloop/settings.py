"""One settings model for the whole process (OPSLOOP_* environment variables), passed in."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
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
    experiments_dir: Path = REPO_ROOT / "experiments"  # Chaos Toolkit experiments (GameDays)
    user: str = Field(default_factory=_default_user)
    seed: int = 7
    # OPSLOOP_ALLOW_UNSAFE_POLICIES=1: run even with unsafe policies (e.g. SEV1 actions on
    # auto), which otherwise refuse to load; they are then reported as allowed warnings.
    allow_unsafe_policies: bool = False

    # Limits: every loop in the graph is bounded by one of these.
    recursion_limit: int = 40
    max_specialists: int = 3
    tool_calls_per_specialist: int = 60
    runbooks_per_specialist: int = 3
    min_confidence: float = 0.6

    # Runbook retrieval (issue 3): which embedding backend builds the vectors, and the fused
    # score below which search answers "no good match" (None: the backend's calibrated value).
    embedding_backend: str = "hashing"  # hashing | sentence-transformers | openai | chroma-default
    embedding_model: str = ""  # a sentence-transformers name/path, or the endpoint's model
    embedding_base_url: str = ""  # OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    embedding_api_key_env: str = "OPSLOOP_EMBEDDING_API_KEY"  # env var holding the key
    no_match_threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    # A chat model on any OpenAI-compatible endpoint (issue 4). Neither set: the offline reasoner.
    llm_base_url: str | None = None  # e.g. http://localhost:8000/v1 (vLLM), .../v1 (Ollama)
    llm_model: str | None = None
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPSLOOP_LLM_API_KEY", "OPENAI_API_KEY",
                                                    "llm_api_key"))
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)  # 429, 5xx, timeouts, lost connections
    llm_retry_initial_seconds: float = Field(default=1.0, ge=0)  # backoff doubles, with jitter
    llm_retry_max_seconds: float = Field(default=20.0, ge=0)
    llm_max_steps: int = Field(default=4, ge=1)  # model calls per specialist, repairs aside
    llm_max_tool_calls: int = Field(default=16, ge=0)  # tool calls per specialist
    llm_tool_output_chars: int = Field(default=3000, ge=200)  # longer tool output is trimmed
    llm_tokens_per_incident: int = Field(default=60_000, ge=0)  # then specialists must conclude
    llm_narrative: bool = True  # the model writes postmortem summaries and lessons
    # Tokens one model reply may generate: a real server in JSON mode can otherwise write
    # until its context is full (a small model does), far past any answer the schemas hold.
    llm_max_output_tokens: int = Field(default=1024, ge=16)
    # The model's context window in tokens: every prompt is fitted to it less the reply cap
    # (opsloop.llm.budget). 4096 suits a small local model; a hosted one can take far more.
    llm_context_tokens: int = Field(default=4096, ge=1040)
    testing: bool = False  # OPSLOOP_TESTING=1: refuse to build a client for a non-loopback URL

    # Real intake (issue 6): `opsloop serve`, Prometheus, the simulator over HTTP.
    api_tokens: SecretStr | None = None  # "name:role:token,..." (roles: ingest read approve admin)
    api_tokens_file: Path | None = None  # the same entries, one per line; # comments
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8080, ge=0, le=65535)
    serve_environment: str | None = None  # e.g. remote:sim=http://...,prometheus=http://...
    serve_workers: int = Field(default=2, ge=1, le=32)  # incidents run side by side
    api_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_anomalies_per_incident: int = Field(default=200, ge=1)  # the rest are counted
    slo_evaluation_seconds: float = Field(default=60.0, gt=0)  # burn rates, in `serve`
    schedule_tick_seconds: float = Field(default=15.0, gt=0)  # how often `run` checks cron
    prometheus_url: str | None = None
    promql_file: Path | None = None  # default: <policies_dir>/prometheus/promql.yaml
    http_timeout_seconds: float = Field(default=10.0, gt=0)

    # The web console (issue 17): sign-in turns an API token, or a user of this file
    # (`name:role:scrypt$...` lines, written by `python -m opsloop.web.users add`), into a
    # session. The secret signs session cookies; unset, one is generated into
    # <state dir>/console-secret (0600) and kept across restarts.
    console_users_file: Path | None = None
    console_secret: SecretStr | None = None
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Where people reach the console (e.g. https://opsloop.example.com): notifications link
    # to its incident pages and approval queue. None: notifications carry no links.
    public_url: str | None = None

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
    def runbook_proposals_dir(self) -> Path:
        return self.work_dir / "runbook-proposals"

    @property
    def warrooms_dir(self) -> Path:
        return self.work_dir / "warrooms"

    @property
    def notification_spool(self) -> Path:
        """Deliveries to notification backends (opsloop.tools.notifications.spool)."""
        return self.state_dir / "notifications.db"

    @property
    def index_dir(self) -> Path:
        return self.work_dir / "index"

    @property
    def promql_path(self) -> Path:
        return self.promql_file or self.policies_dir / "prometheus" / "promql.yaml"


class SettingsError(ValueError):
    """An OPSLOOP_* environment variable with a value the setting cannot take."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; a bad value is named by its variable, not its field."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error.get("loc", ()))
            variable = f"OPSLOOP_{field.split('.')[0].upper()}"
            problems.append(f"{variable}={error.get('input')!r}: {error.get('msg')}")
        raise SettingsError("; ".join(problems)) from None
