"""The PostgreSQL backend of the index: the names `qa.index` offers for the embedded backend
(`Serving`, `IndexWriter`, `writer_lock`, `current`, `check`, ...), answered from a PostgreSQL
database with pgvector (README "Scaling out"). `qa.index.backend(location)` returns this module
for a `postgresql://` DSN, so the pipeline, the library and `qa.library.build` use it unchanged.

    pg_base     connections, the tables, the serving generation
    pg_serving  Serving, Snapshot, View: questions, each in one read-only transaction
    pg_writer   writer lock, IndexWriter (a reindex is one transaction), copy_index, check

Imported only when an index is a DSN: `import qa` does not need psycopg.
"""

from __future__ import annotations

import psycopg

from qa.index.generations import encoder_backend
from qa.index.generations import out_of_space as _out_of_space
from qa.index.pg_base import SCHEMA_VERSION, Generation, current, shown
from qa.index.pg_serving import Serving, Snapshot, View, Within
from qa.index.pg_writer import IndexWriter, check, copy_index, writer_lock


def generation(index_dir: str, model: str | None = None) -> Generation:
    """The serving generation: PostgreSQL keeps no older one to open instead (see `generations`)."""
    return current(index_dir, model)


def generations(index_dir: str) -> list[Generation]:
    """Older generations to fall back on when the serving one is damaged: none, since a reindex
    either commits whole or leaves the previous generation serving."""
    return []


def upgradable(index_dir: str) -> bool:
    return False


def upgrade(index_dir: str) -> None:
    """Nothing to convert: there is one layout of the PostgreSQL tables so far."""
    return None


def out_of_space(exc: BaseException) -> bool:
    """The server's disk (or the local one) is full."""
    return isinstance(exc, psycopg.errors.DiskFull) or _out_of_space(exc)


__all__ = [
    "SCHEMA_VERSION", "Generation", "IndexWriter", "Serving", "Snapshot", "View", "Within", "check", "copy_index",
    "current", "encoder_backend", "generation", "generations", "out_of_space", "shown", "upgradable", "upgrade",
    "writer_lock",
]
