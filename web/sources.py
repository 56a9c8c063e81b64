"""What is indexed: the sources list, the provenance view of one document, and their JSON twins.

Listings are bounded: `/sources` and `/api/sources` show `PAGE` documents at a time
(`?offset=&limit=`), `/api/documents/<id>` keeps the whole text (every offset refers to it) and
pages its sentences and references beyond `DOCUMENT_PAGE`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from qa.errors import BadRequest
from qa.library.library import DOCUMENT_PAGE, PAGE
from web import provenance
from web.ask import pipeline

bp = Blueprint("sources", __name__)


def _alternate(html: str, json_url: str) -> Response:
    """An HTML page that names its JSON twin in a `Link` header (datasette does the same)."""
    resp = current_app.make_response(html)
    resp.headers["Link"] = f'<{json_url}>; rel="alternate"; type="application/json"'
    return resp


def _page(most: int) -> tuple[int, int]:
    """`offset` and `limit` from the query string: whole numbers, the limit at most `most`."""
    try:
        offset, limit = int(request.args.get("offset", 0)), int(request.args.get("limit", most))
    except ValueError as exc:
        raise BadRequest("offset and limit must be whole numbers") from exc
    if offset < 0 or not 1 <= limit <= most:
        raise BadRequest(f"offset must be 0 or more and limit between 1 and {most}")
    return offset, limit


def _listing(endpoint: str) -> dict:
    """A page of the documents: `documents`, `total`, and the URL of the `next` page (None at the end)."""
    offset, limit = _page(PAGE)
    docs, total = pipeline().library.documents(offset, limit)
    more = offset + len(docs) < total
    return {"documents": docs, "total": total, "offset": offset,
            "next": url_for(endpoint, offset=offset + limit, limit=limit) if more else None,
            "previous": url_for(endpoint, offset=max(offset - limit, 0), limit=limit) if offset else None}


@bp.get("/sources")
def index() -> Response:
    """The indexed documents with their counts, a page at a time."""
    return page()


def page(status: int = 200, login_message: str | None = None) -> Response:
    """The sources page; the admin sign-in answers a refused token with it (`status` 403 or 429)
    so the form and its message stand where the token was typed."""
    library = pipeline().library
    html = render_template("sources.html", listing=_listing("sources.index"), reindex=library.reindex_status(),
                           fallback=pipeline().serving.fallback, upload_folder=library.sources_shown(),
                           login_message=login_message)
    resp = _alternate(html, url_for("sources.api_index", **request.args))
    resp.status_code = status
    return resp


@bp.get("/api/sources")
def api_index() -> Response:
    """The same page `qa sources --json` prints: `{"documents", "total", "next"}`."""
    return jsonify(_listing("sources.api_index"))


@bp.get("/documents/<doc_id>")
def document(doc_id: str) -> Response:
    """The provenance view: the whole document, the requested sentence highlighted by the server."""
    doc = pipeline().library.document(doc_id, limit=None)
    start = request.args.get("start", type=int)
    end = request.args.get("end", type=int)
    if start is not None and end is None:
        end = start + 1  # one offset: the sentence holding it
    view = provenance.layout(doc, start, end)
    html = render_template("document.html", doc=doc, view=view, start=start, end=end)
    return _alternate(html, url_for("sources.api_document", doc_id=doc_id))


@bp.get("/api/documents/<doc_id>")
def api_document(doc_id: str) -> Response:
    """The document: its whole clean text; its sentences with footnotes and positions and its
    references `limit` at a time from `offset` (`total` counts both, `next` is the next page)."""
    offset, limit = _page(DOCUMENT_PAGE)
    doc = pipeline().library.document(doc_id, offset, limit)
    more = offset + limit < max(doc["total"].values())
    doc["next"] = url_for("sources.api_document", doc_id=doc_id, offset=offset + limit, limit=limit) if more else None
    return jsonify(doc)
