"""`opsloop ask` with a model: the answer is written from the retrieved records only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from llm_server import model_settings

from opsloop.agents.ask import answer
from opsloop.agents.ask_records import Records
from opsloop.graph.runner import OperateLoop
from opsloop.llm.config import model_client
from opsloop.llm.prompting import data_blocks
from opsloop.llm.testing import Fault, ScriptedServer
from opsloop.settings import Settings
from opsloop.watch import run_scenario


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory,
            make_loop: Callable[[Settings], OperateLoop]) -> Records:
    settings = Settings(work_dir=tmp_path_factory.mktemp("askm") / "work")
    loop = make_loop(settings)
    try:
        for name in ("flag_rollout_errors", "memory_leak"):
            run_scenario(loop, name, 7, lambda _m: None)
        return Records.load(loop.store.incidents(), settings.postmortems_dir,
                            settings.signals_dir)
    finally:
        loop.close()


def test_the_model_writes_from_the_records_it_was_given(tmp_path: Path,
                                                       records: Records) -> None:
    with ScriptedServer() as server:
        client = model_client(model_settings(tmp_path, server))
        result = answer("why did checkout fail?", records, client)
        [exchange] = server.exchanges
    given = data_blocks(exchange.request["messages"][1]["content"])["records"][0]
    assert result.answered_by == "scripted"
    assert {c.ref for c in result.citations} <= {g["ref"] for g in given}
    assert "flag_rollout" in result.text


def test_an_answer_citing_records_it_was_not_given_is_replaced(tmp_path: Path,
                                                              records: Records) -> None:
    invented = {"content": json.dumps({"answer": "INC-0042 did it", "citations": ["INC-0042"]})}
    with ScriptedServer() as server:
        server.script(Fault("reply", message=invented))
        result = answer("why did checkout fail?", records,
                        model_client(model_settings(tmp_path, server)))
    assert result.answered_by == "records"
    assert "INC-0042" not in result.text and "flag_rollout" in result.text
