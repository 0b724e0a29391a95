"""The runbook format, its validation, and the chromadb index (offline embeddings)."""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from opsloop.runbooks.checks import ExpectError, fill_expect, parse_expect, render, resolve
from opsloop.runbooks.format import RunbookError
from opsloop.runbooks.load import parse_runbook
from opsloop.runbooks.markdown import FrontMatterError, split_front_matter
from opsloop.tools.embeddings import HashingEmbeddingFunction, embed_text
from opsloop.tools.runbook_index import RunbookIndex

REPO = Path(__file__).resolve().parent.parent
RUNBOOKS = REPO / "runbooks"

# What each alert in policies/alerts.yaml says, and the runbook an operator should land on.
ALERT_TEXT = {
    "MemoryHigh inventory: memory at 88% of its limit. Memory of inventory above 85% of the "
    "limit; OOM kills follow.": "memory-leak",
    "DiskFilling search: disk 87% full. Disk of search above 85%; writes fail when it "
    "fills.": "disk-filling",
    "SaturationHigh api-gateway: saturation 103% of capacity. api-gateway runs near or beyond "
    "capacity; latency and errors follow.": "capacity-saturation",
    "CostAnomaly recommendations: cost per hour 2.5x its level an hour ago. Spend of "
    "recommendations more than doubled within an hour.": "cost-anomaly",
    "ErrorBudgetBurn inventory: SLO inventory-availability burning error budget 6.1x over 6h "
    "and 6.3x over 30m": "slo-burn",
    "container OOMKilled java.lang.OutOfMemoryError heap": "memory-leak",
    "write failed: No space left on device": "disk-filling",
    "x509: certificate has expired or is not yet valid": "certificate-expiry",
    "connection pool exhausted: timeout waiting for connection": "db-connection-pool",
    "feature flag ramp rollout percentage errors for the cohort": "flag-rollout-errors",
}


def _copy_runbooks(dest: Path) -> Path:
    dest.mkdir()
    for path in RUNBOOKS.glob("*.md"):
        shutil.copy(path, dest / path.name)
    return dest


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RunbookIndex:
    return RunbookIndex(tmp_path_factory.mktemp("index"), [RUNBOOKS])


def test_shipped_runbooks_all_parse(index: RunbookIndex) -> None:
    assert index.problems() == []
    ids = {rb.id for rb in index.runbooks()}
    assert len(ids) >= 12
    assert {
        "bad-deploy",
        "dependency-outage",
        "flag-rollout-errors",
        "capacity-saturation",
        "memory-leak",
        "disk-filling",
        "latency-regression",
        "cost-anomaly",
        "slo-burn",
        "chaos-steady-state",
        "db-connection-pool",
        "certificate-expiry",
        "cache-hit-collapse",
    } <= ids


def test_every_runbook_has_the_human_sections(index: RunbookIndex) -> None:
    for rb in index.runbooks():
        assert {"Meaning", "Impact", "Diagnosis", "Mitigation"} <= set(rb.sections()), rb.file


def test_alert_rules_link_to_runbooks_that_exist(index: RunbookIndex) -> None:
    import yaml

    rules = yaml.safe_load((REPO / "policies" / "alerts.yaml").read_text())["rules"]
    linked = {r["annotations"]["runbook"] for r in rules if "runbook" in r["annotations"]}
    known = {rb.id for rb in index.runbooks()}
    assert linked <= known, linked - known


@pytest.mark.parametrize("text,expected", sorted(ALERT_TEXT.items()))
def test_search_finds_the_runbook_for_each_pattern(
    index: RunbookIndex, text: str, expected: str
) -> None:
    hits = index.search(text, k=3)
    assert hits and hits[0].runbook_id == expected, [(h.runbook_id, h.score) for h in hits]
    assert 0.0 <= hits[0].score <= 1.0


def test_exact_alert_name_boosts_and_specialist_filters(index: RunbookIndex) -> None:
    hits = index.search(
        "HighErrorRate checkout: error ratio 12% over 5m", k=10, specialist="incident"
    )
    assert hits and all(h.specialist == "incident" for h in hits)
    assert "HighErrorRate" in hits[0].matched_alerts
    rollout = index.search("HighErrorRate checkout", k=3, specialist="rollout")
    assert [h.runbook_id for h in rollout] == ["flag-rollout-errors"]


