"""Bulk indexing on a Ray cluster (`qa index --ray ADDRESS`) with Ray Data: in two stages, each a
Dataset mapped with `map_batches` over an actor pool (one CPU an actor), the cluster parses and chunks
the files of a run, then encodes their new passage texts in exactly the groups a local run encodes
together, one model per actor; the index is written here by the same writer as a local run, in the
same order: the same documents, passages, ids and vectors.

The groups matter because the int8 encoder quantises activations with one scale per batch: a
text's vector depends a little on the texts encoded beside it. So stage 1 parses, this process
forms the groups from its results as `build._Batch` does (`build.new_texts`, FLUSH texts a group, in
the run's order), and stage 2 encodes a group a row, each with the same `Embedder.encode` call, and
so the same length-sorted, padded batches, as a local run. Both stages keep the run's order
(`preserve_order`). Stage 1's results stay in the cluster's object store (spilled to disk beyond
it) and are read twice in order, to group and to write; each group goes to the store as it is
formed: this process holds one group's files and texts at a time, whatever the size of the run.

Only the paths travel, not the files: every node runs the same Footnote (`pip install
'footnote[ray]'`) and sees the sources at the paths this machine sees them (a shared folder).
Ray is an optional extra, imported only here.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import ConfigError, FootnoteError
from qa.ingest.pool import Limits, ParsePool, parse_file
from qa.library.build import FLUSH, BuildReport, Job, Parsed, digest, new_texts, parse_args, parse_limits, passage_texts
from qa.models.encoder import load_embedder

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

    from qa.models.encoder import Embedder

INSTALL = "Ray is not installed; install it with: pip install 'footnote[ray]'"
FILES_PER_CALL = 16  # files an actor parses in one call
ACTOR_START_SECONDS = 600  # an actor pool not up by then does not fit the cluster
CONNECT_SECONDS = 5  # a head that does not accept a connection by then is not there
ARGS = ("path", "shown", "max_bytes", "chunk_chars", "overlap")  # `parse_file`'s arguments: stage 1's columns


def require() -> None:
    """Import Ray, or say in one line how to install it.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise ConfigError(INSTALL) from exc


def connect(address: str) -> None:
    """Join the Ray cluster at `address` as its driver.

    "auto" keeps Ray's meaning: the cluster running on this machine (started with `ray start`).
    With none running it is an error rather than a new single-machine cluster: this machine's
    cores are what the local run already uses, without Ray's start-up.

    Raises:
        ConfigError: Ray is missing, or no cluster answers at that address.
    """
    require()
    import ray
    from ray._private.services import canonicalize_bootstrap_address  # how ray.init reads it (Ray is pinned)

    try:
        found = canonicalize_bootstrap_address(address)
    except ConnectionError as exc:
        raise ConfigError("--ray auto found no Ray cluster running on this machine: start one with "
                          "`ray start --head`, or give a cluster's address (--ray HOST:PORT)") from exc
    except ValueError:
        found = None
    if found is None:  # "local" would start a cluster of this machine alone
        raise ConfigError(f"--ray {address}: give the address of a Ray cluster's head (HOST:PORT), or auto")
    # ray.init retries an address where nothing listens for minutes: ask once, briefly, first.
    host, _, port = found.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({found}: {exc}); start its head there with "
                          "`ray start --head`") from exc
    ray.init(address=found, logging_level=logging.WARNING, log_to_driver=False)


