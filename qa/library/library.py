"""The library side of Footnote: what is indexed and how it changes. Builds and updates the
index from sources, removes documents, takes uploads, runs the background reindex, and lists
documents and shows one, in bounded pages.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from qa.errors import DocumentNotFound, FootnoteError
from qa.index import Serving, View, backend, encoder_backend
from qa.index.store import StoredDocument
from qa.ingest.pool import Limits
from qa.library import build, uploads
from qa.library.jobs import ReindexJob
from qa.models.encoder import Embedder
from qa.records import Footnote

log = logging.getLogger(__name__)
PAGE = 100  # documents a listing returns unless asked for fewer
DOCUMENT_PAGE = 1000  # sentences and references a document view returns at once


class Library:
    """Indexing and the documents it holds.

    Args:
        serving: the serving generation (read for listings and removals).
        config: the settings (`sources`, the index options, `upload_max_mb`).
        embedder: returns the embedder of an encoder backend (loaded on first use).
        default_sources: the `sources` setting's default, to tell a setting from no setting.
    """

    def __init__(self, serving: Serving, config: dict[str, Any], embedder: Callable[[str], Embedder],
                 default_sources: str) -> None:
        self.serving, self.config, self.embedder = serving, config, embedder
        self.default_sources = default_sources
        self.reindex_job = ReindexJob(lambda progress: self.index([str(self.sources_dir)], progress=progress))

    @property
    def index_dir(self) -> Path | str:
        """The index folder, or the DSN of a PostgreSQL index."""
        return self.serving.index_dir

    @property
    def _index(self) -> ModuleType:
        """The index backend's module: `qa.index`, or `qa.index.postgres` for a DSN."""
        return backend(self.index_dir)

    @property
    def sources_dir(self) -> Path:
        """Where uploads go and what the browser's reindex reads: the `sources` setting when it
        is set, else the first folder the index was built from (the manifest's roots)."""
        if self.config["sources"] != self.default_sources:
            return Path(self.config["sources"])
        try:
            roots = self._index.current(self.index_dir).manifest.get("roots", [])
        except FootnoteError:
            roots = []
        folders = [r for r in roots if r.endswith("/")]
        return Path(folders[0]) if folders else Path(self.config["sources"])

    def backend(self) -> str | None:
        """The encoder backend of the serving generation (None when nothing is published)."""
        try:
            return encoder_backend(self._index.current(self.index_dir).manifest)
        except FootnoteError:
            return None

    def index(self, paths: Iterable[str] = ("sources",), rebuild: bool = False,
              progress: build.Progress | None = None, remove: Iterable[str] = (),
              report: build.BuildReport | None = None, ray: str | None = None) -> build.BuildReport:
        """Build or update the index from files and folders (see `qa.library.build.build`); an
        update encodes with the index's backend, a rebuild with the `encoder` setting's. An index
        of an older layout is converted first (`qa.index.upgrade`, every vector kept). With `ray`
        (a Ray cluster's address, or "auto"), the files are parsed and encoded on that cluster
        (`qa.library.ray_index`)."""
        if ray:
            from qa.library import ray_index

            ray_index.require()  # before the model loads: a missing extra is said at once
        if not rebuild and self._index.upgradable(self.index_dir):
            self._index.upgrade(self.index_dir)
            log.warning("%s/ had the layout of an older Footnote: converted, every vector kept", self.index_dir)
        backend = self.config["encoder"] if rebuild else (self.backend() or self.config["encoder"])
        embedder = self.embedder(backend)
        reader = ray_index.RayReader(ray, embedder, self.config) if ray else None
        return build.build(paths, self.index_dir, embedder, self.config, rebuild, progress, remove,
                           report=report, reader=reader)

    def remove(self, paths: Iterable[str]) -> build.BuildReport:
        """Drop the documents indexed from these paths (the files themselves are left alone)."""
        return self.index([], remove=[os.path.abspath(p) for p in paths])

    def add_source(self, filename: str, data: bytes) -> str:
        """Store an uploaded file in the source folder after checking it parses; returns its path.

        It is searchable after the next reindex (see `reindex_job`).
        """
        limits = Limits(self.config["parse_seconds"], self.config["parse_memory_mb"])
        path = uploads.save_upload(self.sources_dir, filename, data, int(self.config["upload_max_mb"] * 2**20),
                                   limits)
        return build.display_path(path)

    def delete_document(self, doc_id: str) -> build.BuildReport:
        """Drop a document from the index, and its file when it lies in the source folder.

        Raises:
            DocumentNotFound: no document has that id.
        """
        doc = self._stored(doc_id)
        report = self.index([], remove=[doc.source])  # the index first: if that fails, the file stays
        uploads.delete_source(self.sources_dir, doc.source)  # a file indexed from elsewhere stays on disk
        return report

    def removal(self, doc_id: str) -> dict[str, Any]:
        """What `delete_document` would do, for the step that asks first: the document's `id`,
        `title` and `path`; the source `folder` (as messages show it, ending in "/"), whether the
        file lies `inside` it and its `name` there, and whether the file is deleted from disk too
        (`deletes_file`: inside the folder and still there).

        Raises:
            DocumentNotFound: no document has that id.
        """
        doc, folder = self._stored(doc_id), self.sources_dir
        inside = uploads.contains(folder, Path(doc.source))
        name = str(Path(doc.source).resolve().relative_to(folder.resolve())) if inside else doc.ref.path
        return {"id": doc_id, "title": doc.ref.title, "path": doc.ref.path, "folder": self.sources_shown(),
                "inside": inside, "name": name, "deletes_file": uploads.deletable(folder, doc.source)}

    def sources_shown(self) -> str:
        """The source folder as pages name it (relative to the working folder when inside it)."""
        return build.display_path(self.sources_dir).rstrip("/") + "/"

    def reindex_status(self) -> dict[str, Any]:
        """The reindex job's status with what the serving index holds now (`index`: documents,
        passages, generation; None without an index). A job's own summary counts the index as
        the job left it, which later removals and uploads change."""
        status = self.reindex_job.status()
        try:
            info = self.summary()
        except FootnoteError:
            return {**status, "index": None}
        return {**status, "index": {k: info[k] for k in ("documents", "passages", "generation")}}

    def _stored(self, doc_id: str) -> StoredDocument:
        """The stored document with this id (its `source` is the file's absolute path).

        Raises:
            DocumentNotFound: no document has that id.
        """
        doc = self.serving.reading(lambda _, view: view.document(doc_id))
        if doc is None:
            raise DocumentNotFound(f"no indexed document has id {doc_id!r}")
        return doc

    def summary(self) -> dict[str, Any]:
        """What the serving generation holds: counts, backends, and its segments with the kind
        of FAISS index each searches with."""
        snap = self.serving.snapshot()
        m = snap.generation.manifest
        return {"generation": snap.generation.path.name, "documents": m["documents"], "passages": m["passages"],
                "model": m["model"], "encoder": encoder_backend(m),
                "segments": [{"name": s.name, "kind": s.kind, "passages": s.passages, "deleted": len(s.deleted)}
                             for s in snap.segments]}

    def documents(self, offset: int = 0, limit: int | None = PAGE) -> tuple[list[dict[str, Any]], int]:
        """Indexed documents with their counts, by path: `limit` of them from `offset` (every
        one when None), and how many there are."""
        return self.serving.reading(lambda _, view: view.documents(max(offset, 0), limit))

    def document(self, doc_id: str, offset: int = 0, limit: int | None = DOCUMENT_PAGE) -> dict[str, Any]:
        """One document as the pages and `/api/documents/<id>` show it (see `document_view`).

        Raises:
            DocumentNotFound: no document has that id.
        """
        return self.serving.reading(lambda _, view: document_view(view, doc_id, offset, limit))


