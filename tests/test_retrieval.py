"""Hybrid retrieval: the labelled eval, the embedding backends and the CLI commands."""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from opsloop.cli.eval import retrieval
from opsloop.cli.main import main
from opsloop.cli.render import Ui
from opsloop.evals.retrieval import evaluate, load_set
from opsloop.settings import Settings
from opsloop.tools.embeddings import embed_text
from opsloop.tools.retrieval.backends import EmbeddingBackend
from opsloop.tools.retrieval.embedders import EmbeddingBackendError
from opsloop.tools.retrieval.query import alert_query, query_from_line
from opsloop.tools.runbook_index import RunbookIndex

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hashing_result() -> dict[str, float | int | str]:
    return evaluate(Settings(), "hashing")


def test_labelled_set_is_big_and_varied_enough() -> None:
    labelled = load_set()
    kinds = [c.kind for c in labelled.cases]
    assert sum(c.expect is not None for c in labelled.cases) >= 60
    assert {"named", "paraphrased", "neighbour", "no-match"} <= set(kinds)
    assert kinds.count("no-match") >= 8
    files = {p for d in labelled.runbook_dirs for p in d.rglob("*.md") if p.name != "README.md"}
    assert len(files) >= 40


def test_offline_backend_meets_the_recall_bar(hashing_result: dict[str, float | int | str]) -> None:
    r = hashing_result
    assert r["backend"] == "hashing" and r["queries"] == len(load_set().cases)
    assert float(r["recall_at_3"]) >= 0.9 and float(r["recall_at_1"]) >= 0.75
    assert float(r["mrr"]) >= float(r["recall_at_1"])
    assert float(r["no_match_precision"]) >= 0.8 and float(r["no_match_recall"]) >= 0.6


def test_eval_cli_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    ui = Ui()
    assert retrieval(argparse.Namespace(backend=["hashing"], json=True), Settings(), ui) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["query"] for r in rows] == ["alert", "description"]  # with and without names
    row = rows[0]
    assert {"backend", "queries", "recall_at_1", "recall_at_3", "mrr",
            "no_match_precision"} <= set(row)
    assert retrieval(argparse.Namespace(backend=["hashing"], json=False), Settings(), ui) == 0
    table = capsys.readouterr().out
    assert "R@3" in table and "no-match P" in table and "hashing" in table
    assert retrieval(argparse.Namespace(backend=["nope"], json=False), Settings(), ui) == 2


def test_query_from_an_alert_keeps_words_and_drops_identifiers() -> None:
    q = alert_query("KubePodCrashLooping",
                    {"alertname": "KubePodCrashLooping", "namespace": "shop",
                     "pod": "cart-5f7c9b-2xk4q", "instance": "10.0.0.1:9100"},
                    {"summary": "cart is crash looping", "description": "6 restarts"})
    assert q.split("\n") == ["KubePodCrashLooping", "shop", "cart is crash looping", "6 restarts"]
    line = json.dumps({"labels": {"alertname": "DiskFilling", "service": "search"},
                       "annotations": {"summary": "disk 87% full"}})
    assert query_from_line(line) == "DiskFilling\nsearch\ndisk 87% full"
    assert query_from_line("plain words\n") == "plain words"


# --- an OpenAI-compatible embeddings endpoint, for real, on loopback --------------------

