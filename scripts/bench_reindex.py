"""Benchmark: adding one document to a large index versus rebuilding it, measured in the same run.

Builds a synthetic corpus of at least 10,000 passages (deterministic, so runs compare), then
times a full rebuild, a run with nothing to do, adding one typical document, and changing one.
Prints the figures and the ratios. Usage: python scripts/bench_reindex.py [--docs N]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import Pipeline

WORDS = ("river harbour council museum railway bridge festival orchard glacier lighthouse archive "
         "province treaty cathedral vineyard observatory canal fortress market university library "
         "parliament monastery reservoir tramway quarry estuary meadow garrison foundry").split()
VERBS = "built opened restored surveyed funded expanded closed renamed flooded described".split()


def sentence(rng: random.Random, i: int) -> str:
    a, b = rng.sample(WORDS, 2)
    return (f"In {rng.randint(1700, 2024)}, the {a} of {rng.choice(WORDS).title()}ville was "
            f"{rng.choice(VERBS)} by the {b} committee after {rng.randint(2, 90)} years of work.[{i % 9 + 1}]")


def document(rng: random.Random, n_sentences: int) -> str:
    return " ".join(sentence(rng, i) for i in range(n_sentences)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=230, help="documents in the corpus (about 45 passages each)")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for d in range(args.docs):
            (src / f"doc-{d:04}.txt").write_text(document(rng, 260))
        pipe = Pipeline({"index": str(Path(tmp) / "index")})
        pipe.warm_up()  # load the models before timing

        t = time.perf_counter()
        full = pipe.library.index([str(src)], rebuild=True)
        t_full = time.perf_counter() - t

        t = time.perf_counter()
        noop = pipe.library.index([str(src)])
        t_noop = time.perf_counter() - t

        (src / "new.txt").write_text(document(rng, 260))
        t = time.perf_counter()
        add = pipe.library.index([str(src)])
        t_add = time.perf_counter() - t

        target = src / "doc-0000.txt"
        target.write_text(target.read_text() + document(rng, 5))
        t = time.perf_counter()
        change = pipe.library.index([str(src)])
        t_change = time.perf_counter() - t

    print(f"corpus: {full.documents} documents, {full.passages} passages (model {pipe.config['model']})")
    print(f"full rebuild:            {t_full:8.2f} s  ({full.encoded} passages encoded)")
    print(f"nothing to do:           {t_noop:8.2f} s  ratio {t_noop / t_full:.4f}")
    print(f"add one document:        {t_add:8.2f} s  ratio {t_add / t_full:.4f}  ({add.encoded} encoded)")
    print(f"append to one document:  {t_change:8.2f} s  ratio {t_change / t_full:.4f}  ({change.encoded} encoded)")
    print(f"add-one-document cost is {100 * t_add / t_full:.2f}% of a full rebuild (target < 2%)")
    assert not noop.published and add.added and change.updated
    assert full.passages >= 10_000 or args.docs < 230, "the benchmark is defined on at least 10,000 passages"


if __name__ == "__main__":
    main()
