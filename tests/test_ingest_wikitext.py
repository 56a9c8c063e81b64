"""Wikitext parsing: ref bodies, named re-use, list-defined refs, rp, sfn, notes, citation templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import ParseError
from qa.ingest import read_document
from tests.conftest import DATA
from tests.test_ingest_html import cites, sentences

FORMATS = DATA / "formats"


def test_article_with_every_citation_form():
    doc = read_document(FORMATS / "article.wikitext", 2**20)
    assert doc.format == "wikitext" and doc.title == "article"  # wikitext has no title: the file name as written
    # infobox, table, category, reference sections and all markup are gone from the prose
    assert doc.text == ("Skerry Light is a lighthouse on a tidal reef. It was first lit in 1850.\n\n"
                        "The tower was built of granite. Its lamp burned whale oil. A keeper lived on the rock."
                        "\n\nThe light was automated in 1988.\n\nIt still flashes every ten seconds.")
    assert [s for s, _ in sentences(doc)][2:4] == ["The tower was built of granite.", "Its lamp burned whale oil."]
    assert {sec for _, sec in sentences(doc)[2:]} == {"History"}
    assert cites(doc) == [
        ("Skerry Light is a lighthouse on a tidal reef.", "1", None, "board"),
        ("It was first lit in 1850.", "1", "13", "board"),  # named re-use with {{rp}}
        ("The tower was built of granite.", "2", "45", "sfn:Moss|1999|p=45"),
        ("Its lamp burned whale oil.", "3", None, "oil"),  # list-defined in {{reflist|refs=}}
        ("A keeper lived on the rock.", "a", None, "lower-alpha:#2"),  # {{efn}}
        ("A keeper lived on the rock.", "note 1", None, "note:#3"),  # <ref group=note>
        ("The light was automated in 1988.", "4", None, "#5"),
        ("It still flashes every ten seconds.", "5", None, None),  # named ref never defined
    ]
    refs = {r.key: r for r in doc.references}
    board = refs["board"]
    assert board.text == 'Reid, Ann (5 May 2010). "Skerry Light history". Lights Board. Retrieved 1 June 2020.'
    assert board.fields == {"url": "https://example.org/board", "title": "Skerry Light history",
                            "date": "5 May 2010", "work": "Lights Board", "authors": ["Reid, Ann"]}
    assert refs["oil"].text == "Hale, Bo (2001). Lamps and Oils. Sea Press. p. 7. ISBN 978-0-00-000000-2."
    assert refs["oil"].fields["isbn"] == "978-0-00-000000-2"
    full = "Moss, Cy (1999). Keepers of the Reef. Dock Books."
    assert (refs["sfn:Moss|1999|p=45"].text, refs["sfn:Moss|1999|p=45"].resolved) == ("Moss 1999, p. 45.", full)
    assert (refs["#5"].text, refs["#5"].resolved) == ("Moss 1999, p. 50.", full)
    assert refs["lower-alpha:#2"].text == "Two keepers after 1900."
    assert refs["note:#3"].text == "The last keeper left in 1988."


def test_ambiguous_sfn_anchor_is_not_resolved(tmp_path: Path):
    f = tmp_path / "two.wiki"
    f.write_text("A claim.{{sfn|Lee|2001}}\n\n== Sources ==\n* {{cite book |last=Lee |title=One |year=2001}}\n"
                 "* {{cite book |last=Lee |title=Two |year=2001}}\n")
    doc = read_document(f, 2**20)
    assert [(r.text, r.resolved) for r in doc.references] == [("Lee 2001.", None)]


def test_unclosed_ref_is_a_clear_error(tmp_path: Path):
    f = tmp_path / "broken.wiki"
    f.write_text("Fine sentence.\n\nA claim.<ref>{{cite web|title=never closed}}\nMore prose.\n")
    with pytest.raises(ParseError, match=r"broken\.wiki: unclosed <ref> tag near line 3"):
        read_document(f, 2**20)


def test_templates_nested_twenty_deep_leave_no_debris(tmp_path: Path):
    f = tmp_path / "deep.mediawiki"
    f.write_text("Before the box. " + "{{box|" * 20 + "inner" + "}}" * 20 + " After the box.\n")
    doc = read_document(f, 2**20)
    assert doc.text == "Before the box. After the box."


def test_html_page_named_wiki_is_refused(tmp_path: Path):
    f = tmp_path / "page.wiki"
    f.write_text("<!DOCTYPE html><html><body><p>Hi.</p></body></html>")
    with pytest.raises(ParseError, match=r"page\.wiki: is an HTML page, not wikitext"):
        read_document(f, 2**20)
