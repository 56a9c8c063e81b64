"""Changing the source folder safely: uploads with sanitised names, and removals that stay inside it.

Nothing here trusts a client-supplied name: path components are refused, the name is reduced to
safe characters, the extension must be a supported format, and the final path is checked to lie
inside the source folder. A file is parsed before it is put in place, so a bad upload never
reaches the folder that `qa index` reads.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from qa.errors import ParseError, UploadRejected, UploadTooLarge
from qa.ingest import read_document, supported_extensions, unsupported
from qa.ingest.pool import Limits, shared

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(filename: str) -> str:
    """A file name that can only land directly in the source folder.

    Raises:
        UploadRejected: the name has path components or nothing usable.
        UnsupportedFormat: the extension is not a supported format.
    """
    if not filename or "/" in filename or "\\" in filename or ".." in filename or "\x00" in filename:
        raise UploadRejected(f"file name {filename!r} is not allowed: names may not contain paths or '..'")
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()  # "café" -> "cafe"
    stem, ext = os.path.splitext(ascii_name)
    stem = re.sub(r"-{2,}", "-", _UNSAFE.sub("-", stem)).strip(" .-")[:120]
    name = stem + ext
    if ext.lower() not in supported_extensions():
        raise unsupported(filename, ext)
    if not stem:
        raise UploadRejected(f"file name {filename!r} has no usable characters")
    return name


def contains(folder: Path, path: Path) -> bool:
    """Whether `path` lies inside `folder` once both are resolved (symlinks included)."""
    return folder.resolve() in path.resolve().parents


def save_upload(folder: Path, filename: str, data: bytes, max_bytes: int, limits: Limits | None = None) -> Path:
    """Check and store an uploaded file in the source folder (replacing a file of the same name).

    Args:
        folder: the source folder.
        filename: the name the client sent.
        data: the file's bytes.
        max_bytes: the size limit.
        limits: what parsing it may cost (None: no limit); a parse worker checks the file, so a
            hostile one neither hangs nor bloats the server.

    Returns:
        The stored file's path.

    Raises:
        UploadRejected, UploadTooLarge, UnsupportedFormat, ParseError: with a message naming the file.
    """
    name = safe_name(filename)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{filename}: {len(data) / 2**20:.1f} MiB is over the upload limit of "
                             f"{max_bytes / 2**20:.0f} MiB")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not contains(folder, target):
        raise UploadRejected(f"file name {filename!r} would land outside the source folder")
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=Path(name).suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # A bad file raises before it is kept; ParseError from the worker is raised here as it is.
        _, outcome = next(shared().map(read_document, [(filename, (Path(tmp).absolute(), max_bytes, filename))],
                                       limits or Limits()))
        if isinstance(outcome, Exception):  # over a limit, or its worker died
            raise ParseError(f"{filename}: {outcome}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def deletable(folder: Path, path: str) -> bool:
    """Whether removing the document indexed from `path` also deletes its file: only a regular
    file inside the source folder is ever deleted (the confirmation step says which it is)."""
    target = Path(path)
    return contains(folder, target) and target.is_file()


def delete_source(folder: Path, path: str) -> bool:
    """Delete a document's file when it lies in the source folder; files elsewhere are never touched.

    Returns:
        Whether a file was deleted.
    """
    if not deletable(folder, path):
        return False
    Path(path).unlink()
    return True
