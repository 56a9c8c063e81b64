"""The provenance view of a Parsoid page whose notes come before its references: each entry with the
label its readers see, markers landing on the entry with their label, back-links landing on a
highlighted sentence with room above it.

The page is served from an index of its own (tests/data/provenance), so the session corpus, and
what other tests expect of it, stay as they are.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from qa import Pipeline
from qa.models.encoder import Embedder
from tests.conftest import DATA, make_pipeline, serve
from web import create_app

DORMOUSE = DATA / "provenance" / "hazel-dormouse.html"


@pytest.fixture(scope="module")
def dormouse(tmp_path_factory, embedder: Embedder) -> Pipeline:
    """An index of the one page."""
    src = tmp_path_factory.mktemp("provenance-src")
    shutil.copy(DORMOUSE, src / DORMOUSE.name)
    pipe = make_pipeline(tmp_path_factory.mktemp("provenance-index"), embedder)
    assert pipe.library.index([str(src)]).published
    return pipe


@pytest.fixture(scope="module")
def app(dormouse: Pipeline) -> Flask:
    """The web app over that index (the conftest's `client` and `page` use it in this module)."""
    return create_app(test_config={"TESTING": True}, pipeline=dormouse)


@pytest.fixture(scope="module")
def live_server(app: Flask) -> Iterator[str]:
    yield from serve(app)


@pytest.fixture(scope="module")
def doc(dormouse: Pipeline) -> str:
    """The page's document id."""
    return dormouse.library.documents()[0][0]["id"]


def entries(html: str) -> list[tuple[str, str]]:
    """(anchor, the entry's text up to its first tag after the label) for every list entry, in order."""
    return re.findall(r'<li id="(ref-\d+)"[^>]*>\s*(?:<p class="badge">[^<]*</p>\s*)?<p class="ref-text">(.*?)</p>',
                      html, re.S)


def test_entries_carry_the_readers_labels_with_notes_apart(client, doc: str):
    html = client.get(f"/documents/{doc}").get_data(as_text=True)
    assert "cite_note" not in html  # no internal key is ever shown
    assert html.index("<h3>Notes</h3>") < html.index("<h3>References</h3>")  # in the page's own order
    labels = [re.match(r'<span class="ref-label">\[(.*?)\]</span> ', text).group(1) for _, text in entries(html)]
    assert labels == list("abcde") + [str(n) for n in range(1, 14)]
    assert html.count('<ol class="labelled notes">') == 1 and html.count('<ol class="labelled">') == 1
    # the source's text once, then only what to follow: its DOI, not its parsed fields again
    goodwin = html[html.index("[13]</span>"):]
    goodwin = goodwin[:goodwin.index("</li>")]
    assert goodwin.count("Voluntary recording scheme") == 1 and 'class="doi"' in goodwin
    assert "ref-fields" not in html and '<span class="authors">' not in html


def test_api_document_gives_labels_and_keeps_fields(client, doc: str):
    body = client.get(f"/api/documents/{doc}").get_json()
    refs = {r["label"]: r for r in body["references"]}
    assert set(refs) == set("abcde") | {str(n) for n in range(1, 14)}
    clade = refs["a"]
    assert clade["note"] is True and set(clade) == {"key", "label", "note", "text"}  # an explanatory note: no fields
    assert refs["c"]["pages"] == "12" and refs["13"]["note"] is False and refs["13"]["doi"] == "10.1111/mam.12091"
    assert refs["13"]["key"] == "cite_note-goodwin2017-18"  # the key stays what markers point at


@pytest.mark.browser
@pytest.mark.server
def test_markers_land_on_their_labels_and_back_links_on_a_highlighted_sentence(page: Page, doc: str):
    page.set_viewport_size({"width": 900, "height": 500})
    page.goto(f"/documents/{doc}")
    markers = page.locator("sup.fn a")
    assert markers.count() == 17
    for i in range(markers.count()):  # every marker leads to the entry that carries the same label
        link = markers.nth(i)
        entry = page.locator(link.get_attribute("href"))
        expect(entry.locator(".ref-label")).to_have_text(link.inner_text())
    assert page.evaluate("getComputedStyle(document.querySelector('ol.labelled')).listStyleType") == "none"

    page.locator('sup.fn a[aria-label="reference 13"]').click()
    expect(page).to_have_url(re.compile(r"#ref-\d+$"))
    target = page.locator("li:target")
    expect(target.locator(".ref-label")).to_have_text("[13]")
    expect(target).to_contain_text("Voluntary recording scheme")
    page.locator('sup.fn a[aria-label="reference e"]').click()
    expect(page.locator("li:target .ref-label")).to_have_text("[e]")
    expect(page.locator("li:target .ref-links")).to_have_count(0)  # an explanatory note: nothing parsed

    page.locator('sup.fn a[aria-label="reference 13"]').click()
    page.locator("li:target .backlinks a").click()
    sentence = page.locator(".s:target")
    expect(sentence).to_contain_text("The species has declined by about half")
    plain = page.evaluate("getComputedStyle(document.querySelector('.s:not(:target)')).backgroundColor")
    assert sentence.evaluate("el => getComputedStyle(el).backgroundColor") != plain  # highlighted
    assert sentence.evaluate("el => el.getBoundingClientRect().top") > 100  # not at the top edge
