"""Fit the abstention weights of qa/answer.py on a public SQuAD 2.0 file.

    .venv/bin/python scripts/calibrate.py ../shared/eval/squad/squad_v2.0_dev_subset.json [--index DIR]

Every question is read with `Pipeline.read` (retrieval and cross-encoder, no decision). A
logistic regression of "the question is answerable" on `qa.answer.evidence_signals` gives
CONFIDENCE_WEIGHTS and CONFIDENCE_BIAS; it is also checked article by article (fit on the
others, score the held-out one), the figure that says whether it generalises. The printed
`min_support` values answer the given shares of answerable questions. Tune on public files only.

Beside each share it prints the ceiling of a better sentence choice: the sentence accuracy
of a reader that always found the answer sentence when the top two passages hold one, with
these signals deciding when to answer (held out). Above 0.85 only when both improve.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa import load
from qa.answer import CONFIDENCE_WEIGHTS
from qa.evaluate import load_all, open_index, sample
from qa.scoring import contains_answer

SHARES = (0.85, 0.87, 0.88, 0.90)


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


def rates(score: np.ndarray, answerable: np.ndarray, share: float) -> tuple[float, float, float]:
    """Threshold answering `share` of answerable questions, and the share of unanswerable abstained on."""
    threshold = float(np.quantile(score[answerable], 1 - share))
    answered = score >= threshold
    return threshold, float(answered[answerable].mean()), float((~answered[~answerable]).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a SQuAD 2.0 JSON file (public data only)")
    parser.add_argument("--index", default=None, help="reuse or keep the eval index here")
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of N questions")
    args = parser.parse_args()
    corpus = load_all([args.file])
    names = list(CONFIDENCE_WEIGHTS)
    with tempfile.TemporaryDirectory(prefix="footnote-calibrate-") as tmp:
        pipe = open_index(corpus, load(config_file=None), args.index or tmp)
        questions = sample(corpus.questions, args.limit)
        readings = [pipe.read(q.text) for q in questions]
    keep = [i for i, r in enumerate(readings) if r.best is not None]
    x = np.array([[readings[i].signals[n] for n in names] for i in keep])
    y = np.array([questions[i].answerable for i in keep])
    articles = np.array([questions[i].document for i in keep])
    holds = np.array([any(contains_answer(h.text, questions[i].answers) for h in readings[i].hits[:2]) for i in keep])
    held_out = np.zeros(len(y))
    for article in set(articles):
        train = articles != article
        w, b = fit(x[train], y[train].astype(float))
        held_out[~train] = x[~train] @ w + b
    weights, bias = fit(x, y.astype(float))
    fitted = 1 / (1 + np.exp(-(x @ weights + bias)))
    print(f"{len(y)} questions, {int(y.sum())} answerable, {len(set(articles))} articles")
    print("CONFIDENCE_WEIGHTS = {" + ", ".join(f'"{n}": {w:.3f}' for n, w in zip(names, weights, strict=True)) + "}")
    print(f"CONFIDENCE_BIAS = {bias:.3f}")
    for share in SHARES:
        cv_threshold, cv_answered, cv_abstained = rates(held_out, y, share)
        threshold, answered, abstained = rates(fitted, y, share)
        ceiling = float(((held_out >= cv_threshold) & holds)[y].mean())
        print(f"answer {share:.2f}: min_support {threshold:.3f} answers {answered:.3f}, abstains {abstained:.3f} "
              f"(article held out: answers {cv_answered:.3f}, abstains {cv_abstained:.3f}; "
              f"best possible sentence accuracy within the top two passages {ceiling:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