def test_search_is_fast(index: RunbookIndex) -> None:
    index.search("warm up", k=3)
    started = time.perf_counter()
    for _ in range(20):
        index.search("HighLatencyP99 search p99 latency 2.5x its level an hour ago", k=5)
    assert (time.perf_counter() - started) / 20 < 0.05


def test_get_returns_parsed_runbook_and_names_known_ids(index: RunbookIndex) -> None:
    rb = index.get("bad-deploy")
    assert (
        rb.specialist == "incident" and rb.hypotheses[0].remediation[0].action == "rollback_deploy"
    )
    with pytest.raises(KeyError, match="known: "):
        index.get("no-such-runbook")


def test_reopen_does_not_re_embed_and_warns_nothing(tmp_path: Path) -> None:
    books = _copy_runbooks(tmp_path / "books")
    started = time.perf_counter()
    first = RunbookIndex(tmp_path / "idx", [books])
    assert time.perf_counter() - started < 3.0
    assert first.embedder.embedded > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = RunbookIndex(tmp_path / "idx", [books])
    assert again.embedder.embedded == 0
    assert again.search("DiskFilling search", k=1)[0].runbook_id == "disk-filling"


def test_reindex_embeds_only_what_changed_and_drops_deleted(tmp_path: Path) -> None:
    books = _copy_runbooks(tmp_path / "books")
    index = RunbookIndex(tmp_path / "idx", [books])
    before = index.embedder.embedded
    path = books / "disk-filling.md"
    path.write_text(path.read_text().replace("## Impact", "## Impact\nPagers everywhere.\n"))
    (books / "certificate-expiry.md").unlink()
    counts = index.refresh()
    assert counts == {"indexed": 1, "unchanged": counts["unchanged"], "removed": 1, "broken": 0}
    chunks = len(index.get("disk-filling").sections()) + 1
    assert index.embedder.embedded == before + chunks
    assert all(
        h.runbook_id != "certificate-expiry"
        for h in index.search("certificate has expired x509", k=20)
    )


