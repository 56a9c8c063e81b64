"""The PostgreSQL backend's own guarantees, on a real server (`make test-scale`): a reader never
sees half a reindex, a killed `qa index` leaves the previous index serving, `--copy-to` reuses
every stored vector, and `qa serve` on a streaming replica answers from what the primary indexed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from qa import Pipeline
from qa.index import current
from qa.index import segments as seg
from tests.backends import Postgres, script
from tests.conftest import ROOT, SEED, make_pipeline

pytestmark = pytest.mark.scale
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def qa(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", *args]


def lighthouses(folder: Path, version: int, n: int = 12) -> None:
    """n files, each naming the same version: an index of them answers for one version or another."""
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"light{i}.txt").write_text(
            f"Lighthouse {i} of the Varne coast was repainted in survey {version}. Its lamp turns every "
            f"{i + 3} seconds. The keeper logged survey {version} in the station book.\n")


def test_a_reader_never_sees_half_a_reindex(tmp_path: Path, embedder, postgres: Postgres):
    """Readers in other threads, while reindexes rewrite every document: each request sees one
    generation whole (every document of one version, counts those of its manifest)."""
    src = tmp_path / "src"
    lighthouses(src, 0)
    pipe = make_pipeline(postgres.database(), embedder)
    pipe.library.index([str(src)])
    seen: list[tuple] = []
    stop = threading.Event()

    def look(snap, view) -> tuple:
        docs, total = view.documents(limit=None)
        versions = {view.document(d["id"]).text.split("survey ")[1][:1] for d in docs}
        return (snap.generation.path.name, total, snap.generation.manifest["documents"],
                sum(d["passages"] for d in docs), snap.generation.manifest["passages"], frozenset(versions))

    def reader() -> None:
        while not stop.is_set():
            seen.append(pipe.serving.reading(look))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for version in (1, 2, 3):
            lighthouses(src, version)
            assert pipe.library.index([str(src)]).published
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen and all(total == docs and passages == counted and len(versions) == 1
                        for _, total, docs, counted, passages, versions in seen)
    assert len({gen for gen, *_ in seen}) >= 2  # the readers saw the switches happen


def test_kill_9_during_a_reindex_keeps_the_previous_index_serving(tmp_path: Path, embedder, postgres: Postgres):
    dsn = postgres.database()
    pipe = make_pipeline(dsn, embedder)
    assert pipe.library.index([str(SEED)]).published
    before = pipe.library.summary()
    big = tmp_path / "big"
    big.mkdir()
    for i in range(400):
        (big / f"note{i}.txt").write_text(f"Note {i}: the tide gauge at pier {i} read {i % 7} metres at dawn.\n" * 3)
    proc = subprocess.Popen(qa("index", str(SEED), str(big), "--index", dsn, "-q"), cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import psycopg  # the postgres extra: `make test` collects this module without it

    try:
        with psycopg.connect(dsn, autocommit=True) as watch:
            deadline = time.monotonic() + 180
            # the writer's transaction has written rows (it holds a transaction id) and not committed
            while not watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND application_name = 'footnote' AND backend_xid IS NOT NULL").fetchone()[0]:
                assert proc.poll() is None and time.monotonic() < deadline, "the reindex never started writing"
                time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    after = make_pipeline(dsn, embedder)
    assert after.library.summary() == before
    assert after.ask("When did the Fujian Media Group create an ICC?").answer.text == "July 2023"
    report = after.library.index([str(SEED), str(big)])  # the lock went with the killed session
    assert report.published and len(report.added) == 400 and report.unchanged


def test_copy_to_moves_an_embedded_index_reusing_every_vector(pipeline: Pipeline, embedder, postgres: Postgres):
    dsn = postgres.database()
    run = subprocess.run(qa("index", "--index", str(pipeline.index_dir), "--copy-to", dsn), cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "none encoded" in run.stdout
    gen = current(pipeline.index_dir)
    stored = {}
    for entry in gen.segments:
        part = seg.open_segment(gen.root, entry)
        conn = part.connect()
        try:
            stored |= {pid: part.vectors.reconstruct(pid) for (pid, doc) in
                       conn.execute("SELECT id, doc_id FROM passages") if doc in part.live}
        finally:
            conn.close()
    copied = make_pipeline(dsn, embedder)
    rows = copied.serving.reading(lambda _, view: view.conn.execute("SELECT id, embedding FROM passages").fetchall())
    assert {pid for pid, _ in rows} == set(stored)
    assert all(np.array_equal(vec.to_numpy(), stored[pid]) for pid, vec in rows)  # the very vectors, not new ones
    assert copied.library.documents(limit=None) == pipeline.library.documents(limit=None)
    question = "When did the Fujian Media Group create an ICC?"
    assert copied.ask(question).answer.to_dict() == pipeline.ask(question).answer.to_dict()


def ask(base: str, question: str) -> dict:
    with urllib.request.urlopen(f"{base}/api/ask?{urllib.parse.urlencode({'q': question})}", timeout=60) as resp:
        return json.load(resp)


def test_qa_serve_on_a_replica_answers_from_what_the_primary_indexed(tmp_path: Path, embedder, postgres: Postgres):
    dsn = postgres.database()
    assert make_pipeline(dsn, embedder).library.index([str(SEED)]).published
    question = "How deep do Atlantic puffins dig their burrows?"
    with script("liveserver").serve_index(postgres.on_replica(dsn)) as (base, _proc, _ready):
        assert not ask(base, question)["answered"]
        notes = tmp_path / "notes"
        notes.mkdir()
        (notes / "puffins.md").write_text("# Puffins\n\nAtlantic puffins dig burrows up to a metre deep.\n")
        index = subprocess.run(qa("index", str(SEED), str(notes), "--index", dsn, "-q"), cwd=ROOT, env=ENV,
                               capture_output=True, text=True, timeout=300)
        assert index.returncode == 0, index.stderr
        deadline = time.monotonic() + 60
        while not (body := ask(base, question))["answered"]:
            assert time.monotonic() < deadline, "the replica's server never answered from the new data"
            time.sleep(0.2)
        assert "a metre deep" in body["answer"]["evidence"][0]["sentence"]
        assert body["index"]["path"].startswith("postgresql://") and body["index"]["path"].endswith(dsn[-3:])
        with urllib.request.urlopen(f"{base}/api/sources", timeout=60) as resp:
            listing = json.load(resp)
        assert sorted(d["path"].rsplit("/", 1)[-1] for d in listing["documents"]) == [
            SEED.name, "puffins.md"]
