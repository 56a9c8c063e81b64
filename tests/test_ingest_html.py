"""HTML parsing: classic and Parsoid Wikipedia citations, body-only text, sections, bad markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import ParseError
from qa.ingest import read_document
from qa.records import Document
from tests.conftest import DATA

FORMATS = DATA / "formats"


def cites(doc: Document) -> list[tuple[str, str, str | None, str | None]]:
    """(sentence text, marker, locator, reference key) for every citation."""
    return [(doc.sentence_text(c.sentence), c.marker, c.locator, c.reference) for c in doc.citations]


def sentences(doc: Document) -> list[tuple[str, str | None]]:
    return [(doc.text[s.start:s.end], s.section) for s in doc.sentences]


def test_classic_wikipedia_page():
    doc = read_document(FORMATS / "wiki_classic.html", 2**20)
    assert doc.title == "Harbour lights" and doc.format == "html"
    # no navigation, hatnote, infobox, TOC, edit link, [citation needed], reference lists, See also
    assert doc.text == ("A harbour light marks the entrance of a port. The oldest one still working was lit "
                        "in 1720.\n\nEarly lights burned wood. Oil lamps followed. Keepers logged every night.")
    assert sentences(doc) == [
        ("A harbour light marks the entrance of a port.", None),
        ("The oldest one still working was lit in 1720.", None),
        ("Early lights burned wood.", "History"), ("Oil lamps followed.", "History"),
        ("Keepers logged every night.", "History"),
    ]
    assert cites(doc) == [
        ("A harbour light marks the entrance of a port.", "1", None, "cite_note-Hale-1"),
        # an absolute link to the note, and the page locator rendered as its own <sup>
        ("The oldest one still working was lit in 1720.", "2", "13", "cite_note-2"),
        ("Early lights burned wood.", "1", None, "cite_note-Hale-1"),
        ("Early lights burned wood.", "note 1", None, "cite_note-note1-3"),
        # [3] links to a note the page does not contain: kept, never guessed
        ("Keepers logged every night.", "3", None, None),
    ]
    refs = {r.key: r for r in doc.references}
    hale = refs["cite_note-Hale-1"]
    assert hale.text == 'Hale, Ann (2001). "Lights of the Coast". Sea Press. ISBN 978-0-00-000000-2.'
    assert hale.fields == {"isbn": "9780000000002", "date": "2001", "authors": ["Hale, Ann"],
                           "title": "Lights of the Coast", "work": "Sea Press", "url": "https://example.org/lights"}
    # a short-form note points to the full citation by its CITEREF anchor
    assert refs["cite_note-2"].text == "Moss 1999, p. 13."
    assert refs["cite_note-2"].resolved == "Moss, Bo (1999). Keepers. Dock Books."
    assert refs["cite_note-note1-3"].text == "Some harbours used coal instead."


def test_parsoid_wikipedia_page():
    doc = read_document(FORMATS / "wiki_parsoid.html", 2**20)
    assert doc.title == "Tide mill"
    assert doc.text == ("A tide mill is driven by tidal rise and fall. A dam with a sluice is built across a "
                        "tidal inlet.\n\nThe water is held until the tide falls. Then it turns the wheel.")
    assert cites(doc) == [
        ("A tide mill is driven by tidal rise and fall.", "1", None, "cite_note-dam-1"),
        ("A dam with a sluice is built across a tidal inlet.", "a", None, "cite_note-2"),
        ("The water is held until the tide falls.", "1", "21–22", "cite_note-dam-1"),
        ("Then it turns the wheel.", "2", None, None),
    ]
    refs = {r.key: r for r in doc.references}
    assert refs["cite_note-2"].text == "Also called a tide pond."
    dam = refs["cite_note-dam-1"]
    assert dam.text == 'Reed, J. (2010). "Tide mills of Europe". Mill Review. 4: 10–30. doi:10.1000/tm.2010.'
    assert dam.fields["doi"] == "10.1000/tm.2010" and dam.fields["title"] == "Tide mills of Europe"
    assert [s.section for s in doc.sentences] == [None, None, "Operation", "Operation"]


def test_plain_html_page_without_citations():
    doc = read_document(FORMATS / "plain.html", 2**20)
    assert doc.title == "Garden notes"
    assert doc.text == ("Tomatoes need full light. Water them in the morning.\n\nBasil likes warmth.\n\n"
                        "Mint spreads fast.")
    assert doc.citations == [] and doc.references == []
    for s in doc.sentences:
        assert doc.text[s.start:s.end].strip() == doc.text[s.start:s.end] != ""


@pytest.mark.parametrize("markup", [
    "<p>Unclosed <b>bold <i>and italic<p>Next para<div>no close",
    "<html><body><p>Stray </td></tr></table> closers.</p></span></div>",
    "<p>" + "<div>" * 3000 + "Deep text." + "</div>" * 10,
])
def test_malformed_html_still_gives_its_text(tmp_path: Path, markup: str):
    f = tmp_path / "bad.html"
    f.write_text(markup)
    doc = read_document(f, 2**20)
    assert doc.sentences and "<" not in doc.text
    for s in doc.sentences:
        assert doc.text[s.start:s.end]


def test_html_with_no_text_or_no_markup_is_a_clear_error(tmp_path: Path):
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body><table><tr><td>only a table</td></tr></table></body></html>")
    with pytest.raises(ParseError, match=r"empty\.html: no text found"):
        read_document(empty, 2**20)
    text = tmp_path / "notes.html"
    text.write_text("Just a sentence, no markup at all.")
    with pytest.raises(ParseError, match=r"notes\.html: no HTML markup"):
        read_document(text, 2**20)
