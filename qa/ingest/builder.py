"""Assemble clean text, sentences and citations while a parser walks its source.

Every parser (text, Markdown, HTML, wikitext, PDF) feeds text pieces and citation markers in
reading order; the builder normalises whitespace, remembers where each marker stood in the
clean text, splits sentences per paragraph and attaches each marker to the sentence it ends.
Formats with pages (PDF) say where each page starts, and every sentence gets the page it starts on.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from qa.ingest.sentences import sentence_spans
from qa.records import Citation, Document, Reference, Sentence

_SPACE = re.compile(r"\s+")


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

    def text(self, piece: str) -> None:
        """Append prose; runs of whitespace become one space, none at a paragraph's start."""
        piece = _SPACE.sub(" ", piece)
        at_start = self._length == self._para_start
        ends_space = not at_start and self._text[-1].endswith(" ")
        if (at_start or ends_space) and piece.startswith(" "):
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
        if self._text and self._length > self._para_start and self._text[-1].endswith(" "):
            self._text[-1] = self._text[-1][:-1]
            self._length -= 1
            for m in reversed(self._marks):  # positions only grow: just the marks at the old end move
                if m.position <= self._length:
                    break
                m.position = self._length
        if self._length > self._para_start:
            self._paragraphs.append((self._para_start, self._length, self._section))
            self._text.append("\n\n")
            self._length += 2
        self._para_start = self._length

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
