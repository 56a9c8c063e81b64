"""Bulk indexing on a Ray cluster (`qa index --ray ADDRESS`): a pool of Ray actors, one model each,
parses and chunks the files of a run, then encodes their new passage texts in exactly the groups a
local run encodes together; the index is written here by the same writer as a local run, in the same
order: the same documents, passages, ids and vectors.

The groups matter because the int8 encoder quantises activations with one scale per batch: a
text's vector depends a little on the texts encoded beside it. So the actors parse (stage 1), this
process forms the groups from the parse results as `build._Batch` does (`build.new_texts`, FLUSH
texts a group, in the run's order), and the actors encode those groups (stage 2), each with the
same `Embedder.encode` call, and so the same length-sorted, padded batches, as a local run.

Only the paths travel, not the files: every node runs the same Footnote (`pip install
'footnote[ray]'`) and sees the sources at the paths this machine sees them (a shared folder).
Ray is an optional extra, imported only here.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from qa.errors import ConfigError, FootnoteError
from qa.ingest.pool import Limits, ParsePool, parse_file
from qa.library.build import FLUSH, BuildReport, Job, Parsed, digest, new_texts, parse_args, parse_limits, passage_texts
from qa.models.encoder import Embedder, load_embedder

INSTALL = "Ray is not installed; install it with: pip install 'footnote[ray]'"
FILES_PER_CALL = 16  # files an actor parses in one call
ACTOR_START_SECONDS = 600  # an actor pool not up by then does not fit the cluster
CONNECT_SECONDS = 5  # a head that does not accept a connection by then is not there
T = TypeVar("T")


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

    Each actor holds one CPU and loads the run's model once; it parses in a worker process of its
    own within the parse limits, and encodes the groups of new passage texts it is given. The
    files each node read are counted in `report.nodes`.

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
            pool = self._start(len(todo))
            size = max(1, min(FILES_PER_CALL, len(todo) // len(pool.nodes)))  # a small run on every actor
            calls = [[(n, parse_args(job[0], self.config)) for n, job in enumerate(todo[at:at + size], at)]
                     for at in range(0, len(todo), size)]
            parsed = ((n, result, node) for call, results, node in pool.map("parse", calls, 2 * len(pool.nodes))
                      for (n, _), result in zip(call, results, strict=True))
            for group, vectors, _ in pool.map("encode", groups(parsed, lambda n: known(todo[n])),
                                              len(pool.nodes) + 1, lambda g: g.texts):
                encoded = dict(zip(group.texts, vectors, strict=True))
                for n, result, node in group.files:
                    report.nodes[node] = report.nodes.get(node, 0) + 1
                    yield todo[n], result, encoded
        except ray.exceptions.RayError as exc:
            raise FootnoteError(f"indexing on the Ray cluster at {self.address} failed: {exc}") from exc
        finally:
            ray.shutdown()  # leaves the cluster (its actors end); a cluster joined by address keeps running

    def _start(self, files: int) -> _Pool:
        """One actor a free CPU of the cluster (no more than there are files), each up with its model."""
        import ray

        count = max(1, min(files, int(ray.available_resources().get("CPU", 0))))
        remote = ray.remote(num_cpus=1)(_Actor)
        actors = [remote.remote(self.model, self.backend, parse_limits(self.config)) for _ in range(count)]
        try:
            nodes = ray.get([a.node.remote() for a in actors], timeout=ACTOR_START_SECONDS)
        except ray.exceptions.GetTimeoutError as exc:
            raise FootnoteError(f"the Ray cluster at {self.address} did not start {count} actors (one CPU and "
                                f"one model each) within {ACTOR_START_SECONDS} s") from exc
        return _Pool(dict(zip(actors, nodes, strict=True)))


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
    lends its vectors by content hash there, while `known` here may still see it: a text that
    differs so is encoded by the run itself, in its own batch (rare: a file taking over the old
    content of another one updated in the same run)."""
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


class _Pool:
    """The run's actors and the node each runs on; each call goes to the actor with the fewest
    calls whose results are not taken yet (Ray runs an actor's calls one after another)."""

    def __init__(self, nodes: dict[Any, str]) -> None:
        self.nodes = nodes
        self.load = dict.fromkeys(nodes, 0)

    def map(self, method: str, items: Iterable[T], window: int, arg: Callable[[T], Any] = lambda item: item
            ) -> Iterator[tuple[T, Any, str]]:
        """Call `method` with `arg(item)` for each item, up to `window` calls ahead, and yield
        (item, result, node of the actor) in the items' order."""
        import ray

        pending: deque[tuple[T, Any, Any]] = deque()
        items = iter(items)
        while True:
            while len(pending) < window and (item := next(items, None)) is not None:
                actor = min(self.load, key=self.load.__getitem__)
                self.load[actor] += 1
                pending.append((item, actor, getattr(actor, method).remote(arg(item))))
            if not pending:
                return
            item, actor, ref = pending.popleft()
            result = ray.get(ref)
            self.load[actor] -= 1
            yield item, result, self.nodes[actor]


class _Actor:
    """One Ray actor: its model, its parse worker, and the node it runs on."""

    def __init__(self, model: str, backend: str, limits: Limits) -> None:
        import ray

        self.embedder = load_embedder(model, backend, threads=1)  # the actor holds one CPU
        self.pool = ParsePool(1 if limits else 0)  # a file over the limits costs a worker, not this actor
        self.limits = limits
        self.address = ray.util.get_node_ip_address()

    def node(self) -> str:
        """The id of the node this actor runs on (answered once the model is loaded)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def parse(self, jobs: list[tuple[int, tuple]]) -> list[Parsed]:
        """Parse and chunk files (`parse_file`'s arguments, by job number), each within the parse limits."""
        found = dict(self.pool.map(parse_file, ((n, args) for n, args in jobs if Path(args[0]).exists()),
                                   self.limits))
        out: list[Parsed] = []
        for n, _ in jobs:
            result = found.get(n, f"not found on the Ray node at {self.address} (every node must see the "
                                  f"sources at the same path)")
            out.append(str(result) if isinstance(result, Exception) else result)  # over a limit, or its worker died
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode one group of texts in one call: the batches a local run makes of the same group."""
        return self.embedder.encode(texts)
