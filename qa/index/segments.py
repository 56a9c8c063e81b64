"""Segments: immutable slices of an index, each its own SQLite store and FAISS file.

    segments/seg-<time>-<pid>-<n>/
      store.sqlite   documents, sentences, references, citations, passages, FTS5
      faiss.index    the passages' vectors, keyed by passage id (ids unique across segments)

An indexing run writes one new segment with what it adds; what it removes or replaces in
older segments is recorded as deleted document ids in the generation's manifest (a
tombstone), so a publish writes megabytes however large the index is. `merge` copies the
live rows and vectors of several segments into one, dropping deleted documents; nothing is
encoded again. A segment is never changed after `Builder.finish` renames it into place.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from qa.errors import IndexDamaged
from qa.index import store
from qa.ingest.passages import Chunk
from qa.records import Document

FAISS_FILE, STORE_FILE = "faiss.index", "store.sqlite"
FOLDER = "segments"
KINDS = ("auto", "flat", "ivf", "hnsw")
FLAT_MAX = 50_000  # passages a segment searches exhaustively (about 6 ms here); larger ones get IVF
IVF_PROBE = 32  # inverted lists an IVF search reads
EXACT_WITHIN = 20_000  # passages of a scoped question scored exactly from their vectors (a few ms)
HNSW_LINKS, HNSW_BUILD, HNSW_SEARCH = 32, 40, 96  # M, efConstruction, efSearch (at least k)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Segment:
    """A published segment opened for reading, with what its generation deleted from it.

    `vectors` is memory-mapped read-only (a segment never changes, so readers, writers and
    merges all map it; a cold start does not wait for the whole file). `live` holds the ids
    of its documents that the generation still serves; `deleted_ids` the passage ids of the
    others.
    """

    name: str
    path: Path
    kind: str
    vectors: faiss.Index
    live: frozenset[str]
    deleted: frozenset[str]
    deleted_ids: frozenset[int]
    passages: int  # live passages
    files: dict[str, int]  # file name -> size in bytes, as written

    def entry(self, deleted: set[str] | frozenset[str]) -> dict:
        """How a generation's manifest lists this segment, with these documents deleted."""
        return {"name": self.name, "kind": self.kind, "files": self.files, "deleted": sorted(deleted)}

    def __post_init__(self) -> None:
        # FAISS leaves the deleted passages out while it searches (the ids are copied into it).
        self.skip = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self.deleted_ids, dtype="int64"))) \
            if self.deleted_ids else None

    def search(self, query: np.ndarray, k: int, within: np.ndarray | None = None) -> list[tuple[float, int]]:
        """The k live passages nearest a (1, dimension) query: (inner product, passage id).

        `within`, when given, holds the only passage ids to consider (live ones: a question's
        scope). Up to EXACT_WITHIN of them are scored exactly from their stored vectors, which
        an approximate index would search past when they are few; more go through FAISS with
        only them selected."""
        if within is not None and len(within) <= EXACT_WITHIN:
            if not len(within):
                return []
            scores = self.vectors.reconstruct_batch(within) @ query[0]
            best = np.argsort(-scores, kind="stable")[:k]
            return [(float(scores[i]), int(within[i])) for i in best]
        k = min(k, self.vectors.ntotal)
        if k <= 0:
            return []
        chosen = self.skip if within is None else faiss.IDSelectorBatch(within)
        scores, ids = self.vectors.search(query, k, params=search_params(self.kind, k, chosen))
        return [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    def connect(self) -> sqlite3.Connection:
        return store.connect(str(self.store_path), readonly=True)


REPAIR = "`qa index` re-reads the documents it held, or `qa index --rebuild` starts over"


def sizes(path: Path) -> dict[str, int]:
    """The sizes of a finished segment's two files, recorded in the manifest and checked on opening."""
    return {name: (path / name).stat().st_size for name in (FAISS_FILE, STORE_FILE)}


def open_segment(root: Path, entry: dict) -> Segment:
    """Open the segment a manifest entry names ({"name", "kind", "deleted", "files"}) and check
    it: both files there and of the size written (a cut or replaced file shows), each readable,
    and the two halves agreeing (as many vectors as passages).

    Raises:
        IndexDamaged: a file is missing, of the wrong size or unreadable; the message names it.
    """
    path = root / FOLDER / entry["name"]
    for name in (FAISS_FILE, STORE_FILE):
        if not (path / name).is_file():
            raise IndexDamaged(f"{path / name} is missing; {REPAIR}")
        size, written = (path / name).stat().st_size, entry.get("files", {}).get(name)
        if written is not None and size != written:
            raise IndexDamaged(f"{path / name} is {size} bytes but was written with {written} (cut or replaced); "
                               f"{REPAIR}")
    try:
        vectors = faiss.read_index(str(path / FAISS_FILE), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        raise IndexDamaged(f"{path / FAISS_FILE} cannot be read as a FAISS index ({str(exc).splitlines()[0]}); "
                           f"{REPAIR}") from exc
    deleted = entry.get("deleted", ())
    try:
        conn = store.connect(str(path / STORE_FILE), readonly=True)
        try:
            count = store.count_passages(conn)
            docs = {r[0] for r in conn.execute("SELECT id FROM documents")}
            gone = frozenset(deleted) & docs
            marks = ",".join("?" * len(gone))
            dead = frozenset(r[0] for r in conn.execute(f"SELECT id FROM passages WHERE doc_id IN ({marks})",
                                                         sorted(gone))) if gone else frozenset()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise IndexDamaged(f"{path / STORE_FILE} cannot be read as a SQLite store ({exc}); {REPAIR}") from exc
    if vectors.ntotal != count:
        raise IndexDamaged(f"{path}: {vectors.ntotal} vectors but {count} passages; {REPAIR}")
    return Segment(entry["name"], path, entry.get("kind", "flat"), vectors, frozenset(docs - gone), gone, dead,
                   count - len(dead), entry.get("files") or sizes(path))


def check(segment: Segment) -> str | None:
    """Read a segment through: SQLite's quick_check of the store and every vector of the FAISS
    file (opening it only maps it). None when whole, else what is wrong."""
    conn = segment.connect()
    try:
        verdict = [r[0] for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        verdict = [str(exc)]
    finally:
        conn.close()
    if verdict != ["ok"]:
        return f"{segment.store_path}: {'; '.join(verdict[:3])}"
    try:
        faiss.read_index(str(segment.path / FAISS_FILE))
    except RuntimeError as exc:
        return f"{segment.path / FAISS_FILE}: {str(exc).splitlines()[0]}"
    return None


def choose(kind: str, passages: int) -> str:
    """The FAISS index a segment of this size gets: exhaustive (flat) search up to FLAT_MAX
    passages; beyond, IVF over the same exact vectors (distances, reconstruction and merges
    stay exact, only recall is approximate). IVF was chosen over HNSW by measurement on a
    million passages (`make bench-scale`): recall@10 1.000 at 0.7 ms (nprobe 32) against
    HNSW's 0.61 at efSearch 96 and 0.85 at 2048 (3.4 ms), passages that resemble each other
    being what an HNSW beam walks past."""
    if kind not in KINDS:
        raise ValueError(f"vector_index must be one of {', '.join(KINDS)}, not {kind!r}")
    return ("flat" if passages <= FLAT_MAX else "ivf") if kind == "auto" else kind


def build_vectors(ids: np.ndarray, vectors: np.ndarray, kind: str) -> faiss.Index:
    """A FAISS index of the given kind ("flat" or "hnsw") over unit vectors, keyed by passage id."""
    dimension = vectors.shape[1]
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_BUILD
    elif kind == "ivf":
        # About 4 sqrt(n) lists, each trained on at least 39 vectors (FAISS's own floor).
        lists = max(1, min(int(4 * math.sqrt(len(ids))), len(ids) // 39))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(ids), min(len(ids), 64 * lists), replace=False)
        inner.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype="float32"))
        inner.make_direct_map()  # lets merges and reuse read a passage's vector back by id
    else:
        inner = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), np.asarray(ids, dtype="int64"))
    return index


def search_params(kind: str, k: int, skip: faiss.IDSelector | None) -> faiss.SearchParameters | None:
    """How to search a segment: the HNSW beam width, and which passages to search (`skip`
    selects them: every one but the deleted, or a question's scope)."""
    if kind == "hnsw":
        params = faiss.SearchParametersHNSW(efSearch=max(HNSW_SEARCH, k))
    elif kind == "ivf":
        params = faiss.SearchParametersIVF(nprobe=IVF_PROBE)
    elif skip is not None:
        params = faiss.SearchParameters()
    else:
        return None
    if skip is not None:
        params.sel = skip
    return params


def new_name() -> str:
    return f"seg-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


class Builder:
    """A new segment being written in a `.tmp-` folder; `finish` makes it durable and renames
    it into place, `abort` removes it. Passage ids are given by the caller (unique in the index)."""

    def __init__(self, root: Path, dimension: int, kind: str = "auto") -> None:
        self.name = new_name()
        self.final = root / FOLDER / self.name
        self.work = root / FOLDER / f".tmp-{self.name}"
        self.work.mkdir(parents=True)
        self.conn = store.connect(str(self.work / STORE_FILE))
        store.create(self.conn)
        self.kind = kind
        self.vectors = build_vectors(np.zeros(0, "int64"), np.zeros((0, dimension), "float32"), "flat")
        self.documents = 0

    @property
    def passages(self) -> int:
        return int(self.vectors.ntotal)

    def add(self, doc_id: str, doc: Document, sha256: str, indexed_at: str, chunks: list[Chunk],
            first_id: int, vectors: np.ndarray, source: str) -> list[int]:
        ids = store.add_document(self.conn, doc_id, doc, sha256, indexed_at, chunks, first_id, source)
        if ids:
            self.vectors.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), np.asarray(ids, dtype="int64"))
        self.documents += 1
        return ids

    def finish(self) -> dict:
        """Make the segment durable and put it in place; returns its manifest entry."""
        self.conn.commit()
        self.conn.close()
        kind = choose(self.kind, self.passages)
        vectors = self.vectors
        if kind != "flat":  # collected flat (cheap to add to), built as a graph once, at the end
            ids = faiss.vector_to_array(vectors.id_map)
            vectors = build_vectors(ids, vectors.reconstruct_batch(ids), kind)
        faiss.write_index(vectors, str(self.work / FAISS_FILE))
        for name in (FAISS_FILE, STORE_FILE):
            fsync(self.work / name)
        os.rename(self.work, self.final)
        fsync(self.final.parent)
        return {"name": self.name, "kind": kind, "files": sizes(self.final), "deleted": []}

    def abort(self) -> None:
        try:
            self.conn.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


