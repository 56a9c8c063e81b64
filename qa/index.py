"""An index is a folder of generations; `CURRENT` names the one that serves.

    index/
      CURRENT                 name of the published generation (replaced atomically)
      .lock                   held by the one process allowed to write
      gen-<time>-<pid>/       faiss.index + store.sqlite + config.json (the manifest)

A writer builds a new generation beside the serving one, fsyncs it, then swaps `CURRENT`
with os.replace: a reader sees the old generation or the new one, never half of either. A
crash leaves a `.tmp-*` folder that the next writer removes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss

from qa import store
from qa.errors import IndexLocked, IndexMismatch, IndexNotFound

SCHEMA_VERSION = 1
FAISS_FILE, STORE_FILE, MANIFEST_FILE = "faiss.index", "store.sqlite", "config.json"
KEEP_GENERATIONS = 2  # the serving one and its predecessor, which readers may still hold open


@dataclass(frozen=True)
class Generation:
    """One published generation: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    @property
    def faiss_path(self) -> Path:
        return self.path / FAISS_FILE


def current(index_dir: str | os.PathLike, model: str | None = None) -> Generation:
    """The serving generation, checked against the schema version and (when given) the model.

    Raises:
        IndexNotFound: nothing has been published at `index_dir`.
        IndexMismatch: another schema version or model built it.
    """
    root = Path(index_dir)
    try:
        name = (root / "CURRENT").read_text().strip()
        manifest = json.loads((root / name / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise IndexNotFound(f"no index at {root}/ yet; build one with `qa index --index {root}`") from exc
    rebuild = f"rebuild it with `qa index --rebuild --index {root}`"
    if manifest.get("schema") != SCHEMA_VERSION:
        raise IndexMismatch(f"the index at {root}/ has schema version {manifest.get('schema')}, this Footnote "
                            f"reads version {SCHEMA_VERSION}; {rebuild}")
    if model is not None and manifest.get("model") != model:
        raise IndexMismatch(f"the index at {root}/ was built with model {manifest.get('model')!r}, "
                            f"but the model setting is {model!r}; {rebuild} (or set --model to match)")
    return Generation(root / name, manifest)


def encoder_backend(manifest: dict[str, Any]) -> str:
    """The backend that encoded a generation's passages (indexes from before backends: torch)."""
    return manifest.get("encoder", "torch")


def current_name(index_dir: str | os.PathLike) -> str | None:
    """Cheap check of which generation serves (the web app polls it to pick up new ones)."""
    try:
        return (Path(index_dir) / "CURRENT").read_text().strip()
    except OSError:
        return None


def load_vectors(gen: Generation, mapped: bool = False) -> faiss.Index:
    """Read the FAISS half and check it agrees with the store (same number of passages).

    `mapped` maps the file into memory read-only instead of reading it (for searching: a
    cold start does not wait for the whole file, and processes serving one generation share
    its pages); a writer reads its own copy to change.
    """
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mapped else 0
    index = faiss.read_index(str(gen.faiss_path), flags)
    conn = store.connect(str(gen.store_path), readonly=True)
    try:
        count = store.count_passages(conn)
    finally:
        conn.close()
    if index.ntotal != count:
        raise IndexMismatch(f"{gen.path}: {index.ntotal} vectors but {count} passages; "
                            f"rebuild with `qa index --rebuild`")
    return index


def new_vectors(dimension: int) -> faiss.Index:
    """Inner product over unit vectors (cosine), keyed by passage id so deletes stay aligned."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


@contextmanager
def writer_lock(index_dir: str | os.PathLike):
    """Hold the index's write lock for the block; a second writer fails at once."""
    root = Path(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:  # the lock goes with the file handle
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexLocked(f"another `qa index` is updating {root}/ right now; wait for it to finish") from exc
        _clean_leftovers(root)
        yield root


def start_generation(root: Path, previous: Generation | None) -> Path:
    """A fresh work folder, seeded with a copy of the previous generation when there is one."""
    work = root / f".tmp-gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    if previous is not None:
        shutil.copytree(previous.path, work)
    else:
        work.mkdir()
    return work


def publish(root: Path, work: Path, index: faiss.Index, manifest: dict[str, Any]) -> Generation:
    """Write vectors and manifest into `work`, make everything durable, then switch CURRENT."""
    faiss.write_index(index, str(work / FAISS_FILE))
    (work / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema": SCHEMA_VERSION}, indent=2))
    for name in (FAISS_FILE, STORE_FILE, MANIFEST_FILE):
        _fsync(work / name)
    final = root / work.name.removeprefix(".tmp-")
    os.rename(work, final)
    _fsync(root)
    pointer = root / "CURRENT.tmp"
    pointer.write_text(final.name + "\n")
    _fsync(pointer)
    os.replace(pointer, root / "CURRENT")
    _fsync(root)
    _prune(root, keep=final.name)
    return Generation(final, json.loads((final / MANIFEST_FILE).read_text()))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_leftovers(root: Path) -> None:
    """Remove what a crashed writer left (only ever called while holding the lock)."""
    for p in root.glob(".tmp-gen-*"):
        shutil.rmtree(p, ignore_errors=True)
    (root / "CURRENT.tmp").unlink(missing_ok=True)


def _prune(root: Path, keep: str) -> None:
    gens = sorted((p for p in root.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in gens if p.name != keep][: max(len(gens) - KEEP_GENERATIONS, 0)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
