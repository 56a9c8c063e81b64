"""Choose the supporting sentence, cut a short answer from it, attach its footnotes, or abstain.

Nothing is generated: the answer is a slice of a stored sentence, and the footnotes are the
citations the source itself put on that sentence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

STOPWORDS = frozenset("""
a an the of in on at to for from by with about as into over after before between under and or but
is are was were be been being do does did has have had what which who whom whose when where why how
that this these those it its they them their there here he she his her we our you your i me my
not no nor so than too very can could should would will shall may might must also any all some each
name named called one many much more most other such only own same then just
""".split())
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_ANAPHOR = re.compile(r"^(?:It|Its|They|Their|This|These|That|Those|He|She|His|Her|The same \w+|There)\b")


def stem(word: str) -> str:
    """A crude suffix stripper: enough to match "created"/"creates", "centers"/"center"."""
    w = word.lower().strip("'’-")
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 1}


@dataclass(frozen=True)
class Candidate:
    """A sentence of a top passage: (document id, sentence index), its text, its passage's rank
    and the cross-encoder's relevance logit for that whole passage."""

    key: tuple[str, int]
    text: str
    passage_rank: int
    passage_relevance: float


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with its cross-encoder relevance (a logit, about -11..11)."""

    key: tuple[str, int]
    text: str
    relevance: float
    passage_rank: int
    passage_relevance: float


def verbatim_codes(question: str, sentence: str) -> int:
    """How many of the question's tokens with a digit ("1871", "3-5", "A320") the sentence has
    verbatim, as whole tokens: the cross-encoder barely tells "station 3-5" from "station 5-3"."""
    codes = {w for w in _WORD.findall(question) if any(ch.isdigit() for ch in w)}
    return sum(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", sentence) is not None for w in codes)


def rank_sentences(question: str, candidates: list[Candidate], relevance: np.ndarray) -> list[Scored]:
    """Candidates best first by their own relevance plus their passage's, plus one for each of
    the question's numbers and codes they hold verbatim; passage rank on ties.

    The passage's logit carries what one sentence read alone lacks (the topic named two
    sentences earlier), so a sentence of a clearly better passage wins over a lookalike in a
    weaker one. The verbatim bonus picked the answer sentence slightly more often on the public
    SQuAD files (+0.1 to +0.2 points) and settles identifiers the model confuses. Adding left
    context, coverage or answer type to the sentence's score did not help (0.74-0.75 either way,
    600 questions, article-wise cross-validation).
    """
    scored = [Scored(c.key, c.text, float(r), c.passage_rank, c.passage_relevance)
              for c, r in zip(candidates, relevance, strict=True)]
    return sorted(scored, key=lambda s: (-(s.relevance + s.passage_relevance + verbatim_codes(question, s.text)),
                                         s.passage_rank))


_NEGATION = re.compile(r"\b(?:not|never|no|none|nor|neither|without)\b|n['’]t\b", re.IGNORECASE)
# Weights of `confidence`: `scripts/calibrate.py` on the public SQuAD 2.0 file (3,859 questions,
# 12 articles); see the README's Quality section for the rates they give held out article by
# article. SQuAD 2.0's unanswerable questions are written against the same paragraph with a
# name, a number or a word swapped, or a negation added, so a question word the passage lacks
# is the tell that relevance cannot see.
CONFIDENCE_WEIGHTS = {"relevance": 0.133, "passage_relevance": 0.033, "missing_names": -0.582,
                      "missing_numbers": -2.293, "near_miss": -0.382, "negation": -2.326}
CONFIDENCE_BIAS = -0.302


def evidence_signals(question: str, sentence: str, relevance: float, passage: str, passage_relevance: float,
                     context: str = "") -> dict[str, float]:
    """The signals `confidence` weighs, for the best sentence and the passage that holds it.

    `context` is what the passage leaves implicit: its document's title and opening sentence,
    which name the topic later paragraphs only refer to ("it", "the lighthouse"). Against
    passage and context together: missing_names counts capitalised question words (not the
    first) absent; missing_numbers the question's numbers absent; near_miss is 1 when all but
    one or two of the question's content words are there (at least 0.6 of them), the mark of
    a question about the passage's subject with one detail changed. negation is 1 when the
    question is negated ("Who did not ...") and the sentence is not: it then states the
    opposite of what was asked.

    A question whose every word is in the passage is not held against it: a fitted weight on
    plain coverage came out negative on SQuAD 2.0 (its unanswerable questions reuse the
    paragraph's words) and then doubted pasted sentences, so coverage enters only as near_miss.
    """
    text = f"{context} {passage}"
    words = _WORD.findall(question)
    lower = text.lower()
    asked = content_words(question)
    missing = len(asked - content_words(text))
    return {
        "relevance": relevance,
        "passage_relevance": passage_relevance,
        "missing_names": float(sum(w.lower() not in lower for w in words[1:] if w[:1].isupper())),
        "missing_numbers": float(sum(w not in text for w in words if w.isdigit())),
        "near_miss": float(1 <= missing <= 2 and missing <= 0.4 * len(asked)),
        "negation": float(bool(_NEGATION.search(question)) and not _NEGATION.search(sentence)),
    }


def confidence(signals: dict[str, float]) -> float:
    """Probability (0..1) that the passage answers the question, from `evidence_signals`."""
    z = CONFIDENCE_BIAS + sum(CONFIDENCE_WEIGHTS[k] * v for k, v in signals.items())
    return 1.0 / (1.0 + math.exp(-z))


def needs_previous(sentence: str) -> bool:
    """A sentence that opens with a pronoun ("It operates ...") is shown with the one before it."""
    return bool(_ANAPHOR.match(sentence))


_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|" \
          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}} {_MONTHS},? \d{{3,4}}|{_MONTHS} \d{{1,2}},? \d{{3,4}}|{_MONTHS},? \d{{3,4}}|"
    rf"(?:early |late |mid-)?\d{{3,4}}s?(?: (?:to|and|–|-) \d{{2,4}})?|{_MONTHS} \d{{1,2}})\b"
)
_NUMBER = re.compile(r"(?:(?:over|about|around|nearly|almost|more than|less than|some|approximately) )?"
                     r"\$?\d[\d,.]*(?:\s?(?:%|percent|million|billion|thousand|hundred))?"
                     r"(?: [a-zA-Z]+)?")
_PROPER = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of |the |de |von |van |and )?[A-Z][\w'’.-]*)*")


def short_span(question: str, sentence: str) -> tuple[int, int] | None:
    """A short answer inside the sentence for when/how many/who/where questions, else None.

    The span must add something the question does not already say.
    """
    q = question.strip().lower()
    qwords = content_words(question)
    if re.match(r"^(when|what year|in what year|what date|on what date|in which year)\b", q):
        pattern = _DATE
    elif re.match(r"^(how (many|much|long|far|tall|high|old|big|large|wide|deep|often)|what percentage|"
                  r"what number)\b", q):
        pattern = _NUMBER
    elif re.match(r"^(who|whom|whose|where|which (person|company|country|city|organi[sz]ation))\b", q):
        pattern = _PROPER
    else:
        return None
    for m in pattern.finditer(sentence):
        span = m.group(0).strip().rstrip(".,")
        if (span and not content_words(span) <= qwords) or (span.isdigit() and span not in question):
            start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            return start, start + len(span)
    return None
