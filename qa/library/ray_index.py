"""Bulk indexing on a Ray cluster (`qa index --ray ADDRESS`): the files of a run are parsed, chunked
and encoded by a pool of Ray actors, one model each (Ray Data `map_batches`), and the index is written
here by the same writer as a local run, in the same order: the same documents, passages and ids.

Only the paths travel, not the files: every node runs the same Footnote (`pip install
'footnote[ray]'`) and sees the sources at the paths this machine sees them (a shared folder).
Ray is an optional extra, imported only here.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ConfigError, FootnoteError
from qa.ingest.pool import Limits, ParsePool, parse_file
from qa.library.build import BuildReport, Job, Parsed, digest, parse_args, parse_limits, passage_texts
from qa.models.encoder import Embedder, load_embedder

INSTALL = "Ray is not installed; install it with: pip install 'footnote[ray]'"
FILES_PER_CALL = 16  # files an actor reads and encodes in one call: a few hundred passages, like a local flush
ACTOR_START_SECONDS = 600  # an actor pool not up by then does not fit the cluster
DIGEST = 16  # bytes of `build.digest`
CONNECT_SECONDS = 5  # a head that does not accept a connection by then is not there


def require() -> None:
    """Import Ray Data, or say in one line how to install it.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray.data  # noqa: F401
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
    # Ray Data logs each run's plan at INFO: on the terminal it would break the progress bar.
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class RayReader:
    """Reads the files of a run on a Ray cluster (a `qa.library.build.Reader`).

    Each actor holds one CPU, loads the run's model once, and parses in a worker process of its
    own within the parse limits; it encodes the passage texts the index does not hold yet for
    that file. The files each node read are counted in `report.nodes`.

    Args:
        address: the cluster's address (HOST:PORT of its head), or "auto" (see `connect`).
        embedder: the run's embedder; each actor loads the same model and backend.
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
            for n, (parsed, encoded, node) in enumerate(self._results(todo, known)):
                report.nodes[node] = report.nodes.get(node, 0) + 1
                yield todo[n], parsed, encoded
        except ray.exceptions.RayError as exc:
            raise FootnoteError(f"indexing on the Ray cluster at {self.address} failed: {exc}") from exc
        finally:
            ray.shutdown()  # leaves the cluster; a cluster joined by address keeps running

    def _results(self, todo: list[Job], known: Callable[[Job], Mapping[str, np.ndarray]]
                 ) -> Iterator[tuple[Parsed, dict[str, np.ndarray], str]]:
        """Each job's (parse result, vectors encoded for it, node id), in the order of `todo`."""
        import ray
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # written in the run's order: the ids of a local run
        ctx.enable_progress_bars = False  # the run shows its own
        ctx.print_on_execution_start = False
        ctx.wait_for_min_actors_s = ACTOR_START_SECONDS  # every actor up before files are handed out
        actors = max(1, min(len(todo), int(ray.available_resources().get("CPU", 0))))
        rows = [{"n": n, "args": pickle.dumps(parse_args(job[0], self.config)),
                 "known": b"".join(sorted(map(digest, known(job))))} for n, job in enumerate(todo)]
        dataset = ray.data.from_items(rows).map_batches(
            _Actor, batch_size=max(1, min(FILES_PER_CALL, len(todo) // actors)), batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1), num_cpus=1,
            fn_constructor_kwargs={"model": self.model, "backend": self.backend,
                                   "limits": parse_limits(self.config)})
        expected = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for n, out in zip(batch["n"], batch["out"], strict=True):
                if int(n) != expected:
                    raise RuntimeError(f"Ray returned file {int(n)} where {expected} was due")
                expected += 1
                yield pickle.loads(out)


class _Actor:
    """One Ray actor: its model, its parse worker, and the node it runs on."""

    def __init__(self, model: str, backend: str, limits: Limits) -> None:
        import ray

        self.embedder = load_embedder(model, backend, threads=1)  # the actor holds one CPU
        self.pool = ParsePool(1 if limits else 0)  # a file over the limits costs a worker, not this actor
        self.limits = limits
        self.node = ray.get_runtime_context().get_node_id()
        self.address = ray.util.get_node_ip_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Parse and chunk the batch's files, then encode their passage texts not yet stored in one call."""
        numbers = [int(n) for n in batch["n"]]
        jobs = [(n, pickle.loads(args)) for n, args in zip(numbers, batch["args"], strict=True)]
        parsed = dict(self.pool.map(parse_file, ((n, args) for n, args in jobs if Path(args[0]).exists()),
                                    self.limits))
        texts: dict[int, list[str]] = {}  # each file's texts to encode
        for n, stored in zip(numbers, batch["known"], strict=True):
            if isinstance(result := parsed.get(n), tuple):
                have = {stored[i:i + DIGEST] for i in range(0, len(stored), DIGEST)}
                texts[n] = [t for t in passage_texts(*result) if digest(t) not in have]
        unique = list(dict.fromkeys(t for file in texts.values() for t in file))
        vectors = dict(zip(unique, self.embedder.encode(unique), strict=True))
        out = []
        for n in numbers:
            result = parsed.get(n, f"not found on the Ray node at {self.address} (every node must see the "
                                   f"sources at the same path)")
            if isinstance(result, Exception):  # over a limit, or its worker died
                result = str(result)
            out.append(pickle.dumps((result, {t: vectors[t] for t in texts.get(n, [])}, self.node)))
        return {"n": numbers, "out": out}
