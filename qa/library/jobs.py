"""A reindex running in the background, one at a time, with progress that others can read.

The web app starts it and polls it; the indexing itself is the same `Pipeline.index` as the CLI,
so the atomic publishing rules hold: requests keep being answered from the serving generation
until the new one is published.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from qa.errors import FootnoteError, JobRunning
from qa.library.build import BuildReport


class ReindexJob:
    """Runs `work(progress)` in a thread and keeps its status.

    Args:
        work: the indexing call, given a progress callback (done, total, current).
    """

    def __init__(self, work: Callable[[Callable[[int, int, str], None]], BuildReport]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"state": "idle"}

    def start(self) -> dict[str, Any]:
        """Start a run; raises JobRunning when one is under way."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise JobRunning("a reindex is already running; watch its progress instead")
            self._status = {"state": "running", "done": 0, "total": 0, "current": "", "errors": [],
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self._thread = threading.Thread(target=self._run, name="reindex", daemon=True)
            self._thread.start()
            return dict(self._status)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the current run ends (for the CLI and tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _progress(self, done: int, total: int, current: str) -> None:
        with self._lock:
            self._status.update(done=done, total=total, current=current)

    def _run(self) -> None:
        try:
            report = self._work(self._progress)
            update = {"state": "done", "summary": report.summary(), "published": report.published,
                      "errors": [{"path": p, "error": why} for p, why in report.failed],
                      "added": report.added, "updated": report.updated, "removed": report.removed,
                      "not_followed": report.outside, "repaired": report.repaired}
        except FootnoteError as exc:
            update = {"state": "failed", "summary": str(exc)}
        except Exception as exc:  # a crash must still end the job visibly; the serving index is intact
            update = {"state": "failed", "summary": f"reindex crashed: {exc!r}"}
        with self._lock:
            self._status.update(update, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), current="")
