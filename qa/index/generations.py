"""An index on disk is a folder of published generations; this module finds the serving one
and publishes new ones. Its two sides are `qa.index.snapshot` (questions) and
`qa.index.writer` (updates).

    index/
      CURRENT                 name of the published generation (replaced atomically)
      .lock                   held by the one process allowed to write
      gen-<time>-<pid>/       config.json: the manifest (model, encoder, chunker, and the
                              segments it serves with the documents deleted from each)
      segments/seg-*/         immutable slices: store.sqlite + faiss.index (`qa.index.segments`)

A writer adds one new segment, records what it deleted from older ones, fsyncs, writes a
new generation's manifest and swaps `CURRENT` with os.replace: a reader sees the old
generation or the new one, never half of either, and an update writes only what it adds.
A crash leaves `.tmp-*` folders or unreferenced segments that the next writer removes; a
segment is deleted only when no kept generation refers to it. Nothing outside `qa.index`
opens the SQLite files or the FAISS files of an index.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import IndexDamaged, IndexMismatch, IndexNotFound
from qa.index import segments as seg

SCHEMA_VERSION = 4
# 1: one folder a generation; 2: segments, documents known by their path as shown;
# 3: sentences without their paragraph index
UPGRADABLE = (1, 2, 3)
MANIFEST_FILE = "config.json"
KEEP_GENERATIONS = 2  # the serving one and its predecessor, which readers may still hold open


@dataclass(frozen=True)
class Generation:
    """One published generation: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def segments(self) -> list[dict[str, Any]]:
        """[{"name": segment folder, "deleted": [document ids]}] in the order they were written."""
        return self.manifest.get("segments", [])


def current(index_dir: str | os.PathLike, model: str | None = None) -> Generation:
    """The serving generation, checked against the schema version and (when given) the model.

    Raises:
        IndexNotFound: nothing has been published at `index_dir`.
        IndexDamaged: `CURRENT` or the manifest it names is damaged.
        IndexMismatch: another schema version or model built it.
    """
    root = Path(index_dir)
    try:
        raw = (root / "CURRENT").read_bytes()
    except OSError as exc:
        raise IndexNotFound(f"no index at {root}/ yet; build one with `qa index --index {root}`") from exc
    try:
        name = raw.decode("utf-8").strip()
        if not name.startswith("gen-") or "/" in name:
            raise ValueError(name)
    except ValueError as exc:
        raise IndexDamaged(f"{root / 'CURRENT'} does not name a generation; `qa index` picks the newest intact "
                           f"one, or `qa index --rebuild --index {root}` starts over") from exc
    return generation(root / name, model)


def generation(path: Path, model: str | None = None) -> Generation:
    """The generation in this folder, checked against the schema version and (when given) the model.

    Raises:
        IndexDamaged: its manifest is missing or damaged.
        IndexMismatch: another schema version or model built it.
    """
    root, manifest = path.parent, read_manifest(path)
    if manifest.get("schema") in UPGRADABLE:
        raise IndexMismatch(f"the index at {root}/ has the layout of an older Footnote (schema "
                            f"{manifest.get('schema')}); convert it, keeping every vector, with "
                            f"`qa index --upgrade --index {root}`")
    check_manifest(manifest, f"{root}/", str(root), model)
    return Generation(path, manifest)


def check_manifest(manifest: dict[str, Any], shown: str, index: str, model: str | None,
                   schema: int = SCHEMA_VERSION) -> None:
    """Refuse a generation of another schema version (`schema`: each backend has its own) or
    (when given) another model, naming the rebuild command: its vectors would mean nothing to
    this Footnote's encoder. `shown` is how messages name the index, `index` what `--index` takes.

    Raises:
        IndexMismatch: the manifest's schema or model differs.
    """
    rebuild = f"rebuild it with `qa index --rebuild --index {index}`"
    if manifest.get("schema") != schema:
        raise IndexMismatch(f"the index at {shown} has schema version {manifest.get('schema')}, this Footnote "
                            f"reads version {schema}; {rebuild}")
    if model is not None and manifest.get("model") != model:
        raise IndexMismatch(f"the index at {shown} was built with model {manifest.get('model')!r}, "
                            f"but the model setting is {model!r}; {rebuild} (or set --model to match)")


