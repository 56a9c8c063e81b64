"""The ask page (`/`, `/?q=...`) and its JSON twin (`/api/ask?q=...`): one `Pipeline.ask` each,
admitted by `Questions`, the bound on the questions the server holds. Without a question the
page is the home page: what is indexed, example questions, how to add sources."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from qa import FootnoteError, Pipeline, Result
from qa.index import Snapshot, View
from qa.records import DocumentRef
from qa.search.scope import Scope
from web import card, home, snippets

bp = Blueprint("ask", __name__)
log = logging.getLogger(__name__)


class Busy(FootnoteError):
    """The server holds as many questions as it may; `retry_after` says when to ask again."""

    status = 503
    retry_after = 1


class Questions:
    """The bound on questions: at most `limit` held at once (waiting for a turn or being
    answered), at most `running` of them answered at once; one more is refused at once (`Busy`).

    Waitress reads each request on its main thread and queues it until one of its worker
    threads is free; the app sees a request only when a worker calls it. Counted inside the app
    with as many workers as `threads`, the queue would be waitress's own, unbounded and
    invisible. So `serve` gives waitress `threads + queue_limit` workers (`web.server`): every
    held question has a worker and waits here, in the open, for one of `threads` turns, and
    `threads` workers stay for refusals, /api/health and the other pages. Waitress's
    connection_limit is set above that, so a client past the limit is answered 503 rather than
    left unaccepted. The question's time limit (`question_seconds`) starts with its turn.

    Args:
        running: questions answered at once (the `threads` setting).
        limit: questions held at once (the `queue_limit` setting).
    """

    def __init__(self, running: int, limit: int) -> None:
        self.limit = limit
        self._turns = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._held = self._running = 0

    def counts(self) -> dict[str, int]:
        """{"running", "waiting", "limit"}: read without waiting for a turn."""
        with self._lock:
            return {"running": self._running, "waiting": self._held - self._running, "limit": self.limit}

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a place, wait for a turn, and answer inside the `with` block.

        Raises:
            Busy: `limit` questions are held already.
        """
        with self._lock:
            if self._held >= self.limit:
                raise Busy(f"the server is busy with other questions (queue_limit {self.limit}); "
                           "ask again in a moment")
            self._held += 1
        try:
            with self._turns:
                with self._lock:
                    self._running += 1
                try:
                    yield
                finally:
                    with self._lock:
                        self._running -= 1
        finally:
            with self._lock:
                self._held -= 1


@bp.record_once
def _bound(state: BlueprintSetupState) -> None:
    config = state.app.extensions["footnote"].config
    state.app.extensions["footnote_questions"] = Questions(config["threads"], config["queue_limit"])
    state.app.extensions["footnote_examples"] = home.Examples(lambda q: answer(q).answered)


def pipeline() -> Pipeline:
    """The process-wide Pipeline that `create_app` attached (model and index loaded once)."""
    return current_app.extensions["footnote"]


def questions() -> Questions:
    """The app's bound on questions (built from the `threads` and `queue_limit` settings)."""
    return current_app.extensions["footnote_questions"]


def answer(question: str, scope: Scope | None = None, explain: bool = False) -> Result:
    """Ask the Pipeline once a turn comes; an unusable question is refused before it queues.

    Raises:
        Busy: the server holds `queue_limit` questions already.
        QuestionTimeout: the question took longer than `question_seconds`, its wait not counted.
        DocumentNotFound: the scope holds no indexed document.
    """
    pipeline().check_question(question)
    with questions().turn():
        return pipeline().ask(question, scope=scope, explain=explain)


def asked_within() -> Scope:
    """The sources the request asks within: `in` (paths, as /sources lists them; repeatable)
    and `document` (ids; repeatable). Empty: every document."""
    return Scope(tuple(p for p in request.args.getlist("in") if p.strip()),
                 tuple(d for d in request.args.getlist("document") if d.strip()))


