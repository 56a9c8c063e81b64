"""Benchmark: an index of 10k, 100k and 1M passages on this machine, without encoding them all.

Seeds are the public SQuAD files' passages (read in place from ../shared/eval), embedded by
the real encoder. Each synthetic passage copies a random seed's text and takes its vector
plus Gaussian noise (sigma 0.02 a dimension, cosine about 0.93 to the seed), renormalised;
documents hold 45 passages. 1,000 public questions, embedded (none is a stored vector), give
dense recall@10 against exact search and the search latency. Then, with the default pipeline
over HTTP: `/api/ask` p50/p95, `qa serve` start-up time (process start to first answer) and
its peak RSS; and in-process, with the model loaded: adding one 45-passage document and
removing one (each up to its publish); and the index's size on disk.

Up to `--postgres-max` passages (100k), the same index is also written into a fresh PostgreSQL
(`make pg-up`'s server, in a temporary folder) with `qa index --copy-to`, and measured the same
way: write throughput against the embedded build (neither encodes: the vectors are given), dense
search and recall, `/api/ask` over HTTP from `qa serve --index postgresql://...`, adding and
removing a document. Both backends run on this machine, one after the other.
`--baseline-reranker ms-marco-l12` times `/api/ask` a second time, with the same requests to a
server reranking with the 12-layer teacher, and prints the two side by side with their ratio.

    python scripts/bench_scale.py                          # 10k, 100k and 1M passages
    python scripts/bench_scale.py --passages 200000 --keep DIR --json
    python scripts/bench_scale.py --passages 10000 --postgres-max 0   # embedded only
    python scripts/bench_scale.py --passages 100000 --postgres-max 0 --baseline-reranker ms-marco-l12

`--keep DIR` leaves the index in DIR with its documents as text files under DIR/sources/,
servable by `qa serve --index DIR` and updatable by `qa index DIR/sources --index DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from latency import percentile
from liveserver import serve_index

from qa import Pipeline, load
from qa import index as ix
from qa.eval.evaluate import load_all
from qa.ingest.passages import Chunk
from qa.ingest.sentences import sentence_spans
from qa.library.build import document_id, manifest
from qa.records import Document, Sentence

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "squad"
FILES = ("squad_v2.0_dev_subset.json", "squad_v1.1_dev_subset.json")
PER_DOCUMENT = 45
SIGMA = 0.02
SIZES = (10_000, 100_000, 1_000_000)


class Seeds:
    """The seed passages: text, sentence offsets inside it, and the encoder's vector."""

    def __init__(self, pipe: Pipeline, files: list[Path], chunk_chars: int) -> None:
        questions = load_all([str(files[0])]).questions
        paragraphs = [p for f in files for _, paras in load_all([str(f)]).documents.values() for p in paras]
        self.texts = list(dict.fromkeys(piece for p in paragraphs for piece in pieces(p, chunk_chars)))
        self.spans = [sentence_spans(t) or [(0, len(t))] for t in self.texts]
        self.vectors = pipe.embedder.encode(self.texts)
        self.questions = [q.text for q in questions]


def pieces(paragraph: str, chunk_chars: int) -> list[str]:
    """A paragraph cut at sentence ends into pieces of at most `chunk_chars` (as the chunker
    would cut it into passages, without the overlap)."""
    out, start, end = [], None, None
    for a, b in sentence_spans(paragraph):
        if start is not None and b - start > chunk_chars:
            out.append(paragraph[start:end])
            start = None
        start = a if start is None else start
        end = b
    if start is not None:
        out.append(paragraph[start:end])
    return out


def document(seeds: Seeds, picks: np.ndarray, n: int, path: str) -> tuple[Document, list[Chunk]]:
    """A document whose paragraphs are the picked seeds, one passage each (as the chunker cuts
    a paragraph of at most `chunk_chars`)."""
    parts, sentences, chunks, paragraphs, at = [], [], [], [], 0
    for n, p in enumerate(picks):
        text = seeds.texts[p]
        first = len(sentences)
        sentences += [Sentence(at + a, at + b, paragraph=n) for a, b in seeds.spans[p]]
        chunks.append(Chunk(at + seeds.spans[p][0][0], at + seeds.spans[p][-1][1], first, len(sentences) - 1))
        parts.append(text)
        paragraphs.append((at, at + len(text)))
        at += len(text) + 2
    return Document(path, f"Scale document {n}", "text", "\n\n".join(parts), sentences,
                    paragraphs=paragraphs), chunks


