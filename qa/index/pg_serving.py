"""Questions answered from a PostgreSQL index: the same `Serving`, `Snapshot` and `View` the
pipeline, searcher, reader, library and web app use with the embedded backend.

Each `Serving.reading` borrows a pooled connection and runs the whole request in one read-only
REPEATABLE READ transaction: the generation it names, the dense and lexical searches and every
row it reads come from one moment of the database, before a reindex commits or after it. On a
streaming replica the same holds (hot standby serves such transactions).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import psycopg

from qa.errors import DocumentNotFound, FootnoteError
from qa.index.pg_base import TEXT_SEARCH, Generation, connect, serving, shown
from qa.index import store
from qa.index.store import COMMON, StoredDocument
from qa.records import Citation, DocumentRef, PassageHit, Reference, Sentence
from qa.search.scope import Scope
from qa.words import content_words

log = logging.getLogger(__name__)
T = TypeVar("T")
POOL = 16  # idle connections kept (the web server answers `threads` questions at once)
# HNSW candidates a dense search visits (at least k; pgvector's default is 40). On 100k synthetic
# passages (bench-scale), recall@10 against exact search and the search's p50 were: 100: 0.79,
# 1.7 ms; 200: 0.84; 400: 0.90, 3.1 ms; 800: 0.94, 5.6 ms. A question costs about 250 ms in all,
# so the few milliseconds buy the recall.
EF_SEARCH = 800
# ts_rank_cd weights of the D, C, B, A labels: passage text is A, its document's title C (FTS5 weighs them 1 : 0.3)
WEIGHTS = "{0.1, 0.3, 0.4, 1.0}"
RETRIED = (psycopg.OperationalError, psycopg.errors.SerializationFailure)  # a lost connection, a replica conflict


class Pool:
    """A few open connections, each used by one request at a time: read-only, REPEATABLE READ,
    pgvector's types registered."""

    def __init__(self, dsn: str, size: int = POOL) -> None:
        self.dsn, self.size = dsn, size
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self):
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self.dsn)
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        try:
            yield conn
        finally:
            try:
                conn.rollback()  # read-only: nothing to keep
            except psycopg.Error:
                conn.close()
            with self._lock:
                if conn.closed or len(self._idle) >= self.size:
                    conn.close()
                else:
                    self._idle.append(conn)


@dataclass(frozen=True)
class Table:
    """What `Library.summary` lists of a generation's storage: one table searched with HNSW."""

    name: str
    kind: str
    passages: int
    deleted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Within:
    """A question's scope resolved in one transaction: the ids of the documents it may be answered from."""

    documents: list[str]


class Serving:
    """The serving generation of the PostgreSQL index at DSN `index_dir` (primary or replica).

    Args:
        index_dir: the DSN (named as the embedded `Serving`'s folder: the library passes it on).
        model: the embedding model questions are encoded with (another one's index is refused).
        on_open: called with each generation as it is first seen.
    """

    def __init__(self, index_dir: str, model: str | None = None,
                 on_open: Callable[[Generation], None] | None = None) -> None:
        self.index_dir, self.model, self.on_open = index_dir, model, on_open
        self.pool = Pool(index_dir)
        self.fallback: str | None = None  # the embedded backend's damaged-generation note; never set here
        self._generation: Generation | None = None
        self._follower: threading.Thread | None = None
        self._lock = threading.Lock()

    def _seen(self, gen: Generation) -> Generation:
        with self._lock:
            if self._generation is None or self._generation.number != gen.number:
                self._generation = gen
                log.info("serving generation %s of %s", gen.path.name, shown(self.index_dir))
                if self.on_open:
                    self.on_open(gen)
        return gen

    def snapshot(self) -> Snapshot:
        """The serving generation (read again unless `follow` keeps it up to date)."""
        gen = self._generation if self._follower is not None else None
        if gen is None:
            with self.pool.connection() as conn:
                gen = self._seen(serving(conn, self.index_dir, self.model))
        return Snapshot(self, gen)

    def follow(self, interval: float = 0.25) -> None:
        """Read the newest generation in a background thread, so requests know it without asking."""
        if self._follower is not None:
            return

        def run() -> None:
            while True:
                try:
                    with self.pool.connection() as conn:
                        self._seen(serving(conn, self.index_dir, self.model))
                except (FootnoteError, psycopg.Error) as exc:  # no index yet, or the server away: requests say so
                    log.debug("not following %s: %s", shown(self.index_dir), exc)
                time.sleep(interval)

        self._follower = threading.Thread(target=run, name="follow-generations", daemon=True)
        self._follower.start()

    def reading(self, work: Callable[[Snapshot, View], T]) -> T:
        """Run `work(snapshot, view)` in one read-only transaction; once more on a fresh
        connection when the first is lost (a server restart) or a replica cancels it (a
        conflict with replay)."""
        try:
            return self._read(work)
        except RETRIED as exc:
            log.info("reading again after %s", exc.__class__.__name__)
            return self._read(work)

    def _read(self, work: Callable[[Snapshot, View], T]) -> T:
        with self.pool.connection() as conn:
            gen = self._seen(serving(conn, self.index_dir, self.model))
            return work(Snapshot(self, gen, conn), View(conn))


