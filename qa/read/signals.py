"""Decide whether the reader's span is an answer: the abstention signals and their calibration,
the kinds of span that can disagree across sources, and pasted statements.

Nothing is generated: the answer is a slice of a stored sentence, and the footnotes are the
citations the source itself put on that sentence.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.words import STOPWORDS

CALIBRATION_FILE = Path(__file__).parents[1] / "models" / "calibration.json"

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


_NEGATION = re.compile(r"\b(?:not|never|no|none|nor|neither|without)\b|n['’]t\b", re.IGNORECASE)


@dataclass(frozen=True)
class Calibration:
    """The abstention model: logistic weights over `evidence_signals`, the threshold on its
    probability, and what it was fitted with (models, chunker, data). `scripts/calibrate.py`
    writes it by nested article-wise cross-validation; the index manifest records its version
    and a mismatch is warned about, since weights fitted for other models mean little."""

    version: str
    weights: dict[str, float]
    bias: float
    threshold: float
    fitted: dict[str, Any]

    @classmethod
    def load(cls, path: Path = CALIBRATION_FILE) -> Calibration:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["version"], data["weights"], data["bias"], data["threshold"], data.get("fitted", {}))

    def confidence(self, signals: dict[str, float]) -> float:
        """Probability (0..1) that the evidence is right, from `evidence_signals`."""
        z = self.bias + sum(self.weights[k] * signals[k] for k in self.weights)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


CALIBRATION = Calibration.load()


def evidence_signals(question: str, sentence: str, relevance: float, passage: str, passage_relevance: float,
                     context: str = "", margin: float = 0.0) -> dict[str, float]:
    """The signals `Calibration.confidence` weighs, for the reader's span, its sentence and the
    passage that holds it. `margin` is the reader's span score minus its no-answer score.

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
    absent = missing(question, f"{context} {passage}")
    asked = content_words(question)
    return {
        "margin": margin,
        "relevance": relevance,
        "passage_relevance": passage_relevance,
        "missing_names": float(len(absent["names"])),
        "missing_numbers": float(len(absent["numbers"])),
        "near_miss": float(1 <= len(absent["words"]) <= 2 and len(absent["words"]) <= 0.4 * len(asked)),
        "negation": float(negated(question, sentence)),
    }


def missing(question: str, text: str) -> dict[str, list[str]]:
    """The question's words `text` lacks: capitalised words after the first ("names"), numbers
    ("numbers") and content words, one per stem, as the question writes them ("words"). The
    abstention signals count them; an explanation names them."""
    words = _WORD.findall(question)
    lower = text.lower()
    present, stems = content_words(text), {}
    for w in words:
        if w.lower() not in STOPWORDS and len(w) > 1 and stem(w) not in present:
            stems.setdefault(stem(w), w)
    return {
        "names": [w for w in words[1:] if w[:1].isupper() and w.lower() not in lower],
        "numbers": [w for w in words if w.isdigit() and w not in text],
        "words": list(stems.values()),
    }


def negated(question: str, sentence: str) -> bool:
    """The question is negated ("Who did not ...") and the sentence is not."""
    return bool(_NEGATION.search(question)) and not _NEGATION.search(sentence)


def verbatim_codes(question: str, sentence: str) -> int:
    """How many of the question's tokens with a digit ("1871", "3-5", "A320") the sentence has
    verbatim, as whole tokens: neither the reader nor the cross-encoder reliably tells
    "station 3-5" from "station 5-3", so each one held adds 1 to a span's rank."""
    codes = {w for w in _WORD.findall(question) if any(ch.isdigit() for ch in w)}
    return sum(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", sentence) is not None for w in codes)


def coverage(asked: set[str], sentence: str) -> float:
    """The share of the question's content words (`asked`, from `content_words`) the sentence holds."""
    return len(asked & content_words(sentence)) / len(asked) if asked else 0.0


def needs_previous(sentence: str) -> bool:
    """A sentence that opens with a pronoun ("It operates ...") is shown with the one before it."""
    return bool(_ANAPHOR.match(sentence))


_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|" \
          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}} {_MONTHS},? \d{{3,4}}|{_MONTHS} \d{{1,2}},? \d{{3,4}}|{_MONTHS},? \d{{3,4}}|"
    rf"(?:early |late |mid-)?\d{{3,4}}s?(?: (?:to|and|–|-) \d{{2,4}})?|{_MONTHS} \d{{1,2}})\b"
)
_NUMBER = re.compile(r"\$?\d[\d,.]*")
_PROPER = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of |the |de |von |van |and )?[A-Z][\w'’.-]*)*")


def span_kind(text: str) -> str | None:
    """The span's kind when it is mostly a date, a number or a name, else None: answers of
    different documents are only compared (`answer.conflicts`) when they are of one kind."""
    t = text.strip()
    for kind, pattern in (("date", _DATE), ("number", _NUMBER), ("name", _PROPER)):
        m = max((len(m.group(0)) for m in pattern.finditer(t)), default=0)
        if t and m >= 0.6 * len(t):
            return kind
    return None


def pasted(question: str, sentence: str) -> bool:
    """The question is the sentence itself, pasted to find where it comes from: no question
    mark, and at least nine tenths of each one's content words are in the other."""
    if question.rstrip().endswith("?"):
        return False
    q, s = content_words(question), content_words(sentence)
    if not q or not s:
        return False
    common = len(q & s)
    return common >= 0.9 * len(q) and common >= 0.9 * len(s)