def build(size: int, seeds: Seeds, folder: Path, config: dict, embedder, keep: bool,
          rng: np.random.Generator) -> np.ndarray:
    """Write an index of `size` passages into `folder`; returns all its vectors by passage id - 1."""
    sources = folder / "sources"
    if keep:
        sources.mkdir(parents=True, exist_ok=True)
    vectors = np.zeros((size, seeds.vectors.shape[1]), dtype="float32")
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with ix.writer_lock(folder) as root:
        writer = ix.IndexWriter(root, None, embedder.dimension, config["vector_index"])
        for n, at in enumerate(range(0, size, PER_DOCUMENT)):
            picks = rng.integers(len(seeds.texts), size=min(PER_DOCUMENT, size - at))
            noisy = seeds.vectors[picks] + rng.normal(0.0, SIGMA, (len(picks), vectors.shape[1]))
            noisy = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype("float32")
            file = sources / f"doc-{n:06}.txt"  # as `qa index DIR/sources` would find it
            doc, chunks = document(seeds, picks, n, f"sources/{file.name}")
            body = doc.text.encode()
            if keep:
                file.write_bytes(body)
            source = os.path.abspath(file)
            ids = writer.add(document_id(source), doc, hashlib.sha256(body).hexdigest(), now, chunks, noisy, source)
            vectors[np.asarray(ids) - 1] = noisy
        writer.publish({**manifest(embedder, config), "roots": [os.path.abspath(sources) + "/"]})
    return vectors


