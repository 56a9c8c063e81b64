"""What is indexed: the sources list, the provenance view of one document, and their JSON twins."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from web import provenance
from web.ask import pipeline

bp = Blueprint("sources", __name__)


def _alternate(html: str, json_url: str) -> Response:
    """An HTML page that names its JSON twin in a `Link` header (datasette does the same)."""
    resp = current_app.make_response(html)
    resp.headers["Link"] = f'<{json_url}>; rel="alternate"; type="application/json"'
    return resp


@bp.get("/sources")
def index() -> Response:
    """Every indexed document with its counts."""
    docs = pipeline().sources()
    html = render_template("sources.html", documents=docs, reindex=pipeline().reindex_job.status())
    return _alternate(html, url_for("sources.api_index"))


@bp.get("/api/sources")
def api_index() -> Response:
    """The same list `qa sources --json` prints."""
    return jsonify(pipeline().sources())


@bp.get("/documents/<doc_id>")
def document(doc_id: str) -> Response:
    """The provenance view: the whole document, the requested sentence highlighted by the server."""
    doc = pipeline().document(doc_id)
    start = request.args.get("start", type=int)
    end = request.args.get("end", type=int)
    view = provenance.layout(doc, start, end)
    html = render_template("document.html", doc=doc, view=view, start=start, end=end)
    return _alternate(html, url_for("sources.api_document", doc_id=doc_id))


@bp.get("/api/documents/<doc_id>")
def api_document(doc_id: str) -> Response:
    """The document: clean text, sentences with footnotes and positions, references."""
    return jsonify(pipeline().document(doc_id))
