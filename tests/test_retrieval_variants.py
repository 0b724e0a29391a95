"""The retrieval eval's name-free query variant."""

from __future__ import annotations

from opsloop.evals.retrieval import VARIANTS, evaluate_variants, load_set
from opsloop.settings import Settings


def test_description_queries_carry_no_alert_name_or_label() -> None:
    for case in load_set().cases:
        text = case.alert.query("description")
        assert text
        if case.alert.summary or case.alert.description:
            assert case.alert.name not in text
            assert all(v not in text.split("\n")[0] or v in (case.alert.summary
                       + case.alert.description) for v in case.alert.labels.values())
        assert case.alert.name in case.alert.query("alert")


def test_each_backend_is_scored_on_both_query_variants_over_one_build() -> None:
    rows = evaluate_variants(Settings(), "hashing")
    assert [r["query"] for r in rows] == list(VARIANTS) == ["alert", "description"]
    assert rows[0]["build_seconds"] == rows[1]["build_seconds"]
    # Taking the alert name out makes the task harder, not easier, for a word-based backend.
    assert float(rows[1]["mrr"]) <= float(rows[0]["mrr"])
