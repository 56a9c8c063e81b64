"""The one object that ties the stages together, built from a config dict.

The CLI and the web app hold one Pipeline each: it loads the model once, opens the serving
generation of the index, notices when a new generation is published, and answers questions.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from qa import answer as ans
from qa import config as cfg
from qa import index as ix
from qa import indexer, store
from qa import sources as src
from qa.documents import Answer, Conflict, DocumentRef, Evidence, Footnote, PassageHit, Result, Sentence
from qa.embed import Embedder, load_embedder
from qa.errors import (
    DocumentNotFound,
    EmptyQuery,
    FootnoteError,
    IndexChanged,
    IndexMismatch,
    IndexNotFound,
    QueryTooLong,
)
from qa.jobs import ReindexJob
from qa.reader import Reader, SpanReader, TransformersReader
from qa.rerank import Reranker
from qa.retrieve import retrieve
from qa.scoring import normalize_answer

log = logging.getLogger(__name__)
T = TypeVar("T")
WORD = re.compile(r"\w")
RERANK_FIRST = 8  # passages the cross-encoder always reads
RERANK_SURE = 4.0  # a logit this high among them is a clear match: the rest are not read
CLOSE = 1.0  # a passage this close to the top one is read too; answers this close to the best may conflict


@dataclass(frozen=True)
class Found:
    """A span the reader found, placed in its document: `start`/`end` are offsets inside
    `text`, the sentence's text. `margin` is the reader's span score minus its no-answer
    score; `rank` orders spans across passages: the margin, plus the passage's relevance
    logit, plus one for each of the question's numbers and codes the sentence holds verbatim
    (`qa.answer.verbatim_codes`)."""

    document: DocumentRef
    index: int
    sentence: Sentence
    text: str
    start: int
    end: int
    margin: float
    passage: PassageHit
    codes: int = 0

    @property
    def span(self) -> str:
        return self.text[self.start:self.end]

    @property
    def rank(self) -> float:
        return self.margin + (self.passage.relevance or 0.0) + self.codes


@dataclass(frozen=True)
class Reading:
    """A question read, before deciding whether to answer.

    `hits` has the passages the cross-encoder read, best first, then the rest in retrieval
    order; `found` the reader's spans in the top passages, best first, one a sentence;
    `signals` what the calibration weighs for the best one; `pasted` says the question is the
    best sentence itself, pasted to find its source (answered with the whole sentence).
    """

    hits: tuple[PassageHit, ...]
    found: tuple[Found, ...]
    signals: dict[str, float]
    pasted: bool = False

    @property
    def best(self) -> Found | None:
        return self.found[0] if self.found else None


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
        self._embedders: dict[str, Embedder] = {embedder.backend: embedder} if embedder else {}
        self._reranker: Reranker | None = None
        self._reader: SpanReader | None = None
        self.calibration = ans.CALIBRATION
        self._lock = threading.Lock()
        self._snapshot: ix.IndexReader | None = None
        self._follower: threading.Thread | None = None
        self.reindex_job = ReindexJob(lambda progress: self.index([str(self.sources_dir)], progress=progress))

    @property
    def sources_dir(self) -> Path:
        """Where uploads go and what the browser's reindex reads: the `sources` setting when it
        is set, else the first folder the index was built from (the manifest's roots)."""
        if self.config["sources"] != cfg.default("sources"):
            return Path(self.config["sources"])
        try:
            roots = ix.current(self.index_dir).manifest.get("roots", [])
        except FootnoteError:
            roots = []
        folders = [r for r in roots if r.endswith("/")]
        return Path(folders[0]) if folders else Path(self.config["sources"])

    @property
    def reranker(self) -> Reranker:
        """The cross-encoder, loaded on first use and then shared."""
        with self._lock:
            if self._reranker is None:
                self._reranker = Reranker()
            return self._reranker

    @property
    def reader(self) -> SpanReader:
        """The span reader (the shipped one, or the `reader` setting's folder), loaded on first use."""
        with self._lock:
            if self._reader is None:
                path = self.config["reader"]
                self._reader = TransformersReader(Path(path)) if path else Reader()
            return self._reader

    @property
    def embedder(self) -> Embedder:
        """The model as the index was encoded with it (the `encoder` setting when there is no
        index yet), loaded on first use and then shared: a question must be embedded by the
        backend that embedded the passages."""
        return self._embedder_for(self.index_backend() or self.config["encoder"])

    def index_backend(self) -> str | None:
        """The encoder backend of the serving generation (None when nothing is published)."""
        try:
            return ix.encoder_backend(ix.current(self.index_dir).manifest)
        except (IndexNotFound, IndexMismatch):
            return None

    def embedder_of(self, snap: ix.IndexReader) -> Embedder:
        """The embedder for questions to this generation: the backend that encoded its passages."""
        return self._embedder_for(ix.encoder_backend(snap.generation.manifest))

    def _embedder_for(self, backend: str) -> Embedder:
        with self._lock:
            if backend not in self._embedders:
                self._embedders[backend] = load_embedder(self.config["model"], backend, self.config["encoder_threads"])
            return self._embedders[backend]

    def index(self, paths: Iterable[str] = ("sources",), rebuild: bool = False,
              progress: indexer.Progress | None = None, remove: Iterable[str] = ()) -> indexer.Report:
        """Build or update the index from files and folders (see `qa.indexer.build`); an update
        encodes with the index's backend, a rebuild with the `encoder` setting's."""
        embedder = self._embedder_for(self.config["encoder"]) if rebuild else self.embedder
        return indexer.build(paths, self.index_dir, embedder, self.config, rebuild, progress, remove)

    def remove(self, paths: Iterable[str]) -> indexer.Report:
        """Drop the documents indexed from these paths (the files themselves are left alone)."""
        return self.index([], remove=[os.path.abspath(p) for p in paths])

    def snapshot(self) -> ix.IndexReader:
        """The serving generation, reopened when a newer one has been published.

        While `follow` runs, a request takes the generation already open and the background
        thread opens the next one; otherwise the request that notices a new one opens it.
        """
        snap = self._snapshot
        if snap is not None and (self._follower is not None
                                 or snap.generation.path.name == ix.current_name(self.index_dir)):
            return snap
        return self._open_current()

    def _open_current(self) -> ix.IndexReader:
        name = ix.current_name(self.index_dir)
        with self._lock:
            if self._snapshot is None or self._snapshot.generation.path.name != name:
                gen = ix.current(self.index_dir, self.config["model"])
                self._snapshot = ix.IndexReader(gen)
                log.info("serving generation %s", gen.path.name)
                backend = ix.encoder_backend(gen.manifest)
                if backend != self.config["encoder"]:
                    log.warning("the index at %s/ was encoded with the %s backend, the encoder setting says %s: "
                                "questions are embedded with %s (`qa index --rebuild` switches)", self.index_dir,
                                backend, self.config["encoder"], backend)
                if gen.manifest.get("calibration") != self.calibration.version:
                    log.warning("the index was built with calibration %s, this Footnote answers with %s: "
                                "answer confidences may be off until `qa index --rebuild`",
                                gen.manifest.get("calibration"), self.calibration.version)
            return self._snapshot

    def follow(self, interval: float = 0.25) -> None:
        """Open each newly published generation in a background thread (`qa serve`), so no
        request pays for loading it; requests keep the open one until the new one is ready."""
        if self._follower is not None:
            return

        def run() -> None:
            while True:
                time.sleep(interval)
                name = ix.current_name(self.index_dir)
                snap = self._snapshot
                if name and (snap is None or snap.generation.path.name != name):
                    try:
                        self._open_current()
                    except FootnoteError as exc:  # no usable index yet: requests say so
                        log.debug("not following %s: %s", name, exc)

        self._follower = threading.Thread(target=run, name="follow-generations", daemon=True)
        self._follower.start()

    def reading(self, work: Callable[[ix.IndexReader, ix.View], T]) -> T:
        """Run `work(reader, view)` on the serving generation. A merge removes the segments no
        kept generation uses, so a request that picked a generation just before two publishes
        can find its files gone (`IndexChanged`): it runs once more on the newest."""
        try:
            snap = self.snapshot()
            with snap.view() as view:
                return work(snap, view)
        except IndexChanged:
            with self._lock:
                self._snapshot = None
            snap = self.snapshot()
            with snap.view() as view:
                return work(snap, view)

    def check_question(self, question: str) -> str:
        q = " ".join((question or "").split())
        if not q:
            raise EmptyQuery("the question is empty; type a question or paste a statement to check")
        if not WORD.search(q):
            raise EmptyQuery("the question has no words (only punctuation, symbols or invisible characters); "
                             "type a question or paste a statement to check")
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
        reranker, _ = self.reranker, self.reader  # loaded before the clock starts

        def work(snap: ix.IndexReader, view: ix.View) -> Result:
            embedder = self.embedder_of(snap)
            t0 = time.perf_counter()
            hits, rows = self._retrieve(view, snap, embedder, q)
            t1 = time.perf_counter()
            reading = self._read(view, reranker, q, hits, rows)
            answer = self._answer(view, q, reading)
            t2 = time.perf_counter()
            timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
            return Result(q, answer, reading.hits[: self.config["top_k"]], timings, str(self.index_dir.resolve()),
                          snap.generation.path.name)

        self.embedder_of(self.snapshot())  # loaded before the clock starts
        return self.reading(work)

    def read(self, question: str) -> Reading:
        """Retrieve and read a question without deciding whether to answer: the spans and the
        abstention signals of the best, which `scripts/calibrate.py` fits the calibration on."""
        q = self.check_question(question)

        def work(snap: ix.IndexReader, view: ix.View) -> Reading:
            hits, rows = self._retrieve(view, snap, self.embedder_of(snap), q)
            return self._read(view, self.reranker, q, hits, rows)

        return self.reading(work)

    def _retrieve(self, view: ix.View, snap: ix.IndexReader, embedder: Embedder, question: str):
        qvec = embedder.encode([question])[0]
        cands = retrieve(question, qvec, snap, view, self.config["candidates"],
                         max(2 * self.config["top_k"], self.config["rerank_passages"], self.config["answer_passages"]))
        rows = view.passages([c.id for c in cands])
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

    def _read(self, view: ix.View, reranker: Reranker, question: str, hits: tuple[PassageHit, ...], rows) -> Reading:
        """Rerank the passages, then let the span reader read the top `answer_passages` of them
        (and the next while within CLOSE of the top one) in windows of whole sentences.

        The evidence is the sentence that holds the best span, so an answer in the sentence
        after the one that repeats the question's words is found where it is. A question that
        is one of those sentences, pasted, is answered with that sentence and not read."""
        hits = self._rerank(reranker, question, hits)
        n = self.config["answer_passages"]
        top = hits[0].relevance if hits and hits[0].relevance is not None else 0.0
        read = [h for rank, h in enumerate(hits[:n + 1])
                if rank < n or (h.relevance is not None and top - h.relevance <= CLOSE)]
        sentences = {(p, idx): (hit, sent, text) for p, hit in enumerate(read) for idx, sent, text in
                     view.sentences(hit.document.id, rows[hit.id]["first_sentence"],
                                     rows[hit.id]["last_sentence"])}
        for (_, idx), (hit, sent, text) in sentences.items():
            if ans.pasted(question, text):
                found = Found(hit.document, idx, sent, text, 0, len(text), 0.0, hit)
                return Reading(hits, (found,), self._signals(view, reranker, question, found), pasted=True)
        reader = self.reader
        windows = []
        for p in range(len(read)):
            keys = [k for k in sentences if k[0] == p]
            windows += reader.tokens.windows(question, [sentences[k][2] for k in keys], keys)
        by_sentence: dict[tuple[str, int], Found] = {}
        for span in reader.read(question, windows):
            hit, sent, text = sentences[span.key]
            found = Found(hit.document, span.key[1], sent, text, span.start, span.end, span.margin, hit,
                          ans.verbatim_codes(question, text))
            key = (hit.document.id, found.index)
            if key not in by_sentence or found.rank > by_sentence[key].rank:
                by_sentence[key] = found
        ranked = tuple(sorted(by_sentence.values(), key=lambda f: -f.rank))
        if not ranked:
            return Reading(hits, (), {})
        return Reading(hits, ranked, self._signals(view, reranker, question, ranked[0]))

    @staticmethod
    def _signals(view: ix.View, reranker: Reranker, question: str, found: Found) -> dict[str, float]:
        """The abstention signals of a span: its sentence read by the cross-encoder after the
        document's title (which names the topic a sentence mid-article leaves implicit), its
        passage's relevance, the reader's margin, and the question's words the text lacks."""
        doc = found.document
        titled = f"{doc.title}. {found.text}" if doc.title else found.text
        [(_, _, lead)] = view.sentences(doc.id, 0, 0)
        return ans.evidence_signals(question, found.text, float(reranker.score(question, [titled])[0]),
                                    found.passage.text, found.passage.relevance or 0.0, f"{doc.title} {lead}",
                                    margin=found.margin)

    def _answer(self, view: ix.View, question: str, reading: Reading) -> Answer | None:
        """The best span as the answer, or None when its confidence is below `min_support`.

        `evidence[0]` is the sentence holding the span; context sentences follow (`_context`)."""
        best = reading.best
        if best is None:
            return None
        score = 1.0 if reading.pasted else self.calibration.confidence(reading.signals)
        if score < self.config["min_support"]:
            return None
        evidence = [self._evidence(view, best.document, best.index, score)]
        if not reading.pasted:
            evidence += [self._evidence(view, best.document, i, score, context=True)
                         for i in self._context(view, question, best)]
        start = best.sentence.start + best.start
        return Answer(best.span, score, tuple(evidence), start, start + len(best.span),
                      self._conflicts(view, question, reading))

    @staticmethod
    def _context(view: ix.View, question: str, best: Found) -> list[int]:
        """Sentences shown with the answer's, flagged `context`: the one before when the answer's
        sentence leans on it ("This forced the company ..."); and the one after when that one
        leans on the answer's and names more of what was asked, at least half of it ("Traffic on
        the canal fell by half. This forced the company to cut its tolls in 1851." for "Why did
        the company cut its tolls in 1851?")."""
        out = []
        if best.index > 0 and ans.needs_previous(best.text):
            out.append(best.index - 1)
        after = view.sentences(best.document.id, best.index + 1, best.index + 1)
        if after and ans.needs_previous(after[0][2]):
            asked = ans.content_words(question)
            named = len(asked & ans.content_words(after[0][2]))
            if named >= 0.5 * len(asked) and named > len(asked & ans.content_words(best.text)):
                out.append(best.index + 1)
        return out

    def _conflicts(self, view: ix.View, question: str, reading: Reading) -> tuple[Conflict, ...]:
        """Spans of other documents that disagree with the best one: of the same kind (date,
        number, name), different after SQuAD normalisation, within CLOSE of its reader margin
        and themselves above `min_support`."""
        best = reading.best
        kind = ans.span_kind(best.span) if best and not reading.pasted else None
        if kind is None:
            return ()
        seen, out = {normalize_answer(best.span)}, []
        for f in reading.found[1:]:
            if (f.document.id == best.document.id or abs(best.margin - f.margin) > CLOSE
                    or ans.span_kind(f.span) != kind or normalize_answer(f.span) in seen):
                continue
            score = self.calibration.confidence(self._signals(view, self.reranker, question, f))
            if score >= self.config["min_support"]:
                seen.add(normalize_answer(f.span))
                start = f.sentence.start + f.start
                out.append(Conflict(f.span, score, (self._evidence(view, f.document, f.index, score),),
                                    start, start + len(f.span)))
        return tuple(out)

    def _evidence(self, view: ix.View, doc, idx: int, score: float, context: bool = False) -> Evidence:
        [(_, sent, text)] = view.sentences(doc.id, idx, idx)
        notes = tuple(Footnote(c.marker, c.locator, ref) for c, ref in view.citations(doc.id, [idx]))
        return Evidence(text, doc, sent.start, sent.end, notes, score, sent.page, sent.section, context)

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
        doc = self.reading(lambda _, view: view.document(doc_id))
        if doc is None:
            raise DocumentNotFound(f"no indexed document has id {doc_id!r}")
        report = self.index([], remove=[doc.source])  # the index first: if that fails, the file stays
        src.delete_source(self.sources_dir, doc.source)  # a file indexed from elsewhere stays on disk
        return report

    def summary(self) -> dict[str, Any]:
        """What the serving generation holds: counts, backends, and its segments with the kind
        of FAISS index each searches with."""
        snap = self.snapshot()
        m = snap.generation.manifest
        return {"generation": snap.generation.path.name, "documents": m["documents"], "passages": m["passages"],
                "model": m["model"], "encoder": ix.encoder_backend(m),
                "segments": [{"name": s.name, "kind": s.kind, "passages": s.passages, "deleted": len(s.deleted)}
                             for s in snap.segments]}

    def sources(self) -> list[dict[str, Any]]:
        """Every indexed document with its counts."""
        return self.reading(lambda _, view: view.documents())

    def document(self, doc_id: str) -> dict[str, Any]:
        """One document: its clean text, sentences with footnotes, and references.

        Raises:
            DocumentNotFound: no document has that id.
        """
        def work(_: ix.IndexReader, view: ix.View) -> dict[str, Any]:
            doc = view.document(doc_id)
            if doc is None:
                raise DocumentNotFound(f"no indexed document has id {doc_id!r}")
            sents = view.sentences(doc_id, 0, 1 << 30)
            notes: dict[int, list[dict[str, Any]]] = {}
            for c, ref in view.citations(doc_id):
                notes.setdefault(c.sentence, []).append(
                    {**Footnote(c.marker, c.locator, ref).to_dict(), "position": c.position})
            return {
                **doc.ref.to_dict(), "format": doc.format, "text": doc.text, "indexed_at": doc.indexed_at,
                "meta": doc.ref.meta,
                "sentences": [{"index": i, "start": s.start, "end": s.end, "page": s.page, "section": s.section,
                               "footnotes": notes.get(i, [])} for i, s, _ in sents],
                "references": [r.to_dict() for r in view.references(doc_id)],
            }

        return self.reading(work)