def test_broken_runbook_is_reported_with_file_and_field_and_others_still_index(
    tmp_path: Path,
) -> None:
    books = _copy_runbooks(tmp_path / "books")
    bad = books / "broken.md"
    text = (books / "bad-deploy.md").read_text().replace("id: bad-deploy", "id: broken-deploy")
    bad.write_text(
        text.replace('expect: "count >= 1 and latest.kind != rollback"', 'expect: "count >>= 1"')
    )
    (books / "not-yaml.md").write_text("---\nid: [unclosed\n---\nbody\n")
    index = RunbookIndex(tmp_path / "idx", [books])
    problems = {Path(p.file).name: p for p in index.problems()}
    assert set(problems) == {"broken.md", "not-yaml.md"}
    assert problems["broken.md"].field == "hypotheses.0.checks.1.expect"
    assert ">>=" in problems["broken.md"].message or "position" in problems["broken.md"].message
    assert problems["not-yaml.md"].field.startswith("line ")
    assert index.get("bad-deploy").id == "bad-deploy"
    assert index.search("DiskFilling", k=1)[0].runbook_id == "disk-filling"


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("tool: recent_deploys", "tool: recent_deploy", "unknown tool"),
        (
            "bind: {version: latest.version, previous_version: latest.previous_version, "
            "deploy_age: latest.age_minutes}",
            "bind: {version: latest.version}",
            "deploy_age",
        ),
        ("specialist: incident", "specialist: wizard", "specialist"),
    ],
)
def test_invalid_runbooks_say_what_and_where(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    text = (RUNBOOKS / "bad-deploy.md").read_text()
    assert field in text
    path = tmp_path / "bad.md"
    with pytest.raises(RunbookError) as err:
        parse_runbook(path, text.replace(field, value))
    assert str(path) in str(err.value) and message in str(err.value)


def test_expect_language_compares_fields_without_eval() -> None:
    data = {"count": 2, "latest": {"kind": "deploy", "age_minutes": 4.5}, "samples": ["a"]}
    assert parse_expect("count >= 1 and latest.kind != rollback").holds(data)
    assert parse_expect("latest.age_minutes < 3 or count == 2").holds(data)
    assert not parse_expect("missing.field > 0").holds(data)  # missing is false, not an error
    assert not parse_expect("latest.kind > 3").holds(data)  # wrong type is false
    assert parse_expect("samples.0 == a").holds(data) and resolve(data, "samples.5") is None
    for bad in ["count >", "count 3", "__import__('os') == 1", "count > 1 xor count < 3"]:
        with pytest.raises(ExpectError):
            parse_expect(bad)


def test_templates_keep_types_and_do_small_arithmetic() -> None:
    assert render("{replicas}", {"replicas": 6}) == 6
    assert render("{replicas * surge}", {"replicas": 6, "surge": 3.02}) == 18
    assert render("v{version}", {"version": "2.1"}) == "v2.1"
    assert fill_expect("age <= {deploy_age + 2}", {"deploy_age": 5}) == "age <= 7"


def test_hashing_embedding_is_stable_normalised_and_registered() -> None:
    from chromadb.utils.embedding_functions import known_embedding_functions

    assert known_embedding_functions["opsloop-hashing"] is HashingEmbeddingFunction
    vec = embed_text("HighErrorRate checkout", 512)
    assert vec.shape == (512,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert np.array_equal(vec, embed_text("HighErrorRate checkout", 512))
    rebuilt = HashingEmbeddingFunction.build_from_config(HashingEmbeddingFunction(256).get_config())
    assert rebuilt.dim == 256
    near = float(embed_text("OOMKilled containers", 512) @ embed_text("oom killed", 512))
    far = float(embed_text("OOMKilled containers", 512) @ embed_text("disk full", 512))
    assert near > far


# --- runbooks written elsewhere ---------------------------------------------------------

HUGO = """---
title: KubePodCrashLooping
weight: 20
---
# KubePodCrashLooping

## Meaning
A container keeps exiting and the kubelet restarts it with growing back-off.

## Diagnosis
```sh
# not a heading: a shell comment inside a code block
kubectl logs $POD --previous
```

## Mitigation
Roll back the image that crashes.
"""

PLAIN = """# Postgres replica lagging

**Alert:** PostgresReplicationLag

### Symptoms
Replicas serve stale reads; replay is minutes behind the primary.

### Resolution
Cancel the long query on the replica.
"""

TOML = """+++
title = "Long JVM garbage collection pauses"
alerts = ["JvmGcPauseLong"]
service = "pricing"
+++
## Meaning
Stop-the-world pauses over a second.
"""


def test_one_front_matter_reader_for_runbooks_and_learn_documents() -> None:
    meta, body = split_front_matter(TOML)
    assert meta["alerts"] == ["JvmGcPauseLong"] and body.startswith("## Meaning")
    meta, body = split_front_matter("---\nkind: toil\nincidents: [INC-1]\n---\n# Toil\n")
    assert meta == {"kind": "toil", "incidents": ["INC-1"]} and body == "# Toil\n"
    assert split_front_matter("# No front matter\n") == ({}, "# No front matter\n")
    with pytest.raises(FrontMatterError, match="mapping"):
        split_front_matter("---\n- a list\n---\nbody\n")
    with pytest.raises(FrontMatterError) as err:
        split_front_matter("---\ntitle: x\nid: [unclosed\n---\n")
    assert err.value.where == "line 3"  # the line in the file, counting the opening `---`


def _foreign(tmp_path: Path) -> Path:
    books = tmp_path / "team"
    (books / "platform").mkdir(parents=True)
    (books / "platform" / "KubePodCrashLooping.md").write_text(HUGO)
    (books / "postgres-replication-lag.md").write_text(PLAIN)
    (books / "jvm-gc-pauses.md").write_text(TOML)
    return books


def test_runbooks_from_other_teams_index_without_edits(tmp_path: Path) -> None:
    index = RunbookIndex(tmp_path / "idx", [_foreign(tmp_path), RUNBOOKS])
    assert index.problems() == []
    crash = index.get("kube-pod-crash-looping")
    assert crash.title == "KubePodCrashLooping" and crash.alerts == ["KubePodCrashLooping"]
    assert list(crash.sections()) == ["Meaning", "Diagnosis", "Mitigation"]  # code comment skipped
    assert crash.specialist is None and crash.hypotheses == []
    lag = index.get("postgres-replication-lag")
    assert lag.alerts == ["PostgresReplicationLag"] and list(lag.sections()) == [
        "Symptoms", "Resolution"]
    gc = index.get("jvm-gc-pauses")
    assert gc.alerts == ["JvmGcPauseLong"] and gc.services == ["pricing"]
    for query, expected in [("KubePodCrashLooping shop cart", "kube-pod-crash-looping"),
                            ("kube-pod-crash-looping", "kube-pod-crash-looping"),
                            ("PostgresReplicationLag orders-db", "postgres-replication-lag"),
                            ("JvmGcPauseLong pricing", "jvm-gc-pauses")]:
        top = index.search(query, k=1)[0]
        assert top.runbook_id == expected and top.matched_alerts and top.confident, query


def test_foreign_runbooks_never_reach_a_specialist(tmp_path: Path) -> None:
    index = RunbookIndex(tmp_path / "idx", [_foreign(tmp_path), RUNBOOKS])
    hits = index.search("KubePodCrashLooping container restarts", k=10, specialist="remediation")
    assert hits and all(h.specialist == "remediation" for h in hits)
    assert index.search("KubePodCrashLooping", k=1)[0].specialist == ""


def test_hits_carry_the_section_and_metadata(tmp_path: Path) -> None:
    index = RunbookIndex(tmp_path / "idx", [_foreign(tmp_path)])
    hit = index.search("Cancel the long query on the replica", k=1)[0]
    assert hit.runbook_id == "postgres-replication-lag" and hit.section == "Resolution"
    assert hit.file.endswith("postgres-replication-lag.md") and hit.lexical > 0


def test_service_filter_keeps_runbooks_that_apply(tmp_path: Path) -> None:
    index = RunbookIndex(tmp_path / "idx", [_foreign(tmp_path)])
    assert [h.runbook_id for h in index.search("JvmGcPauseLong", k=5, service="checkout")
            if h.runbook_id == "jvm-gc-pauses"] == []
    assert index.search("JvmGcPauseLong", k=1, service="pricing")[0].runbook_id == "jvm-gc-pauses"


def test_same_id_in_two_folders_is_reported_not_mixed(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    (one / "disk-full.md").write_text("# Disk full\n\n## Fix\nDelete old logs.\n")
    (two / "disk-full.md").write_text("# Disk full (db)\n\n## Fix\nDrop the replication slot.\n")
    index = RunbookIndex(tmp_path / "idx", [one, two])
    [problem] = index.problems()
    assert problem.field == "id" and "already used" in problem.message
    assert problem.file.endswith(str(Path("two") / "disk-full.md"))


def test_an_alert_no_runbook_covers_is_answered_no_match(index: RunbookIndex) -> None:
    answer = index.answer("BGPSessionDown transit-a: BGP session with transit-a is down")
    assert answer.no_match and not any(h.confident for h in answer.hits)
    covered = index.answer("DiskFilling search: disk 87% full")
    assert not covered.no_match and covered.hits[0].runbook_id == "disk-filling"


def test_switching_backend_re_embeds_into_its_own_collection(tmp_path: Path) -> None:
    from opsloop.tools.retrieval.backends import EmbeddingBackend

    books = _copy_runbooks(tmp_path / "books")
    first = RunbookIndex(tmp_path / "idx", [books], backend=EmbeddingBackend(dim=512))
    other = RunbookIndex(tmp_path / "idx", [books], backend=EmbeddingBackend(dim=256))
    assert other.embedder.embedded == first.embedder.embedded > 0  # everything again
    back = RunbookIndex(tmp_path / "idx", [books], backend=EmbeddingBackend(dim=512))
    assert back.embedder.embedded == 0  # its own collection is still valid
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(tmp_path / "idx"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    names = {c.name: c.metadata for c in client.list_collections()}
    assert len(names) == 2 and all(m["backend"] == "hashing" for m in names.values())
