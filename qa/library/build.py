"""Build or update an index from source files: parse what changed, embed what is new, publish atomically.

A document is identified by its path; its content hash decides whether it changed. Vectors of
passages whose text is already in the index (an unchanged part of an edited file, a renamed
or copied file) are reused, so only new text is encoded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from qa import index as ix
from qa.errors import DiskFull, FootnoteError, IndexDamaged, IndexMismatch, IndexNotFound
from qa.ingest import is_supported, unsupported
from qa.ingest.passages import VERSION as CHUNKER_VERSION
from qa.ingest.passages import Chunk
from qa.ingest.pool import Limits, ParsePool, parse_file, shared
from qa.models.encoder import Embedder
from qa.models.export import sha256_file
from qa.read.signals import CALIBRATION
from qa.records import Document

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
FLUSH = 256  # new passages encoded in one call
SKIPPED_NAMES = {"readme.md", "readme.txt", "readme"}  # a folder's README describes it, it is no source


@dataclass
class BuildReport:
    """What one indexing run did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # links leading out of their folder, not followed
    repaired: list[str] = field(default_factory=list)  # damage found and left behind (documents read again)
    rechunked: bool = False  # the passages were cut another way: every served document was read again
    encoded: int = 0
    passages_read: int = 0  # passages cut from the files read so far in this run (progress shows it)
    documents: int = 0
    passages: int = 0
    published: bool = False
    seconds: float = 0.0
    nodes: dict[str, int] = field(default_factory=dict)  # with --ray: files read on each Ray node, by node id

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged, {len(self.failed)} failed; index has "
                f"{self.documents} documents, {self.passages} passages ({self.encoded} passages encoded, "
                f"{self.seconds:.1f} s)" + ("; passages cut again (the chunking changed)" if self.rechunked else ""))


def display_path(path: Path) -> str:
    """Paths in messages are shown relative to the working folder when inside it (`sources/x.txt`)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def document_id(source: str) -> str:
    """Stable id from the file's absolute path, so links survive edits and working folders;
    identical files at two paths stay two documents."""
    return hashlib.sha1(source.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """A file to index: as found, its absolute path (the document's identity, whatever folder
    `qa` runs from) and how answers cite it (its root's name, then the path inside the root)."""

    file: Path
    source: str
    shown: str


def discover(paths: Iterable[str | os.PathLike], report: BuildReport) -> tuple[list[Source], list[str]]:
    """Files to index under the given files and folders, and the roots they cover (absolute;
    a folder's ends with "/").

    Missing paths and unsupported files are recorded as failures; hidden files and README
    files are left out silently. A symbolic link inside a folder is followed only when it
    stays inside that folder: one leading elsewhere (`notes.txt -> /etc/passwd`) is listed in
    `report.outside` and not read, and what it reached before is removed like a deleted file.
    """
    files, roots = [], []
    for raw in paths:
        p = Path(raw)
        root = os.path.abspath(p)
        if p.is_dir():
            roots.append(root.rstrip("/") + "/")
            real = p.resolve()
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts) \
                        or f.name.lower() in SKIPPED_NAMES:
                    continue
                shown = f"{Path(root).name}/{rel.as_posix()}"
                if not f.resolve().is_relative_to(real):
                    report.outside.append(shown)
                    continue
                if is_supported(f):
                    files.append(Source(f, os.path.join(root, str(rel)), shown))
                else:
                    report.failed.append((shown, str(unsupported(shown, f.suffix)).removeprefix(shown + ": ")))
        elif p.is_file():
            roots.append(root)
            files.append(Source(p, root, p.name))
        else:
            report.failed.append((str(raw), "no such file or folder"))
    unique = list({f.source: f for f in reversed(files)}.values())[::-1]  # a file reached twice: the first way
    return unique, roots


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == r or (r.endswith("/") and path.startswith(r)) for r in roots)


