"""Group sentences into passages of bounded size, with overlap, never cutting a sentence."""

from __future__ import annotations

from dataclasses import dataclass

from qa.documents import Document


@dataclass(frozen=True)
class Chunk:
    """A passage as offsets into its document, plus the sentence range it covers."""

    start: int
    end: int
    first_sentence: int
    last_sentence: int


def chunk(doc: Document, max_chars: int = 700, overlap: int = 1) -> list[Chunk]:
    """Cut a document into passages.

    Sentences are added while the passage stays within `max_chars`; the next passage starts
    `overlap` sentences back so that an answer near a boundary is whole in one passage. A
    passage also ends at a section change, so a passage never mixes two sections.

    Args:
        doc: the parsed document.
        max_chars: the largest passage (a single longer sentence is still one passage).
        overlap: sentences repeated at the start of the next passage.

    Returns:
        Passages in document order.
    """
    sents = doc.sentences
    out: list[Chunk] = []
    i = 0
    while i < len(sents):
        j = i
        while (j + 1 < len(sents) and sents[j + 1].end - sents[i].start <= max_chars
               and sents[j + 1].section == sents[i].section):
            j += 1
        out.append(Chunk(sents[i].start, sents[j].end, i, j))
        if j + 1 >= len(sents):
            break
        i = max(j + 1 - overlap, i + 1) if sents[j + 1].section == sents[i].section else j + 1
    return out
