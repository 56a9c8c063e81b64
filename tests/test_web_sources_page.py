"""The sources page signed in: removal asks first, readable buttons, a table that fits, the sign-in
form after a wrong token, uploads into the indexed folder, a reindex box that tracks the index, and
the non-English flag. Browser tests drive Debian's chromium against a server of their own index."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from waitress.server import create_server

from qa import Pipeline
from qa.library.jobs import ReindexJob
from tests.conftest import ROOT, make_pipeline, watched
from tests.test_web_admin import TOKEN, csrf_of, upload, wait_done
from web import create_app

HERONS = ("Grey herons nest in colonies called heronries, often high in old trees near water.[1]\n"
          "1. ^ Bird Book (2001).\n")
GERMAN = ("Der Graureiher brütet meist in Kolonien, die oft hoch in alten Bäumen am Wasser liegen. Die Vögel "
          "kehren jedes Jahr zu denselben Horsten zurück und bauen sie weiter aus. Im Winter ziehen viele "
          "Tiere nach Süden, doch ein Teil bleibt auch bei Frost an offenen Gewässern und sucht dort Nahrung. "
          "Junge Reiher verlassen das Nest nach etwa fünfzig Tagen und lernen dann selbst zu fischen.\n")
LONG_NAME = "a-rather-long-file-name-about-the-nesting-habits-of-storks-and-cranes-in-northern-europe.md"
STORKS = ("---\ntitle: The nesting habits of white storks, black storks and common cranes across northern Europe\n"
          "---\n\nWhite storks build nests on rooftops and return to them every spring.[^1]\n\n"
          "[^1]: Atlas of European Breeding Birds (2020), p. 112.\n")


@dataclass
class Site:
    """A live server over an index of its own, built from `folder` (its one recorded root)."""

    url: str
    folder: Path
    pipe: Pipeline


@pytest.fixture()
def site(tmp_path: Path, embedder) -> Iterator[Site]:
    """No `sources` setting: uploads and the browser's reindex use the folder the index was built from."""
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "herons.txt").write_text(HERONS)
    (folder / "graureiher.txt").write_text(GERMAN)
    (folder / LONG_NAME).write_text(STORKS)
    pipe = make_pipeline(tmp_path / "idx", embedder, admin_token=TOKEN)
    assert pipe.library.index([str(folder)]).published
    server = create_server(create_app(test_config={"TESTING": True}, pipeline=pipe), host="127.0.0.1", port=0,
                           threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield Site(f"http://127.0.0.1:{server.effective_port}", folder, pipe)
    server.close()


@contextmanager
def signed_in(browser: Browser, site: Site, **context: object) -> Iterator[Page]:
    """A signed-in page on the site that fails the test on any console error (CSP included)."""
    with watched(browser, site.url, **context) as page:
        page.goto("/sources")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        yield page


def indexed_paths(site: Site) -> list[str]:
    return [d["path"] for d in site.pipe.library.documents(limit=None)[0]]


def signed_in_client(site: Site):
    client = create_app(test_config={"TESTING": True}, pipeline=site.pipe).test_client()
    assert client.post("/sources/login", data={"token": TOKEN}).status_code == 302
    return client


# ----- removal asks first ---------------------------------------------------------------------

@pytest.mark.browser
def test_remove_asks_in_a_dialog_naming_the_file_then_deletes_it(browser: Browser, site: Site):
    target = site.folder / "herons.txt"
    with signed_in(browser, site) as page:
        page.get_by_role("link", name="Remove Herons").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Delete herons.txt from {site.folder}/? It is removed from disk "
                                       "and from the index.")
        expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()
        assert target.is_file() and any(p.endswith("herons.txt") for p in indexed_paths(site))
        dialog.get_by_role("link", name="Cancel").click()
        expect(dialog).to_have_count(0)
        assert target.is_file() and page.url.endswith("/sources")

        page.get_by_role("link", name="Remove Herons").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete herons.txt").click()
        expect(page.locator(".flash.ok")).to_contain_text("Removed")
        expect(page.locator("table.sources")).not_to_contain_text("herons.txt")
    assert not target.exists()
    assert not any(p.endswith("herons.txt") for p in indexed_paths(site))