class _Embeddings(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict[str, object]]] = []
    fail_with: ClassVar[int | None] = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                 "body": body})
        if self.fail_with is not None:
            self.send_response(self.fail_with)
            self.end_headers()
            self.wfile.write(b"model overloaded")
            return
        if self.path != "/v1/embeddings" or body.get("model") != "tiny-embed":
            self.send_response(404)
            self.end_headers()
            return
        data = [{"object": "embedding", "index": i,
                 "embedding": embed_text(text, 128).tolist()}
                for i, text in reversed(list(enumerate(body["input"])))]  # any order is legal
        payload = json.dumps({"object": "list", "data": data, "model": "tiny-embed"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _Embeddings.calls, _Embeddings.fail_with = [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPSLOOP_TEST_EMBED_KEY", "sk-test")
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_backend_speaks_the_wire_format(tmp_path: Path, endpoint: str) -> None:
    backend = EmbeddingBackend(name="openai", model="tiny-embed", base_url=endpoint,
                               api_key_env="OPSLOOP_TEST_EMBED_KEY")
    index = RunbookIndex(tmp_path / "idx", [REPO / "runbooks"], backend=backend)
    assert _Embeddings.calls and all(c["path"] == "/v1/embeddings" for c in _Embeddings.calls)
    assert all(c["auth"] == "Bearer sk-test" for c in _Embeddings.calls)
    assert index.search("container OOMKilled java.lang.OutOfMemoryError heap", k=1)[
        0].runbook_id == "memory-leak"
    # Reopened by chromadb alone, the collection rebuilds its registered embedding function.
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(tmp_path / "idx"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_collection(f"runbooks-{backend.key}")
    res = col.query(query_texts=["disk filling with logs"], n_results=1, include=["metadatas"])
    assert (res["metadatas"] or [[]])[0][0]["runbook"] == "disk-filling"


def test_openai_backend_failure_is_a_clear_error_after_retries(tmp_path: Path,
                                                               endpoint: str) -> None:
    _Embeddings.fail_with = 503
    backend = EmbeddingBackend(name="openai", model="tiny-embed", base_url=endpoint)
    with pytest.raises(EmbeddingBackendError, match="answered 503: model overloaded"):
        RunbookIndex(tmp_path / "idx", [REPO / "runbooks"], backend=backend)
    assert len(_Embeddings.calls) == 3  # retried, then gave up


def test_openai_backend_without_url_says_what_to_set() -> None:
    with pytest.raises(EmbeddingBackendError, match="embedding_base_url"):
        EmbeddingBackend(name="openai", model="m").build()


def test_sentence_transformers_backend_without_the_extra_says_how_to_get_it() -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingBackendError, match="optional extra"):
            EmbeddingBackend(name="sentence-transformers", model="all-MiniLM-L6-v2").build()
    else:
        with pytest.raises(EmbeddingBackendError, match="not available locally"):
            EmbeddingBackend(name="sentence-transformers", model="/no/such/model").build()


def test_sentence_transformers_backend_embeds_with_a_local_model(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers",
                        reason="sentence-transformers is an optional extra (needs torch)")
    model = Path.home() / ".cache" / "torch" / "sentence_transformers"
    if not any(model.glob("*MiniLM*")):
        pytest.skip("no sentence-transformers model in the local cache; opsloop never downloads")
    backend = EmbeddingBackend(name="sentence-transformers", model="all-MiniLM-L6-v2")
    index = RunbookIndex(tmp_path / "idx", [REPO / "runbooks"], backend=backend)
    assert index.search("write failed: No space left on device", k=1)[0].runbook_id == (
        "disk-filling")


def test_chroma_default_backend_never_downloads_its_model() -> None:
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    model = Path(ONNXMiniLM_L6_V2.DOWNLOAD_PATH) / ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME
    if (model / "model.onnx").exists():
        assert EmbeddingBackend(name="chroma-default").build() is not None
    else:
        with pytest.raises(EmbeddingBackendError, match="never downloads"):
            EmbeddingBackend(name="chroma-default").build()
        assert not (model / "model.onnx").exists()


def test_unknown_backend_in_settings_is_named() -> None:
    with pytest.raises(EmbeddingBackendError, match="unknown embedding backend 'magic'"):
        EmbeddingBackend.from_settings(Settings(embedding_backend="magic"))


# --- the commands ------------------------------------------------------------------------

def test_index_command_reports_counts_and_reindexes_nothing_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--work-dir", str(tmp_path), "index", "--runbooks", str(REPO / "runbooks"),
            "--runbooks", str(REPO / "evals" / "retrieval" / "corpus"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["runbooks"] >= 50 and first["indexed"] == first["runbooks"]
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["indexed"] == 0 and again["unchanged"] == first["runbooks"]


def test_index_command_names_a_missing_folder(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--work-dir", str(tmp_path), "index", "--runbooks", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_search_command_table_json_and_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--work-dir", str(tmp_path), "runbooks", "search"]
    assert main([*base, "DiskFilling search: disk 87% full", "--k", "2", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["hits"][0]["runbook_id"] == "disk-filling" and not answer["no_match"]
    assert main([*base, "DiskFilling search"]) == 0
    assert "disk-filling" in capsys.readouterr().out
    lines = ["MemoryHigh inventory memory at 88% of its limit", "# a comment", "",
             json.dumps({"labels": {"alertname": "CostAnomaly", "service": "recommendations"}}),
             "BGPSessionDown transit-a BGP session with transit-a is down"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main([*base, "--batch", "-", "--k", "3"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["hits"][0]["runbook_id"] for o in out[:2]] == ["memory-leak", "cost-anomaly"]
    assert [o["no_match"] for o in out] == [False, False, True]
    assert main([*base, "--batch", str(tmp_path / "missing.txt")]) == 2
    assert main(base) == 2  # neither a query nor --batch
