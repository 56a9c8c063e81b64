"""Write PNGs of the web app to docs/: the home page, an answer with "Why this answer?" open, an
abstention, the provenance view, a reference list with the source's own labels, /sources signed
in, and the ask page on a phone.

Run by `make screenshots`: indexes sources/ and the labelled-references fixture into a temporary
folder, starts `qa serve` with an admin token, and drives Debian's chromium with Playwright
(never `playwright install`).
"""

from __future__ import annotations

import secrets
import tempfile
import urllib.parse
from pathlib import Path

from liveserver import ROOT, serving
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = ROOT / "docs"
LABELLED = "tests/data/provenance/hazel-dormouse.html"  # notes [a]-[e] before references [1]-[13]
ANSWERED = "When did the Fujian Media Group create an ICC?"
ABSTAINED = "How do I bake sourdough bread?"
SHOTS = ("home", "ask-answered", "ask-abstained", "provenance", "references", "sources-admin", "ask-phone")


def ask(question: str) -> str:
    return "/?" + urllib.parse.urlencode({"q": question})


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="footnote-shots-") as tmp:
        token = Path(tmp) / "admin-token"
        token.write_text(secrets.token_urlsafe(24))
        token.chmod(0o600)
        with serving(("sources", LABELLED), serve_args=("--admin-token-file", str(token))) as base, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            desktop = browser.new_context(base_url=base, viewport={"width": 1000, "height": 800},
                                          color_scheme="light")
            page = desktop.new_page()
            page.goto("/")
            page.screenshot(path=DOCS / "home.png", full_page=True)
            page.goto(ask(ANSWERED))
            page.locator("details.why summary").click()
            page.screenshot(path=DOCS / "ask-answered.png", full_page=True)
            page.locator("#fn-1 a.provenance").click()
            page.locator("mark#highlight").wait_for()
            page.screenshot(path=DOCS / "provenance.png", full_page=True)
            page.goto(ask(ABSTAINED))
            page.screenshot(path=DOCS / "ask-abstained.png", full_page=True)
            page.goto("/sources")
            page.get_by_role("link", name="Hazel dormouse", exact=False).first.click()
            page.locator("section.references").screenshot(path=DOCS / "references.png")
            page.goto("/sources")
            page.fill("#token", token.read_text())
            page.locator("form.login button[type=submit]").click()
            page.locator("form.upload").wait_for()
            page.screenshot(path=DOCS / "sources-admin.png", full_page=True)
            phone = browser.new_context(base_url=base, viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, has_touch=True)
            page = phone.new_page()
            page.goto(ask(ANSWERED))
            page.screenshot(path=DOCS / "ask-phone.png")
            browser.close()
    for name in SHOTS:
        print(f"wrote docs/{name}.png")


if __name__ == "__main__":
    main()
