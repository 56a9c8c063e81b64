"""What both sides of the PostgreSQL backend share: connections, the tables, and the serving
generation (`qa.index.postgres` is the backend's front; README "Scaling out").

The tables mirror the embedded store's (`qa.index.store`): documents, sentences, paragraphs,
refs, citations and passages, each passage row with its text, a `tsvector` (GIN) for lexical
search and its vector (pgvector, HNSW on inner product: the vectors are unit length). There
are no segments: a reindex is one transaction, and it commits together with a new row of
`generations` (its manifest); the newest row is the serving generation. Readers run each
request in one REPEATABLE READ transaction, so they see the index before a commit or after
it, never half of a reindex; a writer that dies leaves its transaction rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector

from qa.errors import IndexNotFound
from qa.index.generations import check_manifest

SCHEMA_VERSION = 1  # of these tables (the embedded layout has its own, `qa.index.SCHEMA_VERSION`)
TEXT_SEARCH = "english"  # the text search configuration: Snowball stemming, its own stopwords too
# (table, columns) in the order rows are written; "end" is quoted, a reserved word in SQL
TABLES: tuple[tuple[str, str], ...] = (
    ("documents", 'id, path, title, format, text, meta, sha256, indexed_at, source'),
    ("sentences", 'doc_id, idx, start, "end", page, section, paragraph'),
    ("paragraphs", 'doc_id, idx, start, "end"'),
    ("refs", 'doc_id, ord, key, text, fields, resolved'),
    ("citations", 'doc_id, sentence, marker, position, locator, ref_key, ord'),
    ("passages", 'id, doc_id, start, "end", first_sentence, last_sentence, text, title, embedding'),
)
HNSW_LINKS, HNSW_BUILD = 16, 64  # pgvector's m and ef_construction (its defaults)


def schema(dimension: int) -> str:
    """The DDL of an index whose vectors have `dimension` components. `meta` and `fields` stay
    JSON text, as in SQLite: jsonb would reorder their keys in the JSON answers."""
    return f"""
CREATE TABLE generations (n bigint PRIMARY KEY, manifest text NOT NULL, published timestamptz NOT NULL DEFAULT now());
CREATE TABLE documents (
    id text PRIMARY KEY, path text NOT NULL, title text NOT NULL, format text NOT NULL, text text NOT NULL,
    meta text NOT NULL, sha256 text NOT NULL, indexed_at text NOT NULL, source text NOT NULL UNIQUE);
CREATE INDEX documents_sha256 ON documents (sha256);
CREATE INDEX documents_path ON documents (path, id);
CREATE TABLE sentences (
    doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE, idx integer NOT NULL, start integer NOT NULL,
    "end" integer NOT NULL, page integer, section text, paragraph integer NOT NULL, PRIMARY KEY (doc_id, idx));
CREATE TABLE paragraphs (
    doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE, idx integer NOT NULL, start integer NOT NULL,
    "end" integer NOT NULL, PRIMARY KEY (doc_id, idx));
CREATE TABLE refs (
    doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE, ord integer NOT NULL, key text NOT NULL,
    text text NOT NULL, fields text NOT NULL, resolved text, PRIMARY KEY (doc_id, key));
CREATE TABLE citations (
    doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE, sentence integer NOT NULL,
    marker text NOT NULL, position integer NOT NULL, locator text, ref_key text, ord integer NOT NULL);
CREATE INDEX citations_sentence ON citations (doc_id, sentence);
CREATE TABLE passages (
    id bigint PRIMARY KEY, doc_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    start integer NOT NULL, "end" integer NOT NULL, first_sentence integer NOT NULL, last_sentence integer NOT NULL,
    text text NOT NULL, title text NOT NULL, embedding vector({int(dimension)}) NOT NULL,
    lexical tsvector GENERATED ALWAYS AS (setweight(to_tsvector('{TEXT_SEARCH}', text), 'A')
                                          || setweight(to_tsvector('{TEXT_SEARCH}', title), 'C')) STORED);
CREATE INDEX passages_doc ON passages (doc_id);
CREATE INDEX passages_lexical ON passages USING gin (lexical);
CREATE INDEX passages_embedding ON passages USING hnsw (embedding vector_ip_ops)
    WITH (m = {HNSW_LINKS}, ef_construction = {HNSW_BUILD});
"""


def shown(dsn: str) -> str:
    """The DSN as messages and answers show it: without its password."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def connect(dsn: str, vectors: bool = True) -> psycopg.Connection:
    """A connection in autocommit mode, with pgvector's types registered (`vectors`).

    Raises:
        IndexNotFound: the server cannot be reached, or holds no index (no `vector` type yet).
    """
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="footnote")
    except psycopg.OperationalError as exc:
        raise IndexNotFound(f"cannot reach PostgreSQL at {shown(dsn)}: {str(exc).strip()}") from exc
    if vectors:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError as exc:
            conn.close()
            raise IndexNotFound(f"no index at {shown(dsn)} yet; build one with `qa index --index {shown(dsn)}`") \
                from exc
    return conn


@dataclass(frozen=True)
class Generation:
    """The serving generation: its number and manifest (model, encoder, chunker, counts, roots).

    `path` names it as the embedded backend's generation folders are named (callers show
    `generation.path.name`); there are no segments.
    """

    number: int
    manifest: dict[str, Any]

    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(f"gen-{self.number:08d}")

    @property
    def segments(self) -> list[dict[str, Any]]:
        return []


def serving(conn: psycopg.Connection, dsn: str, model: str | None = None) -> Generation:
    """The newest generation, read on `conn` (in its transaction, when one is open), checked
    against the schema version and (when given) the model.

    Raises:
        IndexNotFound: nothing has been published there.
        IndexMismatch: another schema version or model built it.
    """
    try:
        row = conn.execute("SELECT n, manifest FROM generations ORDER BY n DESC LIMIT 1").fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    if row is None:
        raise IndexNotFound(f"no index at {shown(dsn)} yet; build one with `qa index --index {shown(dsn)}`")
    manifest = json.loads(row[1])
    check_manifest(manifest, shown(dsn), shown(dsn), model, SCHEMA_VERSION)
    return Generation(row[0], manifest)


def current(dsn: str, model: str | None = None) -> Generation:
    """The serving generation of the index at `dsn` (see `serving`)."""
    with connect(dsn, vectors=False) as conn:
        return serving(conn, dsn, model)
