"""Find candidate passages: dense (FAISS) and lexical (FTS5 BM25) rankings fused by reciprocal rank.

Lexical search is strong on questions that reuse the source's words; dense search catches
paraphrase. Reciprocal rank fusion needs no score calibration between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.index import Snapshot, View
from qa.index.snapshot import Within

RRF_K = 60


@dataclass(frozen=True)
class Candidate:
    """A passage id with its fused score (0..1) and its rank in each retriever (None: not found)."""

    id: int
    score: float
    dense_rank: int | None
    lexical_rank: int | None
    dense_score: float


def retrieve(question: str, qvec: np.ndarray, reader: Snapshot, view: View,
             candidates: int, top_k: int, within: Within | None = None) -> list[Candidate]:
    """Rank passages for a question.

    Args:
        question: the question text (for BM25).
        qvec: its unit vector, shape (dimension,).
        reader: the generation being searched (its vectors; ids are passage ids).
        view: its stores, for this request.
        candidates: how many each retriever contributes.
        top_k: how many fused results to return.
        within: the question's scope (`View.within`); None searches every document.

    Returns:
        Candidates best first; `score` is the RRF score scaled so 1.0 means first in both.
    """
    dense = {pid: (rank, s) for rank, (pid, s) in enumerate(reader.dense(qvec, candidates, within))}
    lexical = {pid: rank for rank, (pid, _) in enumerate(view.lexical(question, candidates, within))}
    best = 2.0 / (RRF_K + 1)
    fused = []
    for pid in dense.keys() | lexical.keys():
        d = dense.get(pid)
        lr = lexical.get(pid)
        score = (1 / (RRF_K + 1 + d[0]) if d else 0.0) + (1 / (RRF_K + 1 + lr) if lr is not None else 0.0)
        fused.append(Candidate(pid, score / best, d[0] if d else None, lr, d[1] if d else 0.0))
    fused.sort(key=lambda c: (-c.score, c.id))
    return fused[:top_k]
