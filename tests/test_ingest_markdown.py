"""Markdown on markdown-it-py: reference-style links, tables, footnote continuations, reference lists, hostile input."""

from __future__ import annotations

import json
import subprocess
import sys

from qa.ingest import markdown
from qa.records import Document
from tests.conftest import ROOT
from tests.test_ingest_text import assert_offsets


def parse(body: str) -> Document:
    doc = markdown.parse(body, "a.md", "A", {})
    assert_offsets(doc)
    return doc


def cites(doc: Document) -> list[tuple[str, str, str | None, str | None]]:
    """(text just before the marker's position, marker, locator, reference key) for every citation."""
    return [(doc.text[:c.position].rsplit(" ", 1)[-1], c.marker, c.locator, c.reference) for c in doc.citations]


def sentences(doc: Document) -> list[str]:
    return [doc.sentence_text(i) for i in range(len(doc.sentences))]


def test_reference_style_links_are_links_not_citations():
    doc = parse("The keeper's log [is online][1] and [the survey][survey] agrees.[^n] So does [the board][].\n\n"
                "[1]: https://example.org/log\n"
                '[survey]: https://example.org/survey "Survey"\n'
                "[the board]: https://example.org/board\n\n"
                "[^n]: Reed, J. (2010). Notes.\n")
    assert doc.text == "The keeper's log is online and the survey agrees. So does the board."
    assert cites(doc) == [("agrees.", "n", None, "n")]
    assert [r.key for r in doc.references] == ["n"]


def test_a_bare_marker_with_a_link_definition_cites_that_definition():
    doc = parse("The light was first lit in 1871.[1]: 12 It was automated in 1968.[2] A marker with no "
                "definition stays one.[3]\n\n"
                '[1]: https://example.org/report "Annual Report 1872"\n'
                "[2]: https://example.org/automation\n")
    assert doc.text == ("The light was first lit in 1871. It was automated in 1968. "
                        "A marker with no definition stays one.")
    assert cites(doc) == [("1871.", "1", "12", "1"), ("1968.", "2", None, "2"), ("one.", "3", None, None)]
    assert [(r.key, r.text, r.fields["url"]) for r in doc.references] == [
        ("1", "Annual Report 1872 <https://example.org/report>", "https://example.org/report"),
        ("2", "https://example.org/automation", "https://example.org/automation")]


def test_pipe_table_rows_are_paragraphs_not_prose_run_together():
    doc = parse("## Keepers\n\n"
                "| Year | Keeper | Note |\n|------|--------|---|\n"
                "| 1871 | Ada Lindqvist[^log] | first |\n| 1901 | Bo **Berg** | |\n\n"
                "After the table.\n\n[^log]: Station log book.\n")
    assert doc.text == "Year | Keeper | Note\n\n1871 | Ada Lindqvist | first\n\n1901 | Bo Berg\n\nAfter the table."
    assert sentences(doc) == ["Year | Keeper | Note", "1871 | Ada Lindqvist | first", "1901 | Bo Berg",
                              "After the table."]
    assert {s.section for s in doc.sentences} == {"Keepers"}
    assert cites(doc) == [("Lindqvist", "log", None, "log")]
    assert doc.sentence_text(doc.citations[0].sentence) == "1871 | Ada Lindqvist | first"


def test_indented_continuation_of_a_footnote_belongs_to_it():
    doc = parse("Lit in 1871.[^1] Automated in 1968.[^2]\n\n"
                "[^1]: Lindqvist, A. (1901).\n    \"Forty Years at Point Morrow\".\n\n"
                "    Coast Review, p. 45.\n\n"
                "[^2]: Harbor Board (1872).\n  Annual report.\n\n"
                "Prose after the notes.\n")
    assert doc.text == "Lit in 1871. Automated in 1968.\n\nProse after the notes."
    refs = {r.key: r for r in doc.references}
    assert refs["1"].text == 'Lindqvist, A. (1901). "Forty Years at Point Morrow". Coast Review, p. 45.'
    assert (refs["1"].fields["title"], refs["1"].fields["pages"]) == ("Forty Years at Point Morrow", "45")
    assert refs["2"].text == "Harbor Board (1872). Annual report."
    assert cites(doc) == [("1871.", "1", None, "1"), ("1968.", "2", None, "2")]


def test_a_footnote_keeps_its_link_targets_and_loses_its_markup():
    doc = parse("Claim.[^1]\n\n[^1]: Smith, A. (2000). [*The Title*](https://example.org/t). `code` ![a map](m.png)\n")
    assert doc.references[0].text == "Smith, A. (2000). The Title <https://example.org/t>. code a map"
    assert doc.references[0].fields["url"] == "https://example.org/t"