def document_view(view: View, doc_id: str, offset: int = 0, limit: int | None = DOCUMENT_PAGE) -> dict[str, Any]:
    """A document: its whole clean text (every offset refers to it) and its paragraphs (offsets
    into it, each sentence naming its own); its sentences with their footnotes and its
    references, each list `limit` long from `offset` (whole when None), with the totals in `total`.

    Raises:
        DocumentNotFound: no document has that id.
    """
    doc = view.document(doc_id)
    if doc is None:
        raise DocumentNotFound(f"no indexed document has id {doc_id!r}")
    offset = max(offset, 0)
    stop = None if limit is None else offset + limit
    sents = view.sentences(doc_id, offset, (1 << 30) if stop is None else stop - 1)
    notes: dict[int, list[dict[str, Any]]] = {}
    for c, ref in view.citations(doc_id, None if limit is None else [i for i, _, _ in sents]):
        notes.setdefault(c.sentence, []).append({**Footnote(c.marker, c.locator, ref).to_dict(),
                                                 "position": c.position})
    refs = view.references(doc_id)
    return {
        **doc.ref.to_dict(), "format": doc.format, "text": doc.text, "indexed_at": doc.indexed_at, "meta": doc.ref.meta,
        "paragraphs": [list(p) for p in view.paragraphs(doc_id)],
        "sentences": [{"index": i, "start": s.start, "end": s.end, "page": s.page, "section": s.section,
                       "paragraph": s.paragraph, "footnotes": notes.get(i, [])} for i, s, _ in sents],
        "references": [r.to_dict() for r in refs[offset:stop]],
        "offset": offset, "total": {"sentences": view.sentence_count(doc_id), "references": len(refs)},
    }

