"""Across formats: Markdown footnotes, the non-English flag, `qa inspect`, and parsers fed arbitrary markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.cli import main
from qa.errors import ParseError
from qa.ingest import NON_ENGLISH, html, markdown, pdf, read_document, text, wikitext
from qa.ingest.language import looks_english
from qa.records import Document
from tests.conftest import DATA
from tests.test_ingest_html import cites

FORMATS = DATA / "formats"


def test_markdown_footnotes_headings_and_front_matter():
    doc = read_document(FORMATS / "notes.md", 2**20)
    assert doc.title == "Orchard notes" and doc.meta["author"] == "A. Grower"
    assert doc.text == ("Apples need a cold winter. Pears flower earlier.\n\n"
                        "Prune in late winter, before buds open. See the guide for tools.")
    assert cites(doc) == [
        ("Apples need a cold winter.", "chill", None, "chill"),
        ("Pears flower earlier.", "1", "12", "1"),
        ("Prune in late winter, before buds open.", "chill", None, "chill"),
        ("See the guide for tools.", "missing", None, None),
    ]
    assert [s.section for s in doc.sentences] == ["Orchard notes", "Orchard notes", "Pruning", "Pruning"]
    assert doc.references[1].text == "Hale, A. (2001). Pears. Sea Press."


GERMAN = ("Der Leuchtturm steht seit 1850 auf dem Riff vor der Küste. Er wurde aus Granit gebaut und "
          "im Jahr 1988 automatisiert. Heute blinkt das Feuer alle zehn Sekunden über das Meer, und "
          "die Schiffe finden den Weg in den Hafen auch bei Nacht und Nebel ohne Mühe.")
ENGLISH = ("The lighthouse has stood on the reef since 1850. It was built of granite and was automated in "
           "1988. Today the light flashes every ten seconds over the sea, and the ships find their way into "
           "the harbour at night and in fog without trouble.")


def test_language_heuristic():
    assert looks_english(ENGLISH)
    assert not looks_english(GERMAN)
    assert not looks_english("灯塔自1850年起矗立在礁石上。它由花岗岩建造，于1988年实现自动化。")
    assert looks_english("Kurz.")  # too short to say: no warning


def test_non_english_document_is_flagged(tmp_path: Path):
    (tmp_path / "de.txt").write_text(GERMAN)
    (tmp_path / "en.txt").write_text(ENGLISH)
    assert read_document(tmp_path / "de.txt", 2**20).meta == {"language": NON_ENGLISH}
    assert "language" not in read_document(tmp_path / "en.txt", 2**20).meta


def test_inspect_command(capsys):
    assert main(["inspect", str(FORMATS / "wiki_parsoid.html")]) == 0
    out = capsys.readouterr().out
    assert "[2] The water is held until the tide falls.  (Operation)" in out
    assert "[1]: 21–22 Reed, J. (2010)." in out
    assert out.rstrip().endswith("4 markers found, 3 resolved, 1 unresolved; 2 references parsed, 2 cited")
    assert main(["inspect", str(FORMATS / "article.wikitext"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {"sentences": 7, "markers": 8, "resolved": 7, "unresolved": 1,
                                 "references": 8, "references_cited": 6}
    first = report["sentences"][0]
    assert first["footnotes"][0]["reference"]["url"] == "https://example.org/board"


def test_inspect_reads_a_file_as_another_format(tmp_path: Path, capsys):
    f = tmp_path / "article.txt"
    f.write_text("A claim.<ref>{{cite web |title=Source |url=https://example.org}}</ref>\n")
    assert main(["inspect", str(f), "--format", "wikitext", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["references"][0]["title"] == "Source"
    assert main(["inspect", str(tmp_path / "missing.docx")]) == 1
    assert "unsupported format '.docx'" in capsys.readouterr().err


TOKENS = ["a", "b", "word", " ", ".", ". ", "\n", "\n\n", "[", "]", "^", "<", ">", "{", "}", "|", "=", "*", "#",
          "'", ":", "-", "[1]", "[^1]", "[^1]: note", "== H ==\n", "# T\n", "<ref>", "</ref>", "<ref name=x/>",
          "<ref name=x>", "{{sfn|A|2000|p=1}}", "{{cite web|title=T|url=http://x}}", "{{rp|3}}", "[[a|b]]",
          "{{efn|n}}", "{|\n|c\n|}", '<sup class="reference"><a href="#cite_note-1">[1]</a></sup>',
          '<li id="cite_note-1"><span class="reference-text">r</span></li>', "<p>", "</p>", "<h2>", "</h2>",
          "<table>", "<!--", "-->", "(Smith 2006)", "&amp;", "\u00a0", "é", "\t"]


def check(doc: Document) -> None:
    """Offsets always slice the clean text; every citation points at a sentence and a known reference."""
    keys = {r.key for r in doc.references}
    for s in doc.sentences:
        piece = doc.text[s.start:s.end]
        assert piece and piece == piece.strip() and 0 <= s.start < s.end <= len(doc.text)
    for c in doc.citations:
        assert 0 <= c.sentence < len(doc.sentences) and 0 <= c.position <= len(doc.text)
        assert c.reference is None or c.reference in keys


@pytest.mark.parametrize("parse", [text.parse, markdown.parse, html.parse, wikitext.parse],
                         ids=["text", "markdown", "html", "wikitext"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_arbitrary_markup_never_crashes_a_parser(parse, body: str):
    try:
        doc = parse(body, "fuzz", "Fuzz", {})
    except ParseError:
        return
    check(doc)


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=400).map(lambda b: b"%PDF-1.4\n" + b))
def test_arbitrary_bytes_never_crash_the_pdf_parser(body: bytes):
    try:
        doc = pdf.parse(body, "fuzz.pdf", "Fuzz", {})
    except ParseError:
        return
    check(doc)