def read_manifest(path: Path) -> dict[str, Any]:
    """A generation's manifest.

    Raises:
        IndexDamaged: it is missing or not a JSON object; the message names the file.
    """
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("segments", []), list):
            raise ValueError("not a manifest")
        return manifest
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"{path / MANIFEST_FILE} is missing or damaged ({exc.__class__.__name__}); "
                           f"`qa index --rebuild --index {path.parent}` starts over") from exc


def generations(index_dir: str | os.PathLike) -> list[Path]:
    """The published generation folders, newest first."""
    return sorted((p for p in Path(index_dir).glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime,
                  reverse=True)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def out_of_space(exc: BaseException) -> bool:
    """The error says the disk (or the quota, or the file size limit) is full, as the OS,
    SQLite or FAISS words it."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return True
    text = str(exc).lower()
    return isinstance(exc, (sqlite3.Error, RuntimeError)) and any(
        words in text for words in ("disk is full", "no space left", "file too large", "quota exceeded"))


def upgradable(index_dir: str | os.PathLike) -> bool:
    """The published generation has an older layout that `qa.index.upgrade` converts."""
    try:
        root = Path(index_dir)
        name = (root / "CURRENT").read_text().strip()
        return json.loads((root / name / MANIFEST_FILE).read_text()).get("schema") in UPGRADABLE
    except (OSError, ValueError):
        return False


def encoder_backend(manifest: dict[str, Any]) -> str:
    """The backend that encoded a generation's passages (indexes from before backends: torch)."""
    return manifest.get("encoder", "torch")


def current_name(index_dir: str | os.PathLike) -> str | None:
    """Cheap check of which generation serves (the web app polls it to pick up new ones)."""
    try:
        return (Path(index_dir) / "CURRENT").read_bytes().decode("utf-8", "replace").strip()
    except OSError:
        return None


def publish(root: Path, manifest: dict[str, Any]) -> Generation:
    """Write a generation's manifest durably, switch CURRENT to it, prune what no one needs."""
    name = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    work = root / f".tmp-{name}"
    work.mkdir()
    (work / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema": SCHEMA_VERSION}, indent=2))
    seg.fsync(work / MANIFEST_FILE)
    os.rename(work, root / name)
    seg.fsync(root)
    pointer = root / "CURRENT.tmp"
    pointer.write_text(name + "\n")
    seg.fsync(pointer)
    os.replace(pointer, root / "CURRENT")
    seg.fsync(root)
    _prune(root, keep=name)
    return Generation(root / name, json.loads((root / name / MANIFEST_FILE).read_text()))


def clean_leftovers(root: Path) -> None:
    """Remove what a crashed writer left (only ever called while holding the lock)."""
    for p in [*root.glob(".tmp-*"), *(root / seg.FOLDER).glob(".tmp-*")]:
        shutil.rmtree(p, ignore_errors=True)
    (root / "CURRENT.tmp").unlink(missing_ok=True)
    _drop_unreferenced(root)


def _prune(root: Path, keep: str) -> None:
    """Keep the newest generations (readers may hold the previous one), then the segments they use."""
    gens = sorted((p for p in root.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [p for p in gens if p.name != keep][: max(len(gens) - KEEP_GENERATIONS, 0)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    _drop_unreferenced(root)


def _drop_unreferenced(root: Path) -> None:
    folder = root / seg.FOLDER
    if not folder.is_dir():
        return
    used: set[str] = set()
    for gen in root.glob("gen-*"):
        try:
            used |= {s["name"] for s in json.loads((gen / MANIFEST_FILE).read_text()).get("segments", [])}
        except (OSError, ValueError):
            return  # a manifest that cannot be read: delete nothing rather than something in use
    for p in folder.glob("seg-*"):
        if p.name not in used:
            shutil.rmtree(p, ignore_errors=True)
