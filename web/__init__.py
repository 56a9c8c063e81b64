"""The Footnote web app: ask in the browser, read footnotes, check provenance in one click.

`create_app` builds the Flask app around one `qa.Pipeline` (model and index loaded once per
process, shared by every request thread); `serve` runs it under waitress for `qa serve`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from qa import Pipeline, load
from web import admin, ask, errors, formats, health, sources
from web.server import serve

__all__ = ["create_app", "serve"]


LOOPBACK = ("localhost", "127.0.0.1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def trusted_hosts(config: Mapping[str, Any]) -> list[str] | None:
    """The Host names the app answers to (None: any). A page on another site that points its own
    name at 127.0.0.1 (DNS rebinding) sends its name as Host, and is refused."""
    listed = [h.strip() for h in str(config["trusted_hosts"]).split(",") if h.strip()]
    if "*" in listed:
        return None
    if listed:
        return listed
    host = str(config["host"])
    return [*LOOPBACK, *([] if host in ANY_ADDRESS or host in LOOPBACK else [host])]


def create_app(index_path: str | None = None, test_config: Mapping[str, Any] | None = None,
               pipeline: Pipeline | None = None) -> Flask:
    """Build the app.

    Args:
        index_path: the index folder; settings (footnote.toml, FOOTNOTE_* variables) fill the rest.
        test_config: Flask settings applied last (tests pass {"TESTING": True}).
        pipeline: an already built Pipeline to serve (`serve` and the tests pass one, so the
            model is loaded once per process and never per request).

    Returns:
        The Flask app with the `ask` and `sources` blueprints, the error handler and the
        security headers registered.
    """
    app = Flask(__name__)
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.json.sort_keys = False  # keep the DESIGN.md field order in /api responses
    pipe = pipeline or Pipeline(load({"index": index_path}))
    # Admin sessions live in this process (`admin.Guard`): a restart signs everyone out, which is fine.
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_HTTPONLY=True, TRUSTED_HOSTS=trusted_hosts(pipe.config),
                      MAX_CONTENT_LENGTH=int(pipe.config["upload_max_mb"] * 2**20 * 10))
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["footnote"] = pipe
    app.extensions["footnote_admin"] = admin.Guard(admin.configured_token(pipe.config),
                                                   pipe.config["admin_idle_minutes"] * 60)
    app.register_blueprint(ask.bp)
    app.register_blueprint(sources.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)
    errors.register(app)
    formats.register(app)
    return app
