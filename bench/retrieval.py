"""Runbook retrieval benchmark: index build, reopen and first-search time and query latency
at 1k and 10k chunks.

The corpus is opsloop's runbooks plus evals/retrieval/corpus, copied as many times as needed
to reach the target chunk count; each copy names its own owning team and service so copies
are distinct documents. Queries are the retrieval eval's alerts, built as the loop builds them.

    .venv/bin/python bench/retrieval.py [--chunks 1000 10000] [--backend hashing] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opsloop.evals.retrieval import load_set
from opsloop.runbooks.load import load_runbook
from opsloop.settings import Settings
from opsloop.tools.retrieval.backends import EmbeddingBackend
from opsloop.tools.retrieval.chunks import chunk_runbook
from opsloop.tools.runbook_index import RunbookIndex


def build_corpus(dest: Path, sources: list[Path], chunks: int) -> int:
    """Write copies of the source runbooks until about `chunks` chunks exist; returns files."""
    per_file = [len(chunk_runbook(load_runbook(p, p.read_text()))) for p in sources]
    written = total = copy = 0
    while total < chunks:
        folder = dest / f"team-{copy:03d}"
        folder.mkdir(parents=True)
        for path, n in zip(sources, per_file, strict=True):
            if total >= chunks:
                break
            text = path.read_text()
            text = re.sub(r"(?m)^id: ([a-z0-9-]+)$", rf"id: \1-c{copy}", text, count=1)
            text += f"\n\nOwned by team-{copy}; applies to service svc-{copy}-{path.stem}.\n"
            (folder / f"{path.stem}-c{copy}.md").write_text(text)
            written += 1
            total += n
        copy += 1
    return written


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(chunks: int, backend: EmbeddingBackend, queries: list[str], sources: list[Path]) -> dict:
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-retrieval-") as tmp:
        root = Path(tmp)
        files = build_corpus(root / "books", sources, chunks)
        started = time.perf_counter()
        index = RunbookIndex(root / "idx", [root / "books"], backend=backend)
        build = time.perf_counter() - started
        started = time.perf_counter()
        index = RunbookIndex(root / "idx", [root / "books"], backend=backend)
        reopen = time.perf_counter() - started
        started = time.perf_counter()
        index.search(queries[0], k=5)  # reads the chunk vectors back from chromadb
        first_search = time.perf_counter() - started
        for q in queries[:5]:
            index.search(q, k=5)  # warm-up: first queries load the HNSW segment
        latencies: list[float] = []
        for _ in range(3):
            for q in queries:
                t0 = time.perf_counter()
                index.search(q, k=5)
                latencies.append((time.perf_counter() - t0) * 1000)
        return {"backend": backend.describe(), "chunks": index.chunk_count(), "files": files,
                "build_seconds": round(build, 2), "reopen_seconds": round(reopen, 2),
                "first_search_seconds": round(first_search, 2),
                "queries": len(latencies), "p50_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(_pct(latencies, 0.95), 2), "max_ms": round(max(latencies), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backend", default=None, help="embedding backend (default: settings)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    labelled = load_set()
    sources = sorted(p for d in labelled.runbook_dirs for p in d.rglob("*.md")
                     if p.name.lower() != "readme.md")
    queries = [c.alert.query() for c in labelled.cases]
    backend = EmbeddingBackend.from_settings(Settings(), args.backend)
    rows = []
    for n in args.chunks:
        print(f"building {n} chunks ...", file=sys.stderr)
        rows.append(run(n, backend, queries, sources))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        cols = list(rows[0])
        print(" | ".join(cols))
        for r in rows:
            print(" | ".join(str(r[c]) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
