"""The answer page and the home page as a new user meets them: a whole-sentence answer shown once,
abstentions as readable snippets, the non-English warning, the home page's counts and example
questions, and a phone: tap targets, no sideways scroll, a question box that grows.

`tests/data/language/zahnradbahn.txt` is a German document (flagged non-English when indexed)
that also carries long URLs and a long compound word, the things that widened document pages. It
is indexed on its own here, so the session corpus (and the counts other tests check) stay as they are.
"""

from __future__ import annotations

import re
import threading
from html import unescape
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from waitress import create_server

from qa import Pipeline
from qa.records import DocumentRef, PassageHit
from tests.conftest import DATA, make_pipeline, watched
from web import create_app, home, snippets

FUJIAN = "When did the Fujian Media Group create an ICC?"
FUJIAN_SENTENCE = ("In July 2023, the Fujian Media Group created an ICC at the direction of the Fujian "
                   "Provincial Committee of the CCP.")
OFF_TOPIC = "How do I bake sourdough bread?"
GERMAN = "Wann wurde die Zahnradbahn am Hohen Falkenstein eröffnet?"
TWO_MARKERS = "When did frost destroy nearly half of the Valdoria harvest?"
PHONE = {"width": 390, "height": 800}


def html_of(resp) -> str:
    return resp.get_data(as_text=True)


def text_of(html: str) -> str:
    """What a reader sees of some HTML: tags (and their attributes) dropped, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def doc_id(pipeline: Pipeline, path_end: str) -> str:
    return next(d["id"] for d in pipeline.library.documents(limit=None)[0] if d["path"].endswith(path_end))


@pytest.fixture(scope="module")
def german(tmp_path_factory, embedder) -> Pipeline:
    """A real index of the German fixture alone."""
    pipe = make_pipeline(tmp_path_factory.mktemp("german-index"), embedder)
    report = pipe.library.index([str(DATA / "language")])
    assert report.published and not report.failed, report.failed
    return pipe


@pytest.fixture(scope="module")
def german_app(german):
    return create_app(test_config={"TESTING": True}, pipeline=german)


@pytest.fixture(scope="module")
def german_server(german_app):
    """The German index's app under a real waitress server (what the phone's browser loads)."""
    server = create_server(german_app, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


# ----- the answer card ------------------------------------------------------------------------


def test_whole_sentence_answer_is_shown_once_and_a_short_answer_keeps_its_heading(client):
    page = html_of(client.get("/", query_string={"q": FUJIAN_SENTENCE}))
    card = page[page.index('<article class="card answered"'):page.index('<details class="others">')]
    assert text_of(card).count(FUJIAN_SENTENCE.rstrip(".")) == 1
    heading = card[:card.index("</h1>")]
    assert "The whole sentence, as the source gives it" in heading and "Fujian" not in heading

    page = html_of(client.get("/", query_string={"q": FUJIAN}))
    assert re.search(r'<h1 id="answer-heading">.*<span class="answer-text">July 2023</span></h1>', page, re.S)
    assert "The whole sentence" not in page


def test_answer_from_a_non_english_document_carries_a_warning(german_app, client):
    page = html_of(german_app.test_client().get("/", query_string={"q": GERMAN}))
    assert 'class="card answered"' in page and "Zahnradbahn" in page
    warning = re.search(r'<p class="not-english" role="note">(.*?)</p>', page, re.S)
    assert warning and "Die Zahnradbahn am Hohen Falkenstein" in warning.group(1)
    assert "English only" in warning.group(1)
    assert "not-english" not in html_of(client.get("/", query_string={"q": FUJIAN}))


def test_api_answer_names_the_language_flag_of_its_document(german_app, client):
    body = german_app.test_client().get("/api/ask", query_string={"q": GERMAN}).get_json()
    assert body["answer"]["evidence"][0]["document"]["language"] == "non-English?"
    fujian = client.get("/api/ask", query_string={"q": FUJIAN}).get_json()
    assert "language" not in fujian["answer"]["evidence"][0]["document"]


# ----- the abstention ---------------------------------------------------------------------------


def test_abstention_shows_snippets_under_their_document_titles_without_scores(client, pipeline):
    page = html_of(client.get("/", query_string={"q": OFF_TOPIC}))
    assert "The sources do not answer this" in page
    shown, why = page.split('<details class="why"')  # scores only in "Why no answer?", opened when asked
    assert not re.search(r"relevance -?\d|score \d", shown) and re.search(r"relevance [-+]\d", why)
    items = re.findall(r'<li>\s*<p class="meta"><a href="/documents/(\w+)\?start=(\d+)&amp;end=(\d+)#highlight">'
                       r'(.*?)</a>.*?<p class="passage-text">(.*?)</p>', page, re.S)
    assert items
    for doc, start, end, title, shown in items:
        document = pipeline.library.document(doc, limit=1)
        assert unescape(title) == document["title"]
        source = document["text"][int(start):int(end)]
        shown = unescape(shown).strip("…")
        assert " ".join(shown.split()) == " ".join(source.split())  # the source's words, whole
        assert len(shown) <= snippets.MAX_CHARS
    with_scores = html_of(client.get("/", query_string={"q": OFF_TOPIC, "scores": "1"}))
    assert re.search(r"retrieval score \d", with_scores) and "Show retrieval scores" not in with_scores


DOC = DocumentRef("d1", "Countries", "countries.txt")
TEXT = ("England\nEngland is a country that is part of the United Kingdom. It shares land borders with Wales "
        "and Scotland. " + "The weather there is famously changeable, " * 10
        + "and its capital is London, on the River Thames, " + "where it rains often, " * 20 + "as everyone knows.")


def sentences_of(text: str) -> list[tuple[int, str]]:
    """The test text's sentences: the heading line, then one sentence a full stop."""
    return [(m.start(), m.group()) for m in re.finditer(r"[^\s.][^\n.]*\.?", text)]


