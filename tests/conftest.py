"""Session fixtures: the real bundled model loaded once, a real index built once from the seed and fixtures."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from waitress import create_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from qa import Pipeline
from qa.models.encoder import Embedder, load_embedder
from tests.backends import index_location, postgres  # noqa: F401 - fixtures: each backend, the session's PostgreSQL
from web import create_app

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SEED = ROOT / "sources" / "international-communication-centers.txt"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real bundled model, loaded once for the whole run."""
    return load_embedder()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """A source folder: the seed article plus the hand-written fixtures of tests/data/corpus."""
    d = tmp_path_factory.mktemp("corpus")
    shutil.copy(SEED, d / SEED.name)
    for f in (DATA / "corpus").iterdir():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, corpus_dir, embedder) -> Pipeline:
    """A Pipeline over a real index (FAISS + SQLite) built once from `corpus_dir`."""
    pipe = Pipeline({"index": str(tmp_path_factory.mktemp("index"))}, embedder=embedder)
    report = pipe.library.index([str(corpus_dir)])
    assert report.published and not report.failed, report.failed
    return pipe


@pytest.fixture(scope="session")
def canal(tmp_path_factory, embedder) -> Pipeline:
    """An index of tests/data/reader: the canal article and two bridge notes that disagree."""
    src = tmp_path_factory.mktemp("reader-src")
    for f in (DATA / "reader").iterdir():
        shutil.copy(f, src / f.name)
    pipe = make_pipeline(tmp_path_factory.mktemp("reader-index"), embedder)
    assert pipe.library.index([str(src)]).published
    return pipe


def make_target(target: str, args: str) -> str:
    """Run `make TARGET ARGS=...` from the repository as a user would; its output, after
    asserting it succeeded (the training scripts' tests run them this way, stopped and resumed)."""
    run = subprocess.run(["make", target, f"ARGS={args}"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def script(name: str) -> ModuleType:
    """A module of `scripts/`, imported as `python scripts/NAME.py` runs it (the scripts import
    each other by bare name, so `scripts/` goes on the path while it loads)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def make_pipeline(index_dir: Path | str, embedder: Embedder, **config) -> Pipeline:
    """A Pipeline on its own index folder (or PostgreSQL database), for tests that change an index."""
    return Pipeline({"index": str(index_dir), **config}, embedder=embedder)


# Web fixtures: the Flask app over the session pipeline, its test client, and a real server.


@pytest.fixture(scope="session")
def app(pipeline):
    """The web app serving the session pipeline (no second model load)."""
    return create_app(test_config={"TESTING": True}, pipeline=pipeline)


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app):
    """The app under a real waitress server on a free port (in a thread); yields its base URL."""
    yield from serve(app)


def serve(app) -> Iterator[str]:
    """Run `app` under a real waitress server on a free port (in a thread) and yield its base URL; a
    test module serving an index of its own overrides `live_server` with this."""
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Debian's chromium, never a downloaded one (`make chromium` installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it with `make chromium`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextmanager
def watched(browser: Browser, base_url: str, **options: Any) -> Iterator[Page]:
    """A fresh page in its own browser context (`options`: viewport, touch, JavaScript ...) that
    fails the test on any console error: a CSP violation shows up there."""
    context = browser.new_context(base_url=base_url, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == []


@pytest.fixture()
def page(browser: Browser, live_server: str) -> Page:
    """A fresh page on the session's server that fails the test on any console error."""
    with watched(browser, live_server) as page:
        yield page