TABLES = ("documents", "sentences", "paragraphs", "refs", "citations", "passages")


def merge(root: Path, parts: list[Segment], dimension: int, kind: str = "auto") -> dict:
    """One new segment holding the live documents of `parts`, their rows copied and their
    vectors reconstructed from the parts' FAISS files (never encoded again)."""
    out = Builder(root, dimension, kind)
    try:
        for part in parts:
            out.conn.execute("ATTACH DATABASE ? AS part", (f"file:{part.store_path}?mode=ro",))
            out.conn.execute("CREATE TEMP TABLE gone (id TEXT PRIMARY KEY)")
            out.conn.executemany("INSERT INTO gone VALUES (?)", [(d,) for d in part.deleted])
            for table in TABLES:
                key = "id" if table == "documents" else "doc_id"
                out.conn.execute(f"INSERT INTO main.{table} SELECT * FROM part.{table} "
                                 f"WHERE {key} NOT IN (SELECT id FROM temp.gone)")
            out.conn.execute("INSERT INTO main.passages_fts(rowid, text, title) SELECT rowid, text, title "
                             "FROM part.passages_fts WHERE rowid IN (SELECT p.id FROM part.passages p "
                             "WHERE p.doc_id NOT IN (SELECT id FROM temp.gone))")
            ids = np.asarray([r[0] for r in out.conn.execute(
                "SELECT id FROM part.passages WHERE doc_id NOT IN (SELECT id FROM temp.gone) ORDER BY id")],
                dtype="int64")
            out.conn.execute("DROP TABLE temp.gone")
            out.conn.commit()
            out.conn.execute("DETACH DATABASE part")
            if len(ids):
                out.vectors.add_with_ids(part.vectors.reconstruct_batch(ids), ids)
        out.documents = out.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        return out.finish()
    except BaseException:
        out.abort()
        raise
