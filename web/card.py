"""Turn a `qa.Result` into the answer card: highlighted sentences, numbered footnotes, Markdown.

The templates only format; numbering, the answer highlight and the text put on the
clipboard are decided here, from the Result's offsets, so every view agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa import Answer, Conflict, Evidence, Footnote, Result
from web.formats import locator_label


@dataclass(frozen=True)
class Note:
    """One numbered footnote of the card: a source marker, or the document when there is none."""

    n: int
    footnote: Footnote | None
    evidence: Evidence

    def citation(self) -> str:
        """The footnote as one line of plain text (what "copy citation" puts on the clipboard)."""
        ev, doc = self.evidence, self.evidence.document
        where = f"{doc.title}, {doc.path}, characters {ev.start}–{ev.end}"
        if doc.meta.get("url"):
            where += f", {doc.meta['url']}"
        if self.footnote is None:
            return f"{where} (no citation marked in the source)"
        loc = f", {locator_label(self.footnote.locator)}" if self.footnote.locator else ""
        ref = self.footnote.reference
        if ref is None:
            return (f"Reference not included in the source (marker [{self.footnote.marker}]{loc}); "
                    f"cited in {where}")
        url = ref.fields.get("url")
        tail = f" <{url}>" if url and url not in ref.text else ""
        return f"{ref.text}{tail}{loc}"


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
    notes: list[Note] = []
    numbers: dict[tuple, int] = {}  # the same citation on two sentences keeps one number
    lines = _lines(answer, answer.evidence, notes, numbers)
    conflicts = tuple(Alternative(c.text, c.score, tuple(_lines(c, c.evidence, notes, numbers)))
                      for c in answer.conflicts)
    return Card(answer, tuple(lines), tuple(notes), _markdown(result, lines, notes, conflicts), conflicts)


def _lines(span: Answer | Conflict, evidence: tuple[Evidence, ...], notes: list[Note],
           numbers: dict[tuple, int]) -> list[Line]:
    """The evidence sentences in reading order (a context sentence before the answer's), with
    footnote numbers drawn from `numbers` so that a citation keeps one number on the card."""
    lines = []
    for ev in sorted(evidence, key=lambda e: e.start):
        mine = []
        for fn in ev.footnotes or (None,):
            key = ((ev.document.id, fn.marker, fn.locator, fn.reference and fn.reference.key) if fn
                   else (ev.document.id, ev.start))
            if key not in numbers:
                numbers[key] = len(notes) + 1
                notes.append(Note(numbers[key], fn, ev))
            mine.append(numbers[key])
        lines.append(_split(ev, span, tuple(dict.fromkeys(mine))))
    return lines


def _split(ev: Evidence, answer: Answer | Conflict, notes: tuple[int, ...]) -> Line:
    """Cut the sentence at the answer's document offsets when the answer lies inside it."""
    a, b = answer.start - ev.start, answer.end - ev.start
    if not (0 <= a < b <= len(ev.sentence)) or ev.sentence[a:b] != answer.text:
        return Line(ev, ev.sentence, "", "", notes)
    return Line(ev, ev.sentence[:a], ev.sentence[a:b], ev.sentence[b:], notes)


def _quote(lines: list[Line] | tuple[Line, ...]) -> str:
    return " ".join((f"{ln.before}**{ln.answer}**{ln.after}" if ln.answer else ln.evidence.sentence)
                    + "".join(f"[^{n}]" for n in ln.notes) for ln in lines)


def _markdown(result: Result, lines: list[Line], notes: list[Note], conflicts: tuple[Alternative, ...]) -> str:
    """The answer as Markdown with footnotes, for "copy answer"."""
    out = [f"**Q:** {result.question}", "", f"**A:** {result.answer.text}", "", f"> {_quote(lines)}", ""]
    for alt in conflicts:
        out += [f"**Another source says:** {alt.text}", "", f"> {_quote(alt.lines)}", ""]
    out += [f"[^{note.n}]: {note.citation()}" for note in notes]
    return "\n".join(out) + "\n"
