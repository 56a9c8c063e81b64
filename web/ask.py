"""The ask page (`/`, `/?q=...`) and its JSON twin (`/api/ask?q=...`): one `Pipeline.ask` each,
admitted by `Questions`, the bound on the questions the server holds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from qa import FootnoteError, Pipeline, Result
from web import card

bp = Blueprint("ask", __name__)


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


def pipeline() -> Pipeline:
    """The process-wide Pipeline that `create_app` attached (model and index loaded once)."""
    return current_app.extensions["footnote"]


def questions() -> Questions:
    """The app's bound on questions (built from the `threads` and `queue_limit` settings)."""
    return current_app.extensions["footnote_questions"]


def answer(question: str) -> Result:
    """Ask the Pipeline once a turn comes; an unusable question is refused before it queues.

    Raises:
        Busy: the server holds `queue_limit` questions already.
        QuestionTimeout: the question took longer than `question_seconds`, its wait not counted.
    """
    pipeline().check_question(question)
    with questions().turn():
        return pipeline().ask(question)


@bp.app_context_processor
def limits() -> dict[str, Any]:
    """The question box enforces the same cap as the Pipeline."""
    return {"max_question_chars": pipeline().config["max_question_chars"]}


@bp.get("/")
def index() -> Response | str:
    """The question box; with `?q=` also the answer card or the abstention."""
    question = request.args.get("q")
    if question is None:
        return render_template("ask.html", question="", result=None, card=None)
    result = answer(question)
    resp = current_app.make_response(render_template(
        "ask.html", question=question, result=result, card=card.build(result)))
    twin = url_for("ask.api", q=question)
    resp.headers["Link"] = f'<{twin}>; rel="alternate"; type="application/json"'
    return resp


@bp.get("/api/ask")
def api() -> Response:
    """The DESIGN.md answer object; an abstention is a normal 200 with `answered: false`."""
    return jsonify(answer(request.args.get("q", "")).to_dict())
