"""Worker processes that parse and chunk source files ahead of the encoder, each file within limits.

Parsing is pure Python and holds the GIL; encoding runs in onnxruntime's threads. With the
parsing in other processes the two overlap: while one batch of passages is encoded, the next
files are being parsed. One pool serves the whole process (`shared`) and persists across
indexing runs (`qa index --watch`, the web app's reindex), so its start-up is paid once.
Workers import only the parsers, not the models or the index.

Each worker reads one file at a time, so a file that is too costly is known by name: a worker
still busy when the time limit passes is killed and replaced, and one over the memory limit
(its address space capped with RLIMIT_AS while it parses) fails with MemoryError and is
replaced; either way that file is reported and the run goes on with the others.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, TypeVar

from qa.errors import FootnoteError
from qa.ingest import read_document
from qa.ingest.passages import Chunk, chunk
from qa.ingest.worker import serve
from qa.records import Document

log = logging.getLogger(__name__)
Job = TypeVar("Job")
AHEAD = 4  # files parsed ahead of the encoder per worker: enough to never wait, little held in memory
START_SECONDS = 60  # a worker that has not started by then never will


@dataclass(frozen=True)
class Limits:
    """What one file may cost its worker: wall-clock seconds and address space in MiB (0: no limit)."""

    seconds: float = 0
    memory_mb: float = 0

    def __bool__(self) -> bool:
        return bool(self.seconds or self.memory_mb)


def parse_file(path: Path, shown: str, max_bytes: int, chunk_chars: int,
               overlap: int) -> tuple[Document, list[Chunk]] | str:
    """Parse and chunk one file (in a worker); a string is why it could not be read."""
    try:
        doc = read_document(path, max_bytes, shown)
    except (FootnoteError, OSError) as exc:
        return str(exc).removeprefix(shown + ": ")
    return doc, chunk(doc, chunk_chars, overlap)


def default_workers() -> int:
    """One core stays with the encoder; at least one worker."""
    return max(1, (os.cpu_count() or 2) - 1)


class ParsePool:
    """Runs `fn(*args)` for each job in worker processes, yielding results in job order.

    Args:
        workers: processes to start on first use (0: run in this process, without limits).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._idle: list[_Worker] = []  # started, ready, and lent to no run
        self._lock = threading.Lock()  # runs in two threads share the idle workers
        self._started = False  # a worker has come up once: later failures to start are not a missing guard
        _POOLS.add(self)

    def map(self, fn: Callable[..., Any], jobs: Iterable[tuple[Job, tuple]],
            limits: Limits = Limits()) -> Iterator[tuple[Job, Any]]:
        """Yield (job, fn(*args)) in order. A job over a limit, or whose worker died, yields a
        RuntimeError saying so as its result.

        `fn` must be a module-level function (it is pickled by name) and should return its
        failures as values: an exception escaping it is re-raised here.
        """
        pending: deque[_Task] = deque()  # taken from `jobs`, in order, not yet yielded
        waiting: deque[_Task] = deque()  # not yet given to a worker
        mine: list[_Worker] = []  # workers lent to this run
        queue = iter(jobs)
        try:
            while True:
                while len(pending) < AHEAD * max(self.workers, 1) and (nxt := next(queue, None)) is not None:
                    pending.append(_Task(*nxt))
                    waiting.append(pending[-1])
                while pending and pending[0].finished:
                    task = pending.popleft()
                    if task.raised:
                        raise task.result
                    yield task.job, task.result
                if not pending:
                    return
                if self.workers == 0:  # no workers (or none can start): here, one job at a time, no limits
                    task = waiting.popleft()
                    task.finish(fn(*task.args))
                    continue
                self._dispatch(fn, limits, waiting, mine)
                self._collect(mine, limits)
        finally:
            for worker in mine:
                if worker.task:  # a run given up half-way: what its workers are reading is not wanted
                    worker.stop()
            with self._lock:
                self._idle += [w for w in mine if not w.task and w.alive()]

    def _dispatch(self, fn: Callable[..., Any], limits: Limits, waiting: deque[_Task], mine: list[_Worker]) -> None:
        """Give waiting jobs to ready workers, with as many workers as there are jobs, up to `workers`."""
        while len(mine) < min(self.workers, len(waiting) + sum(1 for w in mine if w.task)):
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is not None and not worker.alive():
                worker.stop()
                continue
            mine.append(worker or _Worker())
        for worker in mine:
            if waiting and worker.ready and not worker.task:
                worker.give(waiting.popleft(), fn, limits)

    def _collect(self, mine: list[_Worker], limits: Limits) -> None:
        """Wait until a worker answers, comes up, dies or runs out of time, and deal with it."""
        deadlines = [w.deadline for w in mine if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = set(wait([c for w in mine for c in (w.conn, w.process.sentinel)], timeout))
        for worker in list(mine):
            if worker.conn in ready and worker.receive(limits):
                self._started = self._started or worker.ready
                if worker.leaving:  # it ends itself after a MemoryError or a big file: replaced when needed
                    mine.remove(worker)
                    worker.stop()
            elif worker.conn in ready or worker.process.sentinel in ready:
                mine.remove(worker)
                self._died(worker)
            elif worker.deadline is not None and time.monotonic() >= worker.deadline:
                mine.remove(worker)
                worker.stop()
                if worker.task:
                    worker.task.finish(RuntimeError(f"took longer than {limits.seconds:g} s to parse; skipped "
                                                    "(parse_seconds)"))
                else:
                    self._died(worker)

    def _died(self, worker: _Worker) -> None:
        """A worker ended by itself: its job failed, or workers cannot start at all."""
        worker.stop()
        if worker.task:
            log.warning("a parse worker died reading %s", worker.task.job)
            worker.task.finish(RuntimeError(f"the parser process died while reading this file{worker.why()}"))
        elif not worker.ready and not self._started:
            log.warning("parse workers die as they start (a script that runs Footnote must guard its code with "
                        "`if __name__ == \"__main__\":`); parsing in this process instead, without limits")
            self.workers = 0
        elif not worker.ready:
            raise RuntimeError(f"a parse worker died as it started{worker.why()}")

    def close(self) -> None:
        """Stop the idle workers (a run in progress keeps its own until it ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


@dataclass
class _Task:
    job: Any
    args: tuple
    finished: bool = False
    raised: bool = False
    result: Any = None

    def finish(self, result: Any, raised: bool = False) -> None:
        self.finished, self.result, self.raised = True, result, raised


class _Worker:
    """One parse process, the pipe it takes jobs on and answers by, and the job it has."""

    def __init__(self) -> None:
        # forkserver: workers start from a clean process, not a fork of one holding model threads.
        context = multiprocessing.get_context("forkserver")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, os.getpid()), name="footnote-parse", daemon=True)
        self.process.start()
        theirs.close()
        self.ready = self.leaving = False
        self.task: _Task | None = None
        self.deadline: float | None = time.monotonic() + START_SECONDS  # of its start-up, then of its job

    def alive(self) -> bool:
        return self.process.is_alive()

    def give(self, task: _Task, fn: Callable[..., Any], limits: Limits) -> None:
        self.conn.send((fn, task.args, int(limits.memory_mb * 2**20)))
        self.task = task
        self.deadline = time.monotonic() + limits.seconds if limits.seconds else None

    def receive(self, limits: Limits) -> bool:
        """Read the worker's message (that it is up, or its job's outcome); False when it died instead."""
        try:
            kind, value, self.leaving = self.conn.recv()
        except (EOFError, OSError):
            return False
        task, self.task, self.deadline = self.task, None, None
        if kind == "ready":
            self.ready = True
        elif kind == "memory":
            task.finish(RuntimeError(f"needed more than {limits.memory_mb:g} MiB of memory to parse; skipped "
                                     "(parse_memory_mb)"))
        else:
            task.finish(value, raised=kind == "raised")
        return True

    def why(self) -> str:
        """How the process ended, for the message."""
        self.process.join(5)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f" (killed by signal {-code})"
        return f" (exit status {code})" if code else ""

    def stop(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(5)
        self.conn.close()


_POOLS: weakref.WeakSet[ParsePool] = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's own exit hook, so it runs before it
def _stop_workers() -> None:
    """At exit, kill the idle workers rather than wait on them: they hold nothing worth a goodbye."""
    for pool in list(_POOLS):
        pool.close()


_SHARED: ParsePool | None = None


def shared() -> ParsePool:
    """The process-wide pool (its workers start on first use and stay until the process ends)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ParsePool()
    return _SHARED
