"""Why an answer was given, or not: the passages read, the sentence chosen and the runner-up,
and the abstention signals in words.

People checking provenance want to see why as well as what: that the answer's sentence was the
closest match among the passages read, or that the question names something no passage
mentions. Everything here is read off the `Reading` the decision was made from; nothing is
recomputed differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qa.read import signals as sig
from qa.records import Answer, PassageHit


@dataclass(frozen=True)
class Explanation:
    """Why a question was answered or not.

    `summary` says it in one sentence; `passages` are those the cross-encoder read (best
    first, `read` when the reader looked for a span in them); `chosen` and `runner_up` are the
    reader's two best sentences; `signals` are the calibration's inputs for the chosen one,
    each with its weight, its effect on the confidence (weight times value) and what it means;
    `missing` lists the question's names, numbers and words that no passage read holds.
    """

    answered: bool
    summary: str
    confidence: float | None
    threshold: float
    passages: tuple[dict[str, Any], ...]
    chosen: dict[str, Any] | None
    runner_up: dict[str, Any] | None
    signals: tuple[dict[str, Any], ...]
    missing: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"answered": self.answered, "summary": self.summary, "confidence": self.confidence,
                "threshold": self.threshold, "passages": list(self.passages), "chosen": self.chosen,
                "runner_up": self.runner_up, "signals": list(self.signals), "missing": self.missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        return cls(d["answered"], d["summary"], d["confidence"], d["threshold"], tuple(d["passages"]),
                   d["chosen"], d["runner_up"], tuple(d["signals"]), d["missing"])

    def lines(self) -> list[str]:
        """The explanation as plain text lines (`qa ask --explain`)."""
        out = [self.summary, "", "Passages read (cross-encoder relevance, higher is closer):"]
        out += [f"  {p['relevance']:+.1f}  {p['title']} [{p['start']}-{p['end']}]"
                f"{'' if p['read'] else '  (not read for an answer)'}" for p in self.passages]
        for label, s in (("Chosen sentence", self.chosen), ("Runner-up", self.runner_up)):
            if s:
                out += ["", f"{label} ({s['title']}, reader score {s['score']:+.1f}):", f"  {s['sentence']}"]
        if self.signals:
            out += ["", "Signals (effect on the confidence, + for answering):"]
            out += [f"  {s['effect']:+.2f}  {s['says']}" for s in self.signals if s["effect"]]
        return out


def explain(question: str, hits: tuple[PassageHit, ...], read: int, found: tuple, signals: dict[str, float],
            answer: Answer | None, calibration: sig.Calibration, threshold: float,
            pasted: bool = False) -> Explanation:
    """The explanation of one decision.

    Args:
        question: the question as asked.
        hits: the passages as the searcher ranked them.
        read: how many of the first hits the reader read for spans.
        found: the reader's spans, best first (`qa.read.reader.Found`).
        signals: the abstention signals of the best span.
        answer: the answer given, or None for an abstention.
        calibration: weighs the signals.
        threshold: the least confidence that is answered (`min_support`).
        pasted: the question was the sentence itself, pasted.
    """
    reranked = [h for h in hits if h.relevance is not None]
    passages = tuple({"id": h.id, "document": h.document.id, "title": h.document.title, "start": h.start,
                      "end": h.end, "relevance": round(h.relevance or 0.0, 2), "read": n < read}
                     for n, h in enumerate(reranked))
    absent = sig.missing(question, " ".join(f"{h.document.title} {h.text}" for h in hits[:read]))
    chosen, runner_up = (_sentence(found[i]) if len(found) > i else None for i in (0, 1))
    confidence = answer.score if answer else (calibration.confidence(signals) if signals else None)
    weighed = tuple(sorted(({"name": k, "value": round(v, 3), "weight": calibration.weights[k],
                             "effect": round(calibration.weights[k] * v, 3), "says": _says(k, v, question, found)}
                            for k, v in signals.items() if k in calibration.weights),
                           key=lambda s: -abs(s["effect"]))) if not pasted else ()
    return Explanation(answer is not None, _summary(answer, pasted, hits, found, confidence, threshold, absent),
                       None if confidence is None else round(confidence, 3), threshold, passages, chosen,
                       runner_up, weighed, absent)


def _sentence(f) -> dict[str, Any]:
    return {"document": f.document.id, "title": f.document.title, "sentence": f.text, "span": f.span,
            "score": round(f.rank, 2)}


def _summary(answer: Answer | None, pasted: bool, hits: tuple[PassageHit, ...], found: tuple,
             confidence: float | None, threshold: float, absent: dict[str, list[str]]) -> str:
    if pasted:
        return "Answered: the question is a sentence of the sources, pasted; it is its own answer."
    if answer is not None:
        return (f"Answered: the reader's best sentence has confidence {confidence:.2f}, above the "
                f"threshold {threshold:.2f}.")
    if not hits:
        return "Not answered: no passage shares the question's words or meaning."
    named = absent["names"] + absent["numbers"]
    if named:
        return f"Not answered: the question names {_listed(named)}; no passage read mentions {_them(named)}."
    lacking = f" None of them has {_listed(absent['words'])}." if absent["words"] else ""
    if not found:
        return f"Not answered: the reader found no answer in the passages read.{lacking}"
    best = max((h.relevance for h in hits if h.relevance is not None), default=None)
    if best is not None and best < 0:
        return (f"Not answered: no passage read is a close match for the question (the closest scores "
                f"{best:.1f}; matches score above 0).{lacking}")
    return (f"Not answered: the best sentence's confidence {confidence:.2f} is below the threshold "
            f"{threshold:.2f}.{lacking}")


def _says(name: str, value: float, question: str, found: tuple) -> str:
    """One signal in words."""
    text = found[0].passage.text if found else ""
    if name == "margin":
        return (f"the reader prefers this span to no answer by {value:.1f}" if value > 0
                else f"the reader prefers no answer to this span by {-value:.1f}")
    if name == "relevance":
        strength = "a close" if value >= 4 else "a fair" if value >= 0 else "a poor"
        return f"the cross-encoder rates the sentence {strength} match for the question ({value:+.1f})"
    if name == "passage_relevance":
        return f"its passage scores {value:+.1f} with the cross-encoder"
    absent = sig.missing(question, f"{found[0].document.title} {text}" if found else "")
    if name == "missing_names":
        return (f"the question names {_listed(absent['names'])}, which the passage does not mention" if value
                else "every name in the question is in the passage")
    if name == "missing_numbers":
        return (f"the question's number {_listed(absent['numbers'])} is not in the passage" if value
                else "every number in the question is in the passage" if any(c.isdigit() for c in question)
                else "the question has no number to check")
    if name == "near_miss":
        return (f"all but {_listed(absent['words'])} of the question's words are in the passage: the mark of "
                "a question about its subject with one detail changed" if value
                else "the passage is not a near miss (one or two of the question's words changed)")
    return ("the question is negated and the sentence is not: it may say the opposite" if value
            else "no negation sets the question against the sentence")


def _listed(words: list[str]) -> str:
    quoted = [f"'{w}'" for w in dict.fromkeys(words)]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _them(words: list[str]) -> str:
    return "it" if len(dict.fromkeys(words)) == 1 else "them"
