"""Immutable segments: an update writes only what it adds, merges keep every answer and
vector, readers never see half of anything, and an older layout converts in place."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from qa import IndexMismatch, Pipeline
from qa import index as ix
from qa.index import segments as seg
from qa.index import serving
from qa.library import build
from qa.words import content_words
from tests.conftest import SEED, make_pipeline
from tests.test_reindex import ids_agree, many_sources, qa_popen, stored, write

QUESTION = "When did the Fujian Media Group create an ICC?"


def gist(pipe: Pipeline, question: str) -> tuple | None:
    """What an answer says and where (its scores may move when other documents change)."""
    a = pipe.ask(question).answer
    return a and (a.text, a.start, a.end, [(e.sentence, e.document.id, e.start, e.end, e.footnotes)
                                            for e in a.evidence])


def segment_files(index_dir: Path) -> dict[str, tuple[int, int]]:
    """Every segment file with its (inode, mtime): a segment once written is never touched."""
    return {str(p.relative_to(index_dir)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (index_dir / seg.FOLDER).glob("seg-*/*")}


def test_an_update_writes_one_new_segment_and_tombstones(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SEED, src / SEED.name)
    for n in range(3):
        write(src / f"note-{n}.txt", f"The lighthouse of Vardø number {n} was painted red in {1900 + n}.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    assert pipe.library.index([str(src)]).published
    before = segment_files(pipe.index_dir)
    answer = gist(pipe, QUESTION)

    write(src / "note-1.txt", "The lighthouse of Vardø number 1 was painted white in 1950.\n")
    (src / "note-2.txt").unlink()
    write(src / "note-3.txt", "The harbour of Vardø was dredged in 1961.\n")
    report = pipe.library.index([str(src)])
    assert len(report.added) == 1 and len(report.updated) == 1 and len(report.removed) == 1
    after = segment_files(pipe.index_dir)
    assert {k: v for k, v in after.items() if k in before} == before  # old segment files untouched
    gen = ix.current(pipe.index_dir)
    assert len(gen.segments) == 2 and len(gen.segments[0]["deleted"]) == 2  # note-1 replaced, note-2 removed
    assert ids_agree(pipe) == (4, gen.manifest["passages"])
    assert gist(pipe, QUESTION) == answer
    paths = {d["path"] for d in pipe.library.documents(limit=None)[0]}
    assert not any(p.endswith("note-2.txt") for p in paths) and any(p.endswith("note-3.txt") for p in paths)
    found = pipe.read("When was the lighthouse of Vardø number 1 painted white?").found
    assert found and "white in 1950" in found[0].text
    texts = " ".join(h.text for h in pipe.ask("What colour was lighthouse number 1 painted?").passages)
    assert "painted red in 1901" not in texts  # the replaced version is masked everywhere


def seed_index(tmp_path: Path, embedder) -> tuple[Path, Pipeline]:
    """A source folder holding the seed, and a pipeline over its fresh index."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SEED, src / SEED.name)
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    return src, pipe


def test_many_small_updates_are_merged_without_encoding_again(tmp_path: Path, embedder):
    src, pipe = seed_index(tmp_path, embedder)
    for n in range(ix.MAX_SEGMENTS + 2):
        write(src / f"n{n}.txt", f"Ferry {n} crossed the fjord at Lyngen {n + 2} times a day in 1931.\n")
        assert pipe.library.index([str(src)]).published
        assert len(ix.current(pipe.index_dir).segments) <= ix.MAX_SEGMENTS  # merged after the publish
    docs, passages = ids_agree(pipe)
    before = stored(pipe), gist(pipe, QUESTION), gist(pipe, "How often did ferry 4 cross the fjord?")
    calls = embedder.calls
    assert build.merge(pipe.index_dir)
    assert len(ix.current(pipe.index_dir).segments) == 1 and embedder.calls == calls  # nothing encoded
    assert ids_agree(pipe) == (docs, passages)
    assert (stored(pipe), gist(pipe, QUESTION), gist(pipe, "How often did ferry 4 cross the fjord?")) == before
    assert not build.merge(pipe.index_dir)  # one segment, nothing deleted: nothing to do
    live = {p.name for p in (pipe.index_dir / seg.FOLDER).iterdir()}
    used = {s["name"] for g in pipe.index_dir.glob("gen-*")
            for s in json.loads((g / ix.MANIFEST_FILE).read_text())["segments"]}
    assert live == used  # segments no kept generation refers to are gone