def test_numbered_list_under_a_references_heading_is_the_reference_list():
    doc = parse("# Lights\n\nFirst lit in 1871.[1] Automated in 1968.[2]\n\n"
                "1. A numbered step in the prose.\n\n"
                "## References\n\n"
                '1. Lindqvist, A. (1901). "Forty Years". *Coast Review*.\n'
                "2. Harbor Board (1872). Annual Report.\n")
    assert doc.text == "First lit in 1871. Automated in 1968.\n\nA numbered step in the prose."
    assert cites(doc) == [("1871.", "1", None, "1"), ("1968.", "2", None, "2")]
    assert [(r.key, r.text) for r in doc.references] == [
        ("1", 'Lindqvist, A. (1901). "Forty Years". Coast Review.'), ("2", "Harbor Board (1872). Annual Report.")]


def test_wikipedia_style_list_without_heading_and_numbered_prose():
    doc = parse("Claim one.[1] Claim two.[2]\n\n1. First step.\n2. Second step.\n\nMore prose.\n\n"
                "1. ^ a b Smith, A. (2000). Title.\n2. ^ Jones, B. (2001). Other.\n")
    assert doc.text == "Claim one. Claim two.\n\nFirst step.\n\nSecond step.\n\nMore prose."
    assert [(r.key, r.text) for r in doc.references] == [("1", "Smith, A. (2000). Title."),
                                                          ("2", "Jones, B. (2001). Other.")]
    assert [c.reference for c in doc.citations] == ["1", "2"]


def test_inline_code_escapes_html_images_and_code_blocks():
    doc = parse('Use `items[1]` here,<br>then <span class="x">see</span> ![the map](m.png).[^1] '
                "Escaped \\[2\\] and &#91;3&#93; are text.\n\n"
                "<div>\nBlock <b>html</b> text &amp; more.<!-- hidden -->\n</div>\n\n"
                "<script>\nalert(1)\n</script>\n\n"
                "```\nfenced[2]\n```\n\n    indented code\n\n"
                "[^1]: Note.\n")
    assert doc.text == "Use items[1] here, then see the map. Escaped [2] and [3] are text.\n\nBlock html text & more."
    assert cites(doc) == [("map.", "1", None, "1")]


def test_headings_setext_and_markers_in_headings():
    doc = parse("Setext title\n============\n\nBody one.\n\n## Results[^1] and *more*\n\nBody two.[^1]\n\n[^1]: N.\n")
    assert [s.section for s in doc.sentences] == ["Setext title", "Results and more"]
    assert doc.text == "Body one.\n\nBody two."
    assert cites(doc) == [("two.", "1", None, "1")]


# Inputs that made the hand-written parser super-linear (a padded heading: 2 KB took 48 s) and
# other deep or unclosed markup. They run in a child process with a generous timeout so that a
# regression fails the test instead of hanging the suite; nothing here asserts on elapsed time.
HOSTILE = {
    "padded_heading": "# x" + " " * 20000 + "y\n\nBody text.\n",
    "emphasis_openers": "*a " * 34000,  # 102 KB
    "underscore_openers": "_a " * 34000,
    "nested_brackets": "[" * 50000 + "word" + "]" * 50000,
    "unclosed_brackets": "[^" * 20000 + "![" * 5000,
    "nested_lists": "Before.\n\n" + "".join("  " * i + "- item\n" for i in range(400)) + "\nAfter.\n",
    "nested_quotes": "Before.\n\n" + ">" * 20000 + " deep\n",
    "ragged_table": "| a | b |\n|---|---|\n" + "| x |\n" * 20000,
}
_CHILD = """
import json, sys, tempfile
from pathlib import Path
from qa.ingest import read_document
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for name, body in json.load(sys.stdin).items():
        path = Path(tmp) / f"{name}.md"
        path.write_text(body, encoding="utf-8")
        doc = read_document(path, 2**24)  # the whole way in: front matter, title, then the parser
        out[name] = {"text": doc.text, "sections": sorted({s.section or "" for s in doc.sentences}),
                     "sentences": len(doc.sentences), "citations": len(doc.citations), "title": doc.title}
print(json.dumps(out))
"""


def test_hostile_markdown_is_parsed_in_linear_time():
    run = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(HOSTILE), capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    assert got["padded_heading"] == {"text": "Body text.", "sections": ["x y"], "sentences": 1, "citations": 0,
                                     "title": "x y"}
    for name in ("emphasis_openers", "underscore_openers", "nested_brackets", "unclosed_brackets"):
        assert got[name]["text"] == HOSTILE[name].strip() and got[name]["citations"] == 0, name
    paragraphs = got["nested_lists"]["text"].split("\n\n")
    # lists nested past markdown-it's limit (20 levels) are not read; what comes before them is
    assert paragraphs[0] == "Before." and 5 <= paragraphs.count("item") <= 400
    assert set(paragraphs[1:]) <= {"item", "After."}
    assert got["nested_quotes"]["text"] in ("Before.", "Before.\n\ndeep")
    rows = got["ragged_table"]["text"].split("\n\n")
    assert rows[0] == "a | b" and rows[1:] == ["x"] * 20000
