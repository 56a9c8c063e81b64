"""The one object the CLI, the web app and `qa eval` hold: it builds Footnote's parts from
config and runs a question through them.

    question -> Searcher (qa.search: dense + lexical, fused, reranked)
             -> Reader   (qa.read: sentence, span, abstention, conflicts)  -> Result
    sources  -> Library  (qa.library: index, remove, uploads, jobs, listings)

Each part gets its options here, from the settings (`qa.config`, where the defaults are); the
models are loaded on first use and shared between the parts (`Models`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from qa import config as cfg
from qa.errors import BadRequest, EmptyQuery, QueryTooLong, QuestionTimeout
from qa.index import Generation, Snapshot, View, backend, encoder_backend, is_postgres, where
from qa.library.library import Library
from qa.models.encoder import Embedder, load_embedder
from qa.read.reader import Reader, Reading
from qa.read.signals import CALIBRATION
from qa.read.spans import OnnxSpanModel, SpanModel, TransformersSpanModel
from qa.records import Result
from qa.search.rerank import CrossEncoder, folder_for
from qa.search.scope import Scope
from qa.search.searcher import Searcher

log = logging.getLogger(__name__)
WORD = re.compile(r"\w")
SURROGATE = re.compile("[\ud800-\udfff]")


class Models:
    """The networks, each loaded on first use and then shared: the encoder of each backend
    (questions must be embedded by the backend that embedded the passages), the cross-encoder
    and the span model."""

    def __init__(self, config: dict[str, Any], embedder: Embedder | None = None) -> None:
        self.config = config
        self._embedders: dict[str, Embedder] = {embedder.backend: embedder} if embedder else {}
        self._cross: CrossEncoder | None = None
        self._span: SpanModel | None = None
        self._lock = threading.Lock()

    def embedder(self, backend: str) -> Embedder:
        with self._lock:
            if backend not in self._embedders:
                self._embedders[backend] = load_embedder(self.config["model"], backend, self.config["encoder_threads"])
            return self._embedders[backend]

    def cross_encoder(self) -> CrossEncoder:
        with self._lock:
            if self._cross is None:
                self._cross = CrossEncoder(folder_for(self.config["reranker"]))
            return self._cross

    def loaded(self) -> dict[str, bool]:
        """Which networks are loaded now (asking does not load them; `/api/health` reports it)."""
        return {"encoder": bool(self._embedders), "cross_encoder": self._cross is not None,
                "span_model": self._span is not None}

    def span_model(self) -> SpanModel:
        """The shipped span model, or the `reader` setting's folder: one `scripts/train_reader.py`
        wrote (`model.onnx`), or a Hugging Face question-answering model."""
        with self._lock:
            if self._span is None:
                path = Path(self.config["reader"]) if self.config["reader"] else None
                if path is None or (path / "model.onnx").is_file():
                    self._span = OnnxSpanModel(path)
                else:
                    self._span = TransformersSpanModel(path)
            return self._span


class Pipeline:
    """Footnote built from settings.

    Args:
        config: settings as returned by `qa.config.load` (missing ones take their defaults).
        embedder: an already loaded encoder to share (tests load it once per session).
    """

    def __init__(self, config: dict[str, Any] | None = None, embedder: Embedder | None = None) -> None:
        c = self.config = {**cfg.load(config_file=None, environ={}), **(config or {})}
        # a folder, or a PostgreSQL DSN (`qa.index.backend` picks the implementation)
        self.index_dir = c["index"] if is_postgres(c["index"]) else Path(c["index"])
        self.models = Models(c, embedder)
        self.serving = backend(self.index_dir).Serving(self.index_dir, c["model"], on_open=self._check_generation)
        self.searcher = Searcher(self.models.cross_encoder, c["candidates"],
                                 max(2 * c["top_k"], c["rerank_passages"], c["answer_passages"]), c["rerank_passages"])
        self.reader = Reader(self.models.span_model, self.models.cross_encoder, c["answer_passages"],
                             c["min_support"], CALIBRATION)
        self.library = Library(self.serving, c, self.models.embedder, cfg.default("sources"))

    @property
    def embedder(self) -> Embedder:
        """The encoder of the serving index's backend (the `encoder` setting's when there is no
        index yet)."""
        return self.models.embedder(self.library.backend() or self.config["encoder"])

    def embedder_of(self, snap: Snapshot) -> Embedder:
        """The encoder for questions to this generation: the backend that encoded its passages."""
        return self.models.embedder(encoder_backend(snap.generation.manifest))

    def warm_up(self) -> None:
        """Load the models questions need, so the first question does not wait for them."""
        self.embedder  # noqa: B018 - loads it
        self.models.cross_encoder()
        self.models.span_model()

    def check_question(self, question: str) -> str:
        """The question with its whitespace collapsed, or an error saying why it cannot be asked."""
        q = " ".join((question or "").split())
        if SURROGATE.search(q):  # bytes that were not UTF-8, as Python decodes a command line
            raise BadRequest("the question is not valid UTF-8 text; check the terminal's encoding")
        if not q:
            raise EmptyQuery("the question is empty; type a question or paste a statement to check")
        if not WORD.search(q):
            raise EmptyQuery("the question has no words (only punctuation, symbols or invisible characters); "
                             "type a question or paste a statement to check")
        limit = self.config["max_question_chars"]
        if len(q) > limit:
            raise QueryTooLong(f"the question is {len(q)} characters long; the limit is {limit}")
        return q

    def ask(self, question: str, seconds: float | None = None, scope: Scope | None = None,
            explain: bool = False) -> Result:
        """Answer a question from the sources, or abstain.

        Args:
            question: the question, or a statement to find the source of.
            seconds: the longest search and reading may take (default: the `question_seconds`
                setting). Threads cannot be stopped, so the stages check it between them
                (search, rerank batches, reading, answering) and a late one stops at the next.
            scope: answer only from these documents (`qa.search.scope`); None: from all.
            explain: add why it was answered or not (`Result.explanation`).

        Raises:
            EmptyQuery, QueryTooLong: the question is not usable.
            IndexNotFound, IndexMismatch: there is no usable index.
            DocumentNotFound: the scope holds no indexed document.
            QuestionTimeout: the question took longer than `seconds`.
        """
        q = self.check_question(question)
        self.models.cross_encoder(), self.models.span_model()  # loaded before the clock starts
        self.embedder_of(self.serving.snapshot())
        limit = self.config["question_seconds"] if seconds is None else seconds
        deadline = time.monotonic() + limit

        def check() -> None:
            if time.monotonic() > deadline:
                raise QuestionTimeout(f"the question took longer than {limit:g} s to answer; try a shorter or "
                                      "more specific question")

        def work(snap: Snapshot, view: View) -> Result:
            t0 = time.perf_counter()
            hits = self.searcher.search(snap, view, self.embedder_of(snap), q, check, scope)
            t1 = time.perf_counter()
            reading = self.reader.read(view, q, hits, check)
            check()
            answer = self.reader.answer(view, q, reading)
            t2 = time.perf_counter()
            timings = {"retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
            return Result(q, answer, reading.hits[: self.config["top_k"]], timings, where(self.index_dir),
                          snap.generation.path.name, self.reader.explain(q, reading, answer) if explain else None)

        return self.serving.reading(work)

    def read(self, question: str) -> Reading:
        """Search and read a question without deciding whether to answer: the spans and the
        abstention signals of the best, which `scripts/calibrate.py` fits the calibration on."""
        q = self.check_question(question)

        def work(snap: Snapshot, view: View) -> Reading:
            return self.reader.read(view, q, self.searcher.search(snap, view, self.embedder_of(snap), q))

        return self.serving.reading(work)

    def _check_generation(self, gen: Generation) -> None:
        """Warn when a newly opened generation was built other than these settings say."""
        backend = encoder_backend(gen.manifest)
        if backend != self.config["encoder"]:
            log.warning("the index at %s/ was encoded with the %s backend, the encoder setting says %s: "
                        "questions are embedded with %s (`qa index --rebuild` switches)", self.index_dir,
                        backend, self.config["encoder"], backend)
        if gen.manifest.get("calibration") != self.reader.calibration.version:
            log.warning("the index was built with calibration %s, this Footnote answers with %s: "
                        "answer confidences may be off until `qa index --rebuild`",
                        gen.manifest.get("calibration"), self.reader.calibration.version)
