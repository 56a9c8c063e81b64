"""Changing the index from the browser: upload, remove, reindex with live progress, and their API twins.

Every changing action needs the admin token (`qa serve --admin-token` or FOOTNOTE_ADMIN_TOKEN).
The API takes it as `Authorization: Bearer <token>`; the pages exchange it once for a signed
session cookie, and every form also carries a per-session CSRF token, so another site cannot
make a signed-in browser change the index. Without a configured token these actions are off.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, request, session, url_for
from werkzeug.datastructures import FileStorage

from qa import FootnoteError
from qa.errors import UploadRejected
from web.ask import pipeline

bp = Blueprint("admin", __name__)
DISABLED = ("changing the index from the browser is disabled; start the server with "
            "`qa serve --admin-token TOKEN` (or set FOOTNOTE_ADMIN_TOKEN) to enable it")


class Unauthorized(FootnoteError):
    """No token was given where one is needed."""

    status = 401


class Forbidden(FootnoteError):
    """The token (or CSRF token) is wrong, or admin actions are disabled."""

    status = 403


def _token() -> str:
    return str(pipeline().config.get("admin_token") or "")


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _require_api_token() -> None:
    expected = _token()
    if not expected:
        raise Forbidden(DISABLED)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("this action needs the admin token: send `Authorization: Bearer <token>`")
    if not _same(header.removeprefix("Bearer ").strip(), expected):
        raise Forbidden("the admin token is wrong")


def _require_form() -> None:
    """A page action: signed-in session and the session's CSRF token in the form."""
    if not _token():
        raise Forbidden(DISABLED)
    if not session.get("admin"):
        raise Unauthorized("sign in with the admin token first")
    if not _same(request.form.get("csrf", ""), session.get("csrf", "")):
        raise Forbidden("the form is stale or came from another site (CSRF token mismatch); reload the page")


@bp.app_context_processor
def admin_state() -> dict[str, Any]:
    """What the sources page needs to show (or hide) the admin forms."""
    if session.get("admin") and "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return {"admin_enabled": bool(_token()), "admin": bool(session.get("admin")) and bool(_token()),
            "csrf": session.get("csrf", ""), "admin_disabled_message": DISABLED}


def _save(files: list[FileStorage]) -> tuple[list[str], list[tuple[str, FootnoteError]]]:
    saved, errors = [], []
    for f in files:
        try:
            saved.append(pipeline().library.add_source(f.filename or "", f.read()))
        except FootnoteError as exc:
            errors.append((f.filename or "", exc))
    return saved, errors


# ----- pages -----------------------------------------------------------------------------------

@bp.post("/sources/login")
def login() -> Response:
    """Exchange the admin token for a signed session cookie."""
    if not _token():
        raise Forbidden(DISABLED)
    if not _same(request.form.get("token", ""), _token()):
        raise Forbidden("the admin token is wrong")
    session.clear()
    session["admin"] = True
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("sources.index"))


@bp.post("/sources/logout")
def logout() -> Response:
    """Forget the session."""
    _require_form()
    session.clear()
    return redirect(url_for("sources.index"))


@bp.post("/sources/upload")
def upload() -> Response:
    """Store uploaded files in the source folder; they are searchable after the next reindex."""
    _require_form()
    saved, errors = _save(request.files.getlist("files"))
    for path in saved:
        flash(f"Saved {path}. Reindex to make it searchable.", "ok")
    for name, exc in errors:
        flash(f"Not saved: {exc}" if name in str(exc) else f"Not saved {name}: {exc}", "error")
    if not saved and not errors:
        flash("Choose one or more files to upload.", "error")
    return redirect(url_for("sources.index"))


@bp.post("/sources/<doc_id>/delete")
def delete(doc_id: str) -> Response:
    """Remove a document from the index (and its file, when it is in the source folder)."""
    _require_form()
    report = pipeline().library.delete_document(doc_id)
    flash(f"Removed {', '.join(report.removed)}.", "ok")
    return redirect(url_for("sources.index"))


@bp.post("/sources/reindex")
def reindex() -> Response:
    """Start a reindex of the source folder; the page shows its progress."""
    _require_form()
    pipeline().library.reindex_job.start()
    return redirect(url_for("sources.index") + "#reindex")


# ----- API -------------------------------------------------------------------------------------

@bp.post("/api/sources")
def api_upload() -> tuple[Response, int]:
    """Upload files (multipart field `files`); 201 when all were saved, else the first error's status."""
    _require_api_token()
    files = request.files.getlist("files")
    if not files:
        raise UploadRejected("no files: send them as multipart form field `files`")
    saved, errors = _save(files)
    body = {"saved": saved, "errors": [{"file": name, "error": str(exc)} for name, exc in errors]}
    if errors:
        body["error"] = str(errors[0][1])
    return jsonify(body), errors[0][1].status if errors else 201


@bp.delete("/api/sources/<doc_id>")
def api_delete(doc_id: str) -> Response:
    """Remove a document; answers with the indexing summary."""
    _require_api_token()
    report = pipeline().library.delete_document(doc_id)
    return jsonify({"removed": report.removed, "summary": report.summary()})


@bp.post("/api/reindex")
def api_reindex() -> tuple[Response, int]:
    """Start a reindex of the source folder (409 when one is running)."""
    _require_api_token()
    return jsonify(pipeline().library.reindex_job.start()), 202


@bp.get("/api/reindex")
def api_reindex_status() -> Response:
    """Progress of the current or last reindex: state, done/total, current file, errors by file."""
    _require_api_token()
    return jsonify(pipeline().library.reindex_job.status())


@bp.get("/sources/reindex/status")
def reindex_status() -> Response:
    """The same progress for the signed-in sources page (its script polls this)."""
    if not (_token() and session.get("admin")):
        raise Unauthorized("sign in with the admin token first")
    return jsonify(pipeline().library.reindex_job.status())
