"""The runbook index: any team's markdown runbooks, found by hybrid search in chromadb.

Each runbook is chunked by section and embedded into a persistent chromadb collection (one
collection per embedding backend); a BM25 index over the same chunks is saved beside it and
rebuilt only when the runbooks (or the code that scores them) change. The vectors are read
back from chromadb at the first search and ranked in memory (`retrieval/vectors.py`): every
search of one query text shares one similarity computation.
A query is ranked by three signals fused into one score in 0..1:

    score = W_VECTOR × best chunk cosine + W_LEXICAL × best chunk BM25 share
            (+ ALERT_BOOST when the query names one of the runbook's alerts exactly)

and a best score below the no-match threshold means no runbook fits: a novel failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from pydantic import BaseModel

from opsloop.runbooks.format import Runbook, RunbookError, RunbookProblem
from opsloop.runbooks.load import alert_key, load_runbook, match_keys
from opsloop.tools.protocols import RunbookHit
from opsloop.tools.retrieval import chunks as chunks_module
from opsloop.tools.retrieval.backends import EmbeddingBackend
from opsloop.tools.retrieval.chunks import CHUNKER_VERSION, chunk_runbook
from opsloop.tools.retrieval.lexical import LexicalIndex, code_digest
from opsloop.tools.retrieval.parsed import ParsedRunbooks
from opsloop.tools.retrieval.vectors import ChunkVectors

if TYPE_CHECKING:
    from opsloop.settings import Settings

W_VECTOR = 0.4
W_LEXICAL = 0.6
_ALERT_BOOST = 0.3  # an alert named in the query is strong evidence of the right runbook
_EXTRA_ALERT_BOOST = 0.1  # each further firing alert it covers: it explains more of the incident
_BATCH = 512  # chunks per chromadb upsert
_QUERY_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_:.-]*")

Progress = Callable[[int, int, str], None]  # (files done, files total, current file)


class SearchAnswer(BaseModel):
    """Hits plus the verdict: does any runbook fit this query at all?"""

    query: str
    hits: list[RunbookHit]
    no_match: bool
    threshold: float
    backend: str


def runbook_files(dirs: list[Path]) -> list[Path]:
    """Every runbook file under `dirs` (READMEs aside), resolved as `Path.resolve` would, in
    order: one realpath per folder rather than one per file (a symlinked file is resolved
    itself)."""
    folders: dict[Path, Path] = {}
    found: set[Path] = set()
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.md"):
            if path.name.lower() == "readme.md":
                continue
            if path.is_symlink():
                found.add(path.resolve())
                continue
            parent = folders.get(path.parent)
            if parent is None:
                parent = folders[path.parent] = path.parent.resolve()
            found.add(parent / path.name)
    return sorted(found)


def _chunker_digest() -> str:
    """The chunker's code, byte for byte: a saved chunk layout is stale once it changes."""
    return hashlib.sha256(Path(chunks_module.__file__).read_bytes()).hexdigest()


def _saved_layout(saved: LexicalIndex, runbooks: int
                  ) -> tuple[np.ndarray, list[str], list[tuple[str, int]]] | None:
    """(chunks per runbook, section per chunk, (alert-name key, runbook) pairs) saved with a
    BM25 index, when they describe exactly its chunks and runbooks; None: rebuild."""
    try:
        counts, sections, names, named = (
            saved.extra[name] for name in ("chunks", "sections", "names", "named"))
    except KeyError:
        return None
    if (counts.shape != (runbooks,) or counts.dtype.kind != "i" or (counts < 1).any()
            or int(counts.sum()) != saved.size or sections.shape != (saved.size,)
            or names.ndim != 1 or named.shape != names.shape or named.dtype.kind != "i"
            or (len(named) > 0 and (named.min() < 0 or named.max() >= runbooks))):
        return None
    return (counts, [str(s) for s in sections.tolist()],
            list(zip([str(n) for n in names.tolist()], named.tolist(), strict=True)))


