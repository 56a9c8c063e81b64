"""The SQLite half of an index: documents, sentences, references, citations, passages, FTS5.

Passage ids are the FAISS vector ids, so the two halves agree by construction; `check`
verifies the counts when an index is opened.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qa.ingest.passages import Chunk
from qa.records import Citation, Document, DocumentRef, PassageHit, Reference, Sentence
from qa.words import content_words

# `path` is how answers cite the file (its root's name and the path inside the root); `source`
# is the file's absolute path, the document's identity whatever folder `qa` runs from.
DOCUMENTS = """CREATE TABLE {name} (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, format TEXT NOT NULL,
    text TEXT NOT NULL, meta TEXT NOT NULL, sha256 TEXT NOT NULL, indexed_at TEXT NOT NULL,
    source TEXT NOT NULL UNIQUE)"""
PARAGRAPHS = """CREATE TABLE paragraphs (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL, PRIMARY KEY (doc_id, idx))"""
SCHEMA = DOCUMENTS.format(name="documents") + """;
CREATE INDEX documents_sha256 ON documents(sha256);
CREATE TABLE sentences (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL, page INTEGER, section TEXT, paragraph INTEGER NOT NULL,
    PRIMARY KEY (doc_id, idx));
""" + PARAGRAPHS + """;
CREATE TABLE refs (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, ord INTEGER NOT NULL,
    key TEXT NOT NULL, text TEXT NOT NULL, fields TEXT NOT NULL, resolved TEXT,
    PRIMARY KEY (doc_id, key));
CREATE TABLE citations (
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, sentence INTEGER NOT NULL,
    marker TEXT NOT NULL, position INTEGER NOT NULL, locator TEXT, ref_key TEXT);
CREATE INDEX citations_sentence ON citations(doc_id, sentence);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    start INTEGER NOT NULL, end INTEGER NOT NULL, first_sentence INTEGER NOT NULL,
    last_sentence INTEGER NOT NULL);
CREATE INDEX passages_doc ON passages(doc_id);
CREATE VIRTUAL TABLE passages_fts USING fts5(text, title, tokenize = 'porter unicode61');
"""



@dataclass(frozen=True)
class StoredDocument:
    """A document row as the store keeps it (text included)."""

    ref: DocumentRef
    format: str
    text: str
    sha256: str
    indexed_at: str
    source: str


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    """Open the store; read-only connections use SQLite's URI mode so nothing can write."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    return conn


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def add_document(conn: sqlite3.Connection, doc_id: str, doc: Document, sha256: str,
                 indexed_at: str, chunks: list[Chunk], first_passage_id: int, source: str) -> list[int]:
    """Insert a parsed document (from the file at absolute path `source`) and its passages.

    Returns:
        The passage ids given, in chunk order (the caller adds vectors under the same ids).
    """
    conn.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                 (doc_id, doc.path, doc.title, doc.format, doc.text, json.dumps(doc.meta), sha256, indexed_at,
                  source))
    conn.executemany("INSERT INTO sentences VALUES (?,?,?,?,?,?,?)",
                     [(doc_id, i, s.start, s.end, s.page, s.section, s.paragraph) for i, s in enumerate(doc.sentences)])
    conn.executemany("INSERT INTO paragraphs VALUES (?,?,?,?)",
                     [(doc_id, i, start, end) for i, (start, end) in enumerate(doc.paragraphs)])
    conn.executemany("INSERT INTO refs VALUES (?,?,?,?,?,?)",
                     [(doc_id, i, r.key, r.text, json.dumps(r.stored_fields()), r.resolved)
                      for i, r in enumerate(doc.references)])
    conn.executemany("INSERT INTO citations VALUES (?,?,?,?,?,?)",
                     [(doc_id, c.sentence, c.marker, c.position, c.locator, c.reference) for c in doc.citations])
    ids = list(range(first_passage_id, first_passage_id + len(chunks)))
    pairs = list(zip(ids, chunks, strict=True))
    conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?)",
                     [(pid, doc_id, c.start, c.end, c.first_sentence, c.last_sentence) for pid, c in pairs])
    conn.executemany("INSERT INTO passages_fts(rowid, text, title) VALUES (?,?,?)",
                     [(pid, doc.text[c.start:c.end], doc.title) for pid, c in pairs])
    return ids


