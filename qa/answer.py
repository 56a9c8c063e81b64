"""Choose the supporting sentence, cut a short answer from it, attach its footnotes, or abstain.

Nothing is generated: the answer is a slice of a stored sentence, and the footnotes are the
citations the source itself put on that sentence.
"""

from __future__ import annotations

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


def coverage(question: str, sentence: str) -> float:
    """Share of the question's content words that the sentence contains."""
    q = content_words(question)
    return len(q & content_words(sentence)) / len(q) if q else 0.0


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with the signals that picked it."""

    key: tuple[str, int]
    text: str
    cosine: float
    coverage: float
    passage_rank: int

    @property
    def support(self) -> float:
        """How well the sentence supports an answer: meaning (cosine) and the question's own
        words (coverage) both count; a slight preference goes to higher-ranked passages."""
        return 0.6 * self.cosine + 0.4 * self.coverage - 0.01 * self.passage_rank


def score_sentences(question: str, qvec: np.ndarray, sentences: list[tuple[tuple[str, int], str, int]],
                    svecs: np.ndarray) -> list[Scored]:
    """Score candidate sentences, best first.

    Args:
        question: the question.
        qvec: its unit vector.
        sentences: (key, text, passage rank) for each candidate sentence.
        svecs: their unit vectors, row-aligned.
    """
    cos = svecs @ qvec if len(sentences) else np.zeros(0)
    scored = [Scored(k, t, float(c), coverage(question, t), r) for (k, t, r), c in zip(sentences, cos, strict=True)]
    return sorted(scored, key=lambda s: -s.support)


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
    elif re.match(r"^(how many|how much|what percentage|what number)\b", q):
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