def build(paths: Iterable[str | os.PathLike], index_dir: str | os.PathLike, embedder: Embedder,
          config: dict, rebuild: bool = False, progress: Progress | None = None,
          remove: Iterable[str] = (), pool: ParsePool | None = None, report: BuildReport | None = None,
          reader: Reader | None = None) -> BuildReport:
    """Bring the index up to date with the given sources and publish a new generation.

    Args:
        paths: files and folders; documents indexed earlier from under these folders whose
            files are gone are removed. Documents from elsewhere are kept.
        index_dir: the index folder.
        embedder: the loaded model (its name must match the index's).
        config: settings (chunk_chars, chunk_overlap, max_file_mb, parse_seconds, parse_memory_mb).
        rebuild: ignore the existing index and start over.
        progress: called as (done, total, current path) while files are processed, and once
            as (total, total, "") when they all are.
        remove: absolute paths of documents to drop whatever the files say (`qa remove`).
        pool: parse worker processes to use (None: the process-wide pool, `qa.ingest.pool.shared()`);
            each file is parsed within the parse_seconds and parse_memory_mb limits, and one over
            them is reported in `failed` by name.
        report: the report to fill in (None: a new one); a caller passes its own to watch
            `passages_read` grow from its progress callback.
        reader: what parses (and may encode) the files (None: a `LocalReader` on `pool`; a
            `qa.library.ray_index.RayReader` spreads the work over a Ray cluster).

    Returns:
        The report; `published` is False when there was nothing to publish.

    Raises:
        IndexLocked: another writer holds the index.
        IndexMismatch: the existing index uses another model or encoder backend (use rebuild).
    """
    t0 = time.perf_counter()
    report = report if report is not None else BuildReport()
    files, roots = discover(paths, report)
    chunker = manifest(embedder, config)["chunker"]
    index = ix.backend(index_dir)  # the embedded backend, or PostgreSQL for a DSN
    with index.writer_lock(index_dir) as root:
        previous = None if rebuild else _previous(index, index_dir, embedder, chunker, report)
        writer = index.IndexWriter(root, previous, embedder.dimension, config["vector_index"], repair=True)
        report.repaired += writer.dropped
        served = writer.documents()
        report.rechunked = previous is not None and previous.manifest.get("chunker") != chunker
        if report.rechunked:  # every served document is cut again, its unchanged passages keep their vectors
            named = {f.source for f in files}
            files += [Source(Path(src), src, shown) for src, (_, _, shown) in served.items()
                      if src not in named and os.path.isfile(src)]
        plan = _plan(served, files, roots, set(remove), report, again=report.rechunked)
        if previous is not None and not plan.todo and not plan.removed and not report.repaired:
            report.documents, report.passages = previous.manifest["documents"], previous.manifest["passages"]
            report.seconds = time.perf_counter() - t0
            return report  # nothing changed: nothing written
        try:
            if reader is None:
                # One file without limits is parsed here (a worker would cost more); with limits, even a
                # single file goes to a worker: a hostile upload must not hang or bloat this process.
                one = len(plan.todo) < 2 and not parse_limits(config)
                reader = LocalReader(ParsePool(0) if one else pool or shared(), config)
            _apply(writer, plan, embedder, report, progress, reader)
            if report.added or report.updated or report.removed or report.repaired:
                known = previous.manifest.get("roots", []) if previous else []
                gen = writer.publish({**manifest(embedder, config), "roots": list(dict.fromkeys(known + roots))})
                report.published = True
                try:
                    writer.merge()
                except Exception as exc:
                    if not index.out_of_space(exc):
                        raise
                    log.warning("published; merging segments needs more free disk space than there is (%s): "
                                "the next `qa index` tries again", exc)
            else:
                writer.abort()
                gen = previous
        except BaseException as exc:
            writer.abort()
            if index.out_of_space(exc):
                raise DiskFull(f"the disk holding {root}/ is full ({exc}); nothing was published and the index "
                               "serves as before: free some space and run `qa index` again") from exc
            raise
        if gen is not None:
            report.documents, report.passages = gen.manifest["documents"], gen.manifest["passages"]
    report.seconds = time.perf_counter() - t0
    return report


