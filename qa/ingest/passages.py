"""Group sentences into passages of bounded size, with overlap; only a sentence longer than a
passage is cut (at clause marks, then whitespace), into passages of its own."""

from __future__ import annotations

from dataclasses import dataclass

from qa.ingest.sentences import pieces
from qa.records import Document

# Recorded in the index manifest: an index cut by another version is refused with a rebuild hint.
# 2: passages end at paragraph breaks as well as at section changes.
# 3: a sentence longer than `max_chars` is cut into passages of at most `max_chars`.
# 4: no change to the cutting; a new version makes `qa index` read every served file again, so
#    indexes built before get what the parsers now keep: references' labels (`Reference.label`,
#    `note`), Markdown emphasis as data, wikitext without the debris of dropped templates, titles
#    in the file's own case.
VERSION = 4


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
    passage also ends at a section change or a paragraph break, so a passage is one topic and
    keeps the paragraph's own offsets: the reranker then compares like with like, and `qa eval`
    can tell exactly which paragraph was found.

    Args:
        doc: the parsed document.
        max_chars: the largest passage (a longer sentence is cut into passages of this size,
            each naming that one sentence).
        overlap: sentences repeated at the start of the next passage.

    Returns:
        Passages in document order.
    """
    sents = doc.sentences

    def joined(a: int, b: int) -> bool:
        """Sentences a and b (a < b) are neighbours in one paragraph of one section."""
        return sents[b].section == sents[a].section and sents[b].paragraph == sents[a].paragraph

    out: list[Chunk] = []
    i = 0
    while i < len(sents):
        j = i
        while j + 1 < len(sents) and sents[j + 1].end - sents[i].start <= max_chars and joined(j, j + 1):
            j += 1
        if j == i and sents[i].end - sents[i].start > max_chars:
            out += [Chunk(a, b, i, i) for a, b in pieces(doc.text, sents[i].start, sents[i].end, max_chars)]
        else:
            out.append(Chunk(sents[i].start, sents[j].end, i, j))
        if j + 1 >= len(sents):
            break
        i = max(j + 1 - overlap, i + 1) if joined(j, j + 1) else j + 1
    return out
