"""The bundled cross-encoder run for real, and the abstention signals computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.answer import CONFIDENCE_WEIGHTS, confidence, evidence_signals
from qa.documents import DocumentRef, PassageHit
from qa.errors import ConfigError
from qa.pipeline import distinct
from qa.rerank import Reranker

QUESTION = "When was the Point Morrow lighthouse first lit?"
TEXTS = [
    "The Point Morrow lighthouse was first lit on 12 March 1871 by keeper Ada Lindqvist.",
    "Sea otters use stones to open shellfish.",
    "Its Fresnel lens was made in Paris and shipped around Cape Horn, a voyage of many months "
    "that the keeper's diary describes in some detail, storm by storm.",
    "The light was automated in 1968.",
]


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker()


def test_the_answering_sentence_ranks_first(reranker: Reranker):
    scores = reranker.score(QUESTION, TEXTS)
    assert scores.shape == (4,) and int(np.argmax(scores)) == 0
    assert scores[0] > 0 > scores[1]  # logits: relevant above zero, unrelated far below


def test_batches_sorted_by_length_give_each_text_its_own_score(reranker: Reranker):
    texts = TEXTS * 3  # 12 pairs: two batches, padded to different widths
    together = reranker.score(QUESTION, texts)
    alone = np.array([reranker.score(QUESTION, [t])[0] for t in texts])
    # padding is masked out; what is left is int8 dynamic quantisation, whose activation scale
    # depends on the whole batch (measured up to 0.17 on a logit scale of about -11..11)
    assert np.allclose(together, alone, atol=0.25)


def test_long_text_is_cut_and_empty_input_is_empty(reranker: Reranker):
    long = reranker.score(QUESTION, [TEXTS[0] + " More words follow here." * 400])
    assert np.isfinite(long).all()
    assert reranker.score(QUESTION, []).shape == (0,)


def test_a_folder_without_the_model_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"model\.onnx"):
        Reranker(tmp_path)


def test_evidence_signals_by_hand():
    q = "When did Ada Lindqvist light the Point Morrow lamp in 1871?"
    passage = "The lamp was lit in 1871 by Ada Lindqvist."
    # content words: ada lindqvist light point morrow lamp 1871; the passage has ada lindqvist lamp 1871
    alone = evidence_signals(q, 2.0, passage)
    assert alone == {"relevance": 2.0, "coverage": 4 / 7, "missing_names": 2.0, "missing_numbers": 0.0,
                     "missing_words": 3.0}
    placed = evidence_signals(q, 2.0, passage, context="Point Morrow lighthouse")
    assert (placed["coverage"], placed["missing_names"], placed["missing_words"]) == (6 / 7, 0.0, 1.0)
    assert evidence_signals("Who lit it in 1872?", 2.0, passage)["missing_numbers"] == 1.0


def test_confidence_rises_with_relevance_and_falls_with_missing_names():
    q = "When did Ada Lindqvist light the Point Morrow lamp?"
    passage = "The lamp was lit in 1871 by Ada Lindqvist."
    ctx = "Point Morrow lighthouse"
    def conf(relevance: float, context: str = "") -> float:
        return confidence(evidence_signals(q, relevance, passage, context))

    assert 0 < conf(-5.0, ctx) < conf(5.0, ctx) < 1
    assert conf(5.0) < conf(5.0, ctx)


def test_reading_reranks_the_top_passages_and_gives_every_signal(pipeline):
    r = pipeline.read("When was the Point Morrow lighthouse first lit?")
    assert r.best.text.startswith("The Point Morrow lighthouse was first lit")
    assert r.document.id == r.hits[0].document.id
    assert r.hits[0].start <= r.sentence.start < r.sentence.end <= r.hits[0].end
    assert set(r.signals) == set(CONFIDENCE_WEIGHTS)


def test_passages_sharing_text_are_listed_once():
    doc, other = DocumentRef("d", "D", "d.txt"), DocumentRef("e", "E", "e.txt")
    hits = (PassageHit(1, doc, "a b", 0.9, 0, 100), PassageHit(2, doc, "b c", 0.8, 60, 160),
            PassageHit(3, other, "x", 0.7, 60, 160), PassageHit(4, doc, "next paragraph", 0.6, 162, 200))
    assert [h.id for h in distinct(hits)] == [1, 3, 4]
