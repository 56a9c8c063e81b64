"""One error handler for pages and API alike, and the security headers every response carries."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError

from qa import FootnoteError

log = logging.getLogger(__name__)

# Every script and style comes from web/static/: an injected inline <script> would not run
# even if escaping ever failed somewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _respond(status: int, message: str) -> tuple[Response | str, int]:
    """`{"error": message}` under /api/, else the error page (with the question box refilled)."""
    if _wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, message=message,
                           question=request.args.get("q", "")), status


def register(app: Flask) -> None:
    """Map qa errors (their `.status`), HTTP errors and anything unexpected; add the headers."""

    @app.errorhandler(FootnoteError)
    def footnote_error(exc: FootnoteError):
        body, status = _respond(exc.status, str(exc))
        resp = app.make_response((body, status))
        if getattr(exc, "retry_after", None):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(SecurityError)
    def untrusted_host(exc: SecurityError):
        hosts = ", ".join(app.config["TRUSTED_HOSTS"] or ())
        return jsonify(error=f"this server answers to the host names {hosts}; add yours to the trusted_hosts "
                             "setting"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return _respond(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("error answering %s", request.path)
        return _respond(500, "Something went wrong on the server; the log has the details.")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        # questions travel in the URL; a click to a cited website must not send them along
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp
