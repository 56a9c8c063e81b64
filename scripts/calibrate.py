"""Fit the abstention calibration (qa/models/calibration.json) on a public SQuAD 2.0 file.

    .venv/bin/python scripts/calibrate.py ../shared/eval/squad/squad_v2.0_dev_subset.json [--write]

Every question is read with `Pipeline.read` (retrieval, cross-encoder, span reader; no
decision). The label is "the evidence is right": the sentence holding the reader's span lies
in the question's own paragraph and holds a gold answer (0 for unanswerable questions). A
logistic regression of that label on `qa.read.signals.evidence_signals` gives the weights; the
threshold is the confidence that answers `--answer-share` of the answerable questions.

Nested article-wise cross-validation says what holds on unseen articles: for each article,
weights are fitted on the others, and the threshold is chosen inside those others by a
second article-wise split (never on the held-out article's scores); the held-out article is
then decided with both. The printed held-out EM, F1, sentence accuracy, answered and
abstained are the honest figures; `qa eval` on this same file with the written calibration is
in-sample (it says so in `in_sample`). `--write` stores the weights fitted on the whole file
with its own inner-CV threshold. Tune on this public file only; SQuAD 1.1 and CLAPNQ stay
untouched. `--readings FILE` fits and scores readings made elsewhere instead of reading (those
`scripts/reader_folds.py` makes, each fold read by a reader that never saw it); they come from
other readers than the shipped one, so they cannot be written as its calibration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import load
from qa.eval.evaluate import Corpus, Question, load_all, open_index, paragraph_ranges, sample, sha256
from qa.eval.scoring import best_f1, contains_answer, exact_match, overlaps
from qa.pipeline import Pipeline
from qa.read.signals import CALIBRATION_FILE
from qa.read.spans import BUNDLED, trained_window
from qa.search.rerank import SHIPPED, folder_for

READ_CODE = Path(__file__).resolve().parent.parent / "qa" / "read"
SIGNALS = ("margin", "relevance", "passage_relevance", "missing_names", "missing_numbers", "near_miss", "negation")


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 30) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton steps on standardised signals.

    Returns:
        Weights and bias on the raw signals' scale.
    """
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    reg = np.full(z.shape[1], 2 * l2 * len(x))
    reg[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + reg * w
        hess = z.T @ (z * (p * (1 - p))[:, None]) + np.diag(reg)
        w -= np.linalg.solve(hess, grad)
    weights = w[:-1] / sd
    return weights, float(w[-1] - weights @ mu)


def prob(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x @ weights + bias, -60, 60)))


def threshold(x: np.ndarray, y: np.ndarray, answerable: np.ndarray, articles: np.ndarray, share: float) -> float:
    """The confidence answering `share` of the answerable questions, read off scores that were
    each computed with weights fitted without their own article."""
    held = np.zeros(len(y))
    for a in set(articles):
        out = articles == a
        w, b = fit(x[~out], y[~out])
        held[out] = prob(x[out], w, b)
    return float(np.quantile(held[answerable], 1 - share))


def model_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()


def read_all(file: str, limit: int | None, index: str | None, cache: Path) -> list[dict]:
    """One record a question: its article, answerability, signals and what answering would score.

    Readings are cached by file, sample, reader, reranker, the reading code (`qa/read/`) and
    calibration-free pipeline settings, since reading 3,859 questions takes minutes and fitting
    takes a second.
    """
    corpus = load_all([file])
    config = load(config_file=None)
    models = [model_sha256(BUNDLED)[:16], trained_window(BUNDLED), model_sha256(folder_for(config["reranker"]))[:16]]
    code = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(READ_CODE.glob("*.py")))).hexdigest()[:16]
    key = hashlib.sha256(json.dumps([sha256(file), limit, *models, code, config["answer_passages"],
                                     config["rerank_passages"], config["chunk_chars"]]).encode()).hexdigest()[:16]
    path = cache / f"readings-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory(prefix="footnote-calibrate-") as tmp:
        records = read_questions(open_index(corpus, config, index or tmp), corpus, sample(corpus.questions, limit))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return records


def read_questions(pipe: Pipeline, corpus: Corpus, questions: list[Question]) -> list[dict]:
    """A record for each question read with `pipe` (see `read_all`); `scripts/reader_folds.py`
    reads each fold's questions with its own reader through this too."""
    ranges = paragraph_ranges(pipe, corpus)
    records = []
    for n, q in enumerate(questions):
        r = pipe.read(q.text)
        rec = {"id": q.id, "article": q.document, "answerable": q.answerable, "read": r.best is not None}
        if r.best is not None:
            doc_id, spans = ranges[q.document]
            best = r.best
            own = best.document.id == doc_id and overlaps((best.sentence.start, best.sentence.end), spans[q.paragraph])
            rec.update(signals=r.signals, pasted=r.pasted, span=best.span,
                       right=bool(q.answerable and own and contains_answer(best.text, q.answers)),
                       em=exact_match(best.span, q.answers) if q.answerable else 0.0,
                       f1=best_f1(best.span, q.answers) if q.answerable else 0.0)
        records.append(rec)
        if (n + 1) % 250 == 0:
            print(f"read {n + 1} questions", file=sys.stderr, flush=True)
    return records


