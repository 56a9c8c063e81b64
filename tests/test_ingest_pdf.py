"""PDF parsing: pages on sentences, numbered and author-year bibliographies, and PDFs that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import ParseError
from qa.ingest import read_document
from tests import pdf_fixtures as pf
from tests.test_ingest_html import cites


def test_numbered_bibliography_and_pages(tmp_path: Path):
    doc = read_document(pf.paper(tmp_path / "mills.pdf", pf.NUMBERED, pf.NUMBERED_REFS), 2**20)
    assert doc.format == "pdf" and doc.title == "Tide Mills"
    assert doc.text == ("Tide mills were common on European coasts in the Middle Ages. They stored sea water "
                        "behind a dam and released it through a wheel at low tide.\n\nThe mill at Woodbridge "
                        "still turns on open days. Its wheel was rebuilt in 1970.")
    assert [(doc.text[s.start:s.end][:20], s.page, s.section) for s in doc.sentences] == [
        ("Tide mills were comm", 1, "Introduction"), ("They stored sea wate", 1, "Introduction"),
        ("The mill at Woodbrid", 2, "Results"), ("Its wheel was rebuil", 2, "Results"),
    ]
    first, second, third, _ = (doc.text[s.start:s.end] for s in doc.sentences)
    assert cites(doc) == [(first, "1", None, "1"), (second, "2", None, "2"), (second, "3", None, "3"),
                          (third, "3", None, "3")]
    assert [r.text for r in doc.references] == [r.split("] ", 1)[1] for r in pf.NUMBERED_REFS]
    assert doc.references[0].fields == {"date": "2010", "authors": ["Reed, J."]}


def test_author_year_citations_resolve_only_to_a_unique_entry(tmp_path: Path):
    doc = read_document(pf.paper(tmp_path / "ponds.pdf", pf.AUTHOR_YEAR, pf.AUTHOR_YEAR_REFS), 2**20)
    # author-year citations are prose: they stay in the text
    assert doc.text == ("Storage ponds were dug by hand (Reed 2010). Reed and Hale (2001, p. 4) describe the "
                        "sluice gates. Other work disagrees (Moss 1999).")
    refs = {r.key: r.text for r in doc.references}
    assert [(m, loc, refs.get(key)) for _, m, loc, key in cites(doc)] == [
        ("Reed 2010", None, "Reed, J. (2010). Tide mills of Europe. Mill Review 4, 10-30."),
        ("Reed and Hale 2001", "4", "Reed, J. and Hale, A. (2001). Mill ponds. Sea Press."),
        ("Moss 1999", None, None),  # two entries by Moss in 1999: not guessed
    ]
    assert all(s.page == 1 for s in doc.sentences)


def test_pdf_without_text_layer(tmp_path: Path):
    with pytest.raises(ParseError, match=r"scan\.pdf: no text layer, OCR not supported"):
        read_document(pf.no_text_layer(tmp_path / "scan.pdf"), 2**20)


def test_encrypted_pdf(tmp_path: Path):
    with pytest.raises(ParseError, match=r"locked\.pdf: encrypted PDF"):
        read_document(pf.encrypted(tmp_path / "locked.pdf"), 2**20)


def test_damaged_pdf(tmp_path: Path):
    f = tmp_path / "cut.pdf"
    f.write_bytes(pf.paper(tmp_path / "whole.pdf", pf.NUMBERED, []).read_bytes()[:300])
    with pytest.raises(ParseError, match=r"cut\.pdf: "):
        read_document(f, 2**20)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.pdf", b"Just some text, not a PDF.", r"notes\.pdf: not a PDF \(no %PDF header\)"),
    ("page.html", b"%PDF-1.4\n%binary", r"page\.html: is a PDF file, not html"),
    ("empty.txt", b"", r"empty\.txt: empty file"),
    ("empty.pdf", b"", r"empty\.pdf: empty file"),
    ("report.docx", b"PK\x03\x04rest", r"report\.docx: unsupported format '\.docx'; supported: .*\.pdf"),
    ("book.epub", b"PK\x03\x04rest", r"book\.epub: unsupported format '\.epub'"),
    ("renamed.txt", b"PK\x03\x04rest", r"renamed\.txt: a ZIP container .*unsupported format"),
])
def test_content_must_match_the_extension(tmp_path: Path, name: str, content: bytes, message: str):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(ParseError, match=message):
        read_document(f, 2**20)


def test_marker_lists_and_ranges_cite_each_number():
    from qa.ingest.pdf import _expand

    assert _expand("2, 3") == ["2", "3"]
    assert _expand("4–6") == ["4", "5", "6"]
    assert _expand("1,3-4") == ["1", "3", "4"]
    assert _expand("9-2") == []  # not a range a source would write: nothing is guessed