def test_readers_answer_throughout_publishes_and_merges(tmp_path: Path, embedder):
    src, writer = seed_index(tmp_path, embedder)
    reader = make_pipeline(tmp_path / "idx", embedder)
    errors: list[BaseException] = []
    answers: list[str | None] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                result = reader.ask(QUESTION)
                answers.append(result.answer.text if result.answer else None)
            except BaseException as exc:  # any failure is the test's failure
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(12):
            write(src / f"n{n}.txt", f"Tram {n} ran to Solbakken every {n + 5} minutes in 1925.\n")
            writer.library.index([str(src)])
            if n % 4 == 3:
                build.merge(writer.index_dir)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[0]
    assert answers and set(answers) == {"July 2023"}


@pytest.mark.slow
def test_kill_9_during_merge_keeps_serving(tmp_path: Path, embedder):
    idx = tmp_path / "idx"
    big = tmp_path / "big"
    many_sources(big, 60)
    pipe = make_pipeline(idx, embedder)
    pipe.library.index([str(big)])
    for n in range(4):  # several segments, some with deletions, so a merge has work to do
        write(big / f"station-{n:03}.txt", f"Station {n} was closed in {1990 + n}.\n")
        pipe.library.index([str(big)])
    expected = stored(pipe)
    for delay in (0.3, 0.8, 1.5):
        proc = qa_popen("index", "--merge", "--index", str(idx))
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        fresh = make_pipeline(idx, embedder)
        assert stored(fresh) == expected and ids_agree(fresh)[0] == 60
    done = qa_popen("index", "--merge", "--index", str(idx))
    _out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    fresh = make_pipeline(idx, embedder)
    assert len(ix.current(idx).segments) == 1 and stored(fresh) == expected
    assert not list((idx / seg.FOLDER).glob(".tmp-*"))


def test_an_index_of_the_older_layout_is_upgraded_keeping_its_vectors(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(SEED)])
    answer = gist(pipe, QUESTION)
    # Lay the index out as schema 1 did: one generation folder holding both halves.
    gen = ix.current(pipe.index_dir)
    [entry] = gen.segments
    old = pipe.index_dir / "gen-old"
    old.mkdir()
    for f in (seg.STORE_FILE, seg.FAISS_FILE):
        shutil.copy(pipe.index_dir / seg.FOLDER / entry["name"] / f, old / f)
    manifest = {k: v for k, v in gen.manifest.items() if k not in ("segments", "next_passage_id")}
    (old / ix.MANIFEST_FILE).write_text(json.dumps({**manifest, "schema": 1}))
    for p in [*pipe.index_dir.glob("gen-2*"), pipe.index_dir / seg.FOLDER]:
        shutil.rmtree(p)
    (pipe.index_dir / "CURRENT").write_text("gen-old\n")

    stale = make_pipeline(tmp_path / "idx", embedder)
    with pytest.raises(IndexMismatch, match="--upgrade"):
        stale.ask(QUESTION)
    calls = embedder.calls
    assert ix.upgrade(tmp_path / "idx") is not None
    assert ix.upgrade(tmp_path / "idx") is None  # already current
    fresh = make_pipeline(tmp_path / "idx", embedder)
    assert gist(fresh, QUESTION) == answer and embedder.calls == calls + 1  # the question only
    write(tmp_path / "extra.txt", "The ferry to Lyngen was renamed in 1999.\n")
    assert fresh.library.index([str(tmp_path / "extra.txt")]).published and ids_agree(fresh)[0] == 2


def test_cli_merge_and_upgrade_say_what_they_did(tmp_path: Path, embedder, capsys):
    from qa.cli import main

    make_pipeline(tmp_path / "idx", embedder).library.index([str(SEED)])
    assert main(["index", "--merge", "--index", str(tmp_path / "idx")]) == 0
    assert "one segment and nothing deleted" in capsys.readouterr().out
    assert main(["index", "--upgrade", "--index", str(tmp_path / "idx")]) == 0
    assert "already has the current layout" in capsys.readouterr().out
    assert Pipeline({"index": str(tmp_path / "idx")}).library.documents(limit=None)[0]


