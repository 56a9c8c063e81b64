"""Search: the bundled cross-encoder run for real, the rerank policy, overlapping passages;
and the abstention signals computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.errors import ConfigError
from qa.read.reader import CLOSE
from qa.read.signals import CALIBRATION, evidence_signals
from qa.records import DocumentRef, PassageHit
from qa.search.rerank import CrossEncoder
from qa.search.searcher import RERANK_FIRST, RERANK_SURE, Searcher, distinct
from tests.conftest import make_pipeline

QUESTION = "When was the Point Morrow lighthouse first lit?"
TEXTS = [
    "The Point Morrow lighthouse was first lit on 12 March 1871 by keeper Ada Lindqvist.",
    "Sea otters use stones to open shellfish.",
    "Its Fresnel lens was made in Paris and shipped around Cape Horn, a voyage of many months "
    "that the keeper's diary describes in some detail, storm by storm.",
    "The light was automated in 1968.",
]


@pytest.fixture(scope="module")
def reranker() -> CrossEncoder:
    return CrossEncoder()


def test_the_answering_sentence_ranks_first(reranker: CrossEncoder):
    scores = reranker.score(QUESTION, TEXTS)
    assert scores.shape == (4,) and int(np.argmax(scores)) == 0
    assert scores[0] > 0 > scores[1]  # logits: relevant above zero, unrelated far below


def test_batches_sorted_by_length_give_each_text_its_own_score(reranker: CrossEncoder):
    texts = TEXTS * 3  # 12 pairs: two batches, padded to different widths
    together = reranker.score(QUESTION, texts)
    alone = np.array([reranker.score(QUESTION, [t])[0] for t in texts])
    # padding is masked out; what is left is int8 dynamic quantisation, whose activation scale
    # depends on the whole batch (measured up to 0.17 on a logit scale of about -11..11)
    assert np.allclose(together, alone, atol=0.25)


def test_long_text_is_cut_and_empty_input_is_empty(reranker: CrossEncoder):
    long = reranker.score(QUESTION, [TEXTS[0] + " More words follow here." * 400])
    assert np.isfinite(long).all()
    assert reranker.score(QUESTION, []).shape == (0,)


def test_a_folder_without_the_model_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"model\.onnx"):
        CrossEncoder(tmp_path)


def test_evidence_signals_by_hand():
    q = "When did Ada Lindqvist light the Point Morrow lamp in 1871?"
    passage = "The lamp was lit in 1871 by Ada Lindqvist."
    sentence = passage
    # content words: ada lindqvist light point morrow lamp 1871; the passage has ada lindqvist lamp 1871
    alone = evidence_signals(q, sentence, 2.0, passage, 5.0, margin=1.5)
    assert alone == {"margin": 1.5, "relevance": 2.0, "passage_relevance": 5.0, "missing_names": 2.0,
                     "missing_numbers": 0.0, "near_miss": 0.0, "negation": 0.0}  # 3 of 7 words missing: not near
    placed = evidence_signals(q, sentence, 2.0, passage, 5.0, context="Point Morrow lighthouse")
    assert (placed["missing_names"], placed["near_miss"]) == (0.0, 1.0)  # only "light" missing
    whole = evidence_signals(q, sentence, 2.0, passage, 5.0, context="Point Morrow lighthouse light")
    assert whole["near_miss"] == 0.0  # every word there: nothing held against it
    assert evidence_signals("Who lit it in 1872?", sentence, 2.0, passage, 5.0)["missing_numbers"] == 1.0


@pytest.mark.parametrize(("question", "sentence", "flag"), [
    ("Who did not light the lamp?", "The lamp was lit by Ada Lindqvist.", 1.0),
    ("Who didn't light the lamp?", "The lamp was lit by Ada Lindqvist.", 1.0),
    ("Which keeper never lit the lamp?", "Ada Lindqvist never lit the lamp.", 0.0),
    ("Who lit the lamp?", "The lamp was not lit by Ada Lindqvist.", 0.0),
    ("What is notable about the lamp?", "The lamp was lit by Ada Lindqvist.", 0.0),  # "not" inside a word
])
def test_a_negated_question_against_a_plain_sentence_is_flagged(question, sentence, flag):
    assert evidence_signals(question, sentence, 2.0, sentence, 2.0)["negation"] == flag


def test_confidence_rises_with_the_readers_margin_and_falls_with_a_missing_number():
    q = "When did Ada Lindqvist light the Point Morrow lamp in 1871?"
    passage = "The lamp was lit in 1871 by Ada Lindqvist."
    ctx = "Point Morrow lighthouse"

    def conf(margin: float, question: str = q) -> float:
        return CALIBRATION.confidence(evidence_signals(question, passage, 3.0, passage, 3.0, ctx, margin=margin))

    assert 0 < conf(-5.0) < conf(0.0) < conf(5.0) < 1
    assert conf(2.0, q.replace("1871", "1872")) < conf(2.0)


def test_reading_reranks_the_top_passages_and_gives_every_signal(pipeline):
    r = pipeline.read("When was the Point Morrow lighthouse first lit?")
    assert "1871" in r.best.span and r.best.text.startswith("The Point Morrow lighthouse was first lit")
    assert r.best.document.id == r.hits[0].document.id
    assert r.hits[0].start <= r.best.sentence.start < r.best.sentence.end <= r.hits[0].end
    assert set(r.signals) == set(CALIBRATION.weights)
    read = [h.relevance for h in r.hits if h.relevance is not None]
    assert read == sorted(read, reverse=True) and len(read) >= min(RERANK_FIRST, len(r.hits))
    assert r.signals["passage_relevance"] == r.hits[0].relevance


class CountingReranker:
    """The real cross-encoder, counting how many texts each question makes it read."""

    def __init__(self, inner: CrossEncoder) -> None:
        self.inner, self.read = inner, 0

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        self.read += len(texts)
        return self.inner.score(query, texts)


def _hits(n: int) -> tuple[PassageHit, ...]:
    doc = DocumentRef("d", "D", "d.txt")
    return tuple(PassageHit(i, doc, t, 1.0 - i / 100, 100 * i, 100 * i + 50) for i, t in enumerate(
        ["Sea otters use stones to open shellfish."] * (n - 1) + [TEXTS[0]]))


def test_rereading_goes_past_the_first_passages_only_without_a_clear_match(pipeline, reranker: CrossEncoder):
    counting = CountingReranker(reranker)
    late = _hits(12)  # the only relevant passage is 12th in retrieval order
    searcher = Searcher(lambda: counting, 0, 0, pipeline.searcher.rerank_passages)
    ranked = searcher.rerank(QUESTION, late)
    assert counting.read == 12 and ranked[0].id == 11 and ranked[0].relevance > RERANK_SURE
    counting.read = 0
    early = (late[-1], *late[:-1])  # now it is first: a clear match, the rest are not read
    ranked = searcher.rerank(QUESTION, early)
    assert counting.read == RERANK_FIRST and ranked[0].id == 11
    assert [h.relevance is None for h in ranked] == [False] * RERANK_FIRST + [True] * (12 - RERANK_FIRST)


def test_passages_sharing_text_are_listed_once():
    doc, other = DocumentRef("d", "D", "d.txt"), DocumentRef("e", "E", "e.txt")
    hits = (PassageHit(1, doc, "a b", 0.9, 0, 100), PassageHit(2, doc, "b c", 0.8, 60, 160),
            PassageHit(3, other, "x", 0.7, 60, 160), PassageHit(4, doc, "next paragraph", 0.6, 162, 200))
    assert [h.id for h in distinct(hits)] == [1, 3, 4]


def test_a_near_equal_passage_is_read_for_the_evidence_too(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    for i in (3, 5):
        (src / f"station-{i}.txt").write_text(" ".join(
            f"Station {i}-{j} on the river Ystad measured {i * 7 + j} millimetres of rain in week {j}."
            for j in range(9)) + "\n", encoding="utf-8")
    question = "How much rain did station 3-5 measure in week 5?"
    alone = make_pipeline(tmp_path / "idx", embedder, answer_passages=1)
    alone.library.index([str(src)])
    first = alone.read(question)
    # the whole-passage score prefers station 5's passage (full of "5-3", "5-5"), narrowly
    assert first.hits[0].document.path.endswith("station-5.txt")
    assert first.hits[0].relevance - first.hits[1].relevance < CLOSE
    both = make_pipeline(tmp_path / "idx", embedder)
    r = both.read(question)
    # the second passage's sentences are read too, and the one holding the question's codes
    # verbatim ranks above its passage-mates; that the reader still prefers station 5-3's
    # "38 millimetres" is its known weakness with codes (README, Quality)
    station3 = [f for f in r.found if f.document.path.endswith("station-3.txt")]
    assert station3 and station3[0].text.startswith("Station 3-5 ") and station3[0].codes == 2
