"""`GET /api/health`: what this server is serving, for proxies, replicas and people."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from qa import FootnoteError
from web.ask import pipeline, questions

bp = Blueprint("health", __name__)


@bp.get("/api/health")
def health() -> tuple[Response, int]:
    """The generation serving, its size, the models loaded and the questions held; 200 when it
    can answer, 503 without a usable index (a proxy sends questions elsewhere).

    Cheap by design: it loads no model, reads the generation already open (`qa serve` opens new
    ones in the background) and does not wait for a question's turn.
    """
    pipe = pipeline()
    try:
        summary = pipe.library.summary()
    except FootnoteError as exc:  # no index, or one this Footnote cannot read: 503 like a question
        if exc.status != 503:
            raise
        summary = None
    body = {"status": "ok" if summary else "no index",
            "generation": summary["generation"] if summary else None,
            "documents": summary["documents"] if summary else 0,
            "passages": summary["passages"] if summary else 0,
            "models": pipe.models.loaded(),
            "questions": questions().counts()}
    return jsonify(body), 200 if summary else 503
