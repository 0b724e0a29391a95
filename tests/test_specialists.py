"""Specialist names: one definition in the catalog, which the table, runbooks and routing use."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.agents.specialists import SPECIALISTS
from opsloop.graph.build import build_diagnosis, build_graph
from opsloop.models.catalog import SPECIALIST_NAMES
from opsloop.runbooks.format import RunbookError
from opsloop.runbooks.load import parse_runbook


def test_the_specialist_table_covers_exactly_the_catalog_names() -> None:
    assert set(SPECIALISTS) == set(SPECIALIST_NAMES)
    assert all(name == spec.name for name, spec in SPECIALISTS.items())


def test_diagnosis_routes_to_every_specialist_and_each_reports_to_merge() -> None:
    edges = build_diagnosis().get_graph().edges
    routed = {e.target for e in edges if e.source == "route"}
    assert routed == set(SPECIALIST_NAMES)
    assert all(e.conditional for e in edges if e.source == "route")
    assert {e.source for e in edges if e.target == "merge"} == set(SPECIALIST_NAMES)


def test_the_diagnosis_subgraph_has_a_node_for_every_specialist() -> None:
    assert set(SPECIALIST_NAMES) <= set(build_diagnosis().nodes)
    assert "diagnose" in build_graph().nodes


def test_a_runbook_may_only_name_a_catalog_specialist(tmp_path: Path) -> None:
    text = ("---\nid: x\ntitle: X\nspecialist: {name}\nhypotheses:\n  - id: h\n"
            "    category: c\n    cause: c\n    checks:\n      - id: k\n"
            "        tool: service_info\n---\n# X\n")
    for name in SPECIALIST_NAMES:
        assert parse_runbook(tmp_path / "x.md", text.format(name=name)).specialist == name
    with pytest.raises(RunbookError, match="specialist"):
        parse_runbook(tmp_path / "x.md", text.format(name="wizard"))
