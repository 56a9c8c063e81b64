"""Hostile files: inputs that were super-linear are read in one pass, and a file over the per-file
time or memory limit is reported by name while the rest of the run goes on.

Nothing here times anything: the hostile inputs are sized so that the old quadratic paths took
from half a minute to several minutes (a regression shows as a run that crawls), and the assertions
are about what was read. The limit tests use inputs that are costly by nature (many paragraphs,
a file that needs gigabytes to parse) and limits far below that cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qa.errors import ParseError
from qa.ingest import authoryear, read_document
from qa.ingest.check import inspect_file
from qa.ingest.html import MAX_DEPTH, flatten
from qa.ingest.pool import Limits, ParsePool, parse_file
from qa.ingest.reference_fields import parse_fields
from qa.ingest.wikitext import unclosed_ref
from qa.records import Reference
from tests.conftest import DATA, make_pipeline

SLOW_TEXT = "x.\n\n" * 1_200_000  # 4.8 MB, 1.2 million one-word paragraphs: about 20 s to parse, linearly
BOMB_TEXT = "x.\n\n" * 4_000_000  # 16 MB that needs about 3 GB to parse


def test_a_reference_full_of_quotes_is_read_in_one_pass(tmp_path: Path):
    # 60,000 opening quotes and no closing one: each was tried to the end of the text (about 40 s)
    assert parse_fields("“" * 60_000) == {}
    assert parse_fields('Reed, J. (2010). "Tide mills". Mill Review. ' + "“" * 60_000) == {
        "date": "2010", "authors": ["Reed, J."], "title": "Tide mills", "work": "Mill Review"}
    path = tmp_path / "quotes.txt"
    path.write_text("Tide mills stored water behind a dam [1].\n\nReferences\n\n1. ^ " + "“a" * 30_000 + "\n")
    doc = read_document(path, 2**20)
    assert [len(r.text) for r in doc.references] == [60_000] and "title" not in doc.references[0].fields


def test_a_word_of_capitals_is_tried_as_a_name_once():
    # "A-A-A-..." was tried as a surname from each of its capitals to its end (20 KB took 11 s)
    found = authoryear.find("A-" * 20_000 + " was seen. mid-Smith (2001, p. 4) says so (Reed 1999).")
    assert [(c.marker, c.first, c.year, c.locator) for c in found] == [
        ("Smith 2001", "Smith", "2001", "4"), ("Reed 1999", "Reed", "1999", None)]


def test_author_year_citations_of_a_long_paper_resolve_by_lookup():
    refs = [Reference(str(i), f"Author{i}, A. ({1900 + i % 100}). Title {i}.", {}) for i in range(3000)]
    refs.append(Reference("twin", "Author7, B. (1907). Another title.", {}))  # two entries: never guessed
    cites = authoryear.find(" ".join(f"Work (Author{i} {1900 + i % 100})." for i in range(3000)))
    bib = authoryear.Bibliography(refs)
    resolved = [bib.resolve(c) for c in cites]
    assert len(cites) == 3000 and resolved[7] is None
    assert resolved[:7] + resolved[8:] == [str(i) for i in range(3000) if i != 7]


@pytest.mark.parametrize("body, start", [
    ("a <ref>x</ref> b <ref>y", 17), ("<ref name=a/> <ref name=b>x</ref>", None), ("<ref name=x", 0),
    ("<ref <ref <ref>x</ref>", 0), ("<!-- <ref> --> text", None), ("<ref>a<!-- </ref> --></ref>", None),
    ("<ref>a<ref>b</ref>", 0), ("x <REF>a</ref\n> <references />", None), ("a <!-- b <ref>x", 9),
])
def test_the_first_unclosed_ref_is_found_in_one_pass(body: str, start: int | None):
    assert unclosed_ref(body) == start


def test_wikitext_of_unclosed_refs_is_refused_at_once_naming_the_line(tmp_path: Path):
    path = tmp_path / "refs.wiki"
    path.write_text("Tide mills stored water.<ref>Reed 2010.</ref>\n\n" + "<ref " * 20_000)  # 100 KB: minutes before
    with pytest.raises(ParseError, match=r"refs.wiki: unclosed <ref> tag near line 3$"):
        read_document(path, 2**20)


def test_html_nested_100000_deep_keeps_its_text_and_512_levels(tmp_path: Path):
    n = 100_000  # 1.1 MB: Lexbor looks down the stack of open elements at each <div>; this took 40 s
    body = "<html><body>" + "<div>" * n + "Tide mills stored water." + "</div>" * n + "</body></html>"
    flat = flatten(body)
    assert flat.count("<div>") == flat.count("</div>") == MAX_DEPTH and "Tide mills stored water." in flat
    path = tmp_path / "deep.html"
    path.write_text(body)
    assert read_document(path, 2**21).text == "Tide mills stored water."
    for page in (DATA / "formats").glob("*.html"):  # ordinary pages go to the parser as they are
        text = page.read_text()
        assert flatten(text) is text


def test_a_pdf_of_50000_pages_is_refused_naming_the_limit(tmp_path: Path):
    path = _pdf(tmp_path / "pages.pdf", 50_000)
    with pytest.raises(ParseError, match=r"pages.pdf: 50,000 pages; at most 5,000 are read \(split the PDF\)"):
        read_document(path, 20 * 2**20)
    assert len(read_document(_pdf(tmp_path / "few.pdf", 3), 2**20).sentences) == 3


def test_devices_pipes_and_folders_are_refused_unread(tmp_path: Path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    for path in ("/dev/zero", fifo, tmp_path):
        with pytest.raises(ParseError, match="not a regular file"):
            inspect_file(path, 2**20, "text")
    big = tmp_path / "big.txt"
    big.write_text("Tide mills stored water.\n" * 50_000)
    with pytest.raises(ParseError, match=r"too large \(1\.2 MiB; the limit is 1 MiB"):
        read_document(big, 2**20)


@pytest.mark.parametrize("costly, limits, why", [
    (SLOW_TEXT, Limits(seconds=1), "took longer than 1 s to parse; skipped (parse_seconds)"),
    (BOMB_TEXT, Limits(memory_mb=400), "needed more than 400 MiB of memory to parse; skipped (parse_memory_mb)"),
])
def test_the_pool_stops_a_costly_file_and_goes_on(tmp_path: Path, costly: str, limits: Limits, why: str):
    files = {"a.txt": "Tide mills stored water.\n", "costly.txt": costly, "b.txt": "Lighthouses guided ships.\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    jobs = [(name, (tmp_path / name, name, 20 * 2**20, 700, 1)) for name in files]
    pool = ParsePool(1)
    try:
        results = dict(pool.map(parse_file, jobs, limits))
        again = dict(pool.map(parse_file, jobs[:1], limits))  # the worker it lost was replaced
    finally:
        pool.close()
    assert list(results) == list(files) and str(results.pop("costly.txt")) == why
    assert {name: doc.text for name, (doc, _) in {**results, **again}.items()} == {
        "a.txt": "Tide mills stored water.", "b.txt": "Lighthouses guided ships."}


def test_a_slow_file_is_reported_by_name_and_the_run_published(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("Tide mills stored sea water behind a dam.\n")
    (src / "slow.txt").write_text(SLOW_TEXT)
    report = make_pipeline(tmp_path / "idx", embedder, parse_seconds=1).library.index([str(src)])
    assert report.failed == [("src/slow.txt", "took longer than 1 s to parse; skipped (parse_seconds)")]
    assert report.added == ["src/good.txt"] and report.published and report.documents == 1


def test_a_single_file_is_parsed_within_the_limits_too(tmp_path: Path, embedder):
    """A lone upload is the main case: in this process the bomb would take gigabytes and minutes."""
    bomb = tmp_path / "bomb.txt"
    bomb.write_text(BOMB_TEXT)
    report = make_pipeline(tmp_path / "idx", embedder, parse_memory_mb=400).library.index([str(bomb)])
    assert report.failed == [("bomb.txt", "needed more than 400 MiB of memory to parse; skipped (parse_memory_mb)")]
    assert not report.added and not report.published


def _pdf(path: Path, pages: int) -> Path:
    """A valid PDF whose pages share one content stream and one font: about 160 bytes a page."""
    content = b"BT /F1 12 Tf 72 720 Td (Tide mills stored water.) Tj ET"
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>"] * pages
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path