class RunbookIndex:
    """Runbooks from one or more folders, searchable by vector, BM25 and alert name."""

    def __init__(self, persist_dir: Path, runbook_dirs: list[Path], *,
                 backend: EmbeddingBackend | None = None, no_match_threshold: float | None = None,
                 collection: str = "runbooks", progress: Progress | None = None) -> None:
        persist_dir.mkdir(parents=True, exist_ok=True)
        self.runbook_dirs = list(runbook_dirs)
        self.backend = backend or EmbeddingBackend()
        self.threshold = (self.backend.default_threshold() if no_match_threshold is None
                          else no_match_threshold)
        self.embedder = self.backend.build()
        client = chromadb.PersistentClient(
            path=str(persist_dir), settings=ChromaSettings(anonymized_telemetry=False))
        name = f"{collection}-{self.backend.key}"
        identity = json.dumps(self.backend.identity(), sort_keys=True)
        col = client.get_or_create_collection(
            name, embedding_function=self.embedder,  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"backend": self.backend.name, "identity": identity})
        if (col.metadata or {}).get("identity") != identity:  # never mix incomparable vectors
            client.delete_collection(name)
            col = client.create_collection(
                name, embedding_function=self.embedder,  # type: ignore[arg-type]
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"backend": self.backend.name, "identity": identity})
        self._col = col
        self._lexical_file = persist_dir / f"{name}.bm25.npz"
        self._parsed_file = persist_dir / f"{name}.runbooks.json"
        self._chunk_vectors: ChunkVectors | None = None
        self._lexical_memo: dict[str, tuple[np.ndarray, float]] = {}
        self._vectors_lock = threading.Lock()
        self._runbooks: dict[str, Runbook] = {}
        self._problems: list[RunbookProblem] = []
        self.refresh(progress)

    @classmethod
    def from_settings(cls, settings: Settings, *, backend: str | None = None,
                      progress: Progress | None = None) -> RunbookIndex:
        return cls(settings.index_dir, settings.runbook_dirs,
                   backend=EmbeddingBackend.from_settings(settings, backend),
                   no_match_threshold=settings.no_match_threshold, progress=progress)

    def refresh(self, progress: Progress | None = None) -> dict[str, int]:
        """Re-read the folders; embed only files whose content changed. Returns counts."""
        stored = self._stored_hashes()
        parsed = ParsedRunbooks(self._parsed_file)
        files = runbook_files(self.runbook_dirs)
        runbooks: dict[str, Runbook] = {}
        digests: dict[str, str] = {}  # runbook id -> hash of its file, as stored with its chunks
        problems: list[RunbookProblem] = []
        counts = {"indexed": 0, "unchanged": 0, "removed": 0, "broken": 0}
        pending: list[tuple[str, str, dict[str, Any]]] = []
        for done, path in enumerate(files, start=1):
            if progress is not None:
                progress(done, len(files), str(path))
            raw = path.read_bytes()
            digest = hashlib.sha256(raw + CHUNKER_VERSION.encode()).hexdigest()
            try:
                known = parsed.get(str(path), digest)
                rb = known or load_runbook(path, raw.decode("utf-8"))
                if rb.id in runbooks:
                    raise RunbookError([RunbookProblem(
                        file=str(path), field="id",
                        message=f"id {rb.id!r} is already used by {runbooks[rb.id].file}; "
                                "give one of them its own `id:` in front matter")])
            except (RunbookError, UnicodeDecodeError) as exc:
                problems += exc.problems if isinstance(exc, RunbookError) else [
                    RunbookProblem(file=str(path), field="-", message=f"not UTF-8 text: {exc}")]
                counts["broken"] += 1
                if str(path) in stored:
                    self._drop(str(path))  # a stale copy of a now-broken runbook would mislead
                continue
            runbooks[rb.id] = rb
            digests[rb.id] = digest
            if known is None:
                parsed.put(str(path), digest, rb)
            if stored.get(str(path)) == digest:
                counts["unchanged"] += 1
                continue
            if str(path) in stored:
                self._drop(str(path))
            meta = {"runbook": rb.id, "file": str(path), "title": rb.title,
                    "specialist": rb.specialist or "", "alerts": ",".join(rb.alerts),
                    "services": ",".join(rb.services), "hash": digest}
            pending += [(f"{path}#{i}", chunk.text, {**meta, "section": chunk.section})
                        for i, chunk in enumerate(chunk_runbook(rb))]
            counts["indexed"] += 1
            if len(pending) >= _BATCH:
                self._upsert(pending)
                pending = []
        self._upsert(pending)
        for gone in set(stored) - {str(p) for p in files}:
            self._drop(gone)
            counts["removed"] += 1
        self._runbooks, self._problems = runbooks, problems
        parsed.save()
        self._build_lexical(digests, parsed.code)
        self.last_counts = counts
        return counts

    def _stored_hashes(self) -> dict[str, str]:
        """The content hash each indexed file's chunks were embedded from, by file.

        Read from each file's first chunk (`<file>#0`) rather than from every chunk's
        metadata: at 10k chunks that is a fifth of the rows. A file whose first chunk is
        missing reads as changed, and is embedded again."""
        files = {chunk_id.rsplit("#", 1)[0] for chunk_id in self._col.get(include=[])["ids"]}
        stored = dict.fromkeys(files, "")
        if files:
            firsts = self._col.get(ids=[f"{file}#0" for file in sorted(files)],
                                   include=["metadatas"])
            for meta in firsts["metadatas"] or []:
                stored[str(meta["file"])] = str(meta["hash"])
        return stored

    def _upsert(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        if rows:
            self._col.upsert(ids=[r[0] for r in rows], documents=[r[1] for r in rows],
                             metadatas=[r[2] for r in rows])

    def _drop(self, file: str) -> None:
        self._col.delete(where={"file": file})

    def _build_lexical(self, digests: dict[str, str], parser_code: str) -> None:
        """BM25 over the same chunks chromadb holds, derived from the parsed runbooks; saved
        beside the vectors with each runbook's chunk count and each chunk's section, and read
        back while the runbooks and the code that parses, chunks and scores them are the
        same (a reopen then chunks nothing)."""
        self._ids = sorted(self._runbooks)
        key = hashlib.sha256(json.dumps(
            [code_digest(), _chunker_digest(), parser_code,
             [(rid, digests[rid]) for rid in self._ids]]).encode()).hexdigest()
        saved = LexicalIndex.load(self._lexical_file, key)
        layout = _saved_layout(saved, len(self._ids)) if saved is not None else None
        if saved is not None and layout is not None:
            self._lexical, (counts, self._sections, named) = saved, layout
        else:
            per_runbook = [chunk_runbook(self._runbooks[rid]) for rid in self._ids]
            counts = np.asarray([len(chunks) for chunks in per_runbook], dtype=np.int64)
            self._sections = [chunk.section for chunks in per_runbook for chunk in chunks]
            named = [(name, i) for i, rid in enumerate(self._ids)
                     for name in sorted(match_keys(self._runbooks[rid]))]
            self._lexical = LexicalIndex([chunk.text for chunks in per_runbook
                                          for chunk in chunks])
            with contextlib.suppress(OSError):  # a read-only index dir: rebuilt next time
                self._lexical.save(self._lexical_file, key, {
                    "chunks": counts, "sections": np.asarray(self._sections, dtype=np.str_),
                    "names": np.asarray([name for name, _ in named], dtype=np.str_),
                    "named": np.asarray([i for _, i in named], dtype=np.int64)})
        self._owner = np.repeat(np.arange(len(self._ids), dtype=np.int64), counts)
        # Each row's chromadb id is `<file>#<i>`, i counting that runbook's chunks from 0.
        self._chunk_keys = [(rid, i) for rid, n in zip(self._ids, counts.tolist(), strict=True)
                            for i in range(n)]
        self._chunk_vectors = None
        self._lexical_memo = {}
        self._by_key: dict[str, list[str]] = {}  # alert-name key -> runbooks it names
        for name, i in named:
            self._by_key.setdefault(name, []).append(self._ids[i])

    def _vectors(self) -> ChunkVectors:
        """The chunks' vectors from chromadb, read at the first search after a refresh."""
        with self._vectors_lock:
            if self._chunk_vectors is None:
                row_of = {f"{self._runbooks[rid].file}#{i}": row
                          for row, (rid, i) in enumerate(self._chunk_keys)}
                stored = self._col.get(include=["embeddings"])
                embeddings = stored["embeddings"]
                dims = len(embeddings[0]) if embeddings is not None and len(embeddings) else 1
                vectors = np.zeros((len(self._chunk_keys), dims), dtype=np.float64)
                present = np.zeros(len(self._chunk_keys), dtype=bool)
                for chunk_id, vector in zip(stored["ids"], embeddings if embeddings is not None
                                            else [], strict=False):
                    row = row_of.get(chunk_id)
                    if row is not None:
                        vectors[row], present[row] = vector, True
                self._chunk_vectors = ChunkVectors(vectors, present, self.embedder)
            return self._chunk_vectors

    def _lexical_scores(self, query: str) -> tuple[np.ndarray, float]:
        """BM25 per chunk, computed once per query text (an incident's searches share one)."""
        with self._vectors_lock:
            known = self._lexical_memo.get(query)
        if known is None:
            known = self._lexical.scores(query)
            with self._vectors_lock:
                self._lexical_memo[query] = known
                while len(self._lexical_memo) > 16:
                    del self._lexical_memo[next(iter(self._lexical_memo))]
        return known

    def problems(self) -> list[RunbookProblem]:
        return list(self._problems)

    def runbooks(self) -> list[Runbook]:
        return [self._runbooks[i] for i in self._ids]

    def chunk_count(self) -> int:
        return len(self._sections)

    def get(self, runbook_id: str) -> Runbook:
        try:
            return self._runbooks[runbook_id]
        except KeyError:
            raise KeyError(f"no runbook {runbook_id!r}; known: {', '.join(sorted(self._runbooks))}"
                           ) from None

    def search(self, query: str, k: int = 5, specialist: str | None = None, *,
               service: str | None = None) -> list[RunbookHit]:
        """The k best runbooks for a query, best first; filters narrow what may be returned."""
        return self.answer(query, k, specialist, service=service).hits

    def answer(self, query: str, k: int = 5, specialist: str | None = None, *,
               service: str | None = None) -> SearchAnswer:
        """Hits plus whether any of them is a good enough match to act on."""
        hits = self._rank(query, k, specialist, service)
        return SearchAnswer(query=query, hits=hits, threshold=self.threshold,
                            no_match=not hits or not hits[0].confident,
                            backend=self.backend.describe())

    def _allowed(self, specialist: str | None, service: str | None) -> np.ndarray:
        mask = np.ones(len(self._ids), dtype=bool)
        if specialist or service:
            for i, rid in enumerate(self._ids):
                rb = self._runbooks[rid]
                mask[i] = ((not specialist or rb.specialist == specialist)
                           and (not service or rb.applies_to(service)))
        return mask

    def _rank(self, query: str, k: int, specialist: str | None,
              service: str | None) -> list[RunbookHit]:
        if k <= 0 or not self._ids:
            return []
        allowed = self._allowed(specialist, service)
        if not allowed.any():
            return []
        n = len(self._ids)
        vec = np.zeros(n, dtype=np.float32)
        vec_section: dict[int, str] = {}
        # The 8k (at least 40) nearest allowed chunks, as the chromadb query used to return.
        for row, sim in self._vectors().nearest(query, allowed[self._owner], max(8 * k, 40)):
            i = int(self._owner[row])
            if sim > vec[i]:
                vec[i], vec_section[i] = sim, self._sections[row]
        chunk_scores, bound = self._lexical_scores(query)
        share = chunk_scores / bound if bound > 0 else chunk_scores
        lex = np.zeros(n, dtype=np.float32)
        np.maximum.at(lex, self._owner, share)
        fused = W_VECTOR * vec + W_LEXICAL * lex
        matched: dict[int, list[str]] = {}
        position = {rid: i for i, rid in enumerate(self._ids)}
        for word in dict.fromkeys(_QUERY_WORD.findall(query)):
            for rid in self._by_key.get(alert_key(word), []):
                names = matched.setdefault(position[rid], [])
                if word not in names:
                    names.append(word)
        for i, names in matched.items():
            fused[i] += _ALERT_BOOST + _EXTRA_ALERT_BOOST * (len(names) - 1)
        fused = np.where(allowed, np.minimum(fused, 1.0), -1.0)
        order = np.argsort(-fused, kind="stable")[:k]
        hits: list[RunbookHit] = []
        for i in order:
            score = float(fused[i])
            if score <= 0.0:
                break
            rb = self._runbooks[self._ids[i]]
            hits.append(RunbookHit(
                runbook_id=rb.id, title=rb.title, specialist=rb.specialist or "",
                score=round(score, 4), section=vec_section.get(int(i)) or self._best_section(
                    int(i), chunk_scores), file=rb.file, matched_alerts=matched.get(int(i), []),
                confident=score >= self.threshold, vector=round(float(vec[i]), 4),
                lexical=round(float(lex[i]), 4)))
        return hits

    def _best_section(self, runbook: int, chunk_scores: np.ndarray) -> str:
        rows = np.flatnonzero(self._owner == runbook)
        return self._sections[int(rows[np.argmax(chunk_scores[rows])])] if len(rows) else "summary"
