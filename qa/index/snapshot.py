"""A published generation opened for questions: dense search over every segment, and a
`View` of the stores for each request."""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa.errors import DocumentNotFound, IndexChanged
from qa.index import segments as seg
from qa.index import store
from qa.index.generations import Generation
from qa.records import Citation, PassageHit, Reference, Sentence
from qa.search.scope import Scope


class Snapshot:
    """A generation opened for questions: every segment's vectors mapped read-only, deleted
    documents masked. Dense search is here (FAISS is safe to search from many threads); the
    stores are read through a `View`, one per request (`view()`), since SQLite connections are
    not shared between threads."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.segments = [seg.open_segment(generation.root, s) for s in generation.segments]
        self._home = {doc: n for n, s in enumerate(self.segments) for doc in s.live}

    @property
    def passages(self) -> int:
        return sum(s.passages for s in self.segments)

    def dense(self, qvec: np.ndarray, k: int, within: Within | None = None) -> list[tuple[int, float]]:
        """The k passages nearest the unit vector `qvec` (id, inner product), best first; only
        those of a question's scope when `within` is given (`View.within`)."""
        query = np.ascontiguousarray(qvec.reshape(1, -1), dtype="float32")
        found = [hit for n, s in enumerate(self.segments) if within is None or n in within.passages
                 for hit in s.search(query, k, None if within is None else within.passages[n])]
        return [(i, sc) for sc, i in heapq.nlargest(k, found)]

    @contextmanager
    def view(self):
        """A `View` of the stores for one request, closed after it."""
        v = View(self)
        try:
            yield v
        finally:
            v.close()


@dataclass(frozen=True)
class Within:
    """A question's scope resolved in one generation, by segment index: the documents it may be
    answered from and their passage ids."""

    documents: dict[int, list[str]]
    passages: dict[int, np.ndarray]


class View:
    """Read access to a generation's stores for one request: rows by passage or document id,
    routed to the segment that holds them, deleted documents left out."""

    def __init__(self, reader: Snapshot) -> None:
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

    def lexical(self, question: str, k: int, within: Within | None = None) -> list[tuple[int, float]]:
        """BM25 over every segment's passages (only the scope's when `within` is given), best
        first (each segment scores with its own statistics, close to the whole index's once
        merges keep the small segments few)."""
        found: list[tuple[float, int]] = []
        for n, s in enumerate(self.reader.segments):
            if within is not None and n not in within.documents:
                continue
            # Deleted passages are dropped after the query; fetching a few more makes up for them
            # (merges keep any segment under MAX_DELETED).
            hits = store.lexical_search(self._conns[n], question, k + min(len(s.deleted_ids), 3 * k),
                                        None if within is None else within.documents[n])
            found += [(score, pid) for pid, score in hits if pid not in s.deleted_ids]
        return [(pid, score) for score, pid in heapq.nlargest(k, found)]

    def within(self, scope: Scope) -> Within:
        """The served documents in `scope` and their passages.

        Raises:
            DocumentNotFound: no served document is in it (asking would search nothing).
        """
        documents: dict[int, list[str]] = {}
        for n, s in enumerate(self.reader.segments):
            docs = [d for d, path, source in store.document_sources(self._conns[n])
                    if d in s.live and scope.matches(d, path, source)]
            if docs:
                documents[n] = docs
        if not documents:
            raise DocumentNotFound(f"no indexed document is in {scope.describe()}; "
                                   "`qa sources` lists the documents and their paths")
        return Within(documents, {n: np.asarray(store.passage_ids(self._conns[n], docs), dtype="int64")
                                  for n, docs in documents.items()})

    def passages(self, ids: Iterable[int]) -> dict[int, PassageHit]:
        """Passages with their document and text by id (deleted ones left out)."""
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

    def paragraphs(self, doc_id: str) -> list[tuple[int, int]]:
        conn = self._home(doc_id)
        return store.paragraphs(conn, doc_id) if conn else []

    def sentence_count(self, doc_id: str) -> int:
        conn = self._home(doc_id)
        return store.sentence_count(conn, doc_id) if conn else 0

    def citations(self, doc_id: str, sentence_ids: Iterable[int] | None = None
                  ) -> list[tuple[Citation, Reference | None]]:
        conn = self._home(doc_id)
        return store.citations(conn, doc_id, sentence_ids) if conn else []

    def references(self, doc_id: str) -> list[Reference]:
        conn = self._home(doc_id)
        return store.references(conn, doc_id) if conn else []

    def document(self, doc_id: str) -> store.StoredDocument | None:
        conn = self._home(doc_id)
        doc = store.document(conn, doc_id) if conn else None
        if doc is not None:
            self._texts[doc_id] = doc.text  # its sentences are sliced from it, not fetched again
        return doc

    def documents(self, offset: int = 0, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """Served documents with their counts, by path: `limit` of them from `offset` (all when
        None), and how many there are. Only the page's documents are counted."""
        listed = sorted((path, doc_id, n) for n, s in enumerate(self.reader.segments)
                        for path, doc_id in store.document_paths(self._conns[n]) if doc_id in s.live)
        page = listed[offset:None if limit is None else offset + limit]
        rows: dict[str, dict[str, Any]] = {}
        for n in {n for _, _, n in page}:
            rows |= {d["id"]: d for d in store.documents(self._conns[n], [i for _, i, m in page if m == n])}
        return [rows[doc_id] for _, doc_id, _ in page], len(listed)
