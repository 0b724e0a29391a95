"""llama.cpp's OpenAI-compatible server, in this process, on a local GGUF (the `local-model`
extra: xllamacpp, MIT, a prebuilt CPU wheel).

The server answers `/v1/chat/completions` with tool calls (the model's own chat template,
through jinja) and reports real token usage. It is started with one slot: llama.cpp
divides the context between slots, and one whole context per call is what the prompts are
sized for. Requests beyond one wait their turn, so the client timeout has to cover a queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

_GGUF_MAGIC = b"GGUF"


class LocalModelError(RuntimeError):
    """The local model cannot be served; says why and what to do."""


@dataclass(frozen=True)
class ServeOptions:
    gguf: Path
    alias: str  # the model name requests use
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 1
    context: int = 4096  # tokens; one slot holds all of it


def check_gguf(path: Path) -> None:
    """Refuse what is not a GGUF before llama.cpp sees it (a bad file can abort the process)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise LocalModelError(f"{path}: cannot read the model file: {exc.strerror}") from exc
    if magic != _GGUF_MAGIC:
        raise LocalModelError(f"{path}: not a GGUF file (it starts with {magic!r}, "
                              f"not {_GGUF_MAGIC!r})")


class LocalServer:
    """`with LocalServer(options) as server: ... server.base_url ...`; stops on exit."""

    def __init__(self, options: ServeOptions) -> None:
        check_gguf(options.gguf)
        if options.threads < 1 or options.context < 256 or not 0 <= options.port < 65536:
            raise LocalModelError(f"threads must be ≥ 1 (got {options.threads}), context ≥ 256 "
                                  f"(got {options.context}), port 0-65535 (got {options.port})")
        try:
            import xllamacpp
        except ImportError as exc:
            raise LocalModelError("serving a local model needs the optional extra: "
                                  "pip install 'opsloop[local-model]' (xllamacpp)") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(options.gguf)
        params.model_alias = options.alias
        params.hostname = options.host
        params.port = options.port
        params.n_ctx = options.context
        params.n_parallel = 1
        params.cpuparams.n_threads = options.threads
        params.cpuparams_batch.n_threads = options.threads
        params.use_jinja = True  # the model's own chat template: tool calls need it
        params.webui = False
        self.options = options
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:  # its only word on a taken port or an unloadable model
            raise LocalModelError(f"llama.cpp did not start on {options.host}:{options.port} "
                                  f"with {options.gguf} ({exc}); is the port taken? the "
                                  "log above says more") from exc
        address = str(self._server.listening_address or "")
        if not address.startswith("http"):
            raise LocalModelError(f"llama.cpp did not say where it listens (got {address!r})")
        self.address = address.rstrip("/")

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"

    def settings(self, timeout_seconds: float) -> dict[str, str]:
        """The OPSLOOP_LLM_* environment that points opsloop at this server."""
        return {"OPSLOOP_LLM_BASE_URL": self.base_url,
                "OPSLOOP_LLM_MODEL": self.options.alias,
                "OPSLOOP_LLM_TIMEOUT_SECONDS": f"{timeout_seconds:g}",
                "OPSLOOP_LLM_CONTEXT_TOKENS": str(self.options.context)}

    def close(self) -> None:
        # xllamacpp stops its HTTP thread and main loop when the object goes.
        self._server = None

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
