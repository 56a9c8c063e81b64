"""An index on disk, and its two sides: `IndexReader` for questions, `IndexWriter` for updates.

    index/
      CURRENT                 name of the published generation (replaced atomically)
      .lock                   held by the one process allowed to write
      gen-<time>-<pid>/       config.json: the manifest (model, encoder, chunker, and the
                              segments it serves with the documents deleted from each)
      segments/seg-*/         immutable slices: store.sqlite + faiss.index (`qa.segments`)

A writer adds one new segment, records what it deleted from older ones, fsyncs, writes a
new generation's manifest and swaps `CURRENT` with os.replace: a reader sees the old
generation or the new one, never half of either, and an update writes only what it adds.
Merges (`IndexWriter.merge`) copy live rows of several segments into one. A crash leaves
`.tmp-*` folders or unreferenced segments that the next writer removes; a segment is deleted
only when no kept generation refers to it. Nothing but this module and `qa.segments` opens
the SQLite files or the FAISS files of an index.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa import segments as seg
from qa import store
from qa.chunk import Chunk
from qa.documents import Citation, Document, Reference, Sentence
from qa.errors import IndexChanged, IndexLocked, IndexMismatch, IndexNotFound

SCHEMA_VERSION = 3
UPGRADABLE = (1, 2)  # 1: one folder a generation; 2: segments, documents known by their path as shown
MANIFEST_FILE = "config.json"
KEEP_GENERATIONS = 2  # the serving one and its predecessor, which readers may still hold open
MAX_SEGMENTS = 8  # more than this and the small ones are merged after a publish
MAX_DELETED = 0.3  # a segment with this share of its passages deleted is compacted


@dataclass(frozen=True)
class Generation:
    """One published generation: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def segments(self) -> list[dict[str, Any]]:
        """[{"name": segment folder, "deleted": [document ids]}] in the order they were written."""
        return self.manifest.get("segments", [])


