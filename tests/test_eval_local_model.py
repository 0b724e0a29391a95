"""`opsloop eval --model local`: per case, the model's root cause beside offline and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.evals.cases import load_cases
from opsloop.evals.local_model import LOCAL_CASES, default_cases
from opsloop.llm.testing import ScriptedServer
from opsloop.settings import REPO_ROOT

CASE = "recorded/bad-deploy-web"


def test_the_default_suite_is_six_cases_that_exist() -> None:
    picked = default_cases(load_cases(REPO_ROOT / "evals" / "cases"))
    assert [c.id for c in picked] == list(LOCAL_CASES) and len(picked) == 6


def test_a_configured_endpoint_is_measured_case_by_case(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer() as server:
        monkeypatch.setenv("OPSLOOP_LLM_BASE_URL", server.url)
        monkeypatch.setenv("OPSLOOP_LLM_MODEL", "scripted")
        code = main(["--work-dir", str(tmp_path), "eval", "--model", "local", "--case", CASE,
                     "--json"])
        requests = len(server.exchanges)
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    [row] = result["cases"]
    assert result["model"] == "scripted" and row["case"] == CASE
    assert row["key"] == "bad_deploy@web" and row["offline"] == "bad_deploy@web"
    assert row["calls"] == requests > 0 and row["tokens"] > 0 and row["seconds"] > 0
    assert row["agrees_offline"] == (row["model"] == row["offline"])
    answered, asked = row["answered_by"].removeprefix("model ").split("/")
    assert 0 <= int(answered) <= int(asked) > 0  # the fallback's share is on the row
    assert "[2/2] scripted recorded/bad-deploy-web" in out.err


def test_bad_options_are_one_clear_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--work-dir", str(tmp_path), "eval", "--model", "local",
                 "--threads", "0"]) == 1
    assert "--threads must be ≥ 1 (got 0)" in capsys.readouterr().err
    assert main(["--work-dir", str(tmp_path), "eval", "--model", "local",
                 "--case", "no/such/*"]) == 1
    assert "no case matches --case no/such/*" in capsys.readouterr().err
    assert main(["--work-dir", str(tmp_path), "eval", "--package", "smollm2"]) == 1
    assert "--package belongs to `opsloop eval --model local`" in capsys.readouterr().err