def remove_document(conn: sqlite3.Connection, doc_id: str) -> list[int]:
    """Delete a document and everything hanging off it; returns its passage ids (for FAISS)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM passages WHERE doc_id = ?", (doc_id,))]
    conn.executemany("DELETE FROM passages_fts WHERE rowid = ?", [(i,) for i in ids])
    conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
    return ids


def next_passage_id(conn: sqlite3.Connection) -> int:
    return (conn.execute("SELECT max(id) FROM passages").fetchone()[0] or 0) + 1


def count_passages(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM passages").fetchone()[0]


COMMON = 2000  # a word in more passages than this is left out of the OR query (it would score them all)


def lexical_search(conn: sqlite3.Connection, question: str, limit: int,
                   within: Sequence[str] | None = None) -> list[tuple[int, float]]:
    """BM25 over passages (FTS5) for the question's content words (`qa.words`), bounded.

    Passages holding every content word come first; to fill `limit`, passages holding any of
    the words that occur in at most COMMON passages follow. A query ORing every word, "the"
    and "of" included, scores nearly every passage (527 ms on 100k passages); ORing content
    words still scored a tenth of a million passages for a question on a 1M index (95 ms),
    while the AND alone misses paraphrases. Below COMMON passages a word is always kept, so a
    small index searches exactly as an unbounded OR would.

    `within`, when given, keeps only the passages of these documents (a question asked within
    some sources): each query is then bounded by their passages, so every word is kept.

    Returns:
        (passage id, bm25 score with higher better) best first, at most `limit`.
    """
    words = content_words(question)
    if not words:
        return []
    if within is not None and len(within) > IN_BATCH:
        found = [hit for at in range(0, len(within), IN_BATCH)
                 for hit in lexical_search(conn, question, limit, within[at:at + IN_BATCH])]
        return sorted(found, key=lambda h: -h[1])[:limit]
    scoped = "" if within is None else \
        f"AND rowid IN (SELECT id FROM passages WHERE doc_id IN ({','.join('?' * len(within))})) "
    sql = ("SELECT rowid, -bm25(passages_fts, 1.0, 0.3) AS s FROM passages_fts "
           f"WHERE passages_fts MATCH ? {scoped}ORDER BY s DESC LIMIT ?")
    docs = list(within or ())
    found = [(r[0], r[1]) for r in conn.execute(sql, (" AND ".join(f'"{w}"' for w in words), *docs, limit))]
    rare = ([w for w in words if within is not None or not _common(conn, w)]) if len(words) > 1 else []
    if len(found) < limit and rare:
        seen = {pid for pid, _ in found}
        more = conn.execute(sql, (" OR ".join(f'"{w}"' for w in rare), *docs, limit))
        found += [(r[0], r[1]) for r in more if r[0] not in seen][: limit - len(found)]
    return found


def _common(conn: sqlite3.Connection, word: str) -> bool:
    """The word occurs in more than COMMON passages (found by skipping that many: no scoring)."""
    return conn.execute("SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? LIMIT 1 OFFSET ?",
                        (f'"{word}"', COMMON)).fetchone() is not None


def passages(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, PassageHit]:
    """Passages with their document and text by id (score 0: the searcher gives it).

    The text comes from the FTS table's own copy, so reading a passage never loads its
    whole document.
    """
    ids = list(ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT p.*, d.title, d.path, d.meta, f.text AS text FROM passages p JOIN documents d ON d.id = p.doc_id "
        f"JOIN passages_fts f ON f.rowid = p.id WHERE p.id IN ({marks})", ids)
    return {r["id"]: PassageHit(r["id"], document_ref(r), r["text"], 0.0, r["start"], r["end"],
                                sentences=(r["first_sentence"], r["last_sentence"])) for r in rows}


def document_text(conn: sqlite3.Connection, doc_id: str) -> str:
    row = conn.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return row[0] if row else ""


def sentences(conn: sqlite3.Connection, doc_id: str, first: int, last: int, text: str
              ) -> list[tuple[int, Sentence, str]]:
    """Sentences `first..last` of a document with their text, sliced from the document's
    `text` (fetched once by the caller, not once a sentence)."""
    rows = conn.execute("SELECT idx, start, end, page, section, paragraph FROM sentences "
                        "WHERE doc_id = ? AND idx BETWEEN ? AND ? ORDER BY idx", (doc_id, first, last))
    return [(r["idx"], Sentence(r["start"], r["end"], r["page"], r["section"], r["paragraph"]),
             text[r["start"]:r["end"]])
            for r in rows]


def paragraphs(conn: sqlite3.Connection, doc_id: str) -> list[tuple[int, int]]:
    """A document's paragraphs as (start, end) offsets into its text, in order."""
    return [(r["start"], r["end"]) for r in
            conn.execute("SELECT start, end FROM paragraphs WHERE doc_id = ? ORDER BY idx", (doc_id,))]


