"""The provenance layout on a hand-made document: paragraphs, headings, pages, markers, highlight."""

from __future__ import annotations

from qa.records import locator_label
from web.provenance import Marker, Span, layout

TEXT = "Alpha one. Alpha two.\n\nBeta one.\n\nGamma one."


def sentence(i, start, end, section=None, page=None, footnotes=(), paragraph=0):
    return {"index": i, "start": start, "end": end, "page": page, "section": section, "paragraph": paragraph,
            "footnotes": list(footnotes)}


def note(marker, position, key=None, locator=None):
    return {"marker": marker, "locator": locator, "where": locator and locator_label(locator), "position": position,
            "reference": {"key": key, "text": f"Ref {key}"} if key else None}


DOC = {
    "text": TEXT,
    "references": [{"key": "1", "text": "Ref 1"}, {"key": "2", "text": "Ref 2"}],
    "paragraphs": [[0, 21], [23, 32], [34, 44]],
    "sentences": [
        sentence(0, 0, 10, "Intro", 1, [note("1", 10, "1", "13")]),
        sentence(1, 11, 21, "Intro", 1, [note("x", 16), note("1", 21, "1")]),
        sentence(2, 23, 32, "Intro", 2, [note("2", 32, "2")], paragraph=1),
        sentence(3, 34, 44, "Later", 2, paragraph=2),
    ],
}


def test_paragraphs_headings_and_pages():
    view = layout(DOC)
    assert [p.heading for p in view.paragraphs] == ["Intro", None, "Later"]
    first = view.paragraphs[0].parts
    assert [type(p) for p in first] == [Span, str, Span] and first[1] == " "
    spans = [p for para in view.paragraphs for p in para.parts if isinstance(p, Span)]
    assert [s.new_page for s in spans] == [1, None, 2, None]
    assert view.first is None and not any(s.highlighted for s in spans)


def test_markers_stand_where_the_source_put_them():
    spans = [p for p in layout(DOC).paragraphs[0].parts if isinstance(p, Span)]
    assert spans[0].pieces == ["Alpha one.", Marker("1", "p. 13", "ref-1")]
    assert spans[1].pieces == ["Alpha", Marker("x", None, None), " two.", Marker("1", None, "ref-1")]


def test_highlight_marks_overlapping_sentences_and_their_references():
    view = layout(DOC, 11, 32)
    spans = [p for para in view.paragraphs for p in para.parts if isinstance(p, Span)]
    assert [s.highlighted for s in spans] == [False, True, True, False] and view.first == 1
    assert [(r.anchor, r.cited_by, r.cited_here) for r in view.references] == [
        ("ref-1", [0, 1], True), ("ref-2", [2], True)]
    assert view.unresolved == 1


def test_text_between_and_after_sentences_is_kept():
    view = layout({"text": "Lead-in: Sentence. Tail\n\nNo sentence here", "references": [],
                   "paragraphs": [[0, 23], [25, 41]], "sentences": [sentence(0, 9, 18)]})
    assert view.paragraphs[0].parts[0] == "Lead-in: " and view.paragraphs[0].parts[-1] == " Tail"
    assert view.paragraphs[1].parts == ["No sentence here"]  # a paragraph is shown even without a sentence
