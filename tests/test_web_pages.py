"""Route tests with Flask's test client over the real session index: pages, JSON twins, errors."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from qa import Pipeline
from qa.cli import format_result, main
from qa.records import locator_label
from web import create_app
from web.errors import CSP
from web.formats import http_url, when

FUJIAN = "When did the Fujian Media Group create an ICC?"
LIGHTHOUSE = "When was the Point Morrow lighthouse first lit?"
OFF_TOPIC = "How do I bake sourdough bread?"


def html_of(resp) -> str:
    return resp.get_data(as_text=True)


def doc_id(pipeline: Pipeline, path_end: str) -> str:
    return next(d["id"] for d in pipeline.library.documents(limit=None)[0] if d["path"].endswith(path_end))


def test_empty_ask_page_has_the_question_box(client):
    resp = client.get("/")
    page = html_of(resp)
    assert resp.status_code == 200
    assert re.search(r'<textarea id="q" name="q"[^>]*maxlength="1000"', page)
    assert 'class="card' not in page
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_answer_card_highlights_answer_inside_its_sentence_with_footnote(client, pipeline):
    resp = client.get("/", query_string={"q": FUJIAN})
    page = html_of(resp)
    assert resp.status_code == 200
    assert "“In <mark class=\"answer\">July 2023</mark>, the Fujian Media Group created an ICC" in page
    assert '<sup class="fnref"><a href="#fn-1" aria-label="footnote 1">1</a></sup>' in page
    footnote = page[page.index('<li id="fn-1"'):page.index("</li>", page.index('<li id="fn-1"'))]
    assert "Reference not included in the source." in footnote
    assert '<span class="marker">[1]</span>' in footnote and '<span class="locator">p. 13</span>' in footnote
    ev = pipeline.ask(FUJIAN).answer.evidence[-1]
    link = f"/documents/{ev.document.id}?start={ev.start}&amp;end={ev.end}#highlight"
    assert f'class="provenance" href="{link}"' in footnote
    assert f'<span class="path">{ev.document.path}</span>' in footnote
    assert '<details class="others">' in page and "score " in page
    assert re.search(r'<p class="timings">retrieve \d+ ms', page)
    assert resp.headers["Link"].startswith("</api/ask?q=When+did+the+Fujian")


def test_copy_buttons_carry_markdown_with_footnotes(client):
    page = unescape(html_of(client.get("/", query_string={"q": FUJIAN})))
    answer = re.search(r'data-copy="(.*?)" hidden>Copy answer', page, re.S).group(1)
    assert "**A:** July 2023" in answer
    assert "> In **July 2023**, the Fujian Media Group created an ICC" in answer and "CCP.[^1]" in answer
    assert "[^1]: Reference not included in the source (marker [1], p. 13)" in answer
    citation = re.search(r'data-copy="([^"]*)" hidden>Copy citation', page).group(1)
    assert citation.startswith("Reference not included in the source (marker [1], p. 13); cited in International")


def test_resolved_footnote_shows_the_reference_once_with_its_link(client):
    page = html_of(client.get("/", query_string={"q": LIGHTHOUSE}))
    assert '<mark class="answer">12 March 1871</mark>' in page
    shown = page.split('<section class="footnotes"')[1].split("</section>")[0]
    shown = shown.split('data-copy="')[0] + "".join(part.split('"', 1)[1] for part in shown.split('data-copy="')[1:])
    assert shown.count("Lindqvist, Ada (1901). &#34;Forty Years at Point Morrow&#34;. Coast Review.") == 1
    assert ('<a class="url" href="https://example.org/coast-review/1901" rel="noopener noreferrer external" '
            'target="_blank">https://example.org/coast-review/1901</a>') in page
    assert '<span class="authors">' not in page and "Reference not included" not in page
    fields = client.get("/api/ask", query_string={"q": LIGHTHOUSE}).get_json()["answer"]["evidence"][0]["footnotes"]
    assert fields[0]["reference"]["authors"] == ["Lindqvist, Ada"]  # the parsed fields stay in the JSON


def test_sentence_without_marker_is_cited_to_its_document(client):
    page = html_of(client.get("/", query_string={"q": "Who catalogued the Point Morrow logbooks in 1999?"}))
    assert "Dr. Paul Okafor" in page
    assert "The source marks no citation on this sentence; it is cited to its document." in page


def test_abstention_is_its_own_state_with_closest_passages(client):
    resp = client.get("/", query_string={"q": OFF_TOPIC})
    page = html_of(resp)
    assert resp.status_code == 200
    assert "The sources do not answer this" in page and "Closest passages" in page
    assert '<ol class="passages">' in page and "<mark" not in page and "Footnotes" not in page


@pytest.mark.parametrize("query, status, words", [
    ({"q": ""}, 400, "the question is empty"),
    ({"q": "   "}, 400, "the question is empty"),
    ({"q": "x" * 1001}, 400, "the limit is 1000"),
])
def test_unusable_questions_are_400_on_page_and_api(client, query, status, words):
    page = client.get("/", query_string=query)
    assert page.status_code == status and words in html_of(page)
    assert '<textarea id="q"' in html_of(page)  # the box is there to try again
    api = client.get("/api/ask", query_string=query)
    assert api.status_code == status and words in api.get_json()["error"]


def test_question_of_exactly_the_limit_is_accepted(client):
    assert client.get("/api/ask", query_string={"q": "lighthouse " * 90 + "x" * 10}).status_code == 200


def test_api_ask_is_the_design_contract(client, pipeline):
    body = client.get("/api/ask", query_string={"q": FUJIAN}).get_json()
    expected = pipeline.ask(FUJIAN).to_dict()
    assert list(body) == ["question", "answered", "answer", "passages", "timings_ms", "index"]  # fields may be added
    body.pop("timings_ms"), expected.pop("timings_ms")
    assert body == expected
    assert body["answer"]["text"] == "July 2023"
    last = body["answer"]["evidence"][-1]
    assert last["footnotes"] == [{"marker": "1", "locator": "13", "where": "p. 13", "reference": None}]
    # the numbering and wording every view uses are in the JSON: one number per citation
    notes = body["answer"]["notes"]
    assert [n["n"] for n in notes] == list(range(1, len(notes) + 1))
    assert {n for ev in body["answer"]["evidence"] for n in ev["notes"]} == {n["n"] for n in notes}
    cited = next(n for n in notes if n["n"] in last["notes"] and n["footnote"])
    assert cited["text"].startswith("Reference not included in the source (marker [1], p. 13)")


def test_the_cli_and_the_page_number_and_word_footnotes_alike(client, pipeline):
    result = pipeline.ask(FUJIAN)
    notes = result.answer.notes
    assert notes and any(n.footnote and n.footnote.where == "p. 13" for n in notes)
    printed = format_result(result)
    page = html_of(client.get("/", query_string={"q": FUJIAN}))
    for note in notes:
        assert f"[{note.n}] {note.text()}"[:60] in " ".join(printed.split())
        assert f'id="fn-{note.n}"' in page
    assert "p. 13" in page and "p. 13" in printed and "p. p." not in printed


def test_api_ask_abstention_is_200(client):
    resp = client.get("/api/ask", query_string={"q": OFF_TOPIC})
    body = resp.get_json()
    assert resp.status_code == 200 and body["answered"] is False and body["answer"] is None and body["passages"]


def test_api_ask_without_q_is_400(client):
    resp = client.get("/api/ask")
    assert resp.status_code == 400 and resp.is_json and "empty" in resp.get_json()["error"]


def test_no_index_yet_is_503_with_the_command(tmp_path, embedder):
    app = create_app(test_config={"TESTING": True},
                     pipeline=Pipeline({"index": str(tmp_path / "none")}, embedder=embedder))
    client = app.test_client()
    api = client.get("/api/ask", query_string={"q": FUJIAN})
    assert api.status_code == 503 and "qa index --index" in api.get_json()["error"]
    page = client.get("/", query_string={"q": FUJIAN})
    assert page.status_code == 503 and "No index to answer from yet" in html_of(page)
    assert "qa index --index" in html_of(page)
    assert client.get("/sources").status_code == 503
    assert client.get("/api/sources").status_code == 503


def test_create_app_opens_the_index_folder_it_is_given(pipeline):
    client = create_app(index_path=str(pipeline.index_dir), test_config={"TESTING": True}).test_client()
    listed = client.get("/api/sources").get_json()  # no model needed for this
    assert listed["documents"] == pipeline.library.documents()[0] and listed["total"] == len(listed["documents"])


def test_sources_page_lists_every_document_with_counts(client, pipeline):
    page = html_of(client.get("/sources"))
    for d in pipeline.library.documents(limit=None)[0]:
        assert f'<a href="/documents/{d["id"]}">' in page and d["path"].replace("/", "/<wbr>") in page
    assert "3 documents indexed." in page
    assert "0 of 20" in page and "(20 unresolved)" in page  # the seed: markers but no certain mapping
    assert "5 of 5" in page
    assert re.search(r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>", page)


def test_api_sources_is_what_qa_sources_json_prints_a_page_at_a_time(client, pipeline, capsys):
    everything, total = pipeline.library.documents(limit=None)
    assert total == len(everything) >= 3
    first = client.get("/api/sources?limit=2").get_json()
    assert first["documents"] == everything[:2] and first["total"] == total and first["offset"] == 0
    assert first["next"] == "/api/sources?offset=2&limit=2"
    pages = [first]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).get_json())
    assert [d for p in pages for d in p["documents"]] == everything and pages[-1]["next"] is None
    assert main(["sources", "--json", "--limit", "2", "--index", str(pipeline.index_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["documents"] == first["documents"] and printed["total"] == total
    assert printed["next"] == "qa sources --json --offset 2 --limit 2"
    assert main(["sources", "--limit", "2", "--index", str(pipeline.index_dir)]) == 0
    assert f"... {total - 2} more: qa sources --offset 2 --limit 2" in capsys.readouterr().out
    for bad in ("limit=0", "limit=101", "offset=-1", "offset=x"):
        resp = client.get(f"/api/sources?{bad}")
        assert resp.status_code == 400 and "offset" in resp.get_json()["error"], bad
    page = html_of(client.get("/sources?limit=2"))
    assert f"{total} documents indexed;" in page and 'rel="next" href="/sources?offset=2&amp;limit=2"' in page


def test_provenance_view_marks_the_requested_sentence(client, pipeline):
    ev = pipeline.ask(FUJIAN).answer.evidence[-1]
    resp = client.get(f"/documents/{ev.document.id}", query_string={"start": ev.start, "end": ev.end})
    page = html_of(resp)
    assert resp.status_code == 200
    marked = re.findall(r"<mark[^>]*>(.*?)</mark>", page, re.S)
    assert len(marked) == 1 and unescape(re.sub(r"<sup.*?</sup>", "", marked[0])) == ev.sentence
    assert '<mark id="highlight">' in page
    assert '<a class="unresolved" href="#unresolved" title="Reference not included in the source">[1]</a>' \
           '<span class="loc">p. 13</span>' in marked[0]
    assert 'id="unresolved"' in page and page.count("<p>") >= 4  # paragraphs kept
    assert f'<a href="/api/documents/{ev.document.id}">' in page


def test_provenance_view_links_markers_to_references_and_marks_cited_ones(client, pipeline):
    doc = doc_id(pipeline, "orchards.txt")
    data = pipeline.library.document(doc)
    starlight = next(s for s in data["sentences"] if data["text"][s["start"]:].startswith("The Starlight"))
    page = html_of(client.get(f"/documents/{doc}?start={starlight['start']}&end={starlight['end']}"))
    assert '<a href="#ref-2" aria-label="reference 2">[2]</a><span class="loc">p. 88</span>' in page
    assert '<li id="ref-2" class="cited">' in page and "Cited by the highlighted sentence" in page
    assert '<li id="ref-1">' in page and '<li id="ref-3">' in page
    assert re.search(r'<li id="ref-1">.*?<a href="#s-0">1</a><a href="#s-2">3</a>', page, re.S)


def test_provenance_view_shows_sections_as_headings(client, pipeline):
    page = html_of(client.get(f"/documents/{doc_id(pipeline, 'lighthouses.md')}"))
    assert "<h2>Automation</h2>" in page
    assert "<mark" not in page  # nothing requested, nothing highlighted


def test_provenance_view_with_one_offset_highlights_the_sentence_holding_it(client, pipeline):
    doc = doc_id(pipeline, "lighthouses.md")
    page = html_of(client.get(f"/documents/{doc}?start=5"))
    assert "None" not in page and 'id="highlight"' in page
    assert "Characters 90000–90001 are not" in html_of(client.get(f"/documents/{doc}?start=90000"))


def test_provenance_view_out_of_range_request_says_so(client, pipeline):
    page = html_of(client.get(f"/documents/{doc_id(pipeline, 'lighthouses.md')}?start=90000&end=90010"))
    assert "<mark" not in page and "are not in this document" in page


def test_api_document_is_the_pipeline_document(client, pipeline):
    doc = doc_id(pipeline, "orchards.txt")
    body = client.get(f"/api/documents/{doc}").get_json()
    assert body.pop("next") is None and body == pipeline.library.document(doc)
    assert {"id", "title", "path", "text", "sentences", "references", "total"} <= set(body)
    whole = pipeline.library.document(doc, limit=None)
    assert body["total"] == {"sentences": len(whole["sentences"]), "references": len(whole["references"])}


def test_api_document_pages_its_sentences_and_references_but_keeps_the_text_whole(client, pipeline):
    doc = doc_id(pipeline, "lighthouses.md")
    whole = pipeline.library.document(doc, limit=None)
    assert len(whole["sentences"]) > 2 and whole["references"]
    first = client.get(f"/api/documents/{doc}?limit=2").get_json()
    assert first["text"] == whole["text"] and first["sentences"] == whole["sentences"][:2]
    assert first["references"] == whole["references"][:2]
    pages = [first]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).get_json())
    assert [s for p in pages for s in p["sentences"]] == whole["sentences"]
    assert [r for p in pages for r in p["references"]] == whole["references"]
    assert client.get(f"/api/documents/{doc}?limit=1001").status_code == 400


def test_unknown_document_is_404_on_page_and_api(client):
    page = client.get("/documents/nope")
    assert page.status_code == 404 and "no indexed document has id" in html_of(page)
    api = client.get("/api/documents/nope")
    assert api.status_code == 404 and api.get_json() == {"error": "no indexed document has id 'nope'"}


def test_unknown_routes_are_404_json_under_api(client):
    assert client.get("/api/nothing").get_json()["error"]
    assert client.get("/nothing").status_code == 404
    assert client.post("/api/ask").status_code == 405


@pytest.mark.parametrize("locator, label", [("13", "p. 13"), ("13–15", "pp. 13–15"), ("5-6", "pp. 5-6"),
                                            ("iv", "iv"), ("sec. 2", "sec. 2")])
def test_locator_label(locator, label):
    assert locator_label(locator) == label


def test_only_http_urls_become_links_and_timestamps_read_plainly():
    assert http_url("https://example.org/a") == "https://example.org/a"
    assert http_url("javascript:alert(1)") is None and http_url(None) is None
    assert when("2026-11-29T02:02:21+0000") == "2026-11-29 02:02 UTC"
    assert when("yesterday") == "yesterday"
