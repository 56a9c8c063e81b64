"""The metrics of `qa eval`, kept apart from running it so they can be checked by hand.

Definitions are DESIGN.md's "Quality, measured": EM and F1 use the official SQuAD
normalisation (lower case, no punctuation, no articles, single spaces) and take the best
gold answer; sentence accuracy, EM and F1 are over answerable questions with an abstention
scoring 0; recall@k counts an answerable question when one of the top k passages overlaps
its gold paragraph, whether or not an answer was given.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qa.words import normalize_answer


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, gold: str) -> float:
    """Official SQuAD token F1 of one prediction against one gold answer."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if not same:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: Iterable[str]) -> float:
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def contains_answer(sentence: str, golds: Iterable[str]) -> bool:
    """The sentence holds a gold answer as whole normalised words ("1850" is not in "18500")."""
    padded = f" {normalize_answer(sentence)} "
    return any(n and f" {n} " in padded for n in map(normalize_answer, golds))


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two half-open character ranges share at least one character."""
    return a[0] < b[1] and b[0] < a[1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Outcome:
    """One question's scores.

    `rank` is the position (0-based) of the first returned passage overlapping the gold
    paragraph, None when none does; `sentence_ok` says the evidence sentence holds the answer
    (SQuAD) or is a gold sentence (CLAPNQ); precision and recall compare the evidence
    sentences with CLAPNQ's gold sentences (None for SQuAD). `top_holds_answer` says the first
    returned passage holds a gold answer (SQuAD) or gold sentence (CLAPNQ), answered or not: the
    most any reader of that passage could reach.
    """

    answerable: bool
    answered: bool
    rank: int | None
    sentence_ok: bool
    em: float
    f1: float
    latency_ms: float
    precision: float | None = None
    recall: float | None = None
    top_holds_answer: bool = False


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarise(outcomes: Sequence[Outcome], passages: int) -> dict:
    """The report of `qa eval --json` (fractions in 0..1, None when no question qualifies)."""
    ans = [o for o in outcomes if o.answerable]
    una = [o for o in outcomes if not o.answerable]
    latencies = [o.latency_ms for o in outcomes]
    report = {
        "questions": len(outcomes),
        "answerable": len(ans),
        "unanswerable": len(una),
        "passages": passages,
        "recall@1": _mean([float(o.rank is not None and o.rank < 1) for o in ans]),
        "recall@5": _mean([float(o.rank is not None and o.rank < 5) for o in ans]),
        "sentence_accuracy": _mean([float(o.answered and o.sentence_ok) for o in ans]),
        # Beside it, the two things it is bounded by: how often the answer sentence is right when
        # an answer is given, and how often the top passage holds the answer at all.
        "sentence_accuracy_answered": _mean([float(o.sentence_ok) for o in ans if o.answered]),
        "answer_in_top_passage": _mean([float(o.top_holds_answer) for o in ans]),
        "em": _mean([o.em if o.answered else 0.0 for o in ans]),
        "f1": _mean([o.f1 if o.answered else 0.0 for o in ans]),
        "has_answer_answered": _mean([float(o.answered) for o in ans]),
        "no_answer_abstained": _mean([float(not o.answered) for o in una]),
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1)},
    }
    if any(o.precision is not None for o in ans):
        report["sentence_precision"] = _mean([(o.precision or 0.0) if o.answered else 0.0 for o in ans])
        report["sentence_recall"] = _mean([(o.recall or 0.0) if o.answered else 0.0 for o in ans])
    return report


def report_table(report: dict) -> str:
    """The report of `qa eval` as an aligned table for a terminal."""
    rows = [(k, v) for k, v in report.items() if k not in ("latency_ms", "file", "kind", "seed", "in_sample")]
    rows += [(f"latency_ms {k}", v) for k, v in report["latency_ms"].items()]
    lines = [f"{report['file']} ({report['kind']}, seed {report['seed']})"]
    lines += [f"  {k:<22}{'-' if v is None else v:>10}" for k, v in rows]
    if report.get("in_sample"):
        lines.append(f"  in-sample (the calibration was fitted on this file): {', '.join(report['in_sample'])}")
    return "\n".join(lines)
