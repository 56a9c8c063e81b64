"""Run the app under waitress: a production WSGI server (pure Python, threads), never debug mode."""

from __future__ import annotations

import logging
from typing import Any

from waitress import create_server

from qa import FootnoteError, Pipeline
from qa.errors import ConfigError

log = logging.getLogger(__name__)


def waitress_options(config: dict[str, Any]) -> dict[str, int]:
    """Waitress's worker threads and connection limit for these settings.

    Every question the app may hold (`queue_limit`) gets a worker, so it waits in the app's
    bound (`web.ask.Questions`, reported by /api/health) and never in waitress's own queue;
    `threads` more serve refusals, /api/health and the other pages. Idle keep-alive connections
    count against connection_limit too, so it is twice the workers (at least waitress's 100):
    a client past the bound is accepted and told 503, not left waiting for accept().

    Args:
        config: settings; `threads` and `queue_limit` are read.

    Returns:
        `threads` and `connection_limit` for `waitress.create_server`.
    """
    workers = int(config["threads"]) + int(config["queue_limit"])
    return {"threads": workers, "connection_limit": max(100, 2 * workers)}


def serve(config: dict[str, Any]) -> None:
    """Load the model, open the index and serve until interrupted (used by `qa serve`).

    The settings are checked and the port taken before the models load, so a wrong admin token
    or a busy port is said at once, in one line; connections made while the models load wait.

    Args:
        config: settings from `qa.load`; `host`, `port`, `threads` and `queue_limit` choose
            how to listen (`waitress_options`), the rest builds the Pipeline.

    Raises:
        ConfigError: the address cannot be listened on, or a setting is refused.
    """
    from web import ask, create_app

    pipeline = Pipeline(config)
    app = create_app(pipeline=pipeline)
    host, port = config["host"], int(config["port"])
    try:
        server = create_server(app, host=host, port=port, ident="footnote", **waitress_options(config))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another `qa serve`? "
                          "choose another --port)") from exc
    # Load the model and open the index now, and run one question through both, so the first
    # person to ask does not wait for loading and warm-up.
    pipeline.warm_up()  # the models load even when there is no index yet
    try:
        pipeline.ask("warm up")
    except FootnoteError as exc:  # no index yet: the app still starts and every page says how to build one
        log.warning("%s", exc)
    pipeline.serving.follow()  # new generations are opened in the background, not by a request
    ask.prepare_examples(app)  # the home page's example questions, worked out before anyone visits
    print(f"Footnote is serving {config['index']}/ on http://{host}:{server.effective_port}/ (Ctrl+C stops it)",
          flush=True)
    try:
        server.run()
    finally:
        server.close()
