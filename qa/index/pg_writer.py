"""Changes to a PostgreSQL index: the writer lock, `IndexWriter` (the embedded writer's methods,
so `qa.library.build` drives either) and `copy_index` (`qa index --copy-to`).

A writer's changes are one transaction on the connection that holds the lock; `publish`
commits them together with the new generation's row, so readers switch in one step and a
writer that dies (killed, disconnected) leaves nothing behind: the server rolls its
transaction back and releases its lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from qa.errors import IndexLocked
from qa.index import segments as seg
from qa.index.generations import current as embedded_current
from qa.index.pg_base import SCHEMA_VERSION, TABLES, Generation, connect, schema, serving, shown
from qa.ingest.passages import Chunk
from qa.records import Document

log = logging.getLogger(__name__)
LOCK = 0x466F6F74  # the advisory lock one writer holds ("Foot")
KEEP_GENERATIONS = 20  # generation rows kept (a manifest each; the rows of documents are not versioned)
Rows = dict[str, list[tuple]]


@contextmanager
def writer_lock(index_dir: str) -> Iterator[psycopg.Connection]:
    """Hold the index's write lock (a session advisory lock) for the block; a second writer
    fails at once. Yields the connection holding it, which the writer's transaction runs on."""
    conn = connect(index_dir, vectors=False)
    try:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK,)).fetchone()[0]:
            raise IndexLocked(f"another `qa index` is updating {shown(index_dir)} right now; wait for it to finish")
        yield conn
    finally:
        conn.close()  # ends the session: an open transaction is rolled back, the lock released


class IndexWriter:
    """Changes to a PostgreSQL index, committed as one new generation by `publish`.

    Args:
        root: the connection `writer_lock` yields.
        previous: the serving generation (None: start an empty index, in the same transaction).
        dimension: the vectors' dimension.
        kind, repair: the embedded writer's options (HNSW is always used; nothing is ever left
            half-written to repair).
    """

    def __init__(self, root: psycopg.Connection, previous: Generation | None, dimension: int, kind: str = "auto",
                 repair: bool = False) -> None:
        self.conn, self.previous, self.dimension = root, previous, dimension
        self.dropped: list[str] = []
        if root.autocommit:
            root.autocommit = False
        root.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(root)
        if previous is None:
            self._empty()
        last = root.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]
        self.next_id = max(int(previous.manifest.get("next_passage_id", 1)) if previous else 1, last + 1)

    def _empty(self) -> None:
        """Start from no documents: the rows are deleted (readers keep theirs until the commit),
        or the tables made when there are none or their vectors have another dimension."""
        typed = self.conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                  "WHERE attrelid = to_regclass('passages') AND attname = 'embedding'").fetchone()
        if typed and typed[0] == f"vector({self.dimension})":
            self.conn.execute("DELETE FROM documents")  # everything else cascades
            return
        self.conn.execute("DROP TABLE IF EXISTS generations, citations, refs, paragraphs, sentences, passages, "
                          "documents")
        self.conn.execute(schema(self.dimension))

    def documents(self) -> dict[str, tuple[str, str, str]]:
        """Served documents as {source (absolute path): (id, sha256, path as cited)}."""
        return {source: (i, sha, path) for source, i, sha, path in
                self.conn.execute("SELECT source, id, sha256, path FROM documents")}

    def reusable(self, sha256: str, doc_id: str | None) -> dict[str, np.ndarray]:
        """Stored vectors by passage text, of the documents with this content hash and of the
        document being replaced: their passages need no encoding."""
        known: dict[str, np.ndarray] = {}
        for text, vec in self.conn.execute(
                "SELECT p.text, p.embedding FROM passages p JOIN documents d ON d.id = p.doc_id "
                "WHERE d.sha256 = %s OR d.id = %s ORDER BY p.id", (sha256, doc_id)):
            known.setdefault(text, vec.to_numpy())
        return known

    def vector(self, passage_id: int) -> np.ndarray:
        """A vector added in this run (to reuse for the same text in another file)."""
        row = self.conn.execute("SELECT embedding FROM passages WHERE id = %s", (int(passage_id),)).fetchone()
        return row[0].to_numpy()

    def add(self, doc_id: str, doc: Document, sha256: str, indexed_at: str, chunks: list[Chunk],
            vectors: np.ndarray, source: str) -> list[int]:
        """Add a document read from `source` (its id must not be served: `remove` the old version first)."""
        ids = list(range(self.next_id, self.next_id + len(chunks)))
        self.write(document_rows(doc_id, doc, sha256, indexed_at, chunks, ids, vectors, source))
        self.next_id += len(chunks)
        return ids

    def write(self, rows: Rows) -> None:
        """Write rows of every table (`TABLES` order, each row in its columns' order) with COPY."""
        with self.conn.cursor() as cur:
            for table, columns in TABLES:
                if rows.get(table):
                    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows[table]:
                            copy.write_row(row)

    def remove(self, doc_id: str) -> None:
        self.conn.execute("DELETE FROM documents WHERE id = %s", (doc_id,))

    def publish(self, manifest: dict[str, Any]) -> Generation:
        """Commit every change of this writer together with the new generation's row."""
        docs = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        passages = self.conn.execute("SELECT count(*) FROM passages").fetchone()[0]
        number = self.conn.execute("SELECT coalesce(max(n), 0) + 1 FROM generations").fetchone()[0]
        full = {**manifest, "schema": SCHEMA_VERSION, "next_passage_id": self.next_id, "documents": docs,
                "passages": passages}
        full.pop("segments", None)
        self.conn.execute("INSERT INTO generations (n, manifest) VALUES (%s, %s)", (number, json.dumps(full)))
        self.conn.execute("DELETE FROM generations WHERE n <= %s", (number - KEEP_GENERATIONS,))
        self.conn.commit()
        self.previous = Generation(number, full)
        return self.previous

    def abort(self) -> None:
        """Drop everything this writer did since its last publish."""
        self.conn.rollback()

    def merge(self, everything: bool = False) -> Generation | None:
        """Nothing to merge: PostgreSQL reclaims deleted rows itself (autovacuum) and its HNSW
        index takes deletions; None, as the embedded writer says when there was nothing to do."""
        return None


