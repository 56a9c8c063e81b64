"""Cleaner text: Markdown emphasis kept as data, the debris of dropped wikitext templates, titles."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.ingest import read_document
from qa.ingest.builder import DocumentBuilder
from qa.records import Document
from tests.conftest import make_pipeline
from tests.test_ingest_text import assert_offsets

NOTES = ("# Tide *mills* of Suffolk\n\n"
         "The mill at Woodbridge ground *grain* for __six__ centuries.[^reed] Its snake_case_name stays.\n\n"
         "It was restored in 1982 [2].\n\n"
         "[^reed]: Reed, J. (2010). *Orchard Review*, _vol. 3_, and ***both***\n"
         "    with a *continued\n    line*.\n\n"
         "## References\n\n"
         "1. ^ Unused.\n"
         "2. ^ Hale, A. *Tide Mills of Suffolk*. Sea Press.\n")


def emphasised(doc: Document) -> dict[str, list[str]]:
    """Reference key -> the words its `emphasis` spans cover."""
    return {r.key: [r.text[s:e] for s, e in r.fields.get("emphasis", [])] for r in doc.references}


def test_markdown_emphasis_is_data_not_asterisks(tmp_path: Path):
    f = tmp_path / "tide_mills.md"
    f.write_text(NOTES)
    doc = read_document(f, 2**20)
    assert_offsets(doc)
    refs = {r.key: r for r in doc.references}
    assert refs["reed"].text == "Reed, J. (2010). Orchard Review, vol. 3, and both with a continued line."
    assert refs["2"].text == "Hale, A. Tide Mills of Suffolk. Sea Press."
    assert emphasised(doc) == {"reed": ["Orchard Review", "vol. 3", "both", "continued line"],
                               "1": [], "2": ["Tide Mills of Suffolk"]}
    assert "emphasis" not in refs["1"].fields and refs["2"].to_dict()["emphasis"] == [[9, 30]]
    # the body loses the marks too, and keeps underscores that are no emphasis
    assert doc.text == ("The mill at Woodbridge ground grain for six centuries. Its snake_case_name stays.\n\n"
                        "It was restored in 1982.")  # and a marker between a space and "." takes the space
    assert doc.title == "Tide mills of Suffolk"  # the first heading, as plain text


def test_emphasis_reaches_the_indexed_document(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tide_mills.md").write_text(NOTES)
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    doc_id = pipe.library.documents(limit=None)[0][0]["id"]
    refs = {r["key"]: r for r in pipe.library.document(doc_id)["references"]}
    assert refs["2"]["text"][slice(*refs["2"]["emphasis"][0])] == "Tide Mills of Suffolk"
    assert len(refs["reed"]["emphasis"]) == 4
    from web import create_app

    page = create_app(test_config={"TESTING": True}, pipeline=pipe).test_client().get(f"/documents/{doc_id}")
    html = page.get_data(as_text=True)
    assert "<em>Tide Mills of Suffolk</em>" in html and "*Tide Mills" not in html  # italics, as the source meant


def test_emphasis_is_rendered_escaped_around_its_spans():
    from web.formats import emphasized

    shown = str(emphasized("Moss, <b>Tide</b> Mills. 1999.", [[6, 17]]))
    assert shown == "Moss, <em>&lt;b&gt;Tide&lt;/b&gt;</em> Mills. 1999."
    assert str(emphasized("a & b", None)) == "a &amp; b"
    assert str(emphasized("short", [[2, 99], [3, 1]])) == "short"  # spans outside the text are ignored


def test_a_source_control_character_is_not_taken_for_emphasis(tmp_path: Path):
    f = tmp_path / "odd.md"
    f.write_text("A claim.[^1]\n\n[^1]: Lee \x01odd\x02 and *real*.\n")
    doc = read_document(f, 2**20)
    assert doc.references[0].text == "Lee odd and real." and emphasised(doc) == {"1": ["real"]}


WIKI = [
    # (wikitext, clean text, the sentence each citation is in)
    ("'''Toronto''' ({{IPAc-en|t|ɵ|ˈ|r|ɒ|n|t|oʊ}}, {{IPAc-en|local|ˈ|t|r|ɒ|n|oʊ}}) is a city.<ref>Atlas.</ref> "
     "It is big.<ref>Census.</ref>\n",
     "Toronto is a city. It is big.", ["Toronto is a city.", "It is big."]),
    ("* All weather lifeboats (ALBs): {{Lbb|Mersey}}, {{Lbb|Severn}}, {{Lbb|Shannon}}, {{Lbb|Tamar}}, "
     "{{Lbb|Trent}} and {{Lbb|Tyne}}<ref>RNLI.</ref>\n* Inshore lifeboats (ILBs): {{Lbb|D}}, {{Lbb|B}} and "
     "{{Lbb|E}}\n* Hovercraft: six.<ref>Fleet.</ref>\n",
     "All weather lifeboats (ALBs)\n\nInshore lifeboats (ILBs)\n\nHovercraft: six.",
     ["All weather lifeboats (ALBs)", "Hovercraft: six."]),
    ("'''Julia Kristeva''' ({{IPAc-en|k|r|ɪ|s|t|ɛ|v|ə}}; {{lang-bg|Юлия Кръстева}}; born 1941) "
     "is a philosopher.<ref>Bio.</ref>\n",
     "Julia Kristeva (Юлия Кръстева; born 1941) is a philosopher.",
     ["Julia Kristeva (Юлия Кръстева; born 1941) is a philosopher."]),
    ("The classes were Mersey, {{Lbb|Severn}}, Tamar and {{Lbb|Tyne}}.<ref>List.</ref> "
     "Motive ({{enS|themes}}) change it.<ref>Themes.</ref>\n",
     "The classes were Mersey, Tamar. Motive change it.", ["The classes were Mersey, Tamar.", "Motive change it."]),
    ("Built (born {{circa-like|x}}; rebuilt 1850 {{dubious}}) of stone {{cn}}.<ref>Stone.</ref>\n",
     "Built (born; rebuilt 1850) of stone.", ["Built (born; rebuilt 1850) of stone."]),
]


@pytest.mark.parametrize(("wikitext", "text", "cited"), WIKI)
def test_dropped_templates_leave_no_punctuation_behind(tmp_path: Path, wikitext: str, text: str, cited: list[str]):
    f = tmp_path / "page.wiki"
    f.write_text(wikitext)
    doc = read_document(f, 2**20)
    assert_offsets(doc)
    assert doc.text == text
    assert [doc.sentence_text(c.sentence) for c in doc.citations] == cited
    for c in doc.citations:  # every marker still stands right after its sentence
        assert doc.text[:c.position].endswith(doc.sentence_text(c.sentence))


def test_punctuation_of_the_prose_itself_is_kept(tmp_path: Path):
    prose = "Odd, but true: (, ) and ( ) are written here; so is a, , b and c: , , and.\n"
    f = tmp_path / "prose.wiki"
    f.write_text(prose + "\nA {{dropped}} word: (kept), here.\n")
    assert read_document(f, 2**20).text == prose.strip() + "\n\nA word: (kept), here."


def test_tidying_moves_markers_and_pages_with_the_text():
    b = DocumentBuilder()
    b.page(3)
    b.text("Intro. ")
    b.page(4)
    b.text("Toronto (")
    b.gap()
    b.text(", ")
    b.gap()
    b.text(") is a city.")
    b.cite("1")
    b.text(" Here")
    b.gap()
    b.text(" .")
    b.cite("2")
    doc = b.build("x.txt", "x", "text", [])
    assert doc.text == "Intro. Toronto is a city. Here."
    assert [(c.marker, doc.text[:c.position][-5:]) for c in doc.citations] == [("1", "city."), ("2", "Here.")]
    assert [(doc.text[s.start:s.end], s.page) for s in doc.sentences] == [
        ("Intro.", 3), ("Toronto is a city.", 4), ("Here.", 4)]


def test_a_long_run_of_dropped_templates_is_tidied_in_linear_time(tmp_path: Path):
    f = tmp_path / "long.wiki"
    f.write_text("Classes: " + ", ".join(["{{Lbb|x}}"] * 20000) + " and {{Lbb|y}}. Built (" + "{{x}}; " * 20000
                 + "born 1941) here.\n")
    assert read_document(f, 2**24).text == "Classes. Built (born 1941) here."


@pytest.mark.parametrize(("name", "title"), [
    ("julia_kristeva.txt", "julia kristeva"), ("RNLI_stations.wiki", "RNLI stations"),
    ("Clint-Murchison-Sr..txt", "Clint Murchison Sr."), ("notes__on--tides.md", "notes on tides"),
])
def test_titles_from_file_names_keep_the_files_own_case(tmp_path: Path, name: str, title: str):
    f = tmp_path / name
    f.write_text("A sentence about tides and their mills.\n")
    assert read_document(f, 2**20).title == title


def test_html_title_drops_the_wikipedia_suffix_and_front_matter_wins(tmp_path: Path):
    page = tmp_path / "rnli_stations.html"
    page.write_text("<html><head><title>List of RNLI stations - Wikipedia</title></head>"
                    "<body><p>Stations ring the coast.</p></body></html>")
    assert read_document(page, 2**20).title == "List of RNLI stations"
    note = tmp_path / "a_note.md"
    note.write_text("---\ntitle: Given title\n---\n# Heading title\n\nBody text here.\n")
    assert read_document(note, 2**20).title == "Given title"
