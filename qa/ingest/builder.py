"""Assemble clean text, sentences and citations while a parser walks its source.

Every parser (text, Markdown, HTML, wikitext, PDF) feeds text pieces and citation markers in
reading order; the builder normalises whitespace, remembers where each marker stood in the
clean text, splits sentences per paragraph and attaches each marker to the sentence it ends.
Formats with pages (PDF) say where each page starts, and every sentence gets the page it starts on.
A parser that leaves out something the source shows in the running text (a wikitext template)
says so with `gap()`: when the paragraph closes, the punctuation that only framed what was left
out ("Toronto (, ) is", "lifeboats: , , and") goes too, and every position moves with the text.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from qa.ingest.sentences import sentence_spans
from qa.records import Citation, Document, Reference, Sentence

_SPACE = re.compile(r"\s+")
_CLOSING = tuple(".,;:!?)]")
_G = "\x00"  # where something was left out, while a paragraph is tidied (never in the clean text)
_SEP = r"(?:[ ]*[,;][ ]*(?:(?:and|or|&)[ ]+)?|[ ]+(?:and|or|&)[ ]+)"  # between two items of a list
# What a left-out piece leaves behind, in the order it is removed. Each pattern holds a gap and
# takes only the spaces and punctuation touching it, so prose punctuation away from a gap is
# never matched; a match becomes one gap, so the patterns after it still see that something was
# there. Gaps are never adjacent and repeats are possessive: each pattern is one linear pass.
_DEBRIS = [re.compile(p) for p in (
    rf"[ ]?\([ ,;]*+{_G}[ ,;{_G}]*+\)",  # "Toronto (, ) is": nothing left inside the parentheses
    rf"(?<=\()(?:{_G}[ ]*+[,;]?+[ ]*+)++",  # "(; born 1941)": what opened them
    rf"(?<![ ,;{_G}])(?:[ ]*+[,;]?+[ ]*+{_G})++(?=\))",  # "(born 1941; )": what closed them
    rf"[ ]*:[ ]*{_G}(?:{_SEP}{_G})++(?=[ ]*(?:[.;]|$))",  # "lifeboats: , , and": a list with nothing left
    rf"[ ]?{_G}(?:{_SEP}{_G})++",  # ", , and" inside a sentence
    rf"[,;][ ]*{_G}(?=[ ]*[,;])",  # "Mersey, , Severn": one item of a list that stays
    rf",?[ ]+(?:and|or)[ ]+{_G}(?=[ ]*(?:[.;:,)]|$))",  # "Mersey and .": its last item
    rf"(?<=: ){_G}[ ]*[,;][ ]*",  # ": , Mersey": its first item
    rf"(?:[ ]{_G}[ ]?|{_G}[ ])(?=[)\],.;:!?])",  # "word ." a space left before punctuation
    rf"(?<=[(\[]){_G}[ ]",  # "( word" a space left after an opening bracket
    rf"[ ](?={_G}?[ ])",  # two spaces become one
    rf"^{_G}?[ ]+",  # and a paragraph starts with none
)]


def tidy(text: str, gaps: list[int]) -> tuple[str, list[int]]:
    """Remove the punctuation that pieces left out at `gaps` leave behind (see `_DEBRIS`).

    Args:
        text: one paragraph of clean text.
        gaps: offsets into it where something was left out, in order.

    Returns:
        The tidied text, and for every offset 0..len(text) of the old text its offset in the
        new one (a removed character's is where the text after it now starts).
    """
    if _G in text:  # the source's own NUL: a gap could not be told from it, so nothing is tidied
        return text, list(range(len(text) + 1))
    chars, origin, pos = [], [], 0
    for g in gaps:
        chars.append(text[pos:g])
        origin += range(pos, g)
        if not chars[-1] and len(chars) > 1 and chars[-2] == _G:
            continue  # gaps at one place are one gap
        chars.append(_G)
        origin.append(-1)
        pos = g
    chars.append(text[pos:])
    origin += range(pos, len(text))
    s = "".join(chars)
    for pattern in _DEBRIS:
        s, origin = _sweep(pattern, s, origin)
    kept = [0] * (len(text) + 1)  # kept[i + 1] - kept[i]: whether character i stays
    for o in origin:
        if o >= 0:
            kept[o + 1] = 1
    for i in range(len(text)):
        kept[i + 1] += kept[i]
    return s.replace(_G, ""), kept


def _sweep(pattern: re.Pattern[str], s: str, origin: list[int]) -> tuple[str, list[int]]:
    """Replace each match of `pattern` by one gap (merged with a gap beside it)."""
    out: list[str] = []
    where: list[int] = []
    pos = 0
    for m in pattern.finditer(s):
        out.append(s[pos:m.start()])
        where += origin[pos:m.start()]
        if not (where and where[-1] < 0):
            out.append(_G)
            where.append(-1)
        pos = m.end() + s.startswith(_G, m.end())
    out.append(s[pos:])
    where += origin[pos:]
    return "".join(out), where


@dataclass
class _Mark:
    position: int
    marker: str
    locator: str | None
    reference: str | None


class DocumentBuilder:
    """Collects paragraphs of clean text and the markers found in them."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._length = 0
        self._para_start = 0
        self._paragraphs: list[tuple[int, int, str | None]] = []
        self._section: str | None = None
        self._marks: list[_Mark] = []
        self._pages: list[tuple[int, int]] = []
        self._page_starts: list[int] = []  # kept beside `_pages` for bisect: rebuilt per sentence it was quadratic
        self._para_piece = 0  # where the open paragraph starts in `_text`
        self._gaps: list[int] = []  # positions in the open paragraph where something was left out

    def text(self, piece: str) -> None:
        """Append prose; runs of whitespace become one space, none at a paragraph's start.

        A marker removed between a space and punctuation takes the space with it ("two [2]."
        reads "two."). The space after a gap is kept even after a space ("and" in ", {{x}} and
        {{y}}" stays a word of its own until the paragraph is tidied, which takes one of the two).
        """
        piece = _SPACE.sub(" ", piece)
        at_start = self._length == self._para_start
        after_gap = bool(self._gaps) and self._gaps[-1] == self._length
        ends_space = not at_start and not after_gap and self._text[-1].endswith(" ")
        if ends_space and piece[:1] in _CLOSING and self._marks and self._marks[-1].position == self._length:
            self._drop_trailing_space()
        elif (at_start or ends_space) and piece.startswith(" "):
            piece = piece[1:]
        if piece:
            self._text.append(piece)
            self._length += len(piece)

    def cite(self, marker: str, locator: str | None = None, reference: str | None = None) -> None:
        """Record a citation marker at the current position (it is not part of the clean text)."""
        self._marks.append(_Mark(self._length, marker, locator, reference))

    def locate(self, locator: str) -> None:
        """Give the marker just recorded a locator written after it (`{{rp|13}}`, `<sup>: 13</sup>`).

        Only a marker with no prose after it takes one: a locator never jumps back over text.
        """
        locator = _SPACE.sub(" ", locator).strip()
        gap = 1 if self._text and self._text[-1].endswith(" ") else 0
        if locator and self._marks and self._marks[-1].position >= self._length - gap:
            self._marks[-1].locator = locator

    def gap(self) -> None:
        """Note that something the source shows here is left out of the text (a wikitext template):
        the punctuation around it that then frames nothing is removed when the paragraph closes."""
        self._gaps.append(self._length)

    def page(self, number: int) -> None:
        """Text from here on is on page `number` (a sentence is on the page where it starts)."""
        self._pages.append((self._length, number))
        self._page_starts.append(self._length)

    def heading(self, title: str) -> None:
        """Close the paragraph; following sentences belong to this section."""
        self.paragraph()
        self._section = _SPACE.sub(" ", title).strip() or None

    def paragraph(self) -> None:
        """Close the current paragraph (trailing spaces dropped, paragraphs joined by a blank line)."""
        if self._gaps and self._length > self._para_start:
            self._tidy()
        if self._text and self._length > self._para_start and self._text[-1].endswith(" "):
            self._drop_trailing_space()
        if self._length > self._para_start:
            self._paragraphs.append((self._para_start, self._length, self._section))
            self._text.append("\n\n")
            self._length += 2
        self._para_start = self._length
        self._para_piece = len(self._text)

    def _drop_trailing_space(self) -> None:
        self._text[-1] = self._text[-1][:-1]
        self._length -= 1
        for m in reversed(self._marks):  # positions only grow: just the marks at the old end move
            if m.position <= self._length:
                break
            m.position = self._length

    def _tidy(self) -> None:
        """Remove what the open paragraph's gaps left behind; markers and pages move with the text."""
        start = self._para_start
        old = "".join(self._text[self._para_piece:])
        new, moved = tidy(old, [g - start for g in self._gaps])
        self._gaps = []
        self._text[self._para_piece:] = [new] if new else []
        self._length = start + len(new)
        for m in reversed(self._marks):
            if m.position < start:
                break
            m.position = start + moved[m.position - start]
        for i in range(bisect.bisect_left(self._page_starts, start), len(self._pages)):
            self._page_starts[i] = start + moved[self._page_starts[i] - start]
            self._pages[i] = (self._page_starts[i], self._pages[i][1])

    def markers(self) -> list[str]:
        """The markers recorded so far, in reading order (for deciding how a list maps)."""
        return [m.marker for m in self._marks]

    def build(self, path: str, title: str, fmt: str, references: list[Reference],
              link: dict[str, str] | None = None, meta: dict[str, str] | None = None) -> Document:
        """Finish the document.

        Args:
            path, title, fmt: how the document is named.
            references: the reference list as the source gives it.
            link: marker -> reference key, for markers recorded without one; a marker
                missing here stays unresolved (never guessed).
            meta: front matter or other document-level facts.

        Returns:
            The Document, with citations attached to sentences.
        """
        self.paragraph()
        text = "".join(self._text)
        if text.endswith("\n\n"):
            text = text[:-2]
        sentences: list[Sentence] = []
        for n, (start, end, section) in enumerate(self._paragraphs):
            sentences += [Sentence(s, e, self._page_at(s), section, n) for s, e in sentence_spans(text, start, end)]
        starts = [s.start for s in sentences]
        keys = {r.key for r in references}
        citations = []
        for m in self._marks:
            if not sentences:
                break
            i = max(bisect.bisect_left(starts, m.position) - 1, 0)
            ref = m.reference or (link or {}).get(m.marker)
            # a marker after the last text (a paragraph of nothing but markers) stays inside the text
            position = min(m.position, len(text))
            citations.append(Citation(i, m.marker, position, m.locator, ref if ref in keys else None))
        paragraphs = [(start, end) for start, end, _ in self._paragraphs]
        return Document(path, title, fmt, text, sentences, references, citations, meta or {}, paragraphs)

    def _page_at(self, position: int) -> int | None:
        """The page a clean-text position is on, or None for formats without pages."""
        i = bisect.bisect_right(self._page_starts, position) - 1
        return self._pages[i][1] if i >= 0 else None
