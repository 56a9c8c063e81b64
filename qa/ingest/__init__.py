"""Turn one source file into one Document: check it, decode it, read front matter, pick the parser.

One parser a format, chosen by extension; every failure is a ParseError naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from qa.documents import Document
from qa.errors import ParseError, UnsupportedFormat
from qa.ingest import markdown, text

Parser = Callable[[str, str, str, dict[str, str]], Document]

PARSERS: dict[str, tuple[str, Parser]] = {
    ".txt": ("text", text.parse),
    ".text": ("text", text.parse),
    ".md": ("markdown", markdown.parse),
    ".markdown": ("markdown", markdown.parse),
}
FRONT_MATTER_KEYS = ("title", "url", "author", "date", "license")
_ENCODINGS = ("utf-8-sig", "cp1252")


def supported_extensions() -> list[str]:
    return sorted(PARSERS)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in PARSERS


def read_document(path: str | Path, max_bytes: int, display_path: str | None = None) -> Document:
    """Read and parse one source file.

    Args:
        path: the file.
        max_bytes: larger files are refused (they would stall indexing and rarely are prose).
        display_path: how the document names its file (default: `path` as given).

    Returns:
        The parsed Document.

    Raises:
        UnsupportedFormat: the extension is not one Footnote reads.
        ParseError: the file is missing, empty, too large, binary or not decodable.
    """
    path = Path(path)
    shown = display_path or str(path)
    if path.suffix.lower() not in PARSERS:
        raise UnsupportedFormat(
            f"{shown}: unsupported format {path.suffix or '(no extension)'!r}; "
            f"supported: {', '.join(supported_extensions())}"
        )
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ParseError(f"{shown}: file too large ({size / 2**20:.1f} MiB; the limit is "
                             f"{max_bytes / 2**20:.0f} MiB, setting max_file_mb)")
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"{shown}: cannot read file ({exc.strerror or exc})") from exc
    body = decode(raw, shown)
    meta, body = front_matter(body)
    fmt, parser = PARSERS[path.suffix.lower()]
    title = meta.get("title") or _title_from(body, fmt) or _title_from_name(path)
    doc = parser(body, shown, title, meta)
    if not doc.sentences:
        raise ParseError(f"{shown}: no text found")
    return doc


def decode(raw: bytes, shown: str) -> str:
    """Bytes to text: UTF-8 (with or without BOM), UTF-16 with a BOM, then Windows-1252."""
    if not raw.strip():
        raise ParseError(f"{shown}: empty file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates: tuple[str, ...] = ("utf-16",)
    elif b"\x00" in raw[:8192]:
        raise ParseError(f"{shown}: binary file (contains NUL bytes), not text")
    else:
        candidates = _ENCODINGS
    for enc in candidates:
        try:
            body = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ParseError(f"{shown}: not text in UTF-8, UTF-16 or Windows-1252; re-save it as UTF-8")
    controls = sum(1 for ch in body[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > 0.05 * min(len(body), 8192):
        raise ParseError(f"{shown}: binary file (control characters), not text")
    return body.replace("\r\n", "\n").replace("\r", "\n")


_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)


def front_matter(body: str) -> tuple[dict[str, str], str]:
    """Split a leading `---` block of `key: value` lines from the body.

    Only the keys Footnote shows are kept; quotes around values are removed.
    """
    m = _FRONT.match(body)
    if not m:
        return {}, body
    meta = {}
    for line in m.group(1).split("\n"):
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in FRONT_MATTER_KEYS and value.strip():
            meta[key] = value.strip().strip("\"'")
    return meta, body[m.end():]


def _title_from(body: str, fmt: str) -> str | None:
    if fmt == "markdown":
        m = re.search(r"^#\s+(.+?)\s*#*\s*$", body, re.M)
        return m.group(1).strip() if m else None
    return None


def _title_from_name(path: Path) -> str:
    name = re.sub(r"[_-]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:] if name else path.name