class Snapshot:
    """A generation as a request sees it: dense search runs in the request's transaction."""

    def __init__(self, owner: Serving, generation: Generation, conn: psycopg.Connection | None = None) -> None:
        self.owner, self.generation, self._conn = owner, generation, conn

    @property
    def passages(self) -> int:
        return self.generation.manifest["passages"]

    @property
    def segments(self) -> list[Table]:
        return [Table("postgresql", "hnsw", self.passages)]

    def dense(self, qvec: np.ndarray, k: int, within: Within | None = None) -> list[tuple[int, float]]:
        """The k passages nearest the unit vector `qvec` (id, inner product), best first. The
        whole index is searched through HNSW; a scope's passages are scored exactly (a filter on
        an HNSW scan would return fewer than k when the scope is small)."""
        if self._conn is None:
            with self.owner.pool.connection() as conn:
                return Snapshot(self.owner, self.generation, conn).dense(qvec, k, within)
        q = np.asarray(qvec, dtype="float32").reshape(-1)
        if within is None:
            self._conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(k, EF_SEARCH)),))
            rows = self._conn.execute("SELECT id, -(embedding <#> %s) FROM passages ORDER BY embedding <#> %s "
                                      "LIMIT %s", (q, q, k))
        else:
            rows = self._conn.execute(
                "WITH scoped AS MATERIALIZED (SELECT id, embedding FROM passages WHERE doc_id = ANY(%s)) "
                "SELECT id, -(embedding <#> %s) AS s FROM scoped ORDER BY s DESC, id LIMIT %s",
                (within.documents, q, k))
        return [(int(i), float(s)) for i, s in rows]