def test_lexical_search_uses_content_words_all_of_them_first(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.txt", "Keepers say the lighthouse of Vardø was painted red in 1901.\n")
    write(src / "b.txt", "The lighthouse keeper lived in Hammerfest for most of the year.\n")
    write(src / "c.txt", "It was not what they had been told at all, and so it was.\n")
    write(src / "d.txt", "Vardø lies on an island in the Barents Sea.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    assert content_words("What was the name of the lighthouse of Vardø in 1901?") == ["lighthouse", "vardø", "1901"]
    with pipe.serving.snapshot().view() as view:
        paths = [view.passages([pid])[pid].document.path for pid, _ in view.lexical(
            "What was the colour of the lighthouse of Vardø?", 10)]
        assert view.lexical("What was it that they had been?", 10) == []  # stopwords only: nothing
    assert paths[0].endswith("a.txt")  # holds every content word
    assert sorted(p.rsplit("/", 1)[1] for p in paths[1:]) == ["b.txt", "d.txt"]  # then any of them


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_an_approximate_segment_finds_what_a_flat_one_finds(tmp_path: Path, embedder, corpus_dir: Path, capsys,
                                                             kind: str):
    flat = make_pipeline(tmp_path / "flat", embedder)
    flat.library.index([str(corpus_dir)])
    graph = make_pipeline(tmp_path / kind, embedder, vector_index=kind)
    graph.library.index([str(corpus_dir)])
    assert [s["kind"] for s in ix.current(graph.index_dir).segments] == [kind]
    questions = [QUESTION, "Who directed the establishment of international communication centers?",
                 "What did the Fujian Media Group create?"]
    for q in questions:
        assert gist(graph, q) == gist(flat, q)
        assert [p.document.path for p in graph.ask(q).passages] == [p.document.path for p in flat.ask(q).passages]
    write(tmp_path / "extra.txt", "The ferry to Lyngen was renamed in 1999.\n")
    graph.library.index([str(tmp_path / "extra.txt")])
    assert build.merge(graph.index_dir, kind) and [s["kind"] for s in ix.current(graph.index_dir).segments] \
        == [kind]
    assert ids_agree(graph)[0] == ids_agree(flat)[0] + 1
    assert seg.choose("auto", seg.FLAT_MAX) == "flat" and seg.choose("auto", seg.FLAT_MAX + 1) == "ivf"

    from qa.cli import main

    assert main(["sources", "--index", str(graph.index_dir)]) == 0
    assert f"in 1 segment(s) ({kind}: 1); encoder onnx-int8" in capsys.readouterr().out


def test_a_following_pipeline_opens_new_generations_in_the_background(tmp_path: Path, embedder, monkeypatch):
    opened: list[str] = []

    class Recorded(ix.Snapshot):
        def __init__(self, generation: ix.Generation) -> None:
            opened.append(threading.current_thread().name)
            super().__init__(generation)

    monkeypatch.setattr(serving, "Snapshot", Recorded)
    writer = make_pipeline(tmp_path / "idx", embedder)
    writer.library.index([str(SEED)])
    server = make_pipeline(tmp_path / "idx", embedder)
    assert server.ask(QUESTION).answered  # the first generation is opened by the first request
    server.serving.follow(interval=0.05)
    write(tmp_path / "extra.txt", "The ferry to Lyngen was renamed Solbris in 1999.\n")
    writer.library.index([str(tmp_path / "extra.txt")])
    new = ix.current_name(writer.index_dir)
    deadline = time.monotonic() + 2.0
    while server.ask(QUESTION).generation != new:
        assert time.monotonic() < deadline, "the new generation was not served within 2 s"
        time.sleep(0.05)
    assert opened == ["MainThread", "follow-generations"]  # no request opened the new one


def test_a_document_is_the_same_from_any_working_folder(tmp_path: Path, embedder, monkeypatch):
    project, elsewhere, new = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "new"
    (project / "src").mkdir(parents=True)
    elsewhere.mkdir()
    new.mkdir()
    write(project / "src" / "a.txt", "The lighthouse of Vardø was painted red in 1901.\n")
    write(new / "b.txt", "The harbour of Vardø was dredged in 1961.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    monkeypatch.chdir(project)
    assert pipe.library.index(["src"]).added == ["src/a.txt"]
    monkeypatch.chdir(elsewhere)
    again = pipe.library.index(["../project/src"])
    assert again.unchanged == ["src/a.txt"] and not again.added and not again.removed and not again.published
    other = pipe.library.index([str(new)])  # another root: added beside, nothing of the first touched
    assert other.added == ["new/b.txt"] and not other.removed
    roots = ix.current(pipe.index_dir).manifest["roots"]
    assert roots == [str(project / "src") + "/", str(new) + "/"]
    assert pipe.library.sources_dir == project / "src"  # uploads and the browser's reindex: the first root
    assert make_pipeline(tmp_path / "idx", embedder, sources=str(elsewhere)).library.sources_dir == elsewhere
    removed = pipe.library.remove(["../project/src/a.txt"])  # a path as the user types it, from any folder
    assert removed.removed == ["src/a.txt"]
    assert [d["path"] for d in pipe.library.documents(limit=None)[0]] == ["new/b.txt"]


def as_schema(pipe: Pipeline, schema: int, *sql: str) -> None:
    """Turn a one-segment index back into an older layout: these statements on its store, and
    the manifest's schema number."""
    gen = ix.current(pipe.index_dir)
    [entry] = gen.segments
    conn = sqlite3.connect(str(pipe.index_dir / seg.FOLDER / entry["name"] / seg.STORE_FILE))
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    (gen.path / ix.MANIFEST_FILE).write_text(json.dumps({**gen.manifest, "schema": schema}))


def test_an_index_of_schema_3_gets_its_paragraphs_on_upgrade(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(SEED)])
    doc = pipe.library.documents()[0][0]["id"]
    before = pipe.library.document(doc, limit=None)
    assert len(before["paragraphs"]) > 3 and {s["paragraph"] for s in before["sentences"]} == set(
        range(len(before["paragraphs"])))
    as_schema(pipe, 3, "DROP TABLE paragraphs", "ALTER TABLE sentences DROP COLUMN paragraph")
    with pytest.raises(IndexMismatch, match=r"schema 3.*--upgrade"):
        make_pipeline(tmp_path / "idx", embedder).ask(QUESTION)
    calls = embedder.calls
    assert make_pipeline(tmp_path / "idx", embedder).library.index([str(SEED)]).unchanged  # `qa index` converts it
    assert embedder.calls == calls and ix.current(tmp_path / "idx").manifest["schema"] == ix.SCHEMA_VERSION
    after = make_pipeline(tmp_path / "idx", embedder).library.document(doc, limit=None)
    assert after == before


def test_an_index_of_schema_2_is_upgraded_keeping_ids_and_vectors(tmp_path: Path, embedder, monkeypatch):
    monkeypatch.chdir(SEED.parent.parent)  # where `qa index sources` ran when paths were relative to it
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(SEED)])
    before = gist(pipe, QUESTION), [d["id"] for d in pipe.library.documents(limit=None)[0]]
    as_schema(pipe, 2, "CREATE TABLE old AS SELECT id, path, title, format, text, meta, sha256, indexed_at "
                       "FROM documents", "DROP TABLE documents", "ALTER TABLE old RENAME TO documents",
              f"UPDATE documents SET path = 'sources/{SEED.name}'")

    with pytest.raises(IndexMismatch, match=r"schema 2.*--upgrade"):
        make_pipeline(tmp_path / "idx", embedder).ask(QUESTION)
    calls = embedder.calls
    assert ix.upgrade(tmp_path / "idx") is not None
    fresh = make_pipeline(tmp_path / "idx", embedder)
    assert (gist(fresh, QUESTION), [d["id"] for d in fresh.library.documents(limit=None)[0]]) == before
    assert embedder.calls == calls + 1  # the question only: no passage encoded again
    assert fresh.library.index([str(SEED)]).unchanged  # the old relative path became the file's identity


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 64)