def search_figures(pipe: Pipeline, vectors: np.ndarray, qvecs: np.ndarray, questions: list[str]) -> dict:
    exact = np.concatenate([np.argpartition(-(part @ vectors.T), 10, axis=1)[:, :10]  # 50 questions at a time
                            for part in np.array_split(qvecs, max(1, len(qvecs) // 50))]) + 1  # ids start at 1

    def work(snap, view) -> dict:
        times, lexical, hits = [], [], 0
        for q, truth in zip(qvecs, exact, strict=True):
            t = time.perf_counter()
            found = snap.dense(q, 10)
            times.append((time.perf_counter() - t) * 1000)
            hits += len({pid for pid, _ in found} & set(truth.tolist()))
        for q in questions:
            t = time.perf_counter()
            view.lexical(q, pipe.config["candidates"])
            lexical.append((time.perf_counter() - t) * 1000)
        return {"dense_p50_ms": percentile(times, 50), "dense_p95_ms": percentile(times, 95),
                "recall_at_10": hits / (10 * len(qvecs)), "lexical_p50_ms": percentile(lexical, 50),
                "lexical_p95_ms": percentile(lexical, 95)}

    return {**pipe.serving.reading(work), "segments": [s["kind"] for s in pipe.library.summary()["segments"]]}


def http_figures(index: str, questions: list[str], requests: int, settings: dict[str, str] | None = None) -> dict:
    with serve_index(index, timeout=600, settings=settings) as (base, proc, ready):
        wall = []
        for i in range(requests):
            url = f"{base}/api/ask?{urllib.parse.urlencode({'q': questions[i % len(questions)]})}"
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=120) as resp:
                json.load(resp)
            wall.append((time.perf_counter() - t) * 1000)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"ask_p50_ms": percentile(wall, 50), "ask_p95_ms": percentile(wall, 95), "serve_ready_s": ready,
            "serve_peak_rss_mb": peak / 1024}


def update_figures(pipe: Pipeline, seeds: Seeds, extra: Path, rng: np.random.Generator) -> dict:
    """One real 45-passage file added (parsed, encoded, published) and one document removed."""
    extra.mkdir(exist_ok=True)
    picks = rng.integers(len(seeds.texts), size=PER_DOCUMENT)
    (extra / "added.txt").write_text("\n\n".join(seeds.texts[p] for p in picks) + "\n")
    t = time.perf_counter()
    report = pipe.library.index([str(extra)])
    add = time.perf_counter() - t
    victim = pipe.library.documents(limit=1)[0][0]["id"]
    source = pipe.serving.reading(lambda _, view: view.document(victim).source)
    t = time.perf_counter()
    removed = pipe.library.index([], remove=[source])
    remove = time.perf_counter() - t
    assert report.added and removed.removed, (report.summary(), removed.summary())
    return {"add_document_s": add, "add_document_passages": report.encoded, "remove_document_s": remove}


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "sources" not in p.parts) / 2**20


def postgres_figures(size: int, folder: Path, seeds: Seeds, config: dict, pipe: Pipeline, vectors: np.ndarray,
                     qvecs: np.ndarray, sample: list[str], args) -> dict:
    """The embedded index at `folder` written into a fresh PostgreSQL (`qa index --copy-to`) and
    measured as the embedded one is; every key prefixed `pg_`."""
    import pg  # scripts/pg.py: `make pg-up`'s server

    from qa.index.postgres import copy_index

    with tempfile.TemporaryDirectory(prefix="footnote-pg-") as pgdir:
        dsn = pg.start(pgdir)
        try:
            t = time.perf_counter()
            copy_index(str(folder), dsn)
            out = {"copy_s": time.perf_counter() - t}
            reader = Pipeline({**config, "index": dsn}, embedder=pipe.embedder)
            out |= search_figures(reader, vectors, qvecs, sample)
            out |= http_figures(dsn, sample, args.requests)
            out |= update_figures(reader, seeds, folder / "extra-pg", np.random.default_rng(size))
        finally:
            pg.stop(pgdir)
    return {f"pg_{k}": v for k, v in out.items()}


def run(size: int, seeds: Seeds, folder: Path, config: dict, pipe: Pipeline, args) -> dict:
    rng = np.random.default_rng(size)
    t = time.perf_counter()
    vectors = build(size, seeds, folder, config, pipe.embedder, args.keep is not None, rng)
    built = time.perf_counter() - t
    sample = [seeds.questions[i] for i in rng.choice(len(seeds.questions), size=1000, replace=False)]
    qvecs = pipe.embedder.encode(sample)
    reader = Pipeline({**config, "index": str(folder)}, embedder=pipe.embedder)
    out = {"passages": size, "build_s": built, **search_figures(reader, vectors, qvecs, sample)}
    if size <= args.postgres_max:  # before the embedded index changes: both start from the same rows
        out |= postgres_figures(size, folder, seeds, config, pipe, vectors, qvecs, sample, args)
    del vectors
    out |= http_figures(str(folder), sample, args.requests)
    if args.baseline_reranker:  # the same requests to a server reranking with the baseline model
        base = http_figures(str(folder), sample, args.requests, {"reranker": args.baseline_reranker})
        out |= {"base_ask_p50_ms": base["ask_p50_ms"], "base_ask_p95_ms": base["ask_p95_ms"]}
    out |= update_figures(reader, seeds, folder / "extra", rng)
    out["disk_mb"] = disk_mb(folder)
    out["vectors_mb"] = size * seeds.vectors.shape[1] * 4 / 2**20
    with reader.serving.snapshot().view() as view:
        out["text_mb"] = sum(d["chars"] for d in view.documents()[0]) / 2**20
    out["disk_budget_mb"] = 2 * (out["vectors_mb"] + out["text_mb"])
    return out


def table(rows: list[dict]) -> str:
    cols = (("passages", "passages", "{:,}"), ("build_s", "build s", "{:.0f}"),
            ("dense_p50_ms", "dense p50 ms", "{:.2f}"), ("dense_p95_ms", "p95", "{:.2f}"),
            ("recall_at_10", "recall@10", "{:.3f}"), ("lexical_p50_ms", "lexical p50 ms", "{:.1f}"),
            ("ask_p50_ms", "/api/ask p50 ms", "{:.0f}"), ("ask_p95_ms", "p95", "{:.0f}"),
            ("add_document_s", "add 45 s", "{:.2f}"), ("remove_document_s", "remove s", "{:.2f}"),
            ("serve_ready_s", "serve ready s", "{:.1f}"), ("serve_peak_rss_mb", "peak RSS MB", "{:.0f}"),
            ("disk_mb", "disk MB", "{:.0f}"), ("disk_budget_mb", "budget MB", "{:.0f}"))
    return markdown(cols, rows)


def reranker_table(rows: list[dict], baseline: str) -> str:
    """`/api/ask` with Footnote's reranker against the same requests with `baseline`'s."""
    rows = [{**r, "p50_ratio": r["base_ask_p50_ms"] / r["ask_p50_ms"],
             "p95_ratio": r["base_ask_p95_ms"] / r["ask_p95_ms"]} for r in rows if "base_ask_p50_ms" in r]
    cols = (("passages", "passages", "{:,}"), ("ask_p50_ms", "/api/ask p50 ms", "{:.0f}"),
            ("base_ask_p50_ms", f"with {baseline}", "{:.0f}"), ("p50_ratio", "ratio", "{:.2f}x"),
            ("ask_p95_ms", "p95 ms", "{:.0f}"), ("base_ask_p95_ms", f"with {baseline}", "{:.0f}"),
            ("p95_ratio", "ratio", "{:.2f}x"))
    return markdown(cols, rows) if rows else ""


def postgres_table(rows: list[dict]) -> str:
    """Embedded against PostgreSQL, size by size: writing (no encoding on either side: passages
    a second), dense search, `/api/ask` over HTTP, adding and removing a document."""
    rows = [{**r, "write": r["passages"] / r["build_s"], "pg_write": r["passages"] / r["pg_copy_s"],
             "ratio": r["build_s"] / r["pg_copy_s"]} for r in rows if "pg_copy_s" in r]
    cols = (("passages", "passages", "{:,}"), ("write", "embedded write passages/s", "{:,.0f}"),
            ("pg_write", "PostgreSQL write passages/s", "{:,.0f}"), ("ratio", "ratio", "{:.2f}"),
            ("dense_p50_ms", "dense p50 ms", "{:.2f}"), ("pg_dense_p50_ms", "PG", "{:.2f}"),
            ("recall_at_10", "recall@10", "{:.3f}"), ("pg_recall_at_10", "PG", "{:.3f}"),
            ("lexical_p50_ms", "lexical p50 ms", "{:.1f}"), ("pg_lexical_p50_ms", "PG", "{:.1f}"),
            ("ask_p50_ms", "/api/ask p50 ms", "{:.0f}"), ("pg_ask_p50_ms", "PG", "{:.0f}"),
            ("ask_p95_ms", "p95", "{:.0f}"), ("pg_ask_p95_ms", "PG", "{:.0f}"),
            ("add_document_s", "add 45 s", "{:.2f}"), ("pg_add_document_s", "PG", "{:.2f}"),
            ("remove_document_s", "remove s", "{:.2f}"), ("pg_remove_document_s", "PG", "{:.2f}"))
    return markdown(cols, rows) if rows else ""


def markdown(cols: tuple[tuple[str, str, str], ...], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(c[2].format(r[c[0]]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, action="append", help="build only this size (repeatable)")
    parser.add_argument("--keep", type=Path, default=None, help="leave the (last) index in this folder")
    parser.add_argument("--requests", type=int, default=100, help="/api/ask requests over HTTP")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--baseline-reranker", default="",
                        help="time /api/ask also with this reranker setting (e.g. ms-marco-l12), as a baseline")
    parser.add_argument("--postgres-max", type=int, default=100_000,
                        help="measure PostgreSQL too up to this many passages (0: never); needs `make install-scale`")
    args = parser.parse_args()
    files = [EVAL / f for f in FILES]
    if not all(f.is_file() for f in files):
        print(f"skipped: the public SQuAD files are not in {EVAL}")
        return
    config = load(config_file=None, environ={})
    pipe = Pipeline(config)
    seeds = Seeds(pipe, files, config["chunk_chars"])
    print(f"{len(seeds.texts)} seed passages, {len(seeds.questions)} questions; {os.cpu_count()} cores", flush=True)
    rows = []
    for size in args.passages or SIZES:
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            folder = args.keep
            rows.append(run(size, seeds, folder, config, pipe, args))
        else:
            with tempfile.TemporaryDirectory(prefix="footnote-scale-") as tmp:
                rows.append(run(size, seeds, Path(tmp), config, pipe, args))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    print(postgres_table(rows))
    print(reranker_table(rows, args.baseline_reranker))
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