@bp.app_context_processor
def limits() -> dict[str, Any]:
    """The question box enforces the same cap as the Pipeline."""
    return {"max_question_chars": pipeline().config["max_question_chars"]}


_EDGES = " \t\n\"'“”‘’.,;:!?"


def whole_sentence(c: card.Card) -> bool:
    """Whether the answer is its whole sentence (a pasted statement found): shown once, as the quote."""
    line = next((ln for ln in c.lines if ln.answer), None)
    return line is not None and not line.before.strip(_EDGES) and not line.after.strip(_EDGES)


def not_english(c: card.Card) -> list[DocumentRef]:
    """The documents the answer (or a differing answer) is drawn from whose text does not look
    English (`meta.language`, set at indexing): the English-only models read them badly."""
    lines = [*c.lines, *(ln for alt in c.conflicts for ln in alt.lines)]
    docs = {ln.evidence.document.id: ln.evidence.document for ln in lines}
    return [d for d in docs.values() if d.meta.get("language")]


def closest(result: Result) -> list[snippets.Snippet]:
    """The retrieved passages as readable snippets, sliced from the serving index's sentences."""
    def work(_: Snapshot, view: View) -> list[snippets.Snippet]:
        return snippets.build(result.question, result.passages,
                              lambda doc, first, last: [(s.start, t) for _, s, t in view.sentences(doc, first, last)])
    return pipeline().serving.reading(work)


def _home(scope: Scope) -> str:
    """The page without a question: what is indexed, a few example questions, how to add sources
    (with `in`/`document`, the question box asks within those sources)."""
    pipe = pipeline()
    page = {"question": "", "result": None, "card": None, "sources_dir": pipe.library.sources_dir, "scope": scope}
    try:
        summary = home.overview(pipe.library)
    except FootnoteError as exc:  # no usable index: the page says which command makes one
        if exc.status != 503:
            raise
        return render_template("ask.html", **page, overview=None, problem=str(exc))
    examples = current_app.extensions["footnote_examples"].of(pipe.library, summary.generation)
    return render_template("ask.html", **page, overview=summary, examples=examples)


def prepare_examples(app: Flask) -> threading.Thread:
    """Work out the home page's example questions in the background (`qa serve` does at start),
    so the first visitor does not wait for the few questions they cost; the cache's lock makes
    a visitor who comes sooner wait for this work rather than repeat it."""
    def work() -> None:
        with app.app_context():
            pipe = pipeline()
            try:
                current_app.extensions["footnote_examples"].of(pipe.library, home.overview(pipe.library).generation)
            except FootnoteError as exc:  # no index yet, or too busy: the first visit tries again
                log.info("no example questions yet: %s", exc)

    thread = threading.Thread(target=work, name="footnote-examples", daemon=True)
    thread.start()
    return thread


@bp.get("/")
def index() -> Response | str:
    """The home page; with `?q=` the question box with the answer card or the abstention
    (`&scores=1` shows the passages' retrieval scores)."""
    question = request.args.get("q")
    scope = asked_within()
    if question is None:
        return _home(scope)
    result = answer(question, scope, explain=True)  # the page's "Why this answer?" (no extra model work)
    built = card.build(result)
    resp = current_app.make_response(render_template(
        "ask.html", question=question, result=result, card=built, snippets=closest(result),
        whole=bool(built and whole_sentence(built)), not_english=not_english(built) if built else [],
        scores=request.args.get("scores") == "1", scope=scope, why=result.explanation))
    twin = url_for("ask.api", q=question, **{"in": list(scope.paths), "document": list(scope.documents)})
    resp.headers["Link"] = f'<{twin}>; rel="alternate"; type="application/json"'
    return resp


@bp.get("/api/ask")
def api() -> Response:
    """The DESIGN.md answer object; an abstention is a normal 200 with `answered: false`."""
    return jsonify(answer(request.args.get("q", ""), asked_within(), request.args.get("explain") == "1").to_dict())
