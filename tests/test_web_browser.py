"""A real headless Chromium (Debian's, driven by Playwright) asks, reads footnotes and follows provenance."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.server]

FUJIAN = "When did the Fujian Media Group create an ICC?"


def test_ask_read_footnote_and_land_on_the_highlighted_sentence(page: Page):
    page.goto("/")
    box = page.get_by_label("Ask a question")
    expect(box).to_be_focused()
    box.fill(FUJIAN)
    box.press("Enter")
    page.wait_for_url(re.compile(r"/\?q=When\+did"))
    expect(page.locator("mark.answer")).to_have_text("July 2023")
    expect(page.locator(".evidence")).to_contain_text("the Fujian Media Group created an ICC")
    footnote = page.locator("#fn-1")
    expect(footnote).to_contain_text("Reference not included in the source")
    expect(footnote).to_contain_text("p. 13")

    page.locator("sup.fnref a").first.click()
    expect(page).to_have_url(re.compile(r"#fn-1$"))
    footnote.locator("a.provenance").click()

    page.wait_for_url(re.compile(r"/documents/\w+\?start=\d+&end=\d+#highlight$"))
    mark = page.locator("mark#highlight")
    expect(mark).to_contain_text("In July 2023, the Fujian Media Group created an ICC")
    expect(mark).to_be_in_viewport()
    expect(mark.locator("sup.fn")).to_contain_text("[1]p. 13")


def tab_to(page: Page, selector: str, most: int = 15) -> None:
    """Press Tab until the focused element matches `selector` (what a keyboard-only reader does)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_keyboard_alone_reaches_footnote_and_provenance(page: Page):
    page.goto(f"/?q={FUJIAN}")
    tab_to(page, "sup.fnref a")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#fn-1$"))
    tab_to(page, "#fn-1 a.provenance")
    page.keyboard.press("Enter")
    expect(page.locator("mark#highlight")).to_be_in_viewport()


def test_copy_answer_puts_markdown_with_footnotes_on_the_clipboard(page: Page, live_server: str):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.goto(f"/?q={FUJIAN}")
    copy = page.get_by_role("button", name="Copy answer")
    expect(copy).to_be_visible()  # shown by our script: the CSP let /static/footnote.js run
    copy.click()
    expect(page.locator(".copy-status")).to_have_text("Copied")
    text = page.evaluate("navigator.clipboard.readText()")
    assert "**A:** July 2023" in text and "[^1]: Reference not included in the source (marker [1], p. 13)" in text


def test_abstention_in_the_browser(page: Page):
    page.goto("/?q=How do I bake sourdough bread?")
    expect(page.get_by_role("heading", name="The sources do not answer this")).to_be_visible()
    expect(page.locator("ol.passages li").first).to_be_visible()


def test_asking_works_without_javascript(browser: Browser, live_server: str):
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Ask a question").fill(FUJIAN)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("mark.answer")).to_have_text("July 2023")
    expect(page.get_by_role("button", name="Copy answer")).to_be_hidden()  # useless without a script
    page.locator("#fn-1 a.provenance").click()
    expect(page.locator("mark#highlight")).to_be_in_viewport()
    context.close()


def test_phone_width_has_no_sideways_scroll(browser: Browser, live_server: str):
    context = browser.new_context(base_url=live_server, viewport={"width": 360, "height": 740},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    for url in (f"/?q={FUJIAN}", "/sources"):
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, url
    context.close()
