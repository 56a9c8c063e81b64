"""The parse worker's side of `qa.ingest.pool`: one process that parses one file at a time,
within the memory limit it is given with each file, and ends with its owner."""

from __future__ import annotations

import importlib
import os
import resource
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from qa.ingest import FORMATS

RECYCLE_MB = 256  # a worker left holding more memory than this after a file ends: the memory goes back


def serve(conn: Connection, owner: int) -> None:
    """A worker's life: load the parsers (their import is no file's cost), then take
    (fn, args, memory bytes) jobs one at a time and answer (kind, value, leaving)."""
    _follow(owner)
    for form in FORMATS.values():
        importlib.import_module(f"qa.ingest.{form.module}")
    conn.send(("ready", None, False))
    while True:
        try:
            fn, args, memory = conn.recv()
        except EOFError:
            return
        _cap_memory(memory)
        try:
            kind, value = "done", fn(*args)
        except MemoryError:
            kind, value = "memory", None
        except Exception as exc:
            kind, value = "raised", exc
        finally:
            _cap_memory(0)
        # After a MemoryError or a big file this worker ends: the memory goes back to the system.
        leaving = kind == "memory" or _resident_mb() > RECYCLE_MB
        try:
            conn.send((kind, value, leaving))
        except Exception as exc:  # a result or an exception that does not pickle
            conn.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}"), leaving))
        if leaving:
            return


def _cap_memory(limit: int) -> None:
    """Cap this process's address space at `limit` bytes (0: lift the cap); an allocation past it
    raises MemoryError."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = hard if not limit else limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _resident_mb() -> float:
    """The memory this process holds now (resident set), in MiB."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _follow(owner: int) -> None:
    """End this worker once the process that owns it is gone.

    A worker waits on its pipe, so when the owner is killed with -9 (as `qa index` may be)
    nothing tells it; without this it would wait forever.
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
