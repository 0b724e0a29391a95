"""Experiment files: Chaos Toolkit's own validation, then opsloop's extension, each error
naming the file and the field (or line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsloop.chaos.experiments import ExperimentError, find, load_experiment, load_folder
from opsloop.chaos.tolerances import at_least, at_most
from opsloop.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "experiments" / "search-replica-loss.json"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SHIPPED.read_text())
    return data


def written(tmp_path: Path, document: dict[str, Any], name: str = "exp.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_every_shipped_experiment_is_valid() -> None:
    experiments, errors = load_folder(REPO_ROOT / "experiments")
    assert errors == []
    assert {e.name for e in experiments} >= {"search-replica-loss", "checkout-failing-replica"}
    search = find(REPO_ROOT / "experiments", "search-replica-loss")
    assert search.blast_radius.services == ("search",)
    assert search.weights["search-p99-under-400ms"] == 2


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("title: x\nmethod: [\n  - a: b\n")
    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)
    assert caught.value.where.startswith("line ")


def test_the_engine_rejects_an_experiment_without_a_method(tmp_path: Path) -> None:
    document = shipped()
    del document["method"]
    with pytest.raises(ExperimentError) as caught:
        load_experiment(written(tmp_path, document))
    assert caught.value.where == "method"
    assert str(tmp_path / "exp.json") in str(caught.value)


@pytest.mark.parametrize(("change", "where"), [
    (lambda e: e.update(duration_minutes=0), "extensions.opsloop.duration_minutes"),
    (lambda e: e.update(services=[]), "extensions.opsloop.services"),
    (lambda e: e.update(instances=True), "extensions.opsloop.instances"),
    (lambda e: e.update(weights={"no-such-probe": 1}), "extensions.opsloop.weights"),
    (lambda e: e.update(weights={"search-p99-under-400ms": -1}),
     "extensions.opsloop.weights.search-p99-under-400ms"),
])
def test_a_bad_extension_names_its_field(tmp_path: Path, change: Any, where: str) -> None:
    document = shipped()
    change(document["extensions"][0])
    with pytest.raises(ExperimentError) as caught:
        load_experiment(written(tmp_path, document))
    assert caught.value.where == where


def test_an_experiment_without_rollbacks_is_refused(tmp_path: Path) -> None:
    document = shipped()
    document["rollbacks"] = []
    with pytest.raises(ExperimentError, match="rollbacks: an experiment must say how to undo"):
        load_experiment(written(tmp_path, document))


def test_one_bad_file_never_hides_the_others(tmp_path: Path) -> None:
    written(tmp_path, shipped(), "good.json")
    (tmp_path / "broken.json").write_text("{\"title\": ")
    experiments, errors = load_folder(tmp_path)
    assert [e.name for e in experiments] == ["good"]
    assert [e.path.name for e in errors] == ["broken.json"]
    with pytest.raises(ExperimentError, match=r"no such experiment \(experiments: good\)"):
        find(tmp_path, "missing")


def test_tolerances_never_pass_without_a_number() -> None:
    ok = {"status": 200, "body": {"value": 0.004}}
    assert at_most(0.01, ok) and not at_most(0.001, ok) and at_least(0.001, ok)
    assert not at_most(1.0, {"status": 200, "body": {"value": None}})
    assert not at_most(1.0, {"status": 500, "body": {"value": 0.0}})
    assert not at_most(1.0, {"status": 200, "body": {"value": float("nan")}})
