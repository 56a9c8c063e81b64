"""Incremental, atomic reindexing: add/change/remove/rename cycles, crash safety, the writer lock, watch mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import faiss
import pytest

from qa import IndexLocked, Pipeline
from qa import index as ix
from qa.errors import DiskFull
from qa.ingest.passages import VERSION as CHUNKER_VERSION
from qa.ingest.pool import ParsePool, parse_file
from tests.backends import pg_rows_agree
from tests.conftest import ROOT, SEED, make_pipeline


def ids_agree(pipe: Pipeline) -> tuple[int, int]:
    """Assert each segment's FAISS ids, store passage ids and FTS rows are the same set, ids
    unique across segments, nothing orphaned; return the served (documents, passages).
    (A PostgreSQL index: `pg_rows_agree`.)"""
    if ix.is_postgres(pipe.index_dir):
        return pg_rows_agree(pipe)
    snap = pipe.serving.snapshot()
    seen: set[int] = set()
    docs = passages = 0
    for segment in snap.segments:
        faiss_ids = set(faiss.vector_to_array(segment.vectors.id_map).tolist())
        conn = segment.connect()
        try:
            rows = {r[0] for r in conn.execute("SELECT id FROM passages")}
            fts = {r[0] for r in conn.execute("SELECT rowid FROM passages_fts")}
            ids = {r[0] for r in conn.execute("SELECT id FROM documents")}
            for table in ("sentences", "refs", "citations", "passages"):
                owners = {r[0] for r in conn.execute(f"SELECT DISTINCT doc_id FROM {table}")}
                assert owners <= ids, f"orphan rows in {table}"
        finally:
            conn.close()
        assert faiss_ids == rows == fts and not rows & seen
        seen |= rows
        docs += len(segment.live)
        passages += segment.passages
    assert (docs, passages) == (snap.generation.manifest["documents"], snap.generation.manifest["passages"])
    return docs, passages


def stored(pipe: Pipeline) -> tuple[list[tuple], list[tuple], list[dict]]:
    """The served documents (path, title, sha256), passages (path, start, end), sorted, and each
    document as its page shows it (text, paragraphs, sentences, references)."""
    docs = sorted((d["path"], d["title"], d["sha256"]) for d in pipe.library.documents(limit=None)[0])
    passages = []
    for segment in pipe.serving.snapshot().segments:
        conn = segment.connect()
        try:
            passages += [(r[1], r[2], r[3]) for r in conn.execute(
                "SELECT d.id, d.path, p.start, p.end FROM passages p JOIN documents d ON d.id = p.doc_id")
                if r[0] in segment.live]
        finally:
            conn.close()
    views = [{k: v for k, v in pipe.library.document(d["id"], limit=None).items() if k != "indexed_at"}
             for d in sorted(pipe.library.documents(limit=None)[0], key=lambda d: d["path"])]
    return docs, sorted(passages), views


def serving_generation(pipe: Pipeline) -> str:
    """The name of the generation that answers now, on either backend."""
    return pipe.library.summary()["generation"]


def write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path)


def test_add_change_remove_rename_cycle(tmp_path: Path, embedder, index_location: str):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "herons.txt", "Grey herons nest in colonies called heronries.[1] They eat fish and frogs.\n"
                              "Herons stand still for long periods while hunting.\n\n1. ^ Bird Book (2001).\n")
    write(src / "otters.md", "# Otters\n\nSea otters use stones to open shellfish.[^1]\n\nOtters hold hands "
                             "while sleeping so they do not drift apart.\n\n[^1]: Otter Atlas, p. 9.\n")
    pipe = make_pipeline(index_location, embedder)
    r = pipe.library.index([str(src)])
    assert len(r.added) == 2 and r.published
    assert ids_agree(pipe)[0] == 2

    calls = embedder.calls
    r = pipe.library.index([str(src)])  # nothing to do: no new generation, no encoding
    assert (r.unchanged, r.published, embedder.calls) == (sorted(r.unchanged), False, calls)
    assert len(r.unchanged) == 2

    gen = serving_generation(pipe)
    write(src / "herons.txt", (src / "herons.txt").read_text().replace(
        "while hunting.", "while hunting. In 2025 a white heron was seen in Oslo harbour."))
    r = pipe.library.index([str(src)])
    assert [Path(p).name for p in r.updated] == ["herons.txt"] and r.unchanged and r.published
    assert embedder.calls - calls == r.encoded == 1  # only the changed passage of the changed file
    assert serving_generation(pipe) != gen
    assert "Oslo" in pipe.ask("Where was a white heron seen in 2025?").answer.evidence[-1].sentence
    ids_agree(pipe)

    calls = embedder.calls
    (src / "otters.md").rename(src / "sea-otters.md")
    r = pipe.library.index([str(src)])
    assert [Path(p).name for p in r.added] == ["sea-otters.md"] and [Path(p).name for p in r.removed] == ["otters.md"]
    assert embedder.calls == calls  # renamed but identical: vectors reused

    write(src / "copy.md", (src / "sea-otters.md").read_text())
    r = pipe.library.index([str(src)])
    assert embedder.calls == calls and len(r.added) == 1
    docs, _passages = ids_agree(pipe)
    assert docs == 3  # identical content at two paths stays two documents

    r = pipe.library.remove([str(src / "copy.md")])
    assert r.removed == [f"{src.name}/copy.md"] and ids_agree(pipe)[0] == 2
    (src / "copy.md").unlink()  # `qa remove` drops the document; a file left in the folder would come back

    (src / "herons.txt").unlink()
    r = pipe.library.index([str(src)])
    assert [Path(p).name for p in r.removed] == ["herons.txt"]
    assert ids_agree(pipe) == (1, 2)  # the otters' two paragraphs are two passages
    assert not pipe.ask("Where was a white heron seen in 2025?").answered


def indexed_one_file(tmp_path: Path, embedder, text: str, where: str | None = None) -> tuple[Path, Pipeline]:
    """A source folder holding `a.txt` and a pipeline whose index (at `where`, default a folder)
    was built from it."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.txt", text)
    pipe = make_pipeline(where or tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    return src, pipe


def test_rebuild_starts_over(tmp_path: Path, embedder, index_location: str):
    src, pipe = indexed_one_file(tmp_path, embedder, "Basalt columns form when thick lava cools slowly.\n",
                                 index_location)
    calls = embedder.calls
    r = pipe.library.index([str(src)], rebuild=True)
    assert r.added and r.published and embedder.calls == calls + 1


def test_failed_update_keeps_the_previous_version(tmp_path: Path, embedder, index_location: str):
    src, pipe = indexed_one_file(tmp_path, embedder, "The Laki eruption of 1783 cooled the northern hemisphere.\n",
                                 index_location)
    (src / "a.txt").write_bytes(b"\x00\x01binary now")
    r = pipe.library.index([str(src)])
    assert r.failed and not r.removed
    assert "Laki" in pipe.ask("Which eruption cooled the northern hemisphere in 1783?").answer.evidence[-1].sentence


def test_exception_mid_run_leaves_the_serving_generation(tmp_path: Path, embedder, index_location: str):
    src, pipe = indexed_one_file(tmp_path, embedder, "Moss grows on the north side of trees in the Ardennes.\n",
                                 index_location)
    gen = serving_generation(pipe)
    for i in range(3):
        write(src / f"new{i}.txt", f"Extra fact number {i} about lichens on granite.\n")

    def explode(done: int, total: int, current: str) -> None:
        if done == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        pipe.library.index([str(src)], progress=explode)
    assert serving_generation(pipe) == gen
    assert ix.is_postgres(index_location) or not list(pipe.index_dir.glob(".tmp-gen-*"))
    assert ids_agree(pipe)[0] == 1
    assert len(pipe.library.index([str(src)]).added) == 3


def test_second_writer_fails_fast(embedder, index_location: str):
    pipe = make_pipeline(index_location, embedder)
    with ix.backend(index_location).writer_lock(index_location), pytest.raises(IndexLocked, match="another `qa index`"):
        pipe.library.index([str(SEED)])


def qa_popen(*args: str, tag: str = "") -> subprocess.Popen:
    """`qa` in its own process; `tag` marks its environment (and so its parse workers')."""
    return subprocess.Popen([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "FOOTNOTE_TEST_TAG": tag})


def tagged(tag: str) -> list[int]:
    """Live processes whose environment carries the tag."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"FOOTNOTE_TEST_TAG={tag}".encode() in (proc / "environ").read_bytes() \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def many_sources(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        sents = " ".join(f"Station {i}-{j} on the river Ystad measured {i * 7 + j} millimetres of rain in week {j}."
                         for j in range(40))
        write(folder / f"station-{i:03}.txt", sents + "\n")


@pytest.mark.slow
def test_kill_9_mid_run_keeps_serving_and_next_run_completes(tmp_path: Path, embedder):
    idx = tmp_path / "idx"
    seed_src = tmp_path / "seed"
    seed_src.mkdir()
    (seed_src / SEED.name).write_bytes(SEED.read_bytes())
    make_pipeline(idx, embedder).library.index([str(seed_src)])
    gen = ix.current_name(idx)
    big = tmp_path / "big"
    many_sources(big, 80)
    tag = f"kill9-{os.getpid()}"
    for delay in (1.0, 4.0, 7.0):
        proc = qa_popen("index", str(seed_src), str(big), "--index", str(idx), "-q", tag=tag)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if ix.current_name(idx) != gen:  # it finished before the kill: nothing left to prove here
            break
        reader = make_pipeline(idx, embedder)
        r = reader.ask("When did the Fujian Media Group create an ICC?")
        assert r.answered and ids_agree(reader)[0] == 1
    deadline = time.monotonic() + 10
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged(tag), "the killed run's parse workers outlived it"
    done = qa_popen("index", str(seed_src), str(big), "--index", str(idx), "-q")
    _out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert not list(idx.glob(".tmp-gen-*"))
    final = make_pipeline(idx, embedder)
    assert ids_agree(final)[0] == 81
    found = final.read("How much rain did station 3-5 measure in week 5?").found
    assert any(f.text.startswith("Station 3-5 ") for f in found)  # the last file indexed is searchable


def test_watch_mode_reindexes_after_a_change(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.txt", "Kelp forests grow up to half a metre a day.\n")
    proc = qa_popen("index", str(src), "--index", str(tmp_path / "idx"), "--watch", "--interval", "0.2", "-q")
    deadline = time.monotonic() + 240
    lines: list[str] = []
    queue: Queue[str] = Queue()
    threading.Thread(target=lambda: [queue.put(line) for line in proc.stdout], daemon=True).start()

    def read_until(text: str) -> bool:
        while time.monotonic() < deadline:
            try:
                lines.append(queue.get(timeout=1.0))
            except Empty:
                continue
            if text in lines[-1]:
                return True
        return False

    try:
        assert read_until("watching"), lines
        write(src / "b.txt", "Sea urchins graze on kelp holdfasts.\n")
        assert read_until("2 documents"), lines
        assert "1 added" in lines[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(Pipeline({"index": str(tmp_path / "idx")}).library.documents(limit=None)[0]) == 2


def _dies_on_poison(path: Path, *rest):
    """A parse job that kills its worker process on one file (module level: workers import it by name)."""
    if path.name == "poison.txt":
        os._exit(3)
    return parse_file(path, *rest)


def test_parse_workers_keep_order_and_survive_a_dying_worker(tmp_path: Path):
    files = []
    for n in range(7):
        f = tmp_path / ("poison.txt" if n == 3 else f"doc{n}.txt")
        f.write_text(f"Document {n} says the canal opened in {1800 + n}.\n")
        files.append(f)
    pool = ParsePool(2)
    try:
        results = list(pool.map(_dies_on_poison, [(f.name, (f, f.name, 10**6, 700, 1)) for f in files]))
        again = list(pool.map(parse_file, [(f.name, (f, f.name, 10**6, 700, 1)) for f in files[:2]]))
    finally:
        pool.close()
    assert [name for name, _ in results] == [f.name for f in files]
    for name, got in results:
        if name == "poison.txt":
            assert isinstance(got, RuntimeError) and "parser process died" in str(got)
        else:
            doc, chunks = got
            assert doc.path == name and chunks and str(1800 + int(name[3])) in doc.text
    assert [doc.path for _, (doc, _) in again] == ["doc0.txt", "doc1.txt"]  # the pool works on after it


def test_index_runs_parse_in_workers_and_in_process_alike(tmp_path: Path, embedder, corpus_dir: Path):
    """Several files go through the worker pool, a single file is parsed in-process: same index."""
    pooled = make_pipeline(tmp_path / "pooled", embedder)
    assert pooled.library.index([str(corpus_dir)]).published
    single = make_pipeline(tmp_path / "single", embedder)
    for f in sorted(corpus_dir.iterdir()):
        single.library.index([str(f)])
    names = [[(Path(row[0]).name, *row[1:]) for row in rows] for rows in (*stored(pooled)[:2], *stored(single)[:2])]
    assert names[:2] == names[2:]  # a file given alone is cited by its name, in a folder by folder/name
    texts = [[{k: v for k, v in d.items() if k not in ("id", "path")} for d in stored(p)[2]] for p in (pooled, single)]
    assert texts[0] == texts[1]


def test_a_file_reached_twice_is_indexed_once(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.txt", "The canal at Ystad was dug in 1802.\n")
    write(src / "b.txt", "The mill at Ystad burned in 1911.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    report = pipe.library.index([str(src), str(src / "a.txt"), str(src)])
    assert report.published and not report.failed and sorted(report.added) == ["src/a.txt", "src/b.txt"]
    assert ids_agree(pipe)[0] == 2


def test_an_unguarded_script_still_indexes_every_file(tmp_path: Path):
    """Workers import the calling script again; one without an `if __name__` guard kills them as
    they start, and the files are then parsed in the calling process, with a warning."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a.txt", "The canal at Ystad was dug in 1802.\n")
    write(src / "b.txt", "The mill at Ystad burned in 1911.\n")
    script = tmp_path / "unguarded.py"
    script.write_text("from qa import Pipeline\n"
                      f"report = Pipeline({{'index': {str(tmp_path / 'idx')!r}}}).library.index([{str(src)!r}])\n"
                      "print(report.summary())\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "parsing in this process instead" in out.stderr
    assert "2 added" in out.stdout and "0 failed" in out.stdout, out.stderr[-2000:]


def test_links_leading_out_of_the_folder_are_not_followed_and_what_they_reached_goes(tmp_path: Path, embedder):
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    src.mkdir()
    (elsewhere / "sub").mkdir(parents=True)
    (src / "kept.txt").write_text("Kittiwakes nest on narrow ledges.\n")
    (src / "inside.txt").symlink_to(src / "kept.txt")  # stays in the folder: read (as its own document)
    secret = elsewhere / "secret.txt"
    secret.write_text("The vault code is 4711.\n")
    (src / "h.txt").symlink_to(secret)
    (src / "linked").symlink_to(elsewhere / "sub", target_is_directory=True)
    (elsewhere / "sub" / "deep.txt").write_text("Deep text outside the folder.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    report = pipe.library.index([str(src)])
    assert report.outside == ["src/h.txt"]  # a linked folder is not descended into at all
    assert sorted(report.added) == ["src/inside.txt", "src/kept.txt"] and not report.failed
    assert "4711" not in " ".join(d["title"] for d in pipe.library.documents()[0])
    assert not pipe.ask("What is the vault code?").answered
    assert all("Deep text" not in h.text for h in pipe.ask("Which text lies deep outside the folder?").passages)
    # a document a link reached before (an index built when the link pointed inside) goes once it leads out
    (src / "inside.txt").unlink()
    (src / "inside.txt").symlink_to(secret)
    again = pipe.library.index([str(src)])
    assert again.removed == ["src/inside.txt"] and again.outside == ["src/h.txt", "src/inside.txt"]
    r = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(src), "--index", str(tmp_path / "idx")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "not followed: 2 link(s) leading out of their folder (src/h.txt" in r.stderr


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A real 1 MiB filesystem (tmpfs), for running out of space; skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_the_index_serves_as_before(tmp_path: Path, embedder, small_disk: Path):
    pipe = make_pipeline(small_disk / "idx", embedder)
    assert pipe.library.index([str(SEED)]).published
    before = stored(pipe)
    big = tmp_path / "big.txt"
    sentence = "Lighthouse {i} on the isle of Skarv was lit in {y} by keeper number {i}, who kept it {w} winters. "
    big.write_text("\n\n".join("".join(sentence.format(i=i, y=1800 + j, w=j) for j in range(6))
                               for i in range(900)))  # about 600 kB in 900 passages: more than the disk holds
    with pytest.raises(DiskFull, match=r"is full.*nothing was published"):
        pipe.library.index([str(big)])
    assert stored(make_pipeline(small_disk / "idx", embedder)) == before
    assert not list((small_disk / "idx").glob(".tmp-*")) and not list((small_disk / "idx" / "segments").glob(".tmp-*"))
    r = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(big), "--index", str(small_disk / "idx")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "is full" in r.stderr and "Traceback" not in r.stderr


def test_an_index_cut_by_an_older_chunker_is_cut_again_on_update_keeping_its_vectors(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("Puffins dig burrows on grassy slopes. They return each April.\n")
    elsewhere = tmp_path / "b.txt"
    elsewhere.write_text("Guillemots nest on bare rock ledges.\n")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    pipe.library.index([str(src)])
    pipe.library.index([str(elsewhere)])
    before = stored(pipe)
    gen = ix.current(pipe.index_dir)
    old = {**gen.manifest, "chunker": {**gen.manifest["chunker"], "version": 2}}
    (gen.path / ix.MANIFEST_FILE).write_text(json.dumps(old))
    calls = embedder.calls
    report = pipe.library.index([str(src)])  # b.txt is not named: it is read again from where it was found
    assert report.rechunked and sorted(report.updated) == ["b.txt", "src/a.txt"] and report.encoded == 0
    assert embedder.calls == calls and "passages cut again" in report.summary()
    assert ix.current(pipe.index_dir).manifest["chunker"]["version"] == CHUNKER_VERSION
    assert stored(pipe)[:2] == before[:2]
    assert pipe.library.index([str(src)]).unchanged == ["src/a.txt"]  # and then nothing more to do