def document_rows(doc_id: str, doc: Document, sha256: str, indexed_at: str, chunks: list[Chunk], ids: list[int],
                  vectors: np.ndarray, source: str) -> Rows:
    """A parsed document's rows, as `qa.index.store.add_document` writes them to SQLite."""
    return {
        "documents": [(doc_id, doc.path, doc.title, doc.format, doc.text, json.dumps(doc.meta), sha256, indexed_at,
                       source)],
        "sentences": [(doc_id, i, s.start, s.end, s.page, s.section, s.paragraph) for i, s in enumerate(doc.sentences)],
        "paragraphs": [(doc_id, i, start, end) for i, (start, end) in enumerate(doc.paragraphs)],
        "refs": [(doc_id, i, r.key, r.text, json.dumps(r.stored_fields()), r.resolved)
                 for i, r in enumerate(doc.references)],
        "citations": [(doc_id, c.sentence, c.marker, c.position, c.locator, c.reference, i)
                      for i, c in enumerate(doc.citations)],
        "passages": [(pid, doc_id, c.start, c.end, c.first_sentence, c.last_sentence, doc.text[c.start:c.end],
                      doc.title, np.asarray(v, dtype="float32"))
                     for pid, c, v in zip(ids, chunks, vectors, strict=True)],
    }


# The same rows read from an embedded segment's store (citations in the order they were written).
_SEGMENT_ROWS = {
    "documents": "SELECT id, path, title, format, text, meta, sha256, indexed_at, source FROM documents WHERE id = ?",
    "sentences": "SELECT doc_id, idx, start, end, page, section, paragraph FROM sentences WHERE doc_id = ?",
    "paragraphs": "SELECT doc_id, idx, start, end FROM paragraphs WHERE doc_id = ?",
    "refs": "SELECT doc_id, ord, key, text, fields, resolved FROM refs WHERE doc_id = ?",
    "citations": "SELECT doc_id, sentence, marker, position, locator, ref_key, rowid FROM citations WHERE doc_id = ?",
    "passages": "SELECT p.id, p.doc_id, p.start, p.end, p.first_sentence, p.last_sentence, f.text, d.title "
                "FROM passages p JOIN passages_fts f ON f.rowid = p.id JOIN documents d ON d.id = p.doc_id "
                "WHERE p.doc_id = ?",
}


def copy_index(index_dir: str, dsn: str) -> Generation:
    """Copy the serving generation of the embedded index at `index_dir` into the PostgreSQL
    index at `dsn`, replacing what it held (`qa index --copy-to`). Every row is copied as
    stored, ids included, and every vector read back from its segment: nothing is parsed or
    encoded. Until the copy commits, the index at `dsn` serves what it served before."""
    gen = embedded_current(index_dir)
    with writer_lock(dsn) as conn:
        writer = IndexWriter(conn, None, int(gen.manifest["dimension"]))
        for entry in gen.segments:
            part = seg.open_segment(gen.root, entry)
            with closing(part.connect()) as store:
                for doc_id in sorted(part.live):
                    rows = {table: [tuple(r) for r in store.execute(sql, (doc_id,))]
                            for table, sql in _SEGMENT_ROWS.items()}
                    rows["passages"] = [(*r, part.vectors.reconstruct(int(r[0]))) for r in rows["passages"]]
                    writer.write(rows)
        writer.next_id = max(writer.next_id, int(gen.manifest.get("next_passage_id", 1)))
        published = writer.publish(gen.manifest)
    log.info("copied %s of %s/ to %s", gen.path.name, index_dir, shown(dsn))
    return published


def check(index_dir: str) -> list[str]:
    """What disagrees in the serving generation (`qa index --check`): its counts against the
    tables, passages whose document is gone (foreign keys forbid both; a damaged server would not)."""
    with closing(connect(index_dir, vectors=False)) as conn:
        gen = serving(conn, index_dir)
        problems = []
        for table, key in (("documents", "documents"), ("passages", "passages")):
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if n != gen.manifest[key]:
                problems.append(f"{shown(index_dir)}: {table} holds {n} rows, generation {gen.path.name} says "
                                f"{gen.manifest[key]}")
        orphans = conn.execute("SELECT count(*) FROM passages p LEFT JOIN documents d ON d.id = p.doc_id "
                               "WHERE d.id IS NULL").fetchone()[0]
        if orphans:
            problems.append(f"{shown(index_dir)}: {orphans} passages belong to no document")
        return problems
