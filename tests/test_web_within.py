"""The web app asks within some sources (`in`, `document`) and says why it answered (`explain`)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from qa.pipeline import Pipeline
from web import create_app

BRIDGE = "When did the Harwick Bridge open?"
FUJIAN = "When did the Fujian Media Group create an ICC?"


@pytest.fixture(scope="module")
def canal_client(canal: Pipeline):
    return create_app(test_config={"TESTING": True}, pipeline=canal).test_client()


def paths(canal: Pipeline) -> dict[str, str]:
    docs, _ = canal.library.documents()
    return {d["path"].rsplit("/", 1)[-1]: d["path"] for d in docs}


def test_api_asks_within_a_path_or_a_document(canal_client, canal: Pipeline):
    everywhere = canal_client.get("/api/ask", query_string={"q": BRIDGE}).get_json()
    assert everywhere["answer"]["conflicts"]
    gazette = paths(canal)["bridge-gazette.txt"]
    within = canal_client.get("/api/ask", query_string={"q": BRIDGE, "in": gazette}).get_json()
    assert within["answer"]["conflicts"] == [] and {p["document"]["path"] for p in within["passages"]} == {gazette}
    doc_id = within["answer"]["evidence"][0]["document"]["id"]
    by_id = canal_client.get("/api/ask", query_string={"q": BRIDGE, "document": doc_id}).get_json()
    assert by_id["answer"]["evidence"][0]["document"]["id"] == doc_id


def test_a_scope_without_documents_is_a_404_naming_it(canal_client):
    resp = canal_client.get("/api/ask", query_string={"q": BRIDGE, "in": "no/such/folder"})
    assert resp.status_code == 404 and "no/such/folder" in resp.get_json()["error"]
    page = canal_client.get("/", query_string={"q": BRIDGE, "in": "no/such/folder"})
    assert page.status_code == 404 and "no/such/folder" in page.get_data(as_text=True)


def test_api_explains_only_when_asked(client):
    assert "explain" not in client.get("/api/ask", query_string={"q": FUJIAN}).get_json()
    why = client.get("/api/ask", query_string={"q": FUJIAN, "explain": "1"}).get_json()["explain"]
    assert why["answered"] and why["summary"].startswith("Answered") and why["chosen"]["sentence"]
    assert all({"name", "value", "weight", "effect", "says"} <= s.keys() for s in why["signals"])


def test_the_page_keeps_the_scope_and_says_why(canal_client, canal: Pipeline):
    gazette = paths(canal)["bridge-gazette.txt"]
    html = canal_client.get("/", query_string={"q": BRIDGE, "in": gazette}).get_data(as_text=True)
    assert "Asking within" in html and f'<input type="hidden" name="in" value="{gazette}">' in html
    assert "Sources differ" not in html and "ask all sources" in html
    assert "Why this answer?" in html and "Answered: the reader" in html and "What decided" in html
    abstained = canal_client.get("/", query_string={"q": "What is the boiling point of mercury?"}).get_data(
        as_text=True)
    assert "Why no answer?" in abstained and "Not answered" in abstained


def test_sources_rows_lead_to_asking_within_them(canal_client, canal: Pipeline):
    html = canal_client.get("/sources").get_data(as_text=True)
    gazette = paths(canal)["bridge-gazette.txt"]
    assert f'href="/?in={gazette}"' in html and "ask within</a>" in html
    home = canal_client.get("/", query_string={"in": gazette}).get_data(as_text=True)
    assert "Asking within" in home and f'value="{gazette}"' in home


def test_in_the_browser_ask_within_the_answers_document_then_open_why(page: Page):
    page.goto("/")
    page.fill("#q", FUJIAN)
    page.click("form.ask button[type=submit]")
    page.click("a.within")
    expect(page.locator("form.ask .scope")).to_contain_text("Asking within")
    expect(page.locator(".answer-text")).to_contain_text("2023")
    why = page.locator("details.why")
    expect(why.locator(".why-summary")).not_to_be_visible()
    why.locator("summary").click()
    expect(why.locator(".why-summary")).to_be_visible()
    expect(why.locator(".why-signals li").first).to_be_visible()
    page.fill("#q", "Who created an ICC?")  # asked again: the scope is kept
    page.click("form.ask button[type=submit]")
    expect(page.locator("form.ask .scope")).to_contain_text("international-communication-centers.txt")


def test_example_questions_are_worked_out_before_the_first_visit(pipeline: Pipeline):
    from web import ask

    app = create_app(test_config={"TESTING": True}, pipeline=pipeline)
    ask.prepare_examples(app).join(timeout=300)

    def no_more_questions(question: str) -> bool:
        raise AssertionError(f"the visit asked {question!r}")

    app.extensions["footnote_examples"]._answers = no_more_questions
    html = app.test_client().get("/").get_data(as_text=True)
    assert "Try asking" in html and 'class="examples"' in html
