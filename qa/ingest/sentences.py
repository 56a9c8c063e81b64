"""Sentence splitting with offsets.

nupunkt was picked over pysbd by measurement on tests/data/sentences.txt (abbreviations such
as "Dr.", "U.S.", "e.g.", "Jan. 5", "pp. 573", decimals, quotes): nupunkt split 12 of 12
correctly in 3.7 ms, pysbd 11 of 12 in 10.3 ms (it cut "vol. 867").
"""

from __future__ import annotations

import re

import nupunkt

MAX_SENTENCE = 2000  # characters: a longer "sentence" (a list or a table flattened to one line) is cut
_CLAUSE = re.compile(r"[;:,)\u2013\u2014](?=\s)")
_SPACE = re.compile(r"\s")
LONG_TOKEN = 1000  # characters without a space: no word or URL is this long
_LONG_TOKEN = re.compile(rf"\S{{{LONG_TOKEN},}}")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split `text[start:end]` into sentences.

    A run of LONG_TOKEN or more characters without a space is a piece of its own, never given
    to nupunkt, whose time grows with the square of such a run ("!" * 40,000 took 2.8 s).

    Args:
        text: the whole clean text.
        start, end: the paragraph to split (sentences never cross a paragraph).

    Returns:
        (start, end) offsets into `text`, trimmed of surrounding whitespace, never empty.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    at = start
    for m in _LONG_TOKEN.finditer(text, start, end):
        spans += _split(text, at, m.start())
        spans += pieces(text, m.start(), m.end(), MAX_SENTENCE)
        at = m.end()
    return spans + _split(text, at, end)


def _split(text: str, start: int, end: int) -> list[tuple[int, int]]:
    chunk = text[start:end]
    spans = []
    for s, e in nupunkt.sent_spans(chunk) if chunk.strip() else []:
        piece = chunk[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            spans += pieces(text, start + s + lead, start + e - trail, MAX_SENTENCE)
    return spans


def pieces(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """`text[start:end]` as spans of at most `limit` characters: cut after the last clause mark
    (; : , ) or a dash) that leaves a piece at least half the limit, else at the last
    whitespace, else at the limit; each piece trimmed of whitespace, offsets exact.

    One sentence of 5 MB (a file with no full stops) would otherwise be one passage read whole
    by the cross-encoder on every question that retrieves it.
    """
    out = []
    while end - start > limit:
        window = text[start:start + limit]
        cut = max((m.end() for m in _CLAUSE.finditer(window, limit // 2)), default=0) or \
            max((m.start() for m in _SPACE.finditer(window, limit // 2)), default=0) or limit
        piece = text[start:start + cut].rstrip()
        if piece:
            out.append((start, start + len(piece)))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))
    return out
