"""The index interface: everything else reads and writes an index through these names.

`Snapshot` and `View` answer questions (dense search, lexical search, rows by id); `IndexWriter`
under `writer_lock` adds, replaces and removes documents and publishes them as a new
generation; `current` finds the serving generation. `backend(location)` picks the module that
offers these names for an index: this one for a folder, `qa.index.postgres` for a
`postgresql://` DSN (imported only then, so the embedded backend never loads psycopg).
"""

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

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


def is_postgres(location: str | os.PathLike) -> bool:
    """The `index` setting names a PostgreSQL database (a DSN), not a folder."""
    return str(location).startswith(("postgresql://", "postgres://"))


def backend(location: str | os.PathLike) -> ModuleType:
    """The module implementing the index interface for this `index` setting."""
    return importlib.import_module("qa.index.postgres") if is_postgres(location) else sys.modules[__name__]


def where(location: str | os.PathLike) -> str:
    """How answers name the index: the folder's absolute path, or the DSN without its password."""
    if is_postgres(location):
        return backend(location).shown(str(location))
    return str(Path(location).resolve())


__all__ = [
    "MANIFEST_FILE", "MAX_DELETED", "MAX_SEGMENTS", "SCHEMA_VERSION", "Generation", "IndexWriter", "Serving",
    "Snapshot", "View", "backend", "check", "current", "current_name", "encoder_backend", "generation",
    "generations", "is_postgres", "out_of_space", "upgradable", "upgrade", "where", "writer_lock",
]
