"""Lay out a document for the provenance view: paragraphs, headings, markers in place, a highlight.

The server decides what is highlighted (a `<mark>` in the HTML it sends), so the view works
without JavaScript; this module turns `Library.document()` into pieces the template prints
as escaped text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Marker:
    """A citation marker shown where the source put it, linked to its reference when resolved."""

    marker: str
    locator: str | None
    anchor: str | None  # the reference's element id, None when the source does not include it


@dataclass
class Span:
    """One sentence: its text cut at the markers, and whether the request highlights it."""

    index: int
    start: int
    end: int
    pieces: list[str | Marker]
    highlighted: bool
    new_page: int | None = None  # the page this sentence opens (PDFs), shown as a page label


@dataclass
class Paragraph:
    """A paragraph: sentences and the text between them, with the section heading it opens."""

    heading: str | None
    parts: list[str | Span] = field(default_factory=list)


@dataclass
class Ref:
    """A reference-list entry, the sentences citing it, whether the highlighted one does, and
    its label as a reader of the source sees it (never an internal key)."""

    anchor: str
    data: dict[str, Any]
    cited_by: list[int] = field(default_factory=list)
    cited_here: bool = False
    label: str | None = None


@dataclass
class RefList:
    """A run of the source's list: its explanatory notes or its references, in the source's order."""

    notes: bool
    refs: list[Ref]


@dataclass
class Layout:
    """The whole provenance view of one document."""

    paragraphs: list[Paragraph]
    references: list[Ref]
    unresolved: int
    first: int | None  # index of the first highlighted sentence (it carries id="highlight")
    lists: list[RefList] = field(default_factory=list)  # `references` as the source groups them


def layout(doc: dict[str, Any], start: int | None = None, end: int | None = None) -> Layout:
    """Arrange a document for display and highlight the sentences overlapping `start:end`.

    Args:
        doc: the dict `Library.document()` returns.
        start, end: character offsets from an answer or a passage (either missing: no highlight).
    """
    text = doc["text"]
    refs = {r["key"]: Ref(f"ref-{i}", r, label=r.get("label")) for i, r in enumerate(doc["references"], 1)}
    unresolved = 0
    spans = []
    page = None
    for s in doc["sentences"]:
        hit = (start is not None and end is not None
               and s["start"] < max(end, start + 1) and start < s["end"])
        pieces: list[str | Marker] = []
        at = s["start"]
        for fn in sorted(s["footnotes"], key=lambda f: f["position"]):
            pos = min(max(fn["position"], at), s["end"])
            if pos > at:
                pieces.append(text[at:pos])
            at = pos
            ref = refs.get((fn["reference"] or {}).get("key"))
            if ref is None:
                unresolved += 1
            else:
                if s["index"] not in ref.cited_by[-1:]:
                    ref.cited_by.append(s["index"])
                ref.cited_here |= hit
                ref.label = ref.label or fn["marker"]  # an index built before labels: as its marker reads
            pieces.append(Marker(fn["marker"], fn["where"],
                                 ref.anchor if ref else None))
        if s["end"] > at:
            pieces.append(text[at:s["end"]])
        opens = s["page"] if s["page"] is not None and s["page"] != page else None
        page = s["page"]
        spans.append(Span(s["index"], s["start"], s["end"], pieces, hit, opens))
    paragraphs = _paragraphs(text, spans, doc)
    first = next((sp.index for sp in spans if sp.highlighted), None)
    return Layout(paragraphs, list(refs.values()), unresolved, first, _lists(list(refs.values())))


def _lists(refs: list[Ref]) -> list[RefList]:
    """The entries in runs of notes and of references, as the source lists them (a page may put
    its explanatory notes before its references or after)."""
    out: list[RefList] = []
    for ref in refs:
        note = bool(ref.data.get("note"))
        if not out or out[-1].notes != note:
            out.append(RefList(note, []))
        out[-1].refs.append(ref)
    return out


def _paragraphs(text: str, spans: list[Span], doc: dict[str, Any]) -> list[Paragraph]:
    """The document's paragraphs (its data: offsets, and each sentence's paragraph index) with
    their sentences in place and the text around them; a paragraph takes the heading of the
    section its first sentence starts."""
    inside: dict[int, list[Span]] = {}
    for span, s in zip(spans, doc["sentences"], strict=True):
        inside.setdefault(s["paragraph"], []).append(span)
    sections = {s["index"]: s["section"] for s in doc["sentences"]}
    out: list[Paragraph] = []
    section = None
    for n, (start, end) in enumerate(doc["paragraphs"]):
        para, at = Paragraph(None), start
        for span in inside.get(n, []):
            if not para.parts and sections[span.index] and sections[span.index] != section:
                section = para.heading = sections[span.index]
            if span.start > at:
                para.parts.append(text[at:span.start])
            para.parts.append(span)
            at = span.end
        if end > at:
            para.parts.append(text[at:end])
        if para.parts:
            out.append(para)
    return out
