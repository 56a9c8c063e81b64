"""Build or update an index from source files: parse what changed, embed what is new, publish atomically.

A document is identified by its path; its content hash decides whether it changed. Vectors of
passages whose text is already in the index (an unchanged part of an edited file, a renamed
or copied file) are reused, so only new text is encoded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa import index as ix
from qa import store
from qa.answer import CALIBRATION
from qa.chunk import VERSION as CHUNKER_VERSION
from qa.chunk import chunk
from qa.embed import Embedder
from qa.errors import FootnoteError, IndexMismatch, IndexNotFound
from qa.ingest import is_supported, read_document, unsupported

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
SKIPPED_NAMES = {"readme.md", "readme.txt", "readme"}  # a folder's README describes it, it is no source


@dataclass
class Report:
    """What one indexing run did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    encoded: int = 0
    documents: int = 0
    passages: int = 0
    published: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged, {len(self.failed)} failed; index has "
                f"{self.documents} documents, {self.passages} passages ({self.encoded} passages encoded, "
                f"{self.seconds:.1f} s)")


def display_path(path: Path) -> str:
    """Paths are shown relative to the working folder when inside it (as `sources/x.txt`)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def document_id(shown_path: str) -> str:
    """Stable id from the path, so links survive edits; identical files at two paths stay two documents."""
    return hashlib.sha1(shown_path.encode()).hexdigest()[:16]


def discover(paths: Iterable[str | os.PathLike], report: Report) -> tuple[list[Path], list[str]]:
    """Files to index under the given files and folders, and the folder prefixes they cover.

    Missing paths and unsupported files are recorded as failures; hidden files and README
    files are left out silently.
    """
    files, roots = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            roots.append(display_path(p).rstrip("/") + "/")
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if not f.is_file() or any(part.startswith(".") for part in rel) or f.name.lower() in SKIPPED_NAMES:
                    continue
                if is_supported(f):
                    files.append(f)
                else:
                    shown = display_path(f)
                    report.failed.append((shown, str(unsupported(shown, f.suffix)).removeprefix(shown + ": ")))
        elif p.is_file():
            roots.append(display_path(p))
            files.append(p)
        else:
            report.failed.append((str(raw), "no such file or folder"))
    return files, roots


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == r or (r.endswith("/") and path.startswith(r)) for r in roots)


def build(paths: Iterable[str | os.PathLike], index_dir: str | os.PathLike, embedder: Embedder,
          config: dict, rebuild: bool = False, progress: Progress | None = None,
          remove: Iterable[str] = ()) -> Report:
    """Bring the index up to date with the given sources and publish a new generation.

    Args:
        paths: files and folders; documents indexed earlier from under these folders whose
            files are gone are removed. Documents from elsewhere are kept.
        index_dir: the index folder.
        embedder: the loaded model (its name must match the index's).
        config: settings (chunk_chars, chunk_overlap, max_file_mb).
        rebuild: ignore the existing index and start over.
        progress: called as (done, total, current path) while files are processed.
        remove: paths of documents to drop whatever the files say (`qa remove`).

    Returns:
        The report; `published` is False when there was nothing to publish.

    Raises:
        IndexLocked: another writer holds the index.
        IndexMismatch: the existing index uses another model (use rebuild).
    """
    t0 = time.perf_counter()
    report = Report()
    files, roots = discover(paths, report)
    chunker = {"chunk_chars": config["chunk_chars"], "chunk_overlap": config["chunk_overlap"],
               "version": CHUNKER_VERSION}
    with ix.writer_lock(index_dir) as root:
        previous = None if rebuild else _previous(index_dir, embedder.name, chunker)
        plan = _plan(previous, files, roots, set(remove), report)
        if previous is not None and not plan.todo and not plan.removed:
            report.documents, report.passages = previous.manifest["documents"], previous.manifest["passages"]
            report.seconds = time.perf_counter() - t0
            return report  # nothing changed: no copy, no publish
        work = ix.start_generation(root, previous)
        try:
            conn = store.connect(str(work / ix.STORE_FILE))
            if previous is None:
                store.create(conn)
                vectors = ix.new_vectors(embedder.dimension)
            else:
                vectors = ix.load_vectors(previous)
            _apply(conn, vectors, plan, embedder, config, report, progress)
            report.documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            report.passages = store.count_passages(conn)
            conn.commit()
            conn.close()
            if report.added or report.updated or report.removed or (previous is None and report.documents):
                manifest = {"model": embedder.name, "dimension": embedder.dimension, "chunker": chunker,
                            "calibration": CALIBRATION.version, "documents": report.documents,
                            "passages": report.passages, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                ix.publish(root, work, vectors, manifest)
                report.published = True
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report


def _previous(index_dir, model: str, chunker: dict) -> ix.Generation | None:
    try:
        gen = ix.current(index_dir, model)
    except IndexNotFound:
        return None
    if gen.manifest.get("chunker") != chunker:
        raise IndexMismatch(f"the index at {index_dir}/ was chunked with {gen.manifest.get('chunker')}, the "
                            f"settings say {chunker}; rebuild it with `qa index --rebuild`")
    return gen


@dataclass
class _Plan:
    """What a run must do: files to (re)parse with their hash, documents to drop, and the old ids."""

    todo: list[tuple[Path, str, str]]
    removed: list[str]
    old: dict[str, tuple[str, str]]


def _plan(previous: ix.Generation | None, files: list[Path], roots: list[str], remove: set[str],
          report: Report) -> _Plan:
    """Hash the files and compare with the serving generation, reading nothing else."""
    old: dict[str, tuple[str, str]] = {}
    if previous is not None:
        conn = store.connect(str(previous.store_path), readonly=True)
        old = {r["path"]: (r["id"], r["sha256"]) for r in conn.execute("SELECT id, path, sha256 FROM documents")}
        conn.close()
    todo, seen = [], set()
    for f in files:
        shown = display_path(f)
        seen.add(shown)
        if shown in remove:
            continue
        try:
            sha = _sha256(f)
        except OSError as exc:
            report.failed.append((shown, f"cannot read file ({exc.strerror or exc})"))
            continue
        if shown in old and old[shown][1] == sha:
            report.unchanged.append(shown)
        else:
            todo.append((f, shown, sha))
    removed = [p for p in old if p in remove or (p not in seen and _covered(p, roots))]
    return _Plan(todo, removed, old)


def _apply(conn, vectors, plan: _Plan, embedder: Embedder, config: dict, report: Report,
           progress: Progress | None) -> None:
    """Parse, chunk and embed what changed, and drop what is gone, in the work copy."""
    next_id = store.next_passage_id(conn)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for n, (f, shown, sha) in enumerate(plan.todo):
        if progress:
            progress(n, len(plan.todo), shown)
        try:
            doc = read_document(f, int(config["max_file_mb"] * 2**20), shown)
        except (FootnoteError, OSError) as exc:
            report.failed.append((shown, str(exc).removeprefix(shown + ": ")))
            continue  # an earlier version of this file, if any, stays indexed
        chunks = chunk(doc, config["chunk_chars"], config["chunk_overlap"])
        texts = [doc.text[c.start:c.end] for c in chunks]
        old = plan.old.get(shown)
        vecs = _vectors_for(conn, vectors, texts, sha, old, embedder, report)
        if old:
            _drop(conn, vectors, old[0])
            report.updated.append(shown)
        else:
            report.added.append(shown)
        ids = store.add_document(conn, document_id(shown), doc, sha, now, chunks, next_id)
        next_id += len(ids)
        if ids:
            vectors.add_with_ids(vecs, np.asarray(ids, dtype="int64"))
    if progress:
        progress(len(plan.todo), len(plan.todo), "")
    for path in plan.removed:
        _drop(conn, vectors, plan.old[path][0])
        report.removed.append(path)


def _drop(conn, vectors, doc_id: str) -> None:
    ids = store.remove_document(conn, doc_id)
    if ids:
        vectors.remove_ids(np.asarray(ids, dtype="int64"))


def _vectors_for(conn, vectors, texts: list[str], sha: str, old: tuple[str, str] | None,
                 embedder: Embedder, report: Report) -> np.ndarray:
    """Vectors for these passage texts, reusing those stored for the same text in the previous
    version of this file or in any stored file with the same content."""
    known: dict[str, np.ndarray] = {}
    donors = [r[0] for r in conn.execute("SELECT id FROM documents WHERE sha256 = ?", (sha,))]
    if old:
        donors.append(old[0])
    for doc_id in dict.fromkeys(donors):
        rows = conn.execute("SELECT p.id, substr(d.text, p.start + 1, p.end - p.start) FROM passages p "
                            "JOIN documents d ON d.id = p.doc_id WHERE p.doc_id = ?", (doc_id,))
        for pid, text in rows:
            known.setdefault(text, vectors.reconstruct(int(pid)))
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        known.update(zip(missing, embedder.encode(missing), strict=True))
        report.encoded += len(missing)
    if not texts:
        return np.zeros((0, embedder.dimension), dtype="float32")
    return np.stack([known[t] for t in texts]).astype("float32")
