"""Worker processes that parse and chunk source files ahead of the encoder.

Parsing is pure Python and holds the GIL; encoding runs in onnxruntime's threads. With the
parsing in other processes the two overlap: while one batch of passages is encoded, the next
files are being parsed. One pool serves the whole process (`shared`) and persists across
indexing runs (`qa index --watch`, the web app's reindex), so its start-up is paid once.
Workers import only the parsers, not the models or the index.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from qa.errors import FootnoteError
from qa.ingest import read_document
from qa.ingest.passages import Chunk, chunk
from qa.records import Document

log = logging.getLogger(__name__)
Job = TypeVar("Job")
AHEAD = 4  # files parsed ahead of the encoder per worker: enough to never wait, little held in memory


def parse_file(path: Path, shown: str, max_bytes: int, chunk_chars: int,
               overlap: int) -> tuple[Document, list[Chunk]] | str:
    """Parse and chunk one file (in a worker); a string is why it could not be read."""
    try:
        doc = read_document(path, max_bytes, shown)
    except (FootnoteError, OSError) as exc:
        return str(exc).removeprefix(shown + ": ")
    return doc, chunk(doc, chunk_chars, overlap)


def _follow(owner: int) -> None:
    """Worker start-up: end this worker once the process that owns the pool is gone.

    A pool's workers hold their own job queue open, so when the owner is killed with -9 (as
    `qa index` may be) nothing tells them; without this they would wait forever.
    """

    def watch() -> None:
        while _alive(owner):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="follow-owner", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def default_workers() -> int:
    """One core stays with the encoder; at least one worker."""
    return max(1, (os.cpu_count() or 2) - 1)


class ParsePool:
    """Runs `fn(*args)` for each job in worker processes, yielding results in job order.

    Args:
        workers: processes to start on first use (0: run in this process, as for one file).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[..., Any], jobs: Iterable[tuple[Job, tuple]]) -> Iterator[tuple[Job, Any]]:
        """Yield (job, fn(*args)) in order; a job whose worker died yields a RuntimeError as its result.

        `fn` must be a module-level function (it is pickled by name) and should return its
        failures as values: an exception escaping it is re-raised here.
        """
        if self.workers == 0:
            for job, args in jobs:
                yield job, fn(*args)
            return
        pending: deque[tuple[Job, tuple, Future]] = deque()
        queue = iter(jobs)
        for job, args in queue:
            pending.append((job, args, self._submit(fn, args)))
            if len(pending) >= AHEAD * self.workers:
                break
        while pending:
            job, args, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:  # a worker was killed (out of memory, a signal) under some job
                result = self._alone(fn, job, args)
                pending = deque((j, a, self._submit(fn, a)) for j, a, _ in pending)
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt[0], nxt[1], self._submit(fn, nxt[1])))
            yield job, result

    def _alone(self, fn: Callable[..., Any], job: Job, args: tuple) -> Any:
        """Run a job again in a fresh pool with nothing beside it: the pool may have died under
        another job running at the same time. If it dies again, this job killed it."""
        self.close()
        try:
            return self._submit(fn, args).result()
        except BrokenProcessPool:
            log.warning("a parse worker died reading %s", job)
            self.close()
            return RuntimeError("the parser process died while reading this file")

    def _submit(self, fn: Callable[..., Any], args: tuple) -> Future:
        """Queue a job, on a new pool when there is none or the last one has just died (a job
        submitted before it will report that when its turn comes); in this process when
        workers cannot start."""
        for _ in range(2):
            if self._pool is None and self.workers:
                self._pool = self._start()
            if self._pool is None:
                return _here(fn, args)
            try:
                return self._pool.submit(fn, *args)
            except BrokenProcessPool:
                self.close()
        raise RuntimeError("parse workers die as soon as they start")

    def _start(self) -> ProcessPoolExecutor | None:
        """A new pool whose workers have answered once, or None (and no workers from now on)
        when they die as they start: a script that runs Footnote without an
        `if __name__ == "__main__":` guard is imported again by each worker."""
        # forkserver: workers start from a clean process, not a fork of one holding model threads.
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_follow, initargs=(os.getpid(),))
        _POOLS.add(pool)
        try:
            pool.submit(os.getpid).result()
            return pool
        except BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            log.warning("parse workers die as they start (a script that runs Footnote must guard its code with "
                        "`if __name__ == \"__main__\":`); parsing in this process instead")
            self.workers = 0
            return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _here(fn: Callable[..., Any], args: tuple) -> Future:
    """A job run in this process, as a finished future."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # re-raised by .result(), as from a worker
        future.set_exception(exc)
    return future


_POOLS: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()


def _kill_workers() -> None:
    """At interpreter exit, before concurrent.futures joins its pools, kill the parse workers:
    exit must never wait on them (a test run once hung there after its last test). The
    workers hold no state worth a clean goodbye; 3.11 offers no public way to reach them."""
    for pool in list(_POOLS):
        processes = getattr(pool, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


# Registered after concurrent.futures' own exit hook (imported above), so it runs before it.
threading._register_atexit(_kill_workers)

_SHARED: ParsePool | None = None


def shared() -> ParsePool:
    """The process-wide pool (its workers start on first use and stay until the process ends)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ParsePool()
    return _SHARED
