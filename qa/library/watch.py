"""Reindex when source files change: poll modification times, wait until they settle, then update.

Polling keeps this dependency-free and works the same on every filesystem; a debounce makes a
burst of saves (an editor writing a file twice, a folder copied in) one reindex.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

State = dict[str, tuple[int, int]]


def scan(paths: Iterable[str | os.PathLike]) -> State:
    """(mtime, size) of every file under the given files and folders (hidden ones skipped)."""
    state: State = {}
    for raw in paths:
        p = Path(raw)
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else []
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(p).parts if p.is_dir()):
                continue
            try:
                st = f.stat()
            except OSError:
                continue  # deleted between listing and stat: the next scan sees it gone
            state[str(f)] = (st.st_mtime_ns, st.st_size)
    return state


def watch(paths: list[str], on_change: Callable[[], None], interval: float = 1.0, debounce: float = 1.0,
          stop: Callable[[], bool] = lambda: False, since: State | None = None) -> None:
    """Call `on_change` after files under `paths` change and then stay unchanged for `debounce` seconds.

    Args:
        paths: files and folders to watch.
        on_change: the reindex to run.
        interval: seconds between scans.
        debounce: how long the files must stay unchanged before reindexing.
        stop: checked every scan; watching ends when it returns True.
        since: the state the index reflects (scanned before the last indexing run), so that a
            change made during that run is not missed; default: scan now.
    """
    seen = scan(paths) if since is None else since
    pending_since: float | None = None
    while not stop():
        time.sleep(interval)
        now = scan(paths)
        if now != seen:
            seen, pending_since = now, time.monotonic()
        elif pending_since is not None and time.monotonic() - pending_since >= debounce:
            pending_since = None
            on_change()
