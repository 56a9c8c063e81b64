"""The one object that ties the stages together, built from a config dict.

The CLI and the web app hold one Pipeline each: it loads the model once, opens the serving
generation of the index, notices when a new generation is published, and answers questions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa import answer as ans
from qa import config as cfg
from qa import index as ix
from qa import indexer, store
from qa import sources as src
from qa.documents import Answer, DocumentRef, Evidence, Footnote, PassageHit, Result, Sentence
from qa.embed import Embedder
from qa.errors import DocumentNotFound, EmptyQuery, QueryTooLong
from qa.jobs import ReindexJob
from qa.rerank import Reranker
from qa.retrieve import retrieve

log = logging.getLogger(__name__)
RERANK_FIRST = 8  # passages the cross-encoder always reads
RERANK_SURE = 4.0  # a logit this high among them is a clear match: the rest are not read
CLOSE = 1.0  # a passage within this many logits of the top one is read for the evidence too


@dataclass(frozen=True)
class Snapshot:
    """A generation opened for reading: its manifest and its vectors."""

    generation: ix.Generation
    vectors: faiss.Index


@dataclass(frozen=True)
class Reading:
    """The cross-encoder's reading of a question's top passages, before deciding to answer.

    `hits` has the passages the cross-encoder read, best first, then the rest in retrieval
    order; `best` is the best sentence of the top `answer_passages` with its document and
    offsets (None when they hold no sentence); `signals` are what `qa.answer.confidence` weighs.
    """

    hits: tuple[PassageHit, ...]
    best: ans.Scored | None
    document: DocumentRef | None
    sentence: Sentence | None
    signals: dict[str, float]


def distinct(hits: tuple[PassageHit, ...]) -> tuple[PassageHit, ...]:
    """Drop a passage that shares text with a better-ranked one of the same document.

    Neighbouring passages of one paragraph share a sentence (`chunk_overlap`); listing both
    shows the same words twice and pushes another paragraph out of the top k (on the public
    SQuAD 2.0 subset, recall@5 0.938 -> 0.944).
    """
    kept: list[PassageHit] = []
    for h in hits:
        if not any(k.document.id == h.document.id and k.start < h.end and h.start < k.end for k in kept):
            kept.append(h)
    return tuple(kept)


class Pipeline:
    """Index sources and answer questions over them.

    Args:
        config: settings as returned by `qa.config.load` (missing ones take their defaults).
        embedder: an already loaded model to share (tests load it once per session).
    """

    def __init__(self, config: dict[str, Any] | None = None, embedder: Embedder | None = None) -> None:
        self.config = {**cfg.load(config_file=None, environ={}), **(config or {})}
        self.index_dir = Path(self.config["index"])
        self._embedder = embedder
        self._reranker: Reranker | None = None
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self.sources_dir = Path(self.config["sources"])
        self.reindex_job = ReindexJob(lambda progress: self.index([str(self.sources_dir)], progress=progress))

    @property
    def reranker(self) -> Reranker:
        """The cross-encoder, loaded on first use and then shared."""
        with self._lock:
            if self._reranker is None:
                self._reranker = Reranker()
            return self._reranker

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use and then shared."""
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.config["model"])
            return self._embedder

    def index(self, paths: Iterable[str] = ("sources",), rebuild: bool = False,
              progress: indexer.Progress | None = None, remove: Iterable[str] = ()) -> indexer.Report:
        """Build or update the index from files and folders (see `qa.indexer.build`)."""
        return indexer.build(paths, self.index_dir, self.embedder, self.config, rebuild, progress, remove)

    def remove(self, paths: Iterable[str]) -> indexer.Report:
        """Drop the documents indexed from these paths (the files themselves are left alone)."""
        return self.index([], remove=[indexer.display_path(Path(p)) for p in paths])

    def snapshot(self) -> Snapshot:
        """The serving generation, reopened when a newer one has been published."""
        name = ix.current_name(self.index_dir)
        snap = self._snapshot
        if snap is not None and snap.generation.path.name == name:
            return snap
        with self._lock:
            if self._snapshot is None or self._snapshot.generation.path.name != name:
                gen = ix.current(self.index_dir, self.config["model"])
                self._snapshot = Snapshot(gen, ix.load_vectors(gen))
                log.info("serving generation %s", gen.path.name)
            return self._snapshot

    def connect(self, snap: Snapshot | None = None):
        """A read-only connection to a generation's store (callers close it)."""
        snap = snap or self.snapshot()
        return store.connect(str(snap.generation.store_path), readonly=True)

    def check_question(self, question: str) -> str:
        q = " ".join((question or "").split())
        if not q:
            raise EmptyQuery("the question is empty; type a question or paste a statement to check")
        limit = self.config["max_question_chars"]
        if len(q) > limit:
            raise QueryTooLong(f"the question is {len(q)} characters long; the limit is {limit}")
        return q

    def ask(self, question: str) -> Result:
        """Answer a question from the sources, or abstain.

        Raises:
            EmptyQuery, QueryTooLong: the question is not usable.
            IndexNotFound, IndexMismatch: there is no usable index.
        """
        q = self.check_question(question)
        snap = self.snapshot()
        embedder, reranker = self.embedder, self.reranker  # loaded before the clock starts
        t0 = time.perf_counter()
        conn = self.connect(snap)
        try:
            hits, rows = self._retrieve(conn, snap, embedder, q)
            t1 = time.perf_counter()
            reading = self._read(conn, reranker, q, hits, rows)
            answer = self._answer(conn, q, reading)
        finally:
            conn.close()
        t2 = time.perf_counter()
        timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
        return Result(q, answer, reading.hits[: self.config["top_k"]], timings)

    def read(self, question: str) -> Reading:
        """Retrieve and read a question without deciding whether to answer: the abstention signals
        for the best sentence, which `scripts/calibrate.py` fits the abstention weights on."""
        q = self.check_question(question)
        snap = self.snapshot()
        conn = self.connect(snap)
        try:
            hits, rows = self._retrieve(conn, snap, self.embedder, q)
            return self._read(conn, self.reranker, q, hits, rows)
        finally:
            conn.close()

    def _retrieve(self, conn, snap: Snapshot, embedder: Embedder, question: str):
        qvec = embedder.encode([question])[0]
        cands = retrieve(question, qvec, snap.vectors, conn, self.config["candidates"],
                         max(2 * self.config["top_k"], self.config["rerank_passages"], self.config["answer_passages"]))
        rows = store.passages(conn, [c.id for c in cands])
        hits = tuple(PassageHit(c.id, store.document_ref(rows[c.id]), rows[c.id]["text"], c.score,
                                rows[c.id]["start"], rows[c.id]["end"]) for c in cands if c.id in rows)
        return hits, rows

    def _rerank(self, reranker: Reranker, question: str, hits: tuple[PassageHit, ...]) -> tuple[PassageHit, ...]:
        """Order the first `rerank_passages` hits by the cross-encoder reading each whole passage.

        Ranking passages is the task the model was trained for, and on the public SQuAD 2.0
        subset it lifts recall@1 of the fused retrievers from 0.78 to 0.90. It costs about 10 ms
        a passage here, so the first RERANK_FIRST are always read and the rest only when none of
        those scores a clear match (RERANK_SURE): about 12 passages a question on average.
        """
        n = min(self.config["rerank_passages"], len(hits))
        first = min(RERANK_FIRST, n)
        scores = reranker.score(question, [h.text for h in hits[:first]])
        if n > first and (first == 0 or float(scores.max()) < RERANK_SURE):
            scores = np.concatenate([scores, reranker.score(question, [h.text for h in hits[first:n]])])
        read = sorted((replace(h, relevance=float(r)) for h, r in zip(hits, scores, strict=False)),
                      key=lambda h: -h.relevance)
        return distinct(tuple(read) + hits[len(scores):])

    def _read(self, conn, reranker: Reranker, question: str, hits: tuple[PassageHit, ...], rows) -> Reading:
        """Rerank the passages, then read the sentences of the top one with the cross-encoder to
        choose the evidence sentence; and of the next ones (up to `answer_passages`) while they
        score within CLOSE of it.

        Two near-equal passages are where a whole-passage score can be wrong about which holds
        the answer ("station 3-5" against one full of "5-3" and "5-5"); their sentences then
        compete. On the public SQuAD files this reads 1.1 passages a question on average and
        picks the answer sentence as often or slightly more often (+0.1 and +0.8 points) than
        reading the top passage alone."""
        hits = self._rerank(reranker, question, hits)
        cands: list[ans.Candidate] = []
        info = {}
        for rank, hit in enumerate(hits[: self.config["answer_passages"]]):
            if rank and (hit.relevance is None or (hits[0].relevance or 0.0) - hit.relevance > CLOSE):
                break
            row = rows[hit.id]
            for idx, sent, text in store.sentences(conn, hit.document.id, row["first_sentence"], row["last_sentence"]):
                key = (hit.document.id, idx)
                if key not in info:
                    cands.append(ans.Candidate(key, text, rank, hit.relevance or 0.0))
                    info[key] = (hit.document, sent)
        if not cands:
            return Reading(hits, None, None, None, {})
        # Each sentence is read after its document's title, which names the topic a sentence in
        # the middle of an article leaves implicit: on the public SQuAD 2.0 subset the answer
        # sentence of the right passage is picked 0.90 of the time this way, 0.875 without.
        titled = [f"{info[c.key][0].title}. {c.text}" if info[c.key][0].title else c.text for c in cands]
        best = ans.rank_sentences(question, cands, reranker.score(question, titled))[0]
        top = hits[best.passage_rank]
        [(_, _, lead)] = store.sentences(conn, top.document.id, 0, 0)
        signals = ans.evidence_signals(question, best.text, best.relevance, top.text, best.passage_relevance,
                                       f"{top.document.title} {lead}")
        return Reading(hits, best, *info[best.key], signals)

    def _answer(self, conn, question: str, reading: Reading) -> Answer | None:
        """The answer from the best sentence, or None when confidence is below `min_support`."""
        best, doc, sent = reading.best, reading.document, reading.sentence
        if best is None or doc is None or sent is None:
            return None
        score = ans.confidence(reading.signals)
        if score < self.config["min_support"]:
            return None
        keys = [best.key]
        if ans.needs_previous(best.text) and best.key[1] > 0:
            keys.insert(0, (best.key[0], best.key[1] - 1))
        evidence = tuple(self._evidence(conn, doc, k[1], score) for k in keys)
        span = ans.short_span(question, best.text)
        start, end = (sent.start + span[0], sent.start + span[1]) if span else (sent.start, sent.end)
        text = best.text[span[0]:span[1]] if span else best.text
        return Answer(text, score, evidence, start, end)

    def _evidence(self, conn, doc, idx: int, score: float) -> Evidence:
        [(_, sent, text)] = store.sentences(conn, doc.id, idx, idx)
        notes = tuple(Footnote(c.marker, c.locator, ref) for c, ref in store.citations(conn, doc.id, [idx]))
        return Evidence(text, doc, sent.start, sent.end, notes, score, sent.page, sent.section)

    def add_source(self, filename: str, data: bytes) -> str:
        """Store an uploaded file in the source folder after checking it parses; returns its path.

        It is searchable after the next reindex (see `reindex_job`).
        """
        path = src.save_upload(self.sources_dir, filename, data, int(self.config["upload_max_mb"] * 2**20))
        return indexer.display_path(path)

    def delete_document(self, doc_id: str) -> indexer.Report:
        """Drop a document from the index, and its file when it lies in the source folder.

        Raises:
            DocumentNotFound: no document has that id.
        """
        path = self.document(doc_id)["path"]
        src.delete_source(self.sources_dir, path)  # a file indexed from elsewhere stays on disk
        return self.index([], remove=[path])

    def sources(self) -> list[dict[str, Any]]:
        """Every indexed document with its counts."""
        conn = self.connect()
        try:
            return store.documents(conn)
        finally:
            conn.close()

    def document(self, doc_id: str) -> dict[str, Any]:
        """One document: its clean text, sentences with footnotes, and references.

        Raises:
            DocumentNotFound: no document has that id.
        """
        conn = self.connect()
        try:
            doc = store.document(conn, doc_id)
            if doc is None:
                raise DocumentNotFound(f"no indexed document has id {doc_id!r}")
            sents = store.sentences(conn, doc_id, 0, 1 << 30)
            notes: dict[int, list[dict[str, Any]]] = {}
            for c, ref in store.citations(conn, doc_id):
                notes.setdefault(c.sentence, []).append(
                    {**Footnote(c.marker, c.locator, ref).to_dict(), "position": c.position})
            return {
                **doc.ref.to_dict(), "format": doc.format, "text": doc.text, "indexed_at": doc.indexed_at,
                "meta": doc.ref.meta,
                "sentences": [{"index": i, "start": s.start, "end": s.end, "page": s.page, "section": s.section,
                               "footnotes": notes.get(i, [])} for i, s, _ in sents],
                "references": [r.to_dict() for r in store.references(conn, doc_id)],
            }
        finally:
            conn.close()