def manifest(embedder: Embedder, config: dict) -> dict:
    """What a generation records about how its passages were made: the model and backend that
    encoded them, the chunker settings, the calibration it was built for."""
    return {"model": embedder.name, "encoder": embedder.backend, "dimension": embedder.dimension,
            "chunker": {"chunk_chars": config["chunk_chars"], "chunk_overlap": config["chunk_overlap"],
                        "version": CHUNKER_VERSION},
            "calibration": CALIBRATION.version, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def merge(index_dir: str | os.PathLike, vector_index: str = "auto") -> bool:
    """Merge every segment of the index into one, dropping deleted rows (`qa index --merge`).

    Returns:
        False when there was nothing to merge (one segment, nothing deleted).
    """
    index = ix.backend(index_dir)
    with index.writer_lock(index_dir) as root:
        gen = index.current(index_dir)
        writer = index.IndexWriter(root, gen, gen.manifest["dimension"], vector_index)
        return writer.merge(everything=True) is not None


def _previous(index: ModuleType, index_dir, embedder: Embedder, chunker: dict, report: BuildReport
              ) -> ix.Generation | None:
    """The generation an update starts from: the published one, or when `CURRENT` or its manifest
    is damaged, the newest that reads (noted in `report.repaired`); `index` is the backend's module."""
    try:
        gen = index.current(index_dir, embedder.name)
    except IndexNotFound:
        return None
    except IndexDamaged as exc:
        gen = next((g for g in map(_readable, index.generations(index_dir)) if g is not None), None)
        report.repaired.append(f"{exc}; " + (f"updated from {gen.path.name}" if gen else
                                             "no generation reads whole: every file is read again"))
        if gen is None:
            return None
    if ix.encoder_backend(gen.manifest) != embedder.backend:
        raise IndexMismatch(f"the index at {index_dir}/ was encoded with the {ix.encoder_backend(gen.manifest)} "
                            f"backend, not {embedder.backend}; vectors of two backends do not mix: rebuild it "
                            f"with `qa index --rebuild`")
    return gen


def _readable(path: Path) -> ix.Generation | None:
    try:
        return ix.generation(path)
    except FootnoteError:
        return None


@dataclass
class _Plan:
    """What a run must do: files to (re)parse with their hash, documents to drop (by source),
    and the served documents ({source: (id, sha256, path as cited)})."""

    todo: list[tuple[Source, str]]
    removed: list[str]
    old: dict[str, tuple[str, str, str]]


def _plan(old: dict[str, tuple[str, str, str]], files: list[Source], roots: list[str], remove: set[str],
          report: BuildReport, again: bool = False) -> _Plan:
    """Hash the files and compare with the served documents (`again`: read even unchanged ones)."""
    todo, seen = [], set()
    for f in files:
        seen.add(f.source)
        if f.source in remove:
            continue
        try:
            sha = sha256_file(f.file)
        except OSError as exc:
            report.failed.append((f.shown, f"cannot read file ({exc.strerror or exc})"))
            continue
        if f.source in old and old[f.source][1] == sha and not again:
            report.unchanged.append(f.shown)
        else:
            todo.append((f, sha))
    removed = [p for p in old if p in remove or (p not in seen and _covered(p, roots))]
    return _Plan(todo, removed, old)


Job = tuple[Source, str]  # a file to (re)index and its content hash
Parsed = tuple[Document, list[Chunk]] | str | Exception  # what `parse_file` gives, or why a worker failed


class Reader(Protocol):
    """What reads the files of a run: this machine's parse workers (`LocalReader`) or a Ray
    cluster (`qa.library.ray_index.RayReader`). Either way the index is written here, in order."""

    def __call__(self, todo: list[Job], known: Callable[[Job], Mapping[str, np.ndarray]],
                 report: BuildReport) -> Iterator[tuple[Job, Parsed, Mapping[str, np.ndarray]]]:
        """Yield each job of `todo` in order with its parse result and the vectors of the passage
        texts encoded with it (none: the run's batches encode them). `known(job)` are the stored
        vectors of a job's texts, which need no encoding."""
        ...


@dataclass(frozen=True)
class LocalReader:
    """Parses in `pool`'s worker processes, each file within the parse limits, and leaves the
    encoding to the run's batches (which encode the new passages of many files in one call)."""

    pool: ParsePool
    config: dict

    def __call__(self, todo: list[Job], known: Callable[[Job], Mapping[str, np.ndarray]],
                 report: BuildReport) -> Iterator[tuple[Job, Parsed, Mapping[str, np.ndarray]]]:
        jobs = ((job, parse_args(job[0], self.config)) for job in todo)
        for job, parsed in self.pool.map(parse_file, jobs, parse_limits(self.config)):
            yield job, parsed, {}


def parse_args(source: Source, config: dict) -> tuple:
    """The arguments of `parse_file` for a source; its path absolute, as a worker keeps the
    working folder it started in, which need not be this one's now."""
    return (source.file.absolute(), source.shown, int(config["max_file_mb"] * 2**20),
            config["chunk_chars"], config["chunk_overlap"])


def parse_limits(config: dict) -> Limits:
    """What one file may cost the worker parsing it (the parse_seconds and parse_memory_mb settings)."""
    return Limits(config["parse_seconds"], config["parse_memory_mb"])


def passage_texts(doc: Document, chunks: list[Chunk]) -> list[str]:
    """The text of each passage, as it is encoded and stored."""
    return [doc.text[c.start:c.end] for c in chunks]


def _apply(writer: ix.IndexWriter, plan: _Plan, embedder: Embedder, report: BuildReport,
           progress: Progress | None, reader: Reader) -> None:
    """Parse, chunk and embed what changed, and drop what is gone."""
    batch = _Batch(writer, embedder, report)

    def known(job: Job) -> Mapping[str, np.ndarray]:
        old = plan.old.get(job[0].source)
        return writer.reusable(job[1], old[0] if old else None)

    for n, ((source, sha), parsed, encoded) in enumerate(reader(plan.todo, known, report)):
        if progress:
            progress(n, len(plan.todo), source.shown)
        if isinstance(parsed, (str, Exception)):
            report.failed.append((source.shown, str(parsed)))
            continue  # an earlier version of this file, if any, stays indexed
        batch.add(source, sha, *parsed, plan.old.get(source.source), encoded)
    batch.flush()
    if progress:
        progress(len(plan.todo), len(plan.todo), "")
    for path in plan.removed:
        writer.remove(plan.old[path][0])
        report.removed.append(plan.old[path][2])


class _Batch:
    """Parsed documents waiting for their new passages to be encoded together.

    Encoding a few hundred passages of many files in one call lets the encoder sort them by
    length and pad little; a passage whose text is already stored (the unchanged part of an
    edited file, a copy of a file, a text repeated in this run) reuses its vector instead.
    """

    def __init__(self, writer: ix.IndexWriter, embedder: Embedder, report: BuildReport) -> None:
        self.writer, self.embedder, self.report = writer, embedder, report
        self.now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.docs: list[tuple[Source, str, Document, list[Chunk], list[str], dict[str, np.ndarray], tuple | None]] = []
        self.missing: dict[str, np.ndarray | None] = {}  # new texts, in order, once each (with a reader's vector)
        self.written: dict[bytes, int] = {}  # digest of each text written this run -> its passage id

    def add(self, source: Source, sha: str, doc: Document, chunks: list[Chunk],
            old: tuple[str, str, str] | None, encoded: Mapping[str, np.ndarray]) -> None:
        texts = passage_texts(doc, chunks)
        self.report.passages_read += len(chunks)
        known = self.writer.reusable(sha, old[0] if old else None)
        for t in new_texts(texts, known, self.written):
            self.missing.setdefault(t, encoded.get(t))
        self.docs.append((source, sha, doc, chunks, texts, known, old))
        if len(self.missing) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        """Encode the new texts no reader encoded in one call, then write the waiting documents and vectors."""
        todo = [t for t, v in self.missing.items() if v is None]
        fresh = {t: v for t, v in self.missing.items() if v is not None}
        fresh.update(zip(todo, self.embedder.encode(todo), strict=True))
        self.report.encoded += len(fresh)
        for source, sha, doc, chunks, texts, known, old in self.docs:
            vecs = [known[t] if t in known else fresh[t] if t in fresh
                    else self.writer.vector(self.written[digest(t)]) for t in texts]
            if old:
                self.writer.remove(old[0])
                self.report.updated.append(source.shown)
            else:
                self.report.added.append(source.shown)
            stacked = np.stack(vecs) if vecs else np.zeros((0, self.embedder.dimension), dtype="float32")
            # A changed file keeps its id (an index upgraded from an older layout has ids of another form).
            doc_id = old[0] if old else document_id(source.source)
            ids = self.writer.add(doc_id, doc, sha, self.now, chunks, stacked, source.source)
            self.written.update((digest(t), i) for t, i in zip(texts, ids, strict=True))
        self.docs, self.missing = [], {}


def new_texts(texts: Iterable[str], known: Mapping[str, np.ndarray], written: Container[bytes]) -> Iterator[str]:
    """The passage texts of a document that need encoding: neither stored for it (`known`) nor
    written earlier in this run (`written`, their digests). `_Batch` encodes them FLUSH at a time;
    `qa.library.ray_index` forms the same groups by this rule, so a text's batch, and with the int8
    encoder its vector, is the same on a Ray cluster."""
    return (t for t in texts if t not in known and digest(t) not in written)


def digest(text: str) -> bytes:
    """A short fingerprint of a passage text (what a run remembers of the texts it wrote)."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()