@pytest.mark.browser
def test_remove_without_javascript_is_a_confirmation_page(browser: Browser, site: Site):
    target = site.folder / "herons.txt"
    with signed_in(browser, site, java_script_enabled=False) as page:
        page.get_by_role("link", name="Remove Herons").click()
        expect(page).to_have_url(re.compile(r"/sources/\w+/delete$"))
        expect(page.locator("#confirm-question")).to_have_text(
            f"Delete herons.txt from {site.folder}/? It is removed from disk and from the index.")
        assert target.is_file()
        page.get_by_role("button", name="Delete herons.txt").click()
        expect(page).to_have_url(re.compile(r"/sources$"))
        expect(page.locator(".flash.ok")).to_contain_text("Removed")
    assert not target.exists()
    assert not any(p.endswith("herons.txt") for p in indexed_paths(site))


def test_a_file_indexed_from_elsewhere_is_named_as_staying_on_disk(site: Site, tmp_path: Path):
    outside = tmp_path / "loose-note.txt"
    outside.write_text("Night herons hunt at dusk along slow rivers.\n")
    site.pipe.library.index([str(outside)])
    client = signed_in_client(site)
    doc = next(d for d in site.pipe.library.documents(limit=None)[0] if d["path"].endswith("loose-note.txt"))
    page = client.get(f"/sources/{doc['id']}/delete").get_data(as_text=True)
    assert "Its file stays on disk" in page and "removed from disk" not in page
    csrf = csrf_of(page)
    assert client.post(f"/sources/{doc['id']}/delete", data={"csrf": csrf}).status_code == 302
    assert outside.is_file() and doc["path"] not in indexed_paths(site)
    assert create_app(pipeline=site.pipe).test_client().get(f"/sources/{doc['id']}/delete").status_code == 401


# ----- readable buttons, a table that fits ----------------------------------------------------