def _cut(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("damage, names", [
    (lambda idx, gen, sdir: _garbage(sdir / seg.FAISS_FILE), seg.FAISS_FILE),
    (lambda idx, gen, sdir: _cut(sdir / seg.FAISS_FILE), seg.FAISS_FILE),
    (lambda idx, gen, sdir: (sdir / seg.FAISS_FILE).write_bytes(b""), seg.FAISS_FILE),
    (lambda idx, gen, sdir: _garbage(sdir / seg.STORE_FILE), seg.STORE_FILE),
    (lambda idx, gen, sdir: _cut(sdir / seg.STORE_FILE), seg.STORE_FILE),
    (lambda idx, gen, sdir: (idx / "CURRENT").write_bytes(b"\xff\xfe\x00gen"), "CURRENT"),
    (lambda idx, gen, sdir: (gen / ix.MANIFEST_FILE).write_text("{not json"), ix.MANIFEST_FILE),
])
def test_a_damaged_index_is_one_line_naming_the_file_and_qa_index_repairs_it(tmp_path: Path, embedder, damage,
                                                                             names):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SEED, src / SEED.name)
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    answer = gist(pipe, QUESTION)
    gen = ix.current(tmp_path / "idx")
    damage(tmp_path / "idx", gen.path, tmp_path / "idx" / seg.FOLDER / gen.segments[0]["name"])
    r = qa_popen("ask", QUESTION, "--index", str(tmp_path / "idx"))
    _, err = r.communicate(timeout=300)
    if names == "CURRENT":  # the generation itself is whole: it serves, with a warning
        assert r.returncode == 0 and "damaged" in err and names in err and "Traceback" not in err
    else:  # the only generation is damaged: one line naming the file
        assert r.returncode != 0 and names in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    r = qa_popen("index", str(src), "--index", str(tmp_path / "idx"))  # repairs: reads the documents again
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0 and "repaired:" in err and names in err, err
    assert gist(make_pipeline(tmp_path / "idx", embedder), QUESTION) == answer


