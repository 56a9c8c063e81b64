"""Turn a `qa.Result` into the answer card: highlighted sentences, footnotes, Markdown.

The templates only format. The footnotes' numbers and wording are data on the answer
(`qa.records.numbered`, `Note.text`), the same the CLI prints; the answer highlight and the
text put on the clipboard are decided here, from the Result's offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa import Answer, Conflict, Evidence, Result
from qa.records import Note


@dataclass(frozen=True)
class Line:
    """An evidence sentence split around the answer span, with the numbers of its footnotes."""

    evidence: Evidence
    before: str
    answer: str
    after: str
    notes: tuple[int, ...]


@dataclass(frozen=True)
class Alternative:
    """Another source's differing answer (`answer.conflicts`), with its own sentence and footnotes."""

    text: str
    score: float
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Card:
    """Everything the answer card renders."""

    answer: Answer
    lines: tuple[Line, ...]
    notes: tuple[Note, ...]
    markdown: str
    conflicts: tuple[Alternative, ...] = ()


def build(result: Result) -> Card | None:
    """The card for an answered Result (None for an abstention)."""
    answer = result.answer
    if answer is None:
        return None
    lines = _lines(answer, answer.evidence)
    conflicts = tuple(Alternative(c.text, c.score, tuple(_lines(c, c.evidence))) for c in answer.conflicts)
    return Card(answer, tuple(lines), answer.notes, _markdown(result, lines, answer.notes, conflicts), conflicts)


def _lines(span: Answer | Conflict, evidence: tuple[Evidence, ...]) -> list[Line]:
    """The evidence sentences in reading order (a context sentence before the answer's)."""
    return [_split(ev, span, ev.notes) for ev in sorted(evidence, key=lambda e: e.start)]


def _split(ev: Evidence, answer: Answer | Conflict, notes: tuple[int, ...]) -> Line:
    """Cut the sentence at the answer's document offsets when the answer lies inside it."""
    a, b = answer.start - ev.start, answer.end - ev.start
    if not (0 <= a < b <= len(ev.sentence)) or ev.sentence[a:b] != answer.text:
        return Line(ev, ev.sentence, "", "", notes)
    return Line(ev, ev.sentence[:a], ev.sentence[a:b], ev.sentence[b:], notes)


def _quote(lines: list[Line] | tuple[Line, ...]) -> str:
    return " ".join((f"{ln.before}**{ln.answer}**{ln.after}" if ln.answer else ln.evidence.sentence)
                    + "".join(f"[^{n}]" for n in ln.notes) for ln in lines)


def _markdown(result: Result, lines: list[Line], notes: tuple[Note, ...], conflicts: tuple[Alternative, ...]) -> str:
    """The answer as Markdown with footnotes, for "copy answer"."""
    out = [f"**Q:** {result.question}", "", f"**A:** {result.answer.text}", "", f"> {_quote(lines)}", ""]
    for alt in conflicts:
        out += [f"**Another source says:** {alt.text}", "", f"> {_quote(alt.lines)}", ""]
    out += [f"[^{note.n}]: {note.text()}" for note in notes]
    return "\n".join(out) + "\n"
