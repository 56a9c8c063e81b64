"""The generation that answers questions, kept open and replaced when a new one is published.

A request takes the `Snapshot` already open; `follow` opens each newly published generation in a
background thread (`qa serve`), so no request pays for loading one. Without it, the request that
notices a new generation opens it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from qa.errors import FootnoteError, IndexChanged, IndexDamaged
from qa.index.generations import Generation, current, current_name, generation, generations
from qa.index.snapshot import Snapshot, View

log = logging.getLogger(__name__)
T = TypeVar("T")


class Serving:
    """The serving generation of the index at `index_dir`.

    Args:
        index_dir: the index folder.
        model: the embedding model questions are encoded with (a generation built with another
            is refused, `IndexMismatch`).
        on_open: called with each generation as it is opened (the pipeline warns there when
            the generation's encoder or calibration differs from the settings).
    """

    def __init__(self, index_dir: str | os.PathLike, model: str | None = None,
                 on_open: Callable[[Generation], None] | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.model = model
        self.on_open = on_open
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._follower: threading.Thread | None = None
        self.fallback: str | None = None  # why an older generation serves (the newest is damaged)
        self._damaged: str | None = None  # the CURRENT that named it, so it is not reopened every request

    def snapshot(self) -> Snapshot:
        """The serving generation, reopened when a newer one has been published."""
        snap = self._snapshot
        if snap is not None and (self._follower is not None
                                 or current_name(self.index_dir) in (snap.generation.path.name, self._damaged)):
            return snap
        return self._open_current()

    def _open_current(self) -> Snapshot:
        name = current_name(self.index_dir)
        with self._lock:
            if self._snapshot is None or name not in (self._snapshot.generation.path.name, self._damaged):
                try:
                    gen = current(self.index_dir, self.model)
                    snap = Snapshot(gen)
                    self.fallback = self._damaged = None
                except IndexDamaged as exc:
                    snap = self._intact(exc)
                    self._damaged, gen = name, snap.generation
                self._snapshot = snap
                log.info("serving generation %s", gen.path.name)
                if self.on_open:
                    self.on_open(gen)
            return self._snapshot

    def _intact(self, damage: IndexDamaged) -> Snapshot:
        """The newest older generation that opens whole, when the published one is damaged; the
        reason is kept in `fallback` (the sources page shows it).

        Raises:
            IndexDamaged: no generation opens.
        """
        for path in generations(self.index_dir):
            try:
                snap = Snapshot(generation(path, self.model))
            except FootnoteError:
                continue
            if snap.generation.path.name != current_name(self.index_dir):
                self.fallback = (f"the published generation is damaged ({damage}); serving the one before it, "
                                 f"{path.name}, until `qa index` repairs it")
                log.warning("%s", self.fallback)
                return snap
        raise damage

    def follow(self, interval: float = 0.25) -> None:
        """Open each newly published generation in a background thread; requests keep the open
        one until the new one is ready."""
        if self._follower is not None:
            return

        def run() -> None:
            while True:
                time.sleep(interval)
                name = current_name(self.index_dir)
                snap = self._snapshot
                if name and (snap is None or snap.generation.path.name != name):
                    try:
                        self._open_current()
                    except FootnoteError as exc:  # no usable index yet: requests say so
                        log.debug("not following %s: %s", name, exc)

        self._follower = threading.Thread(target=run, name="follow-generations", daemon=True)
        self._follower.start()

    def reading(self, work: Callable[[Snapshot, View], T]) -> T:
        """Run `work(snapshot, view)` on the serving generation. A merge removes the segments no
        kept generation uses, so a request that picked a generation just before two publishes
        can find its files gone (`IndexChanged`): it runs once more on the newest."""
        try:
            snap = self.snapshot()
            with snap.view() as view:
                return work(snap, view)
        except IndexChanged:
            with self._lock:
                self._snapshot = None
            snap = self.snapshot()
            with snap.view() as view:
                return work(snap, view)
