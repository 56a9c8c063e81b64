"""Readable snippets of retrieved passages, for the abstention page and the "passages retrieved" list.

A passage is a retrieval unit: it can be one heading word ("England") or a long run of
sentences. A reader needs the sentence(s) around what matched the question, cut at whole words,
with the document it comes from. Snippets are sliced from the document's stored sentences, so
every character shown is the source's and the provenance link highlights exactly what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from qa.records import DocumentRef, PassageHit
from qa.words import content_words

MIN_CHARS = 80  # a shorter snippet (a heading, a list item) gets its neighbouring sentences
MAX_CHARS = 320  # a longer one is cut to whole words around the words the question shares
_WORD = re.compile(r"\w+")

# A document's sentences first..last as (document offset, text) pairs: `View.sentences` reshaped.
SentenceReader = Callable[[str, int, int], Sequence[tuple[int, str]]]


@dataclass(frozen=True)
class Snippet:
    """What is shown of a passage: `text` is the document's `text[start:end]`, a line break
    between two sentences read as a space; `cut_before` and `cut_after` say whether it was cut
    inside a sentence (shown with an ellipsis)."""

    document: DocumentRef
    text: str
    start: int
    end: int
    cut_before: bool
    cut_after: bool
    passage: PassageHit


def build(question: str, passages: Iterable[PassageHit], sentences: SentenceReader) -> list[Snippet]:
    """One snippet a passage, in the passages' order, a snippet already shown left out.

    Args:
        question: the question asked; its content words pick the sentence shown.
        passages: the retrieved passages, best first.
        sentences: reads a document's sentences by index (one sentence either side of a
            passage is read too, to widen a passage too short to read).

    Returns:
        The snippets. A passage whose sentences are no longer in the index (its document was
        updated since) is shown from its own text.
    """
    wanted = set(content_words(question))
    out: list[Snippet] = []
    seen: set[tuple[str, int, int]] = set()
    for p in passages:
        snippet = _snippet(p, wanted, sentences)
        key = (p.document.id, snippet.start, snippet.end)
        if key not in seen:
            seen.add(key)
            out.append(snippet)
    return out


def _snippet(p: PassageHit, wanted: set[str], sentences: SentenceReader) -> Snippet:
    first, last = p.sentences
    around = list(sentences(p.document.id, max(first - 1, 0), last + 1))
    own = [(s, t) for s, t in around if p.start <= s and s + len(t) <= p.end
           and p.text[s - p.start:s - p.start + len(t)] == t]
    if not own:  # the document changed since: the passage's own text is all there is
        own = [(p.start, p.text)]
        around = own
    best = max(range(len(own)), key=lambda i: (_shared(own[i][1], wanted), -i))
    lo = hi = around.index(own[best])
    while _span_len(around, lo, hi) < MIN_CHARS and (lo > 0 or hi < len(around) - 1):
        if hi < len(around) - 1:
            hi += 1
        else:
            lo -= 1
    start = around[lo][0]
    end = around[hi][0] + len(around[hi][1])
    text = _join(around[lo:hi + 1])
    if len(text) <= MAX_CHARS:
        return Snippet(p.document, text, start, end, False, False, p)
    a, b = _window(text, wanted)
    return Snippet(p.document, text[a:b], start + a, start + b, a > 0, b < len(text), p)


def _shared(text: str, wanted: set[str]) -> int:
    return len(wanted.intersection(content_words(text)))


def _span_len(around: list[tuple[int, str]], lo: int, hi: int) -> int:
    return around[hi][0] + len(around[hi][1]) - around[lo][0]


def _join(run: list[tuple[int, str]]) -> str:
    """Consecutive sentences with the gaps between them as spaces of the same length, so an
    offset into the result is an offset from the first sentence's start in the document."""
    out = run[0][1]
    for (s0, t0), (s1, t1) in pairwise(run):
        out += " " * (s1 - s0 - len(t0)) + t1
    return out


def _window(text: str, wanted: set[str]) -> tuple[int, int]:
    """A stretch of at most MAX_CHARS of `text` cut at word boundaries, starting a little before
    the first word the question shares (the start of the text when none is shared)."""
    hits = [m.start() for m in _WORD.finditer(text) if m.group().lower() in wanted]
    a = _next_word(text, hits[0] - MAX_CHARS // 4) if hits and hits[0] > MAX_CHARS // 4 else 0
    b = min(a + MAX_CHARS, len(text))
    if b < len(text):
        cut = text.rfind(" ", a, b + 1)  # the space after the last whole word that fits
        b = len(text[:cut if cut > a else b].rstrip())
    return a, b


def _next_word(text: str, i: int) -> int:
    """The start of the first whole word at or after `i`."""
    if not text[i - 1].isspace():
        gap = text.find(" ", i)
        i = gap + 1 if gap != -1 else i
    while i < len(text) and text[i].isspace():
        i += 1
    return i