def test_the_server_falls_back_to_the_previous_intact_generation_and_says_so(tmp_path: Path, embedder):
    from web import create_app

    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(SEED)])
    write(tmp_path / "extra.txt", "The ferry to Lyngen was renamed Solbris in 1999.\n")
    pipe.library.index([str(tmp_path / "extra.txt")])
    newest = ix.current(pipe.index_dir)
    _garbage(pipe.index_dir / seg.FOLDER / newest.segments[-1]["name"] / seg.FAISS_FILE)
    server = make_pipeline(tmp_path / "idx", embedder)
    result = server.ask(QUESTION)
    assert result.answered and result.generation != newest.path.name
    assert "damaged" in server.serving.fallback and seg.FAISS_FILE in server.serving.fallback
    page = create_app(pipeline=server).test_client().get("/sources").get_data(as_text=True)
    assert "is damaged" in page and "until `qa index` repairs it" in page.replace("&#96;", "`")
    assert server.ask(QUESTION).generation == result.generation  # not reopened on every request
    report = server.library.index([str(tmp_path / "extra.txt")])
    assert report.repaired and report.added == ["extra.txt"]
    assert server.ask(QUESTION).generation == ix.current_name(pipe.index_dir) and server.serving.fallback is None


def test_qa_index_check_reads_every_file_through(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(SEED)])
    assert ix.check(pipe.index_dir) == []
    r = qa_popen("index", "--check", "--index", str(pipe.index_dir))
    out, _ = r.communicate(timeout=300)
    assert r.returncode == 0 and "0 problem(s), every file reads whole" in out
    store_file = pipe.index_dir / seg.FOLDER / ix.current(pipe.index_dir).segments[0]["name"] / seg.STORE_FILE
    with open(store_file, "r+b") as fh:  # a page in the middle overwritten, the size unchanged
        fh.seek(store_file.stat().st_size // 2)
        fh.write(b"\xff" * 4096)
    problems = ix.check(pipe.index_dir)
    assert len(problems) == 1 and seg.STORE_FILE in problems[0]
    r = qa_popen("index", "--check", "--index", str(pipe.index_dir))
    out, err = r.communicate(timeout=300)
    assert r.returncode != 0 and "damaged:" in err and "1 problem(s)" in out