class RayReader:
    """Reads the files of a run on a Ray cluster (a `qa.library.build.Reader`).

    Stage 1's actors parse, each in a worker process of its own within the parse limits; stage 2's
    load the run's model once each and encode the groups of new passage texts. The files each
    node read are counted in `report.nodes`, by the node id each row of stage 1 carries.

    Args:
        address: the cluster's address (HOST:PORT of its head), or "auto" (see `connect`).
        embedder: the run's embedder; each stage 2 actor loads the same model and backend.
        config: the settings (parse limits, chunking, max_file_mb).
    """

    def __init__(self, address: str, embedder: Embedder, config: dict) -> None:
        self.address, self.config = address, config
        self.model, self.backend = embedder.name, embedder.backend

    def __call__(self, todo: list[Job], known: Callable[[Job], Mapping[str, np.ndarray]],
                 report: BuildReport) -> Iterator[tuple[Job, Parsed, Mapping[str, np.ndarray]]]:
        if not todo:
            return
        connect(self.address)
        import ray

        try:
            cpus = max(1, int(ray.available_resources().get("CPU", 0)))  # one actor a free CPU
            parsed = self._parse(todo, min(cpus, len(todo))).materialize()  # read twice: to group, then to write
            owners, blocks = _grouped(_results(parsed), lambda n: known(todo[n]))
            encoded = self._encode(blocks, min(cpus, len(blocks))) if blocks else iter(())
            vectors = next(encoded, None)
            # Stage 1's rows are read to their end (zip's strict): a Ray Data iterator left half-read
            # reports on itself when collected, by then to a cluster this process has left.
            for number, files in itertools.groupby(zip(_results(parsed), owners, strict=True), lambda it: it[1]):
                texts: dict[str, np.ndarray] = {}
                if vectors is not None and vectors["group"] == number:  # a group with new texts
                    texts = dict(zip(vectors["texts"], pickle.loads(vectors["vectors"]), strict=True))
                    vectors = next(encoded, None)
                for (n, result, node), _ in files:
                    report.nodes[node] = report.nodes.get(node, 0) + 1
                    yield todo[n], result, texts
        except ray.exceptions.GetTimeoutError as exc:  # an actor pool that did not fit (wait_for_min_actors_s)
            raise FootnoteError(f"the Ray cluster at {self.address} did not start its actors (one CPU each, and "
                                f"one model each to encode) within {ACTOR_START_SECONDS} s") from exc
        except ray.exceptions.RayError as exc:
            raise FootnoteError(f"indexing on the Ray cluster at {self.address} failed: {exc}") from exc
        finally:
            ray.shutdown()  # leaves the cluster (its actors end); a cluster joined by address keeps running

    def _parse(self, todo: list[Job], actors: int) -> ray.data.Dataset:
        """Stage 1: a row a file (its job number and `parse_file`'s arguments), parsed by `_Parser`s."""
        import ray.data

        rows = []
        for n, job in enumerate(todo):
            path, *args = parse_args(job[0], self.config)
            rows.append({"n": n, **dict(zip(ARGS, (str(path), *args), strict=True))})
        size = max(1, min(FILES_PER_CALL, len(todo) // actors))  # a small run on every actor
        return _ordered(ray.data.from_items(rows)).map_batches(
            _Parser, fn_constructor_args=(parse_limits(self.config),), batch_size=size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)

    def _encode(self, blocks: list[ray.ObjectRef], actors: int) -> Iterator[dict]:
        """Stage 2: a row an encode group (its number and texts), encoded by `_Encoder`s one row a
        call; the rows with their vectors, in order, streamed."""
        import ray.data

        return iter(_ordered(ray.data.from_arrow_refs(blocks)).map_batches(
            _Encoder, fn_constructor_args=(self.model, self.backend), batch_size=1, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1).iter_rows())


def _ordered(dataset: ray.data.Dataset) -> ray.data.Dataset:
    """Set what a stage's execution needs on the dataset's own context (not the process's)."""
    context = dataset.context
    context.execution_options.preserve_order = True  # rows come out in the run's order
    context.wait_for_min_actors_s = ACTOR_START_SECONDS  # the whole pool up before any work: every actor gets some
    context.enable_progress_bars = False  # `qa index` shows its own progress
    context.print_on_execution_start = False
    return dataset


def _results(parsed: ray.data.Dataset) -> Iterator[tuple[int, Parsed, str]]:
    """Stage 1's rows in order: (job number, parse result, node that parsed it)."""
    return ((row["n"], pickle.loads(row["parsed"]), row["node"]) for row in parsed.iter_rows())


def _grouped(parsed: Iterable[tuple[int, Parsed, str]], known: Callable[[int], Mapping[str, np.ndarray]]
             ) -> tuple[list[int], list[ray.ObjectRef]]:
    """The encode group of each file, by number, and stage 2's input: the groups with new texts,
    a row (group number, texts) each, put in the object store as they are formed, a block each (an
    actor pool gives each of its actors whole blocks)."""
    import pyarrow as pa
    import ray

    owners, blocks = [], []
    for number, group in enumerate(groups(parsed, known)):
        owners += [number] * len(group.files)
        if group.texts:
            blocks.append(ray.put(pa.table({"group": [number], "texts": [group.texts]})))
    return owners, blocks


@dataclass
class _Group:
    """Files in the run's order, and the new passage texts of theirs a local run encodes in one call."""

    files: list[tuple[int, Parsed, str]] = field(default_factory=list)  # (job number, parse result, node)
    texts: list[str] = field(default_factory=list)


def groups(parsed: Iterable[tuple[int, Parsed, str]], known: Callable[[int], Mapping[str, np.ndarray]]
           ) -> Iterator[_Group]:
    """The parse results in the groups `build._Batch` flushes: a group ends once FLUSH new texts
    wait, a text counts once (first place kept), and the texts of a group are written before the
    next group's are looked at. On PostgreSQL a document replaced in an earlier group no longer
    lends its vectors by content hash there, while `known` here (asked before anything is written)
    still sees it: a text that differs so is encoded by the run itself, in its own batch (rare: a
    file taking over the old content of another one updated in the same run)."""
    written: set[bytes] = set()
    group, missing = _Group(), {}
    for n, result, node in parsed:
        group.files.append((n, result, node))
        if not isinstance(result, tuple):  # failed: no document, nothing to encode
            continue
        missing.update(dict.fromkeys(new_texts(passage_texts(*result), known(n), written)))
        if len(missing) >= FLUSH:
            group.texts = list(missing)
            yield group
            written.update(digest(t) for _, done, _ in group.files if isinstance(done, tuple)
                           for t in passage_texts(*done))
            group, missing = _Group(), {}
    if group.files:
        group.texts = list(missing)
        yield group


class _Parser:
    """Stage 1's mapped class, one an actor: its parse worker and the node it runs on."""

    def __init__(self, limits: Limits) -> None:
        import ray

        self.pool = ParsePool(1 if limits else 0)  # a file over the limits costs a worker, not this actor
        self.limits = limits
        self.node, self.address = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Parse and chunk a batch of files, each within the parse limits: their job numbers, parse
        results (pickled; a failure is its reason) and this node."""
        import pyarrow as pa

        jobs = [(row["n"], (Path(row["path"]), *(row[k] for k in ARGS[1:]))) for row in batch.to_pylist()]
        found = dict(self.pool.map(parse_file, (job for job in jobs if job[1][0].exists()), self.limits))
        results = []
        for n, _ in jobs:
            result = found.get(n, f"not found on the Ray node at {self.address} (every node must see the "
                                  f"sources at the same path)")
            results.append(pickle.dumps(str(result) if isinstance(result, Exception) else result))  # over a limit
        return pa.table({"n": [n for n, _ in jobs], "parsed": pa.array(results, pa.binary()),
                         "node": [self.node] * len(jobs)})


class _Encoder:
    """Stage 2's mapped class, one an actor: the run's model, loaded once."""

    def __init__(self, model: str, backend: str) -> None:
        self.embedder = load_embedder(model, backend, threads=1)  # the actor holds one CPU

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Encode each row's group in one call (the batches a local run makes of the same group):
        the rows with their vectors (pickled float32)."""
        import pyarrow as pa

        vectors = [pickle.dumps(self.embedder.encode(texts)) for texts in batch.column("texts").to_pylist()]
        return batch.append_column("vectors", pa.array(vectors, pa.binary()))