class View:
    """Rows of the index for one request, in its transaction."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def lexical(self, question: str, k: int, within: Within | None = None) -> list[tuple[int, float]]:
        """Passages holding the question's content words (`qa.words`), ranked by `ts_rank_cd`.

        The policy of `qa.index.store.lexical_search`: passages holding every content word
        first, then, to fill k, those holding any of the words found in at most COMMON passages
        (every word, within a scope).
        """
        words = content_words(question)
        if not words:
            return []
        scoped = "" if within is None else " AND doc_id = ANY(%(docs)s)"
        def sql(query: str) -> str:
            return (f"SELECT id, ts_rank_cd('{WEIGHTS}', lexical, q) AS s FROM passages, {query}('{TEXT_SEARCH}', "
                    f"%(words)s) AS q WHERE lexical @@ q{scoped} ORDER BY s DESC, id LIMIT %(k)s")

        docs = None if within is None else within.documents
        found = [(int(i), float(s)) for i, s in self.conn.execute(
            sql("plainto_tsquery"), {"words": " ".join(words), "docs": docs, "k": k})]
        rare = [w for w in words if within is not None or not self._common(w)] if len(words) > 1 else []
        if len(found) < k and rare:
            seen = {pid for pid, _ in found}
            more = self.conn.execute(sql("websearch_to_tsquery"),
                                     {"words": " or ".join(rare), "docs": docs, "k": k})
            found += [(int(i), float(s)) for i, s in more if i not in seen][: k - len(found)]
        return found

    def _common(self, word: str) -> bool:
        """The word occurs in more than COMMON passages (counted no further than that)."""
        return self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM passages WHERE lexical @@ plainto_tsquery('{TEXT_SEARCH}', %s) "
            "LIMIT %s) AS hits", (word, COMMON + 1)).fetchone()[0] > COMMON

    def within(self, scope: Scope) -> Within:
        """The documents in `scope`.

        Raises:
            DocumentNotFound: no served document is in it (asking would search nothing).
        """
        docs = [d for d, path, source in self.conn.execute("SELECT id, path, source FROM documents")
                if scope.matches(d, path, source)]
        if not docs:
            raise DocumentNotFound(f"no indexed document is in {scope.describe()}; "
                                   "`qa sources` lists the documents and their paths")
        return Within(docs)

    def passages(self, ids: Iterable[int]) -> dict[int, PassageHit]:
        """Passages with their document and text by id (score 0: the searcher gives it)."""
        rows = self.conn.execute(
            'SELECT p.id, p.doc_id, d.title, d.path, d.meta, p.text, p.start, p."end", p.first_sentence, '
            "p.last_sentence FROM passages p JOIN documents d ON d.id = p.doc_id WHERE p.id = ANY(%s)", (list(ids),))
        return {pid: PassageHit(pid, DocumentRef(doc, title, path, _json(meta)), text, 0.0, start, end,
                                sentences=(first, last))
                for pid, doc, title, path, meta, text, start, end, first, last in rows}

    def sentences(self, doc_id: str, first: int, last: int) -> list[tuple[int, Sentence, str]]:
        """Sentences `first..last` of a document with their text (sliced by the server)."""
        rows = self.conn.execute(
            'SELECT s.idx, s.start, s."end", s.page, s.section, s.paragraph, substr(d.text, s.start + 1, '
            's."end" - s.start) FROM sentences s JOIN documents d ON d.id = s.doc_id '
            "WHERE s.doc_id = %s AND s.idx BETWEEN %s AND %s ORDER BY s.idx", (doc_id, first, min(last, 2**31 - 1)))
        return [(idx, Sentence(start, end, page, section, paragraph), text)
                for idx, start, end, page, section, paragraph, text in rows]

    def paragraphs(self, doc_id: str) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.conn.execute(
            'SELECT start, "end" FROM paragraphs WHERE doc_id = %s ORDER BY idx', (doc_id,))]

    def sentence_count(self, doc_id: str) -> int:
        return self.conn.execute("SELECT count(*) FROM sentences WHERE doc_id = %s", (doc_id,)).fetchone()[0]

    def citations(self, doc_id: str, sentence_ids: Iterable[int] | None = None
                  ) -> list[tuple[Citation, Reference | None]]:
        """Citations of a document (or of some of its sentences), each with its reference when linked."""
        sql = ("SELECT c.sentence, c.marker, c.position, c.locator, c.ref_key, r.key, r.text, r.fields, r.resolved "
               "FROM citations c LEFT JOIN refs r ON r.doc_id = c.doc_id AND r.key = c.ref_key WHERE c.doc_id = %s")
        args: list[Any] = [doc_id]
        if sentence_ids is not None:
            sql += " AND c.sentence = ANY(%s)"
            args.append(list(sentence_ids))
        return [(Citation(sentence, marker, position, locator, ref_key),
                 Reference.from_stored(key, text, _json(fields), resolved) if key else None)
                for sentence, marker, position, locator, ref_key, key, text, fields, resolved
                in self.conn.execute(sql + " ORDER BY c.position, c.ord", args)]

    def references(self, doc_id: str) -> list[Reference]:
        return [Reference.from_stored(key, text, _json(fields), resolved) for key, text, fields, resolved in
                self.conn.execute("SELECT key, text, fields, resolved FROM refs WHERE doc_id = %s ORDER BY ord",
                                  (doc_id,))]

    def document(self, doc_id: str) -> StoredDocument | None:
        row = self.conn.execute("SELECT id, title, path, meta, format, text, sha256, indexed_at, source "
                                "FROM documents WHERE id = %s", (doc_id,)).fetchone()
        if row is None:
            return None
        doc, title, path, meta, *rest = row
        return StoredDocument(DocumentRef(doc, title, path, _json(meta)), *rest)

    def documents(self, offset: int = 0, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """Served documents with their counts, by path: `limit` of them from `offset` (all when
        None), and how many there are. Only the page's documents are counted."""
        total = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        cur = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = cur.execute(f"SELECT {store.LISTED} FROM (SELECT * FROM documents ORDER BY path, id OFFSET %s "
                           "LIMIT %s) d ORDER BY d.path, d.id", (offset, limit)).fetchall()
        return [store.listed(dict(r)) for r in rows], total


def _json(text: str) -> Any:
    return json.loads(text)