def sentence_count(conn: sqlite3.Connection, doc_id: str) -> int:
    return conn.execute("SELECT count(*) FROM sentences WHERE doc_id = ?", (doc_id,)).fetchone()[0]


def citations(conn: sqlite3.Connection, doc_id: str, sentence_ids: Iterable[int] | None = None
              ) -> list[tuple[Citation, Reference | None]]:
    """Citations of a document (or of some of its sentences), each with its reference when linked."""
    sql = ("SELECT c.*, r.key AS rkey, r.text AS rtext, r.fields AS rfields, r.resolved AS rresolved "
           "FROM citations c LEFT JOIN refs r ON r.doc_id = c.doc_id AND r.key = c.ref_key WHERE c.doc_id = ?")
    args: list[Any] = [doc_id]
    if sentence_ids is not None:
        ids = list(sentence_ids)
        sql += f" AND c.sentence IN ({','.join('?' * len(ids))})"
        args += ids
    out = []
    for r in conn.execute(sql + " ORDER BY c.position, c.rowid", args):
        ref = (Reference.from_stored(r["rkey"], r["rtext"], json.loads(r["rfields"]), r["rresolved"])
               if r["rkey"] else None)
        out.append((Citation(r["sentence"], r["marker"], r["position"], r["locator"], r["ref_key"]), ref))
    return out


def references(conn: sqlite3.Connection, doc_id: str) -> list[Reference]:
    rows = conn.execute("SELECT * FROM refs WHERE doc_id = ? ORDER BY ord", (doc_id,))
    return [Reference.from_stored(r["key"], r["text"], json.loads(r["fields"]), r["resolved"]) for r in rows]


def document(conn: sqlite3.Connection, doc_id: str) -> StoredDocument | None:
    r = conn.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return _stored(r) if r else None


IN_BATCH = 500  # ids bound in one query (SQLite caps the number of parameters)


def document_paths(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(path, id) of every document: what a listing sorts and counts before it reads a page."""
    return [tuple(r) for r in conn.execute("SELECT path, id FROM documents")]


def document_sources(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(id, path, source) of every document: what a question's scope is matched against."""
    return [tuple(r) for r in conn.execute("SELECT id, path, source FROM documents")]


def passage_ids(conn: sqlite3.Connection, doc_ids: Sequence[str]) -> list[int]:
    """The ids of these documents' passages (their vector ids)."""
    return [r[0] for at in range(0, len(doc_ids), IN_BATCH) for r in conn.execute(
        f"SELECT id FROM passages WHERE doc_id IN ({','.join('?' * len(doc_ids[at:at + IN_BATCH]))})",
        doc_ids[at:at + IN_BATCH])]


def documents(conn: sqlite3.Connection, ids: Iterable[str]) -> list[dict[str, Any]]:
    """These documents with their counts, for `qa sources` and the sources page."""
    ids = list(ids)
    if len(ids) > IN_BATCH:
        return documents(conn, ids[:IN_BATCH]) + documents(conn, ids[IN_BATCH:])
    rows = conn.execute(f"SELECT {LISTED} FROM documents d WHERE d.id IN ({','.join('?' * len(ids))})", ids)
    return [listed(dict(r)) for r in rows]


# What a listing shows of a document `d`, with its counts (the same SQL on both backends).
LISTED = """d.id, d.path, d.title, d.format, d.meta, d.sha256, d.indexed_at, length(d.text) AS chars,
  (SELECT count(*) FROM passages p WHERE p.doc_id = d.id) AS passages,
  (SELECT count(*) FROM sentences s WHERE s.doc_id = d.id) AS sentences,
  (SELECT count(*) FROM refs r WHERE r.doc_id = d.id) AS refs,
  (SELECT count(*) FROM citations c WHERE c.doc_id = d.id) AS citations,
  (SELECT count(*) FROM citations c WHERE c.doc_id = d.id AND c.ref_key IS NOT NULL) AS resolved"""


def listed(row: dict[str, Any]) -> dict[str, Any]:
    """A `LISTED` row as `qa sources` and the sources page show it: meta decoded, `references`."""
    row["meta"] = json.loads(row["meta"])
    row["references"] = row.pop("refs")
    return row


def document_ref(row: sqlite3.Row) -> DocumentRef:
    """A DocumentRef from any row carrying doc id, title, path and meta columns."""
    keys = row.keys()
    doc_id = row["doc_id"] if "doc_id" in keys else row["id"]
    return DocumentRef(doc_id, row["title"], row["path"], json.loads(row["meta"]))


def _stored(r: sqlite3.Row) -> StoredDocument:
    return StoredDocument(document_ref(r), r["format"], r["text"], r["sha256"], r["indexed_at"], r["source"])