def read(doc: str, first: int, last: int) -> list[tuple[int, str]]:
    return sentences_of(TEXT)[first:last + 1]


def passage(first: int, last: int) -> PassageHit:
    sents = sentences_of(TEXT)
    start, end = sents[first][0], sents[last][0] + len(sents[last][1])
    return PassageHit(first, DOC, TEXT[start:end], 0.5, start, end, -6.0, (first, last))


def test_a_one_word_passage_is_shown_with_the_sentence_after_it():
    [snip] = snippets.build("What is England?", [passage(0, 0)], read)
    assert snip.text == "England England is a country that is part of the United Kingdom."  # the line break as a space
    assert (snip.start, snip.end) == (0, len("England\nEngland is a country that is part of the United Kingdom."))
    assert not snip.cut_before and not snip.cut_after


def test_a_long_passage_is_cut_to_whole_words_around_what_the_question_shares():
    count = len(sentences_of(TEXT))
    [snip, *rest] = snippets.build("Which river flows through the capital?",
                                   [passage(1, count - 1), passage(1, count - 1)], read)
    assert rest == []  # the same snippet twice is shown once
    assert "its capital is London, on the River Thames" in snip.text and len(snip.text) <= snippets.MAX_CHARS
    assert snip.text == TEXT[snip.start:snip.end] and snip.cut_before and snip.cut_after
    assert TEXT[snip.start - 1] == " " and TEXT[snip.end] == " "  # whole words at both ends


# ----- the home page ------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence, question", [
    ("The Point Morrow lighthouse was first lit on 12 March 1871 by keeper Ada Lindqvist.",
     "When was the Point Morrow lighthouse first lit?"),
    ("In July 2023, the Fujian Media Group created an ICC at the direction of the CCP.",
     "When did the Fujian Media Group create an ICC?"),
    ("Orchard owners formed a cooperative in 1984 to share cold storage.",
     "When did orchard owners form a cooperative?"),
    ("The dog (Canis familiaris) is a domesticated descendant of the gray wolf.", "What is the dog?"),
    ("Highlighted are the larger island and the smaller one.", None),
    ("The ships planned a route in 1990.", None),  # "planned": no base form without a dictionary
    ("ICCs have been described as part of China's soft power initiatives.", None),
    ("Its fur is a golden brown colour.", None),  # leans on the sentence before: no question of its own
])
def test_example_questions_are_made_from_sentences_by_pattern(sentence, question):
    assert next(home.candidates(sentence), None) == question