def luminance(rgb: tuple[float, ...]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0..255 channels)."""
    lin = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_the_wcag_examples():
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0
    assert round(contrast((0x77, 0x77, 0x77), (255, 255, 255)), 2) == 4.48  # the classic just-failing grey


# What each button's text and background are as painted: the background is the first opaque one
# up the tree, and an element made see-through (opacity) shows in `opacity`.
PAINTED = """(els) => els.map((el) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  let bg = null, opacity = 1;
  for (let n = el; n; n = n.parentElement) {
    const style = getComputedStyle(n);
    opacity *= Number(style.opacity);
    const c = rgb(style.backgroundColor);
    if (!bg && c.length && (c.length < 4 || c[3] === 1)) bg = c;
  }
  return {label: el.textContent.trim(), color: rgb(getComputedStyle(el).color), bg: bg || [255, 255, 255], opacity};
})"""


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_admin_buttons_have_aa_contrast_in_both_schemes(browser: Browser, site: Site, scheme: str):
    with signed_in(browser, site, color_scheme=scheme) as page:
        buttons = page.locator(".admin button, table.sources a.button").evaluate_all(PAINTED)
        page.get_by_role("link", name="Remove Herons").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        buttons += page.get_by_role("dialog").locator("button, a.button").evaluate_all(PAINTED)
    labels = {b["label"] for b in buttons}
    assert {"Upload", "Reindex sources", "Sign out", "Remove", "Delete herons.txt", "Cancel"} <= labels
    for b in buttons:
        assert b["opacity"] == 1, b
        assert contrast(b["color"], b["bg"]) >= 4.5, b


CELLS = """(rows) => rows.map((row) => [...row.children].map((cell) => {
  const box = cell.getBoundingClientRect();
  return {text: cell.innerText.trim(), left: box.left, right: box.right, width: box.width,
          label: getComputedStyle(cell, "::before").content};
}))"""


@pytest.mark.browser
@pytest.mark.parametrize("width, height, stacked", [(1280, 800, False), (390, 844, True)])
def test_sources_table_fits_without_sideways_scroll(browser: Browser, site: Site, width, height, stacked):
    size = {"viewport": {"width": width, "height": height}}
    if stacked:
        size |= {"is_mobile": True, "has_touch": True}
    with signed_in(browser, site, **size) as page:
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        assert page.evaluate("(() => { const w = document.querySelector('.table-wrap');"
                             " return w.scrollWidth - w.clientWidth; })()") <= 0
        rows = page.locator("table.sources tbody tr").evaluate_all(CELLS)
    assert len(rows) == 3
    names = ["File", "Format", "Passages", "References", "Citations resolved", "Indexed"]
    for cells in rows:
        assert len(cells) == 8  # title, six columns, the Remove link
        for cell in cells:
            assert cell["text"] and cell["width"] > 0 and cell["left"] >= 0 and cell["right"] <= width, cell
        if stacked:  # one block per document: each value says which column it is
            assert [c["label"] for c in cells[1:7]] == [f'"{n}: "' for n in names]


# ----- sign-in, uploads, the reindex box, the language flag ------------------------------------

def test_a_wrong_token_shows_the_sign_in_form_again_with_the_message(site: Site):
    client = create_app(test_config={"TESTING": True}, pipeline=site.pipe).test_client()
    for _ in range(5):
        r = client.post("/sources/login", data={"token": "not-the-token-at-all"})
        page = r.get_data(as_text=True)
        assert r.status_code == 403 and 'name="token"' in page and 'aria-invalid="true"' in page
        assert "The admin token is wrong" in page and "3 documents indexed" in page
    r = client.post("/sources/login", data={"token": TOKEN})  # over the limit: refused, with the form
    page = r.get_data(as_text=True)
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60
    assert 'name="token"' in page and "Too many wrong admin tokens" in page and 'role="alert"' in page


def test_uploads_land_in_the_first_recorded_root_and_the_page_names_it(site: Site, tmp_path: Path, monkeypatch):
    work = tmp_path / "work"  # the server's working folder, with a sources/ of its own
    (work / "sources").mkdir(parents=True)
    monkeypatch.chdir(work)
    client = signed_in_client(site)
    page = client.get("/sources").get_data(as_text=True)
    assert f'<code class="path upload-folder">{site.folder}/</code>' in page
    r = client.post("/sources/upload", data={"csrf": csrf_of(page), "files": (
        io.BytesIO(b"Kingfishers dive for small fish.\n"), "kingfishers.txt")},
        content_type="multipart/form-data")
    assert r.status_code == 302
    assert (site.folder / "kingfishers.txt").is_file() and not (work / "sources" / "kingfishers.txt").exists()
    assert upload(client, "egrets.txt", b"Egrets wade in shallow water.\n").status_code == 201
    assert (site.folder / "egrets.txt").is_file()
    assert not (ROOT / "sources" / "egrets.txt").exists()


def test_the_status_box_counts_the_serving_index_after_later_removals(site: Site):
    client = signed_in_client(site)
    (site.folder / "egrets.txt").write_text("Egrets wade in shallow water.\n")
    csrf = csrf_of(client.get("/sources").get_data(as_text=True))
    assert client.post("/sources/reindex", data={"csrf": csrf}).status_code == 302
    job = wait_done(lambda: client.get("/sources/reindex/status").get_json())
    assert job["state"] == "done" and "index has 4 documents" in job["summary"] and job["index"]["documents"] == 4
    doc = next(d for d in site.pipe.library.documents(limit=None)[0] if d["path"].endswith("egrets.txt"))
    assert client.post(f"/sources/{doc['id']}/delete", data={"csrf": csrf}).status_code == 302
    page = client.get("/sources").get_data(as_text=True)
    assert client.get("/sources/reindex/status").get_json()["index"]["documents"] == 3
    assert re.search(r'The index holds <strong class="documents">3</strong>\s+documents', page)
    assert "3 documents indexed" in page and "index has 4" not in page
    assert "1 added, 0 updated, 0 removed" in page


@pytest.mark.browser
def test_the_status_box_and_count_update_in_place_when_a_reindex_ends(browser: Browser, site: Site):
    gate = threading.Event()
    library = site.pipe.library

    def held(progress):  # the real reindex, started only once the page is watching it
        gate.wait(60)
        return library.index([str(library.sources_dir)], progress=progress)

    library.reindex_job = ReindexJob(held)
    (site.folder / "egrets.txt").write_text("Egrets wade in shallow water and stab at fish.\n")
    with signed_in(browser, site) as page:
        page.get_by_role("button", name="Reindex sources").click()
        expect(page.locator("#reindex .state")).to_have_text("Running")
        expect(page.locator("#reindex .documents")).to_have_text("3")
        page.evaluate("window.stillThisPage = true")
        gate.set()
        expect(page.locator("#reindex .state")).to_have_text("Done", timeout=60_000)
        expect(page.locator("#reindex .documents")).to_have_text("4")
        expect(page.locator("#listing .doc-count")).to_have_text("4 documents indexed.")
        expect(page.locator("table.sources")).to_contain_text("egrets.txt")
        assert page.evaluate("window.stillThisPage") is True  # updated by the script, not a reload


def test_non_english_documents_are_flagged_in_words(site: Site):
    page = create_app(test_config={"TESTING": True}, pipeline=site.pipe).test_client().get("/sources")
    rows = re.findall(r"<tr>.*?</tr>", page.get_data(as_text=True), re.S)
    flagged = [r for r in rows if "Looks non-English" in r]
    assert len(flagged) == 1 and "graureiher.txt" in flagged[0]
