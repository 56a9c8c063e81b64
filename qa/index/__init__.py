"""The index interface: everything else reads and writes an index through these names.

`Snapshot` and `View` answer questions (dense search, lexical search, rows by id); `IndexWriter`
under `writer_lock` adds, replaces and removes documents and publishes them as a new
generation; `current` finds the serving generation. The PostgreSQL backend is meant to plug in
at this seam.
"""

from qa.index.generations import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    Generation,
    current,
    current_name,
    encoder_backend,
    generation,
    generations,
    out_of_space,
    upgradable,
)
from qa.index.serving import Serving
from qa.index.snapshot import Snapshot, View
from qa.index.writer import MAX_DELETED, MAX_SEGMENTS, IndexWriter, check, upgrade, writer_lock

__all__ = [
    "MANIFEST_FILE", "MAX_DELETED", "MAX_SEGMENTS", "SCHEMA_VERSION", "Generation", "IndexWriter", "Serving",
    "Snapshot", "View", "check", "current", "current_name", "encoder_backend", "generation", "generations",
    "out_of_space", "upgradable", "upgrade", "writer_lock",
]