def figures(records: list[dict], answered: np.ndarray) -> dict[str, float]:
    """EM, F1, sentence accuracy, answered and abstained for these answer decisions."""
    ans = np.array([r["answerable"] for r in records])
    right = np.array([r.get("right", False) for r in records]) & answered
    em = np.array([r.get("em", 0.0) for r in records]) * answered
    f1 = np.array([r.get("f1", 0.0) for r in records]) * answered
    return {"em": round(float(em[ans].mean()), 4), "f1": round(float(f1[ans].mean()), 4),
            "sentence_accuracy": round(float(right[ans].mean()), 4),
            "has_answer_answered": round(float(answered[ans].mean()), 4),
            "no_answer_abstained": round(float((~answered[~ans]).mean()), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a SQuAD 2.0 JSON file (public data only)")
    parser.add_argument("--index", default=None, help="reuse or keep the eval index here")
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N questions")
    parser.add_argument("--answer-share", type=float, default=0.87,
                        help="share of answerable questions to answer (default 0.87)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "footnote" / "calibrate")
    parser.add_argument("--readings", type=Path, default=None,
                        help="fit on these readings instead of reading (as scripts/reader_folds.py writes them)")
    parser.add_argument("--write", action="store_true", help=f"write {CALIBRATION_FILE.relative_to(Path.cwd())}")
    args = parser.parse_args()
    if args.readings is not None and args.write:
        parser.error("--readings are made with other readers than the shipped one: nothing to --write")
    records = (json.loads(args.readings.read_text()) if args.readings is not None
               else read_all(args.file, args.limit, args.index, args.cache))
    read = [r for r in records if r["read"]]
    x = np.array([[r["signals"][s] for s in SIGNALS] for r in read])
    y = np.array([float(r["right"]) for r in read])
    answerable = np.array([r["answerable"] for r in read])
    articles = np.array([r["article"] for r in read])
    pasted = np.array([r["pasted"] for r in read])
    print(f"{len(records)} questions ({int(answerable.sum())} answerable read), {len(set(articles))} articles; "
          f"reader's evidence right for {y[answerable].mean():.3f} of answerable questions read")
    decided = np.zeros(len(read), dtype=bool)
    for a in sorted(set(articles)):
        out = articles == a
        cut = threshold(x[~out], y[~out], answerable[~out], articles[~out], args.answer_share)
        w, b = fit(x[~out], y[~out])
        decided[out] = (prob(x[out], w, b) >= cut) | pasted[out]
    index = {r["id"]: i for i, r in enumerate(read)}
    answered = np.array([r["read"] and decided[index[r["id"]]] for r in records])
    held = figures(records, answered)
    print(f"held out (nested article-wise CV, threshold chosen inside the training folds): {held}")
    weights, bias = fit(x, y)
    cut = threshold(x, y, answerable, articles, args.answer_share)
    fitted_answered = np.array([r["read"] and (r["pasted"] or prob(np.array([r["signals"][s] for s in SIGNALS]),
                                                                     weights, bias) >= cut) for r in records])
    in_sample = figures(records, fitted_answered)
    print(f"in-sample (weights fitted on the whole file): {in_sample}")
    print("weights: " + ", ".join(f"{s} {w:.3f}" for s, w in zip(SIGNALS, weights, strict=True))
          + f"; bias {bias:.3f}; threshold {cut:.3f}")
    if args.write:
        config = load(config_file=None)
        reranker = folder_for(config["reranker"])
        reader_sha, reranker_sha = model_sha256(BUNDLED), model_sha256(reranker)
        fitted = {"weights": {s: round(float(w), 4) for s, w in zip(SIGNALS, weights, strict=True)},
                  "bias": round(bias, 4), "threshold": round(cut, 4)}
        numbers = hashlib.sha256(json.dumps(fitted, sort_keys=True).encode()).hexdigest()
        body = {
            # a new reader or reranker moves the signals, and so may a change in how spans are read
            # or chosen with the same models: the version names both models and the fitted numbers
            "version": f"{dt.date.today():%Y%m%d}-{reader_sha[:8]}-{reranker_sha[:8]}-{numbers[:6]}",
            **fitted,
            "fitted": {
                "command": "scripts/calibrate.py " + " ".join(sys.argv[1:]),
                "data": [{"file": Path(args.file).name, "sha256": sha256(args.file), "questions": len(records)}],
                "label": "the evidence sentence is in the question's own paragraph and holds a gold answer",
                "answer_share": args.answer_share,
                "models": {"reader": f"qa/models/reader/model.onnx sha256 {reader_sha}",
                           "reranker": f"{'qa/models/reranker' if reranker == SHIPPED else reranker}/model.onnx "
                                       f"sha256 {reranker_sha}",
                           "embedder": config["model"]},
                "chunker": {"chunk_chars": config["chunk_chars"], "chunk_overlap": config["chunk_overlap"]},
                "held_out": held, "in_sample": in_sample,
            },
        }
        CALIBRATION_FILE.write_text(json.dumps(body, indent=2) + "\n")
        print(f"wrote {CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
