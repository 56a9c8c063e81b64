"""Plain-text and Markdown parsing: every marker and reference-list form, the never-guess rule, offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.ingest import front_matter, read_document
from qa.ingest import markdown as md
from qa.ingest import text as txt
from qa.ingest.passages import chunk
from qa.ingest.reference_lists import parse_entry
from qa.ingest.sentences import MAX_SENTENCE
from qa.records import Document
from tests.conftest import DATA, SEED


def parse(body: str) -> Document:
    return txt.parse(body, "x.txt", "X", {})


def cites(doc: Document) -> list[tuple[str, str, str | None, str | None]]:
    """(sentence text, marker, locator, reference key) for every citation."""
    return [(doc.sentence_text(c.sentence), c.marker, c.locator, c.reference) for c in doc.citations]


def assert_offsets(doc: Document) -> None:
    for s in doc.sentences:
        piece = doc.text[s.start:s.end]
        assert piece == piece.strip() and piece
    for c in doc.citations:
        s = doc.sentences[c.sentence]
        assert s.start < c.position <= s.end + 1 or c.position == s.start


def test_paragraphs_are_data_that_sentences_point_into():
    doc = parse("One first. One second.\n\nTwo only.\n\n\n\nThree first. Three second.\n")
    assert [doc.text[a:b] for a, b in doc.paragraphs] == ["One first. One second.", "Two only.",
                                                          "Three first. Three second."]
    assert [s.paragraph for s in doc.sentences] == [0, 0, 1, 2, 2]
    for s in doc.sentences:
        a, b = doc.paragraphs[s.paragraph]
        assert a <= s.start < s.end <= b


def test_seed_never_guesses_the_mapping():
    doc = read_document(SEED, 2**24)
    assert doc.title == "International communication center (excerpt)"
    assert doc.meta["license"] == "CC BY-SA 4.0"
    assert [r.text.split(",")[0] for r in doc.references] == ["Bandurski", "Fang"]
    # markers run to [16] while two unnumbered references are listed: no marker may resolve
    assert all(c.reference is None for c in doc.citations)
    assert "[" not in doc.text and "^" not in doc.text and "Bandurski" not in doc.text
    fujian = [c for c in doc.citations if doc.sentence_text(c.sentence).startswith("In July 2023")]
    assert [(c.marker, c.locator) for c in fujian] == [("1", "13")]
    assert_offsets(doc)


def test_chained_markers_locators_and_maintenance_tags():
    doc = parse("Shifted to provinces.[4][5][6] Fusion centers.[1]: 5 Range cited.[2]:13–15 "
                "As of December 2024[update], over 70 exist.[16] Unsourced claim.[citation needed]\n")
    assert cites(doc) == [
        ("Shifted to provinces.", "4", None, None), ("Shifted to provinces.", "5", None, None),
        ("Shifted to provinces.", "6", None, None), ("Fusion centers.", "1", "5", None),
        ("Range cited.", "2", "13–15", None), ("As of December 2024, over 70 exist.", "16", None, None),
    ]
    assert doc.text == ("Shifted to provinces. Fusion centers. Range cited. As of December 2024, over 70 "
                        "exist. Unsourced claim.")


def test_marker_inside_a_sentence_cites_that_sentence():
    doc = parse("The mayor said[3] that the bridge opened in 1990. Next sentence.\n")
    assert cites(doc) == [("The mayor said that the bridge opened in 1990.", "3", None, None)]


def test_notes_and_bracketed_words():
    doc = parse("A claim with a note.[a] A [sic] spelling and a second note.[note 1]\n"
                "a. ^ The first note.\nnote 1. ^ The second note.\n")
    assert cites(doc) == [("A claim with a note.", "a", None, "a"),
                          ("A [sic] spelling and a second note.", "note 1", None, "note 1")]
    assert [r.text for r in doc.references] == ["The first note.", "The second note."]


def test_numbered_caret_list_links_by_number():
    doc = read_document(DATA / "corpus" / "orchards.txt", 2**24)
    got = {(m, loc, ref) for _, m, loc, ref in cites(doc)}
    assert got == {("1", None, "1"), ("2", "88", "2"), ("2", None, "2"), ("3", None, "3")}
    assert doc.references[1].fields["isbn"] == "9783161484100"
    assert doc.references[0].fields["title"] == "Orchards of the Valdoria Valley"
    assert "Petrov" not in doc.text and "References" not in doc.text


def test_bracket_numbered_list_under_heading():
    doc = parse("One fact.[1] Two facts.[2]\nReferences\n[1] Smith, J. (2001). \"Alpha\". Beta.\n"
                "[2] Jones, K. (2002). \"Gamma\". Delta. https://example.org/g\n")
    assert [ref for *_, ref in cites(doc)] == ["1", "2"]
    assert doc.references[1].fields["url"] == "https://example.org/g"
    assert doc.references[0].fields["authors"] == ["Smith, J."]


COMPLETE = ("Alpha was founded in 1900.[1] Beta followed in 1910.[2] Alpha grew.[1]\n"
            "^ ab Smith, Ann (1990). \"Alpha history\". Press.\n^ Jones, Bo (1991). \"Beta\". Press.\n")


def test_complete_unnumbered_list_is_mapped():
    doc = parse(COMPLETE)
    assert [(m, ref) for _, m, _, ref in cites(doc)] == [("1", "u1"), ("2", "u2"), ("1", "u1")]


@pytest.mark.parametrize("body", [
    COMPLETE.replace("^ ab Smith", "^ Smith"),                      # backlinks disagree with use
    COMPLETE.replace("Beta followed in 1910.[2]", "Beta followed in 1910.[3]"),  # numbers not 1..N
    COMPLETE + "^ Extra, Entry (1992). \"Gamma\". Press.\n",       # more entries than markers
])
def test_unprovable_unnumbered_list_is_not_mapped(body):
    doc = parse(body)
    assert all(c.reference is None for c in doc.citations)
    assert doc.references  # the list is still kept as data


def test_jump_up_and_spaced_backlinks():
    assert parse_entry("^ Jump up to: a b c Smith, A. (1990). T.") .backlinks == 3
    assert parse_entry("^ a b Smith, A. (1990). T.").backlinks == 2
    e = parse_entry("^ de Araujo, G. (2001). T.")
    assert (e.backlinks, e.text) == (1, "de Araujo, G. (2001). T.")


def test_markdown_footnotes_headings_and_front_matter():
    doc = read_document(DATA / "corpus" / "lighthouses.md", 2**24)
    assert doc.title == "Lighthouses of the Farallon coast"
    assert doc.meta["author"] == "Footnote test fixtures"
    got = cites(doc)
    assert got[0] == ("The Point Morrow lighthouse was first lit on 12 March 1871 by keeper Ada Lindqvist.",
                      "1", None, "1")
    assert got[1][1:] == ("2", None, "2")
    auto = [s for s in doc.sentences if doc.text[s.start:s.end].startswith("The light was automated")]
    assert auto[0].section == "Automation"
    assert "Okafor, a U.S. Coast Guard historian" in doc.text
    assert doc.references[0].fields["url"] == "https://example.org/coast-review/1901"
    assert "[^" not in doc.text and "#" not in doc.text and "*" not in doc.text
    assert_offsets(doc)


def test_markdown_inline_markup_removed():
    doc = md.parse("Some **bold** and a [link](https://x.org) and `code`.\n\n```\nskipped()\n```\n",
                   "a.md", "A", {})
    assert doc.text == "Some bold and a link and code."


def test_front_matter_only_known_keys():
    meta, body = front_matter('---\ntitle: "T"\nurl: https://x.org/a:b\nfoo: bar\n---\nBody.\n')
    assert meta == {"title": "T", "url": "https://x.org/a:b"} and body == "Body.\n"


def test_text_without_citations_and_soft_wraps():
    doc = parse("First line of a paragraph\nwrapped here. Second sentence.\n\nNew paragraph.\n")
    assert doc.text == "First line of a paragraph wrapped here. Second sentence.\n\nNew paragraph."
    assert [doc.sentence_text(i) for i in range(3)] == [
        "First line of a paragraph wrapped here.", "Second sentence.", "New paragraph."]
    assert doc.citations == []


def test_sentence_splitter_on_abbreviations():
    from qa.ingest.sentences import sentence_spans

    for line in (DATA / "sentences.txt").read_text().splitlines():
        expected = 3 if line.startswith("What happened?") else 2
        assert len(sentence_spans(line)) == expected, line


def test_every_fixture_offset_is_exact(corpus_dir: Path):
    for f in corpus_dir.iterdir():
        assert_offsets(read_document(f, 2**24))


def test_passages_keep_paragraphs_and_overlap_and_cut_only_an_overlong_sentence():
    para = " ".join(f"Sentence {i} of the first paragraph says a little." for i in range(30))
    doc = parse(para + "\n\nA second paragraph.\n")
    chunks = chunk(doc, max_chars=300, overlap=1)
    assert all(c.end - c.start <= 300 for c in chunks)
    assert chunks[-1].first_sentence == chunks[-1].last_sentence == len(doc.sentences) - 1  # its own paragraph
    firsts = [c.first_sentence for c in chunks[:-1]]
    assert all(b == a_last for a_last, b in zip([c.last_sentence for c in chunks[:-2]], firsts[1:], strict=True))
    for c in chunks:
        assert doc.text[c.start:c.end] == doc.text[c.start:c.end].strip()


def test_an_overlong_sentence_is_cut_at_clauses_then_spaces_with_exact_offsets():
    clauses = ", ".join(f"clause {i} names a thing" for i in range(400))  # ~9,000 characters, no full stop
    doc = parse(clauses + "\n\nShort one. " + "x" * 2500 + "\n")
    assert max(s.end - s.start for s in doc.sentences) <= MAX_SENTENCE
    for s in doc.sentences:
        piece = doc.text[s.start:s.end]
        assert piece == piece.strip() and piece
    long_pieces = [doc.text[s.start:s.end] for s in doc.sentences if s.paragraph == 0]
    assert all(p.endswith(",") for p in long_pieces[:-1])  # cut after a clause mark
    assert " ".join(long_pieces) == clauses  # nothing lost or repeated
    chunks = chunk(doc, max_chars=700, overlap=1)
    assert max(c.end - c.start for c in chunks) <= 700
    assert {c.first_sentence for c in chunks} == set(range(len(doc.sentences)))
    x_sentences = [s for s in doc.sentences if doc.text[s.start] == "x"]
    assert [s.end - s.start for s in x_sentences] == [2000, 500]  # no space to cut at: cut at the limit


def test_five_megabytes_on_one_line_become_bounded_sentences_and_passages():
    text = "lorem ipsum dolor sit amet " * 200_000  # 5.4 MB, one line, no full stop
    doc = parse(text)
    assert max(s.end - s.start for s in doc.sentences) <= MAX_SENTENCE and len(doc.sentences) > 2000
    assert max(c.end - c.start for c in chunk(doc, 700, 1)) <= 700


def test_a_long_run_without_spaces_is_cut_without_the_sentence_splitter():
    # nupunkt's time grows with the square of such a run; it is cut into pieces of its own
    doc = parse("Before it. " + "!" * 300_000 + " After it.\n")
    texts = [doc.sentence_text(i) for i in range(len(doc.sentences))]
    assert texts[0] == "Before it." and texts[-1] == "After it." and set(texts[1:-1]) == {"!" * 2000}
    assert len(texts) == 152
