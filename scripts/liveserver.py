"""Serve a fresh index of some sources with the real `qa serve`, for the screenshot and latency scripts.

The scripts measure and picture what a user runs, so the server is the `qa` command in its
own process over a temporary index (the user's index/ is left alone).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _qa(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(paths: tuple[str, ...] = ("sources",), timeout: float = 180, serve_args: tuple[str, ...] = ()
            ) -> Iterator[str]:
    """Index `paths` into a temporary folder, run `qa serve` (with `serve_args`) on a free port,
    yield its base URL.

    Raises:
        RuntimeError: the server stopped or did not answer within `timeout` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="footnote-index-") as index:
        subprocess.run(_qa("index", *paths, "--index", index, "--quiet"), cwd=ROOT, check=True)
        with serve_index(index, timeout, serve_args) as (base, _proc, _ready):
            yield base


@contextmanager
def serve_index(index: str, timeout: float = 180, serve_args: tuple[str, ...] = (),
                settings: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """Run `qa serve` on an existing index; yield its base URL, the process and the seconds
    from starting it to its first answer. `settings` are given to it as FOOTNOTE_<NAME>.

    Raises:
        RuntimeError: the server stopped or did not answer within `timeout` seconds.
    """
    port = _free_port()
    t0 = time.perf_counter()
    env = os.environ | {f"FOOTNOTE_{k.upper()}": v for k, v in (settings or {}).items()}
    proc = subprocess.Popen(_qa("serve", "--index", index, "--port", str(port), *serve_args), cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/ask?q=ready", timeout=60).close()
                break
            except (urllib.error.URLError, ConnectionError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"qa serve did not start on {base}") from exc
                time.sleep(0.05)
        yield base, proc, time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
