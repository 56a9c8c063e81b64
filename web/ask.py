"""The ask page (`/`, `/?q=...`) and its JSON twin (`/api/ask?q=...`): one `Pipeline.ask` each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from qa import Pipeline
from web import card

bp = Blueprint("ask", __name__)


def pipeline() -> Pipeline:
    """The process-wide Pipeline that `create_app` attached (model and index loaded once)."""
    return current_app.extensions["footnote"]


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
    result = pipeline().ask(question)
    resp = current_app.make_response(render_template(
        "ask.html", question=question, result=result, card=card.build(result)))
    twin = url_for("ask.api", q=question)
    resp.headers["Link"] = f'<{twin}>; rel="alternate"; type="application/json"'
    return resp


@bp.get("/api/ask")
def api() -> Response:
    """The DESIGN.md answer object; an abstention is a normal 200 with `answered: false`."""
    return jsonify(pipeline().ask(request.args.get("q", "")).to_dict())