def test_home_page_shows_what_is_indexed_and_example_questions_that_answer(client, pipeline):
    page = html_of(client.get("/"))
    summary = pipeline.library.summary()
    assert f"{summary['documents']} documents and" in page and f"{summary['passages']} passages indexed" in page
    assert "last indexed" in page and "<code>qa index" in page
    assert "Sources page" not in page  # admin actions are off in this app
    examples = re.findall(r'<li><a href="(/\?q=[^"]+)">([^<]+\?)</a></li>', page)
    assert 2 <= len(examples) <= home.EXAMPLES
    for link, question in examples:
        answered = html_of(client.get(unescape(link)))
        assert 'class="card answered"' in answered, question
    assert html_of(client.get("/")) == page  # cached for the generation: the same questions again


def test_home_page_without_an_index_says_so_and_names_the_sources_page_for_admins(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder, admin_token="a-token-of-sixteen-chars")
    page = html_of(create_app(test_config={"TESTING": True}, pipeline=pipe).test_client().get("/"))
    assert "No index to answer from yet" in page and "qa index" in page[page.index('class="message"'):]
    assert "<code>qa index" in page
    assert 'href="/sources">Sources page</a>' in page and 'class="examples"' not in page


# ----- in a phone's browser -----------------------------------------------------------------------


@pytest.fixture()
def phone(browser: Browser, live_server: str) -> Page:
    """A 390 px wide touch screen that fails the test on any console error."""
    with watched(browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True) as page:
        yield page


def no_sideways_scroll(page: Page) -> bool:
    return page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]


@pytest.mark.browser
@pytest.mark.server
def test_footnote_numbers_are_big_enough_to_tap_and_the_answer_fits_a_phone(phone: Page):
    phone.goto(f"/?q={TWO_MARKERS}")
    expect(phone.locator("mark.answer")).to_have_text("April 1977")
    boxes = [a.bounding_box() for a in phone.locator("sup.fnref a").all()]
    assert len(boxes) >= 2
    for box in boxes:
        assert box["width"] >= 24 and box["height"] >= 24, box
    for a, b in pairwise(boxes):  # side by side, not on top of each other
        assert b["x"] >= a["x"] + a["width"] - 0.5 or b["y"] >= a["y"] + a["height"] - 0.5
    assert no_sideways_scroll(phone)


@pytest.mark.browser
@pytest.mark.server
def test_a_document_with_long_urls_and_words_fits_a_phone(phone: Page, german, german_server):
    phone.goto(f"{german_server}/documents/{doc_id(german, 'zahnradbahn.txt')}")
    expect(phone.locator("article.document")).to_contain_text("sommerfahrplan-1925-vollstaendig.pdf")
    assert no_sideways_scroll(phone)


@pytest.mark.browser
@pytest.mark.server
def test_whole_sentence_answer_reads_once_in_the_browser(phone: Page):
    phone.goto("/")
    phone.get_by_label("Ask a question").fill(FUJIAN_SENTENCE)
    phone.get_by_role("button", name="Ask", exact=True).click()
    card = phone.locator("article.answered")
    expect(card.locator("mark.answer")).to_have_text(FUJIAN_SENTENCE)
    assert card.inner_text().count("the Fujian Media Group created an ICC") == 1  # retrieved passages stay folded
    assert no_sideways_scroll(phone)


@pytest.mark.browser
@pytest.mark.server
def test_the_question_box_grows_with_what_is_typed(phone: Page):
    phone.goto("/")
    box = phone.get_by_label("Ask a question")
    before = box.bounding_box()["height"]
    assert before >= 3 * 16  # a few rows even when empty
    box.press_sequentially(FUJIAN_SENTENCE * 3)
    assert box.bounding_box()["height"] > before + 20
    assert box.evaluate("el => el.scrollHeight <= el.clientHeight + 1")  # nothing cut off
    assert no_sideways_scroll(phone)


@pytest.mark.browser
@pytest.mark.server
def test_home_page_example_asks_and_abstention_shows_titled_snippets(phone: Page):
    phone.goto("/")
    expect(phone.locator(".home")).to_contain_text("passages indexed")
    phone.locator("ul.examples a").first.click()
    expect(phone.locator("article.answered mark.answer")).to_be_visible()
    phone.goto(f"/?q={OFF_TOPIC}")
    items = phone.locator("ol.passages li")
    expect(items.first.locator(".meta a")).to_have_attribute("href", re.compile(r"^/documents/\w+\?start="))
    assert "relevance" not in phone.locator("article.abstained").inner_text()
    assert no_sideways_scroll(phone)
