"""Write PNGs of the web app to docs/: an answer, an abstention, the provenance view, a phone.

Run by `make screenshots`: indexes sources/ into a temporary folder, starts `qa serve`, and
drives Debian's chromium with Playwright (never `playwright install`).
"""

from __future__ import annotations

import urllib.parse

from liveserver import ROOT, serving
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = ROOT / "docs"
ANSWERED = "When did the Fujian Media Group create an ICC?"
ABSTAINED = "How do I bake sourdough bread?"


def ask(question: str) -> str:
    return "/?" + urllib.parse.urlencode({"q": question})


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with serving() as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        desktop = browser.new_context(base_url=base, viewport={"width": 1000, "height": 800},
                                      color_scheme="light")
        page = desktop.new_page()
        page.goto(ask(ANSWERED))
        page.screenshot(path=DOCS / "ask-answered.png", full_page=True)
        page.locator("#fn-1 a.provenance").click()
        page.locator("mark#highlight").wait_for()
        page.screenshot(path=DOCS / "provenance.png", full_page=True)
        page.goto(ask(ABSTAINED))
        page.screenshot(path=DOCS / "ask-abstained.png", full_page=True)
        phone = browser.new_context(base_url=base, viewport={"width": 390, "height": 844},
                                    device_scale_factor=2, is_mobile=True, has_touch=True)
        page = phone.new_page()
        page.goto(ask(ANSWERED))
        page.screenshot(path=DOCS / "ask-phone.png")
        browser.close()
    for name in ("ask-answered", "ask-abstained", "provenance", "ask-phone"):
        print(f"wrote docs/{name}.png")


if __name__ == "__main__":
    main()
