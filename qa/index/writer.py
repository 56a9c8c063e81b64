"""Changes to an index, published as one new generation: the writer lock, `IndexWriter`
(add, replace, remove documents; publish; merge segments) and `upgrade` from older layouts.

Merges (`IndexWriter.merge`) copy the live rows of several segments into one; nothing is
re-encoded.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import IndexDamaged, IndexLocked, IndexMismatch, IndexNotFound
from qa.index import segments as seg
from qa.index import store
from qa.index.generations import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    UPGRADABLE,
    Generation,
    clean_leftovers,
    current,
    publish,
)
from qa.ingest.passages import Chunk
from qa.records import Document

MAX_SEGMENTS = 8  # more than this and the small ones are merged after a publish
MAX_DELETED = 0.3  # a segment with this share of its passages deleted is compacted


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
        clean_leftovers(root)
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
        repair: leave out a segment that is damaged (its documents are then no longer served,
            so an update adds them again from their files) instead of raising; `dropped` says why.
    """

    def __init__(self, root: Path, previous: Generation | None, dimension: int, kind: str = "auto",
                 repair: bool = False) -> None:
        self.root, self.previous, self.dimension, self.kind = root, previous, dimension, kind
        self.dropped: list[str] = []
        self.segments = []
        for entry in previous.segments if previous else []:
            try:
                self.segments.append(seg.open_segment(root, entry))
            except IndexDamaged as exc:
                if not repair:
                    raise
                self.dropped.append(str(exc))
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
        entries = [s.entry(self.deleted[n]) for n, s in enumerate(self.segments)]
        if self._new is not None and self._new.documents:
            entries.append(self._new.finish())
        elif self._new is not None:
            self._new.abort()
        self._new = None
        docs, passages = self._counts(entries)
        gen = publish(self.root, {**manifest, "segments": entries, "next_passage_id": self.next_id,
                                   "documents": docs, "passages": passages})
        self.__init__(self.root, gen, self.dimension, self.kind)  # go on from what was published
        return gen

    def _counts(self, entries: list[dict[str, Any]]) -> tuple[int, int]:
        segs = [seg.open_segment(self.root, e) for e in entries]
        return sum(len(s.live) for s in segs), sum(s.passages for s in segs)

    def abort(self) -> None:
        """Drop what this writer wrote and any half-written generation (the lock is held)."""
        if self._new is not None:
            self._new.abort()
            self._new = None
        clean_leftovers(self.root)

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
        merged = seg.merge(self.root, [segs[n] for n in picked], self.dimension, self.kind)
        entries = [s.entry(s.deleted) for n, s in enumerate(segs) if n not in picked] + [merged]
        gen = publish(self.root, {**self.previous.manifest, "segments": entries})
        self.__init__(self.root, gen, self.dimension, self.kind)
        return gen


def check(index_dir: str | os.PathLike) -> list[str]:
    """What is damaged in the serving generation, one line a problem (`qa index --check`)."""
    try:
        gen = current(index_dir)
    except IndexDamaged as exc:
        return [str(exc)]
    problems = []
    for entry in gen.segments:
        try:
            problem = seg.check(seg.open_segment(gen.root, entry))
        except IndexDamaged as exc:
            problem = str(exc)
        if problem:
            problems.append(problem)
    return problems


def upgrade(index_dir: str | os.PathLike) -> Generation | None:
    """Convert an index of an older layout to this one, keeping every vector (`qa index --upgrade`).

    Schema 1 kept one folder a generation (`store.sqlite` + `faiss.index`); schema 2 had
    segments whose documents were known by their path as shown, relative to the folder `qa`
    ran from; schema 3 stored sentences without the paragraph they belong to. Each store is
    copied into a new segment, each document given its absolute `source` (resolved from the
    current folder as the old layout assumed) and each sentence its paragraph; FAISS files are
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
            if schema < 3:
                last = max(last, _add_sources(work / seg.STORE_FILE))
            _add_paragraphs(work / seg.STORE_FILE)
            seg.fsync(work / seg.STORE_FILE)
            os.rename(work, root / seg.FOLDER / name)
            entry = {**entry, "name": name, "files": seg.sizes(root / seg.FOLDER / name)}
            seg.open_segment(root, entry)  # the two halves agree, or this raises before anything is published
            entries.append(entry)
        return publish(root, {**manifest, "segments": entries, "roots": manifest.get("roots", []),
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


def _add_paragraphs(path: Path) -> None:
    """Give a copied store its paragraphs and each sentence the index of its own. Stores before
    schema 4 did not keep them; parsers joined paragraphs with a blank line, so they are read
    from the text here, the one place that finds paragraphs in the text."""
    conn = sqlite3.connect(str(path))
    try:
        if "paragraph" in {r[1] for r in conn.execute("PRAGMA table_info(sentences)")}:
            return
        conn.execute("ALTER TABLE sentences ADD COLUMN paragraph INTEGER NOT NULL DEFAULT 0")
        conn.execute(store.PARAGRAPHS)
        for (doc_id, text) in conn.execute("SELECT id, text FROM documents").fetchall():
            spans, at = [], 0
            for part in text.split("\n\n"):
                spans.append((at, at + len(part)))
                at += len(part) + 2
            conn.executemany("INSERT INTO paragraphs VALUES (?,?,?,?)",
                             [(doc_id, i, start, end) for i, (start, end) in enumerate(spans)])
            rows = conn.execute("SELECT idx, start FROM sentences WHERE doc_id = ?", (doc_id,)).fetchall()
            conn.executemany("UPDATE sentences SET paragraph = ? WHERE doc_id = ? AND idx = ?",
                             [(text.count("\n\n", 0, start), doc_id, idx) for idx, start in rows])
        conn.commit()
    finally:
        conn.close()


@contextmanager
def _closing(conn: sqlite3.Connection):
    try:
        yield conn
    finally:
        conn.close()
