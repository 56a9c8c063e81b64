"""Turn one source file into one Document: check it, decode it, read front matter, pick the parser.

One parser a format, chosen by extension and checked against the content (a PDF named .html,
a text file named .pdf and a DOCX are refused with a message that says so); every failure is
a ParseError naming the file.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa.errors import ParseError, UnsupportedFormat
from qa.ingest.language import looks_english
from qa.records import Document


@dataclass(frozen=True)
class Format:
    """A source format: its name, its parser's module, and whether it reads bytes (PDF) or text.

    A parser is called as `parse(body, path, title, meta)`; `title` is the fallback (front
    matter or file name) that a format with a title of its own may replace (HTML's page title,
    PDF's declared title, Markdown's first level-1 heading when there is no front matter title). The
    module is imported on first use: the PDF library alone takes a tenth of a second, which a
    question never needs.
    """

    name: str
    module: str
    binary: bool = False
    front_matter: bool = False

    @property
    def parse(self) -> Callable[..., Document]:
        return importlib.import_module(f"qa.ingest.{self.module}").parse


_TEXT = Format("text", "text", front_matter=True)
_MARKDOWN = Format("markdown", "markdown", front_matter=True)
_HTML = Format("html", "html")
_WIKITEXT = Format("wikitext", "wikitext")
_PDF = Format("pdf", "pdf", binary=True)
PARSERS: dict[str, Format] = {
    ".txt": _TEXT, ".text": _TEXT, ".md": _MARKDOWN, ".markdown": _MARKDOWN,
    ".html": _HTML, ".htm": _HTML, ".wiki": _WIKITEXT, ".wikitext": _WIKITEXT, ".mediawiki": _WIKITEXT,
    ".pdf": _PDF,
}
FORMATS: dict[str, Format] = {f.name: f for f in PARSERS.values()}
FRONT_MATTER_KEYS = ("title", "url", "author", "date", "license")
NON_ENGLISH = "non-English?"
_ENCODINGS = ("utf-8-sig", "cp1252")


def supported_extensions() -> list[str]:
    return sorted(PARSERS)


def unsupported(shown: str, suffix: str) -> UnsupportedFormat:
    """The one message for a file type Footnote does not read, listing the ones it does."""
    return UnsupportedFormat(f"{shown}: unsupported format {suffix or '(no extension)'!r}; "
                             f"supported: {', '.join(supported_extensions())}")


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in PARSERS


def read_document(path: str | Path, max_bytes: int, display_path: str | None = None,
                  fmt: str | None = None) -> Document:
    """Read and parse one source file.

    Args:
        path: the file.
        max_bytes: larger files are refused (they would stall indexing and rarely are prose).
        display_path: how the document names its file (default: `path` as given).
        fmt: a format name ("wikitext", ...) that overrides the extension, for files saved
            under another name (wikitext kept as .txt).

    Returns:
        The parsed Document; `meta["language"]` is set when its text does not look English.

    Raises:
        UnsupportedFormat: the extension is not one Footnote reads.
        ParseError: the file is missing, empty, too large, binary, not decodable, not what
            its extension says, or its markup cannot be read.
    """
    path = Path(path)
    shown = display_path or str(path)
    if fmt is not None and fmt not in FORMATS:
        raise UnsupportedFormat(f"{shown}: unknown format {fmt!r}; formats: {', '.join(sorted(FORMATS))}")
    if fmt is None and path.suffix.lower() not in PARSERS:
        raise unsupported(shown, path.suffix)
    raw = read_bytes(path, max_bytes, shown)
    form = FORMATS[fmt] if fmt else PARSERS[path.suffix.lower()]
    check_content(raw, form.name, shown)
    meta: dict[str, str] = {}
    if form.binary:
        body: str | bytes = raw
    else:
        body = decode(raw, shown)
        if form.front_matter:
            meta, body = front_matter(body)
        _check_text(body, form.name, shown)
    title = meta.get("title") or _title_from_name(path)
    doc = form.parse(body, shown, title, meta)
    if not doc.sentences:
        raise ParseError(f"{shown}: no text found")
    if not looks_english(doc.text):
        doc.meta = {**doc.meta, "language": NON_ENGLISH}
    return doc


def read_bytes(path: Path, max_bytes: int, shown: str) -> bytes:
    """A regular file's bytes, at most `max_bytes` of them.

    A device, a pipe or a folder is refused before anything is read (`/dev/zero` never ends, a
    pipe may never answer: it is opened without waiting), and no more than the limit is read
    even from a file that grows while it is read.

    Raises:
        ParseError: not a regular file, too large, or unreadable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        raw = b""
        try:
            info = os.fstat(fd)
            regular = stat.S_ISREG(info.st_mode)
            if regular and info.st_size <= max_bytes:
                with open(fd, "rb", closefd=False) as fh:
                    raw = fh.read(max_bytes + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ParseError(f"{shown}: cannot read file ({exc.strerror or exc})") from exc
    if not regular:
        raise ParseError(f"{shown}: not a regular file (a device, pipe or folder); only files are read")
    if info.st_size > max_bytes or len(raw) > max_bytes:
        size = max(info.st_size, max_bytes + 1)
        raise ParseError(f"{shown}: file too large ({size / 2**20:.1f} MiB; the limit is "
                         f"{max_bytes / 2**20:.0f} MiB, setting max_file_mb)")
    return raw


def check_content(raw: bytes, fmt: str, shown: str) -> None:
    """Refuse a file whose bytes say it is another format than its name claims."""
    if not raw.strip():
        raise ParseError(f"{shown}: empty file")
    head = raw[:1024]
    if raw.startswith(b"PK\x03\x04"):
        raise UnsupportedFormat(f"{shown}: a ZIP container (DOCX, EPUB, ODT ...), unsupported format; "
                                f"supported: {', '.join(supported_extensions())}")
    if fmt != "pdf" and raw.lstrip().startswith(b"%PDF-"):
        raise ParseError(f"{shown}: is a PDF file, not {fmt}; give it the .pdf extension")
    if fmt == "pdf" and b"%PDF-" not in head:
        raise ParseError(f"{shown}: not a PDF (no %PDF header); give it the extension of what it is")


_HTML_START = re.compile(r"\A\s*(?:<!--.*?-->\s*)?<(?:!doctype\s+html|html)\b", re.I | re.S)


def _check_text(body: str, fmt: str, shown: str) -> None:
    """Text formats: an HTML page named .txt or .wiki, or a .html without any tag, is refused."""
    if fmt == "html" and not re.search(r"<[A-Za-z!/]", body[:65536]):
        raise ParseError(f"{shown}: no HTML markup, not HTML; plain text should be named .txt")
    if fmt != "html" and _HTML_START.match(body):
        raise ParseError(f"{shown}: is an HTML page, not {fmt}; give it the .html extension")


def decode(raw: bytes, shown: str) -> str:
    """Bytes to text: UTF-8 (with or without BOM), UTF-16 with a BOM, then Windows-1252."""
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


def _title_from_name(path: Path) -> str:
    """A document's title when its file says nothing better: the name as written, `_` and `-`
    read as spaces, without the extension ("julia_kristeva.txt" is "julia kristeva"; any
    capital letters are the file's own: a guessed one gave "Julia kristeva" and "Rnli stations")."""
    return " ".join(re.sub(r"[_-]+", " ", path.stem).split()) or path.name
