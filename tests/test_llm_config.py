"""Model configuration: offline by default, any OpenAI-compatible endpoint, never a real one
under test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsloop.graph.runner import OperateLoop
from opsloop.llm.config import ModelConfigError, build_chat_model, is_loopback, model_client
from opsloop.settings import Settings


def test_the_suite_runs_under_the_testing_guard() -> None:
    assert os.environ["OPSLOOP_TESTING"] == "1"
    assert Settings().testing


def test_no_endpoint_means_the_offline_reasoner(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path)
    assert build_chat_model(settings) is None
    loop = OperateLoop(settings)
    try:
        assert loop.model is None
    finally:
        loop.close()


def test_a_real_endpoint_is_refused_under_test(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path, llm_model="gpt-4o-mini", llm_api_key="sk-test")
    with pytest.raises(ModelConfigError, match=r"refusing to call https://api\.openai\.com"):
        model_client(settings)
    remote = Settings(work_dir=tmp_path, llm_base_url="http://10.0.0.8:8000/v1", llm_model="m")
    with pytest.raises(ModelConfigError, match="OPSLOOP_TESTING"):
        OperateLoop(remote)


def test_a_base_url_without_a_model_names_the_missing_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="OPSLOOP_LLM_MODEL"):
        build_chat_model(Settings(work_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ModelConfigError, match="not an http"):
        build_chat_model(Settings(work_dir=tmp_path, llm_base_url="ftp://x", llm_model="m"))


def test_chat_completions_with_tenacity_doing_the_retries(tmp_path: Path) -> None:
    chat = build_chat_model(Settings(work_dir=tmp_path, llm_base_url="http://localhost:8000/v1",
                                     llm_model="qwen", llm_timeout_seconds=7))
    assert chat is not None
    assert chat.use_responses_api is False
    assert chat.max_retries == 0 and chat.request_timeout == 7
    assert chat.openai_api_base == "http://localhost:8000/v1" and chat.model_name == "qwen"


def test_the_key_falls_back_to_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-env")
    assert Settings().llm_api_key is not None
    assert Settings().llm_api_key.get_secret_value() == "sk-from-openai-env"  # type: ignore[union-attr]
    monkeypatch.setenv("OPSLOOP_LLM_API_KEY", "sk-own")
    assert Settings().llm_api_key.get_secret_value() == "sk-own"  # type: ignore[union-attr]


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8000/v1", True), ("http://localhost/v1", True), ("http://[::1]:1/v1", True),
    ("https://api.openai.com/v1", False), ("http://127.0.0.1.evil.com/v1", False)])
def test_loopback_is_judged_by_address(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback
