"""Reference labels as a reader of the source sees them, notes apart from references, fields only
from citations, labels kept in the index, and no footnote number for a sentence with no marker."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser

from qa.ingest import read_document
from qa.ingest.html import marker_label, references
from qa.ingest.reference_fields import citation_shaped
from qa.ingest.reference_lists import Entry, build_references
from qa.records import Answer, DocumentRef, Evidence, Footnote, Reference, numbered
from tests.conftest import DATA
from web.provenance import layout

DORMOUSE = DATA / "provenance" / "hazel-dormouse.html"


@pytest.mark.parametrize("shown, label", [
    ("[13]", "13"), ("[note 1]", "note 1"), ("[a]", "a"),
    ("[lower-alpha 5]", "e"), ("[lower-alpha 27]", "aa"), ("[upper-roman 4]", "IV"), ("[lower-greek 2]", "β"),
])
def test_marker_label_is_what_the_reader_sees(shown: str, label: str):
    link = LexborHTMLParser(f'<sup class="reference"><a href="#cite_note-x">{shown}</a></sup>').css_first("a")
    assert marker_label(link) == label


def test_parsoid_page_labels_each_entry_as_its_markers_show_it():
    doc = read_document(DORMOUSE, 2**20)
    refs = {r.key: r for r in doc.references}
    # the notes come first on the page, so the ids' counter and any list counter drift from the labels
    assert [(r.label, r.note) for r in doc.references[:6]] == [
        ("a", True), ("b", True), ("c", True), ("d", True), ("e", True), ("1", False)]
    assert refs["cite_note-goodwin2017-18"].label == "13" and refs["cite_note-winter-5"].label == "e"
    assert [r.label for r in doc.references if not r.note] == [str(n) for n in range(1, 14)]
    # every marker resolves to the entry that carries its label
    for c in doc.citations:
        assert refs[c.reference].label == c.marker


def test_entry_no_marker_cites_is_labelled_by_its_place_in_its_group():
    refs = {r.key: r for r in read_document(DORMOUSE, 2**20).references}
    assert refs["cite_note-4"].label == "d" and refs["cite_note-4"].note


def test_explanatory_notes_get_no_fields_but_citations_do():
    refs = {r.key: r for r in read_document(DORMOUSE, 2**20).references}
    clade = refs["cite_note-1"]
    assert clade.text.startswith('The term "hazel dormouse clade"') and clade.fields == {}
    assert refs["cite_note-winter-5"].fields == {}
    assert refs["cite_note-3"].fields == {"pages": "12"}  # a note that is a short citation keeps its fields
    assert refs["cite_note-goodwin2017-18"].fields["doi"] == "10.1111/mam.12091"


def test_classic_notes_list_before_references_is_labelled_by_group_and_place():
    page = """<div class="mw-parser-output"><p>Cats purr.<sup class="reference"><a href="#cite_note-2">[1]</a></sup></p>
      <h2>Notes</h2><div class="reflist reflist-lower-alpha"><ol class="references">
        <li id="cite_note-1"><span class="reference-text">The word "purr" is imitative.</span></li>
        <li id="cite_note-3"><span class="reference-text">Lions do not purr.</span></li></ol></div>
      <h2>References</h2><div class="reflist"><ol class="references">
        <li id="cite_note-2"><span class="reference-text">Eklund, R. (2010). "Purring". Cat Journal.</span></li>
        <li id="cite_note-larson2014-4"><span class="reference-text">Larson 2014, p. 3.</span></li></ol></div></div>"""
    refs = references(LexborHTMLParser(page))
    assert [(r.key, r.label, r.note) for r in refs] == [
        ("cite_note-1", "a", True), ("cite_note-3", "b", True),
        ("cite_note-2", "1", False), ("cite_note-larson2014-4", "2", False)]
    assert refs[0].fields == {} and refs[2].fields["title"] == "Purring"


@pytest.mark.parametrize("text, shaped", [
    ('Hale, Ann (2001). "Lights of the Coast". Sea Press.', True),
    ("Moss 1999, p. 13.", True),
    ("Smith & Jones (2006).", True),
    ("Larson et al. 2014, p. 5.", True),
    ("See https://example.org/x for the map.", True),
    ('"Cats". Encyclopaedia. Retrieved 3 March 2024.', True),
    ('The term "domestic dog clade" refers to dogs and their wild ancestors.', False),
    ("The species was described by Linnaeus (1758) as Felis catus.", False),
    ("Some harbours used coal instead.", False),
])
def test_citation_shaped(text: str, shaped: bool):
    assert citation_shaped(text) is shaped


def test_text_lists_label_entries_and_read_fields_only_from_citations():
    entries = [Entry("a", 1, 'The "hungry gap" is early spring.'), Entry("note 1", 1, "Moss 1999, p. 4."),
               Entry("1", 1, "Reed, J. (2010). Mills."), Entry(None, 1, "Hale 2001.")]
    refs, _ = build_references(entries, ["a", "1"])
    assert [(r.key, r.label, r.note) for r in refs] == [
        ("a", "a", True), ("note 1", "note 1", True), ("1", "1", False), ("u1", None, False)]
    assert refs[0].fields == {} and refs[1].fields == {"pages": "4"} and refs[2].fields["date"] == "2010"


def test_label_and_note_survive_the_index_and_an_older_index_reads_without_them():
    ref = Reference("cite_note-x-13", "Text.", {"pages": "4"}, None, "e", True)
    stored = ref.stored_fields()
    assert Reference.from_stored(ref.key, ref.text, stored, None) == ref
    assert Reference.from_stored("cite_note-x-13", "Text.", {"pages": "4"}, None) == Reference(
        "cite_note-x-13", "Text.", {"pages": "4"})
    assert Reference.from_dict(ref.to_dict()) == ref
    assert ref.to_dict() == {"key": "cite_note-x-13", "label": "e", "note": True, "text": "Text.", "pages": "4"}


def test_a_sentence_without_a_marker_gets_no_footnote_number():
    doc = DocumentRef("d1", "Doc", "doc.txt")
    cited = Evidence("Cited.", doc, 0, 6, (Footnote("1", "13", None),), 0.9)
    bare = Evidence("Bare.", doc, 7, 12, (), 0.5, context=True)
    answer = numbered(Answer("Cited", 0.9, (cited, bare), 0, 5))
    assert [n.n for n in answer.notes] == [1] and answer.notes[0].footnote == cited.footnotes[0]
    assert [ev.notes for ev in answer.evidence] == [(1,), ()]


def test_layout_groups_notes_apart_and_labels_old_entries_by_their_markers():
    refs = [{"key": "cite_note-1", "text": "A note.", "label": "a", "note": True},
            {"key": "cite_note-larson2014-13", "text": "Larson 2014."},  # an index built before labels
            {"key": "cite_note-7", "text": "Never cited."}]
    doc = {"text": "One two.", "paragraphs": [[0, 8]], "references": refs, "sentences": [
        {"index": 0, "start": 0, "end": 8, "page": None, "section": None, "paragraph": 0, "footnotes": [
            {"marker": "13", "locator": None, "where": None, "position": 8, "reference": refs[1]}]}]}
    view = layout(doc)
    assert [(lst.notes, [(r.anchor, r.label) for r in lst.refs]) for lst in view.lists] == [
        (True, [("ref-1", "a")]), (False, [("ref-2", "13"), ("ref-3", None)])]