def current(index_dir: str | os.PathLike, model: str | None = None) -> Generation:
    """The serving generation, checked against the schema version and (when given) the model.

    Raises:
        IndexNotFound: nothing has been published at `index_dir`.
        IndexMismatch: another schema version or model built it.
    """
    root = Path(index_dir)
    try:
        name = (root / "CURRENT").read_text().strip()
        manifest = json.loads((root / name / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise IndexNotFound(f"no index at {root}/ yet; build one with `qa index --index {root}`") from exc
    rebuild = f"rebuild it with `qa index --rebuild --index {root}`"
    if manifest.get("schema") in UPGRADABLE:
        raise IndexMismatch(f"the index at {root}/ has the layout of an older Footnote (schema "
                            f"{manifest.get('schema')}); convert it, keeping every vector, with "
                            f"`qa index --upgrade --index {root}`")
    if manifest.get("schema") != SCHEMA_VERSION:
        raise IndexMismatch(f"the index at {root}/ has schema version {manifest.get('schema')}, this Footnote "
                            f"reads version {SCHEMA_VERSION}; {rebuild}")
    if model is not None and manifest.get("model") != model:
        raise IndexMismatch(f"the index at {root}/ was built with model {manifest.get('model')!r}, "
                            f"but the model setting is {model!r}; {rebuild} (or set --model to match)")
    return Generation(root / name, manifest)


def encoder_backend(manifest: dict[str, Any]) -> str:
    """The backend that encoded a generation's passages (indexes from before backends: torch)."""
    return manifest.get("encoder", "torch")


def current_name(index_dir: str | os.PathLike) -> str | None:
    """Cheap check of which generation serves (the web app polls it to pick up new ones)."""
    try:
        return (Path(index_dir) / "CURRENT").read_text().strip()
    except OSError:
        return None


# ---------------------------------------------------------------- reading


class IndexReader:
    """A generation opened for questions: every segment's vectors mapped read-only, deleted
    documents masked. Dense search is here (FAISS is safe to search from many threads); the
    stores are read through a `View`, one per request (`view()`), since SQLite connections are
    not shared between threads."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.segments = [seg.open_segment(generation.root, s["name"], s.get("deleted", ()), s.get("kind", "flat"))
                         for s in generation.segments]
        self._home = {doc: n for n, s in enumerate(self.segments) for doc in s.live}

    @property
    def passages(self) -> int:
        return sum(s.passages for s in self.segments)

    def dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k passages nearest the unit vector `qvec` (id, inner product), best first."""
        query = np.ascontiguousarray(qvec.reshape(1, -1), dtype="float32")
        found = [hit for s in self.segments for hit in s.search(query, k)]
        return [(i, sc) for sc, i in heapq.nlargest(k, found)]

    @contextmanager
    def view(self):
        """A `View` of the stores for one request, closed after it."""
        v = View(self)
        try:
            yield v
        finally:
            v.close()


class View:
    """Read access to a generation's stores for one request: rows by passage or document id,
    routed to the segment that holds them, deleted documents left out."""

    def __init__(self, reader: IndexReader) -> None:
        self.reader = reader
        self._texts: dict[str, str] = {}  # document texts fetched in this request
        # Every segment is opened now: an open file stays readable even if a merge removes it,
        # so only the start of a request can find a segment gone (IndexChanged).
        self._conns: dict[int, sqlite3.Connection] = {}
        try:
            for n, s in enumerate(reader.segments):
                self._conns[n] = s.connect()
        except sqlite3.OperationalError as exc:
            self.close()
            if all(s.store_path.is_file() for s in reader.segments):
                raise
            raise IndexChanged(f"generation {reader.generation.path.name} was replaced while being read") from exc

    def _home(self, doc_id: str) -> sqlite3.Connection | None:
        n = self.reader._home.get(doc_id)
        return None if n is None else self._conns[n]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def lexical(self, question: str, k: int) -> list[tuple[int, float]]:
        """BM25 over every segment's passages, best first (each segment scores with its own
        statistics, close to the whole index's once merges keep the small segments few)."""
        found: list[tuple[float, int]] = []
        for n, s in enumerate(self.reader.segments):
            # Deleted passages are dropped after the query; fetching a few more makes up for them
            # (merges keep any segment under MAX_DELETED).
            hits = store.lexical_search(self._conns[n], question, k + min(len(s.deleted_ids), 3 * k))
            found += [(score, pid) for pid, score in hits if pid not in s.deleted_ids]
        return [(pid, score) for score, pid in heapq.nlargest(k, found)]

    def passages(self, ids: Iterable[int]) -> dict[int, sqlite3.Row]:
        """Passage rows (with their document's id, title, path, meta and text) by id."""
        wanted, out = set(ids), {}
        for n, s in enumerate(self.reader.segments):
            if not wanted:
                break
            rows = store.passages(self._conns[n], wanted - s.deleted_ids)
            out.update(rows)
            wanted -= rows.keys()
        return out

    def sentences(self, doc_id: str, first: int, last: int) -> list[tuple[int, Sentence, str]]:
        """Sentences `first..last` of a document with their text."""
        conn = self._home(doc_id)
        if conn is None:
            return []
        if doc_id not in self._texts:
            self._texts[doc_id] = store.document_text(conn, doc_id)
        return store.sentences(conn, doc_id, first, last, self._texts[doc_id])

    def citations(self, doc_id: str, sentence_ids: Iterable[int] | None = None
                  ) -> list[tuple[Citation, Reference | None]]:
        conn = self._home(doc_id)
        return store.citations(conn, doc_id, sentence_ids) if conn else []

    def references(self, doc_id: str) -> list[Reference]:
        conn = self._home(doc_id)
        return store.references(conn, doc_id) if conn else []

    def document(self, doc_id: str) -> store.StoredDocument | None:
        conn = self._home(doc_id)
        return store.document(conn, doc_id) if conn else None

    def documents(self) -> list[dict[str, Any]]:
        """Every served document with its counts, by path."""
        out = []
        for n, s in enumerate(self.reader.segments):
            out += [d for d in store.documents(self._conns[n]) if d["id"] in s.live]
        return sorted(out, key=lambda d: d["path"])


# ---------------------------------------------------------------- writing


@contextmanager
def writer_lock(index_dir: str | os.PathLike):
    """Hold the index's write lock for the block; a second writer fails at once."""
    root = Path(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:  # the lock goes with the file handle
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexLocked(f"another `qa index` is updating {root}/ right now; wait for it to finish") from exc
        _clean_leftovers(root)
        yield root


class IndexWriter:
    """Changes to an index, published as one new generation (call under `writer_lock`).

    Added documents go into one new segment; removed or replaced ones are tombstoned in the
    segment that holds them. `publish` makes it all visible at once; until then nothing the
    readers see has changed.

    Args:
        root: the index folder.
        previous: the serving generation (None to start an empty index).
        dimension: the vectors' dimension.
    """

    def __init__(self, root: Path, previous: Generation | None, dimension: int, kind: str = "auto") -> None:
        self.root, self.previous, self.dimension, self.kind = root, previous, dimension, kind
        entries = previous.segments if previous else []
        self.segments = [seg.open_segment(root, e["name"], e.get("deleted", ()), e.get("kind", "flat"))
                         for e in entries]
        self.deleted = [set(s.deleted) for s in self.segments]
        self._home = {doc: n for n, s in enumerate(self.segments) for doc in s.live}
        self.next_id = int(previous.manifest.get("next_passage_id", 1)) if previous else 1
        self._new: seg.Builder | None = None

    def documents(self) -> dict[str, tuple[str, str, str]]:
        """Served documents as {source (absolute path): (id, sha256, path as cited)}."""
        out = {}
        for n, s in enumerate(self.segments):
            with _closing(s.connect()) as conn:
                out.update({r["source"]: (r["id"], r["sha256"], r["path"]) for r in
                            conn.execute("SELECT id, path, sha256, source FROM documents") if r["id"] in s.live
                            and r["id"] not in self.deleted[n]})
        return out

    def reusable(self, sha256: str, doc_id: str | None) -> dict[str, np.ndarray]:
        """Stored vectors by passage text, of the served documents with this content hash and
        of the document being replaced: their passages need no encoding."""
        known: dict[str, np.ndarray] = {}
        for s in self.segments:
            with _closing(s.connect()) as conn:
                donors = [r[0] for r in conn.execute("SELECT id FROM documents WHERE sha256 = ?", (sha256,))
                          if r[0] in s.live]
                if doc_id in s.live:
                    donors.append(doc_id)
                for donor in dict.fromkeys(donors):
                    for pid, text in conn.execute("SELECT rowid, text FROM passages_fts WHERE rowid IN "
                                                  "(SELECT id FROM passages WHERE doc_id = ?)", (donor,)):
                        known.setdefault(text, s.vectors.reconstruct(int(pid)))
        return known

    def vector(self, passage_id: int) -> np.ndarray:
        """A vector added in this run (to reuse for the same text in another file)."""
        assert self._new is not None
        return self._new.vectors.reconstruct(int(passage_id))

    def add(self, doc_id: str, doc: Document, sha256: str, indexed_at: str, chunks: list[Chunk],
            vectors: np.ndarray, source: str) -> list[int]:
        """Add a document read from `source` (its id must not be served: `remove` the old version first)."""
        if self._new is None:
            self._new = seg.Builder(self.root, self.dimension, self.kind)
        ids = self._new.add(doc_id, doc, sha256, indexed_at, chunks, self.next_id, vectors, source)
        self.next_id += len(chunks)
        return ids

    def remove(self, doc_id: str) -> None:
        n = self._home.pop(doc_id, None)
        if n is not None:
            self.deleted[n].add(doc_id)

    def publish(self, manifest: dict[str, Any]) -> Generation:
        """Write the new segment, then a generation serving it beside the kept ones, then switch."""
        entries = [{"name": s.name, "kind": s.kind, "deleted": sorted(self.deleted[n])}
                   for n, s in enumerate(self.segments)]
        if self._new is not None and self._new.documents:
            name, kind = self._new.finish()
            entries.append({"name": name, "kind": kind, "deleted": []})
        elif self._new is not None:
            self._new.abort()
        self._new = None
        docs, passages = self._counts(entries)
        gen = _publish(self.root, {**manifest, "segments": entries, "next_passage_id": self.next_id,
                                   "documents": docs, "passages": passages})
        self.__init__(self.root, gen, self.dimension, self.kind)  # go on from what was published
        return gen

    def _counts(self, entries: list[dict[str, Any]]) -> tuple[int, int]:
        segs = [seg.open_segment(self.root, e["name"], e["deleted"], e["kind"]) for e in entries]
        return sum(len(s.live) for s in segs), sum(s.passages for s in segs)

    def abort(self) -> None:
        if self._new is not None:
            self._new.abort()
            self._new = None

    def merge(self, everything: bool = False) -> Generation | None:
        """Compact after a publish: merge the segments when there are too many (all but the
        largest) and every segment with too much deleted (or, with `everything`, all of them
        into one). Publishes the result; None when there was nothing to merge."""
        assert self.previous is not None and self._new is None, "merge runs on a published generation"
        segs = self.segments
        if everything:
            picked = list(range(len(segs))) if len(segs) > 1 or any(s.deleted for s in segs) else []
        else:
            picked = [n for n, s in enumerate(segs)
                      if s.deleted_ids and len(s.deleted_ids) >= MAX_DELETED * (s.passages + len(s.deleted_ids))]
            if len(segs) > MAX_SEGMENTS:
                largest = max(range(len(segs)), key=lambda n: segs[n].passages)
                picked = sorted(set(picked) | {n for n in range(len(segs)) if n != largest})
        if not picked:
            return None
        name, kind = seg.merge(self.root, [segs[n] for n in picked], self.dimension, self.kind)
        entries = [{"name": s.name, "kind": s.kind, "deleted": sorted(s.deleted)}
                   for n, s in enumerate(segs) if n not in picked]
        entries.append({"name": name, "kind": kind, "deleted": []})
        gen = _publish(self.root, {**self.previous.manifest, "segments": entries})
        self.__init__(self.root, gen, self.dimension, self.kind)
        return gen


def upgrade(index_dir: str | os.PathLike) -> Generation | None:
    """Convert an index of an older layout to this one, keeping every vector (`qa index --upgrade`).

    Schema 1 kept one folder a generation (`store.sqlite` + `faiss.index`); schema 2 had
    segments whose documents were known by their path as shown, relative to the folder `qa`
    ran from. Each store is copied into a new segment and each document given its absolute
    `source`, resolved from the current folder as the old layout assumed; FAISS files are
    linked, not copied (they never change). Until the new generation is published the old one
    serves.

    Returns:
        The new generation, or None when the index already has the current layout.

    Raises:
        IndexNotFound: there is no index; IndexMismatch: a layout this Footnote cannot convert.
    """
    with writer_lock(index_dir) as root:
        try:
            old = root / (root / "CURRENT").read_text().strip()
            manifest = json.loads((old / MANIFEST_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise IndexNotFound(f"no index at {root}/ to upgrade") from exc
        schema = manifest.get("schema")
        if schema == SCHEMA_VERSION:
            return None
        if schema not in UPGRADABLE:
            raise IndexMismatch(f"the index at {root}/ has schema {schema}; it cannot be upgraded: rebuild it "
                                f"with `qa index --rebuild --index {root}`")
        parts = [(old, {"kind": "flat", "deleted": []})] if schema == 1 else \
            [(root / seg.FOLDER / e["name"], e) for e in manifest["segments"]]
        entries, last = [], 0
        for folder, entry in parts:
            name = seg.new_name()
            work = root / seg.FOLDER / f".tmp-{name}"
            work.mkdir(parents=True)
            shutil.copy2(folder / seg.STORE_FILE, work / seg.STORE_FILE)
            os.link(folder / seg.FAISS_FILE, work / seg.FAISS_FILE)
            last = max(last, _add_sources(work / seg.STORE_FILE))
            seg.fsync(work / seg.STORE_FILE)
            os.rename(work, root / seg.FOLDER / name)
            seg.open_segment(root, name)  # the two halves agree, or this raises before anything is published
            entries.append({**entry, "name": name})
        return _publish(root, {**manifest, "segments": entries, "roots": manifest.get("roots", []),
                               "next_passage_id": max(int(manifest.get("next_passage_id", 1)), last + 1)})


def _add_sources(path: Path) -> int:
    """Rebuild a copied store's documents table with the `source` column (absolute path, from the
    path as shown); returns the largest passage id. Foreign keys stay off, so nothing cascades."""
    conn = sqlite3.connect(str(path))
    try:
        conn.execute(store.DOCUMENTS.format(name="documents_new"))
        conn.execute("INSERT INTO documents_new SELECT id, path, title, format, text, meta, sha256, indexed_at, "
                     "id FROM documents")
        conn.executemany("UPDATE documents_new SET source = ? WHERE id = ?",
                         [(os.path.abspath(p), i) for i, p in conn.execute("SELECT id, path FROM documents")])
        conn.execute("DROP TABLE documents")
        conn.execute("ALTER TABLE documents_new RENAME TO documents")
        conn.execute("CREATE INDEX IF NOT EXISTS documents_sha256 ON documents(sha256)")
        last = conn.execute("SELECT max(id) FROM passages").fetchone()[0] or 0
        conn.commit()
        return last
    finally:
        conn.close()


@contextmanager
def _closing(conn: sqlite3.Connection):
    try:
        yield conn
    finally:
        conn.close()


def _publish(root: Path, manifest: dict[str, Any]) -> Generation:
    """Write a generation's manifest durably, switch CURRENT to it, prune what no one needs."""
    name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    work = root / f".tmp-{name}"
    work.mkdir()
    (work / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema": SCHEMA_VERSION}, indent=2))
    seg.fsync(work / MANIFEST_FILE)
    os.rename(work, root / name)
    seg.fsync(root)
    pointer = root / "CURRENT.tmp"
    pointer.write_text(name + "\n")
    seg.fsync(pointer)
    os.replace(pointer, root / "CURRENT")
    seg.fsync(root)
    _prune(root, keep=name)
    return Generation(root / name, json.loads((root / name / MANIFEST_FILE).read_text()))


def _clean_leftovers(root: Path) -> None:
    """Remove what a crashed writer left (only ever called while holding the lock)."""
    for p in [*root.glob(".tmp-*"), *(root / seg.FOLDER).glob(".tmp-*")]:
        shutil.rmtree(p, ignore_errors=True)
    (root / "CURRENT.tmp").unlink(missing_ok=True)
    _drop_unreferenced(root)


def _prune(root: Path, keep: str) -> None:
    """Keep the newest generations (readers may hold the previous one), then the segments they use."""
    gens = sorted((p for p in root.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in gens if p.name != keep][: max(len(gens) - KEEP_GENERATIONS, 0)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    _drop_unreferenced(root)


def _drop_unreferenced(root: Path) -> None:
    folder = root / seg.FOLDER
    if not folder.is_dir():
        return
    used: set[str] = set()
    for gen in root.glob("gen-*"):
        try:
            used |= {s["name"] for s in json.loads((gen / MANIFEST_FILE).read_text()).get("segments", [])}
        except (OSError, ValueError):
            return  # a manifest that cannot be read: delete nothing rather than something in use
    for p in folder.glob("seg-*"):
        if p.name not in used:
            shutil.rmtree(p, ignore_errors=True)
