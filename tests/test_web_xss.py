"""A hostile source (`<script>` in text, title, front matter and references) shows as text everywhere."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import DATA, make_pipeline
from web import create_app

QUESTION = "What does the Zanzibar ledger margin read?"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, embedder):
    """A client over its own index holding only tests/data/xss, and that pipeline."""
    src = tmp_path_factory.mktemp("xss-src")
    shutil.copytree(DATA / "xss", src, dirs_exist_ok=True)
    pipe = make_pipeline(tmp_path_factory.mktemp("xss-index"), embedder)
    assert pipe.library.index([str(src)]).published
    return create_app(test_config={"TESTING": True}, pipeline=pipe).test_client(), pipe


def assert_inert(page: str) -> None:
    """Only our own script tag, no markup from the source, no javascript: link."""
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/footnote.js" defer>']
    assert "<img" not in page and "<b>" not in page and 'href="javascript:' not in page


def test_answer_page_escapes_the_source(hostile):
    client, _ = hostile
    page = client.get("/", query_string={"q": QUESTION}).get_data(as_text=True)
    assert_inert(page)
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page


def test_question_is_escaped(hostile):
    client, _ = hostile
    page = client.get("/", query_string={"q": '<script>alert("q")</script> ledger?'}).get_data(as_text=True)
    assert_inert(page)
    assert "&lt;script&gt;alert(&#34;q&#34;)&lt;/script&gt; ledger?" in page


def test_provenance_and_sources_escape_title_meta_and_references(hostile):
    client, pipe = hostile
    [doc] = pipe.library.documents(limit=None)[0]
    page = client.get(f"/documents/{doc['id']}?start=0&end=10").get_data(as_text=True)
    assert_inert(page)
    assert "<h1>&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; Zanzibar ledger</h1>" in page
    assert "&lt;b&gt;Bold&lt;/b&gt; claims" in page and "&lt;img src=x onerror=alert(3)&gt;" in page
    sources = client.get("/sources").get_data(as_text=True)
    assert_inert(sources)
    assert "&lt;script&gt;alert(&#34;title&#34;)" in sources


def test_json_carries_the_text_verbatim(hostile):
    client, _ = hostile
    resp = client.get("/api/ask", query_string={"q": QUESTION})
    assert resp.mimetype == "application/json"
    assert '<script>alert("xss")</script>' in resp.get_json()["answer"]["evidence"][-1]["sentence"]
