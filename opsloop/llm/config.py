"""From settings to a `ChatOpenAI` on any OpenAI-compatible endpoint — or to none at all.

No model configured means the offline reasoner, as before. Under test
(`OPSLOOP_TESTING=1`) only loopback endpoints are accepted, so a test can never reach a
real model by accident, whatever the developer's environment says.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pydantic import SecretStr

from opsloop.settings import Settings

# The model stack (langchain_openai, openai, httpx) takes seconds to import: only a
# configured model pays for it, so offline commands stay quick.
if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

    from opsloop.llm.client import ModelClient

OPENAI_BASE_URL = "https://api.openai.com/v1"


class ModelConfigError(ValueError):
    """The model settings cannot work; the message names the setting."""


def model_enabled(settings: Settings) -> bool:
    return bool(settings.llm_base_url or settings.llm_model)


def is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint(settings: Settings) -> tuple[str, str]:
    """(base URL, model name), checked; raises ModelConfigError naming the bad setting."""
    base_url = (settings.llm_base_url or OPENAI_BASE_URL).rstrip("/")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ModelConfigError(f"OPSLOOP_LLM_BASE_URL={base_url!r} is not an http(s) URL; "
                               "want e.g. http://localhost:8000/v1")
    if not settings.llm_model:
        raise ModelConfigError(f"OPSLOOP_LLM_BASE_URL is set ({base_url}) but OPSLOOP_LLM_MODEL "
                               "is not: name the model the endpoint serves")
    if settings.testing and not is_loopback(base_url):
        raise ModelConfigError(f"refusing to call {base_url} under test (OPSLOOP_TESTING=1): "
                               "tests talk to the scripted server on loopback only")
    return base_url, settings.llm_model


def build_chat_model(settings: Settings) -> ChatOpenAI | None:
    """The configured chat model, or None when no endpoint is configured."""
    if not model_enabled(settings):
        return None
    import httpx
    from langchain_openai import ChatOpenAI

    base_url, model = endpoint(settings)
    key = settings.llm_api_key
    if key is None:
        if not is_loopback(base_url) and base_url == OPENAI_BASE_URL:
            raise ModelConfigError("OPSLOOP_LLM_MODEL is set for OpenAI but no key is: set "
                                   "OPSLOOP_LLM_API_KEY (or OPENAI_API_KEY)")
        key = SecretStr("not-needed")  # local servers (vLLM, Ollama) ignore the key
    # A proxy from the environment must not intercept a loopback server.
    http_client = httpx.Client(trust_env=False) if is_loopback(base_url) else None
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=key,
        timeout=settings.llm_timeout_seconds,
        max_retries=0,  # tenacity retries (opsloop.llm.client), with jitter and a record of each
        use_responses_api=False,  # chat completions: what every compatible server speaks
        temperature=0,
        max_tokens=settings.llm_max_output_tokens,
        http_client=http_client,
    )


def model_client(settings: Settings) -> ModelClient | None:
    """The loop's model handle (client, retries, usage ledger), or None: reason offline."""
    chat = build_chat_model(settings)
    if chat is None:
        return None
    from opsloop.llm.budget import prompt_budget
    from opsloop.llm.client import ModelClient

    try:
        prompt_budget(settings)
    except ValueError as exc:
        raise ModelConfigError(str(exc)) from exc

    return ModelClient(chat, settings)
