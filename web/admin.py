"""Changing the index from the browser: upload, remove, reindex with live progress, and their API twins.

Every changing action needs the admin token (FOOTNOTE_ADMIN_TOKEN, `qa serve --admin-token-file`,
or `--admin-token`, which `ps` shows), at least 16 characters. The API takes it as
`Authorization: Bearer <token>`; the pages exchange it once for a session kept on the server
(the cookie carries only its random id, so signing out or `admin_idle_minutes` unused revokes
even a copied cookie), and every form also carries a per-session CSRF token, so another site
cannot make a signed-in browser change the index. Wrong tokens are limited per client (5 a
minute, then 429 until the minute is over, right token or not). Without a token these actions
are off.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from werkzeug.datastructures import FileStorage

from qa import FootnoteError
from qa.errors import ConfigError, UploadRejected
from web import sources
from web.ask import pipeline

bp = Blueprint("admin", __name__)
DISABLED = ("changing the index from the browser is disabled; start the server with "
            "`qa serve --admin-token-file FILE` (or set FOOTNOTE_ADMIN_TOKEN) to enable it")
MIN_TOKEN = 16  # characters: shorter tokens are guessed
MAX_FAILURES = 5  # wrong tokens a client may send in FAILURE_WINDOW seconds
FAILURE_WINDOW = 60.0


class Unauthorized(FootnoteError):
    """No token was given where one is needed."""

    status = 401


class Forbidden(FootnoteError):
    """The token (or CSRF token) is wrong, or admin actions are disabled."""

    status = 403


class TooManyAttempts(FootnoteError):
    """A client sent too many wrong tokens; `retry_after` seconds until it may try again."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def configured_token(config: dict[str, Any]) -> str:
    """The admin token: the first line of `admin_token_file` when set, else `admin_token`
    ("" leaves admin actions off).

    Raises:
        ConfigError: the file cannot be read, or the token is shorter than MIN_TOKEN.
    """
    token = str(config.get("admin_token") or "")
    if config.get("admin_token_file"):
        try:
            token = Path(config["admin_token_file"]).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise ConfigError(f"cannot read the admin token from {config['admin_token_file']}: "
                              f"{getattr(exc, 'strerror', None) or 'empty or not text'}") from exc
    if token and len(token) < MIN_TOKEN:
        raise ConfigError(f"the admin token is {len(token)} characters long; use at least {MIN_TOKEN} "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    return token


class Guard:
    """The admin token, the signed-in sessions and the wrong-token count of each client.

    Sessions live here, not in the cookie: the cookie holds a random session id, so signing out
    forgets it for good and a session unused for `idle_seconds` ends.
    """

    def __init__(self, token: str, idle_seconds: float) -> None:
        self.token, self.idle_seconds = token, idle_seconds
        self._sessions: dict[str, float] = {}  # session id -> last use
        self._failures: dict[str, list[float]] = {}  # client -> times of wrong tokens
        self._lock = threading.Lock()

    def open(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = time.monotonic()
        return sid

    def alive(self, sid: str | None) -> bool:
        """The session exists and was used within the idle time (which this use renews)."""
        now = time.monotonic()
        with self._lock:
            last = self._sessions.get(sid or "")
            if last is None or now - last > self.idle_seconds:
                self._sessions.pop(sid or "", None)
                return False
            self._sessions[sid] = now
            return True

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def check(self, given: str, client: str) -> bool:
        """Whether `given` is the token, counting a wrong one against `client`.

        Raises:
            TooManyAttempts: the client sent MAX_FAILURES wrong tokens within FAILURE_WINDOW;
                it is refused, right token or not, until the oldest of them is that old.
        """
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW]
            self._failures[client] = recent
            if len(recent) >= MAX_FAILURES:
                wait = int(FAILURE_WINDOW - (now - recent[0])) + 1
                raise TooManyAttempts(f"too many wrong admin tokens from this client; try again in {wait} s", wait)
            if _same(given, self.token):
                return True
            recent.append(now)
            return False


def guard() -> Guard:
    return current_app.extensions["footnote_admin"]


def _token() -> str:
    return guard().token


def _signed_in() -> bool:
    return bool(_token()) and guard().alive(session.get("sid"))


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _require_api_token() -> None:
    expected = _token()
    if not expected:
        raise Forbidden(DISABLED)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("this action needs the admin token: send `Authorization: Bearer <token>`")
    if not guard().check(header.removeprefix("Bearer ").strip(), request.remote_addr or ""):
        raise Forbidden("the admin token is wrong")


def _require_session() -> None:
    """A signed-in page session: admin actions are on and the session is alive."""
    if not _token():
        raise Forbidden(DISABLED)
    if not _signed_in():
        raise Unauthorized("sign in with the admin token first (a session ends when signed out or "
                           "unused for a while)")


def _require_form() -> None:
    """A page action: signed-in session and the session's CSRF token in the form."""
    _require_session()
    if not _same(request.form.get("csrf", ""), session.get("csrf", "")):
        raise Forbidden("the form is stale or came from another site (CSRF token mismatch); reload the page")


@bp.app_context_processor
def admin_state() -> dict[str, Any]:
    """What the sources page needs to show (or hide) the admin forms."""
    signed_in = _signed_in()
    return {"admin_enabled": bool(_token()), "admin": signed_in,
            "csrf": session.get("csrf", "") if signed_in else "", "admin_disabled_message": DISABLED}


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
    """Exchange the admin token for a session (its id in a signed cookie). A wrong token, or a
    client over the limit, gets the sources page back with the sign-in form and the reason."""
    if not _token():
        raise Forbidden(DISABLED)
    try:
        right = guard().check(request.form.get("token", ""), request.remote_addr or "")
    except TooManyAttempts as exc:
        resp = sources.page(exc.status, f"{exc}.")
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    if not right:
        return sources.page(Forbidden.status, "the admin token is wrong; check it and try again.")
    guard().close(session.get("sid"))
    session.clear()
    session["sid"] = guard().open()
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("sources.index"))


@bp.post("/sources/logout")
def logout() -> Response:
    """End the session on the server (a copy of the cookie no longer works) and forget it here."""
    _require_form()
    guard().close(session.get("sid"))
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


@bp.get("/sources/<doc_id>/delete")
def confirm_delete(doc_id: str) -> str:
    """The step before a removal: names the file and the folder and says what is removed; the
    sources page's script shows the same section as a dialog."""
    _require_session()
    return render_template("remove.html", removal=pipeline().library.removal(doc_id))


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
    """Progress of the current or last reindex: state, done/total, current file, errors by file;
    and `index`, what the serving index holds now (a job's `summary` counts it as the job left it)."""
    _require_api_token()
    return jsonify(pipeline().library.reindex_status())


@bp.get("/sources/reindex/status")
def reindex_status() -> Response:
    """The same progress for the signed-in sources page (its script polls this)."""
    if not _signed_in():
        raise Unauthorized("sign in with the admin token first")
    return jsonify(pipeline().library.reindex_status())
