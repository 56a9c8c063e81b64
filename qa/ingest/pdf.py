"""Born-digital PDF: text by page, so every sentence knows its page; a numbered or author-year bibliography.

pypdf was picked over pdfplumber by measurement on generated papers (tests/pdf_fixtures.py and
a six-page one): both extracted the same words on every page, pypdf in 32 ms against 959 ms.
Its default mode follows the content stream, which keeps the columns of a two-column paper
apart. A PDF carries no paragraph marks, so paragraphs are rebuilt from line shapes: a line
that ends a sentence well short of the page's longest line ends its paragraph; a short line
without final punctuation after a paragraph end is a heading. The part after a "References"
heading is the bibliography: `[12]` markers link to its numbered entries, author-year
citations to the one entry whose author and year they match.
"""

from __future__ import annotations

import io
import re

from pypdf import PdfReader

from qa.errors import ParseError
from qa.ingest import authoryear
from qa.ingest.builder import DocumentBuilder
from qa.ingest.reference_lists import Entry, build_references, is_heading
from qa.records import Document

_NUMERIC = re.compile(r"\s?\[(\d{1,4}(?:\s?[,–-]\s?\d{1,4})*)\]")
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s)?\d{1,4}(?:\s(?:of|/)\s\d{1,4})?\s*$", re.I)
_NUMBERED_ENTRY = re.compile(r"^\s*(?:\[(\d{1,4})\]|(\d{1,4})\.)\s+")
_AUTHOR_START = re.compile(r"^[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+)*,\s")
_SECTION_NUMBER = re.compile(r"^\s*(?:\d{1,2}(?:\.\d{1,2})*\.?|[IVX]{1,4}\.)\s+")
_ENDS_SENTENCE = re.compile(r"[.!?:;\"”)\]]$")
# Pages read at most. pypdf's cost is per page (about a millisecond even for an empty one), so a
# small file of 50,000 pages took minutes; no book has this many, and the per-file time limit
# (setting parse_seconds) still bounds a file of fewer but heavier pages.
MAX_PAGES = 5000


def _reader(body: bytes, path: str) -> PdfReader:
    """Open the PDF; an encrypted one opens only when its password is empty."""
    try:
        reader = PdfReader(io.BytesIO(body))
        encrypted = reader.is_encrypted
    except MemoryError:  # over the worker's memory limit: reported as that, not as a damaged file
        raise
    except Exception as exc:  # pypdf raises many types on damaged files; each means "cannot read this PDF"
        raise ParseError(f"{path}: cannot read the PDF ({type(exc).__name__}: {exc})") from exc
    if encrypted:
        try:
            opened = bool(reader.decrypt(""))
        except Exception:  # a cipher pypdf cannot run here is, to the user, the same locked file
            opened = False
        if not opened:
            raise ParseError(f"{path}: encrypted PDF (password protected); save a copy without a password")
    return reader


def _declared_pages(reader: PdfReader) -> int:
    """The page count the page tree declares (0 when it declares none it can give)."""
    try:
        count = reader.root_object["/Pages"].get_object().get("/Count", 0)
    except Exception:  # a damaged tree: pypdf's own reading of the pages says what is wrong
        return 0
    return count if isinstance(count, int) else 0


def page_lines(body: bytes, path: str) -> tuple[list[list[str]], str | None]:
    """The text lines of each page (bare page numbers dropped) and the title the PDF declares.

    Raises:
        ParseError: unreadable, encrypted, over MAX_PAGES pages, or without any text layer.
    """
    reader = _reader(body, path)
    try:
        count = _declared_pages(reader)  # one object to read, where pypdf's len() reads every page
        count = count if count > MAX_PAGES else len(reader.pages)
        if count > MAX_PAGES:
            raise ParseError(f"{path}: {count:,} pages; at most {MAX_PAGES:,} are read (split the PDF)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (MemoryError, ParseError):
        raise
    except Exception as exc:  # as in _reader: a damaged page stream, whatever pypdf calls it
        raise ParseError(f"{path}: cannot read the PDF text ({type(exc).__name__}: {exc})") from exc
    if not any(p.strip() for p in pages):
        raise ParseError(f"{path}: no text layer, OCR not supported")
    lines = [[ln.strip() for ln in p.split("\n") if ln.strip() and not _PAGE_NUMBER.match(ln)] for p in pages]
    return lines, (str(title).strip() or None) if title else None


def _is_heading(line: str, after_break: bool, width: int) -> bool:
    words = line.split()
    return (after_break and 0 < len(words) <= 8 and len(line) < 0.6 * width
            and not _ENDS_SENTENCE.search(line) and not line.endswith(",") and (line[0].isupper() or line[0].isdigit()))


def _split_bibliography(pages: list[list[str]]) -> tuple[list[list[str]], list[str]]:
    """Body pages, and the lines after the last References heading (the bibliography)."""
    last = None
    for p, lines in enumerate(pages):
        for i, line in enumerate(lines):
            if is_heading(_SECTION_NUMBER.sub("", line)):
                last = (p, i)
    if last is None:
        return pages, []
    p, i = last
    return [*pages[:p], pages[p][:i]], pages[p][i + 1:] + [ln for page in pages[p + 1:] for ln in page]


def bibliography(lines: list[str]) -> list[Entry]:
    """Entries of a bibliography: numbered (`[3] ...`, `3. ...`) or one an author line, wrapped lines joined."""
    entries: list[tuple[str | None, str]] = []
    numbered = any(_NUMBERED_ENTRY.match(ln) for ln in lines[:3])
    for line in lines:
        m = _NUMBERED_ENTRY.match(line)
        if m and numbered:
            entries.append((m.group(1) or m.group(2), line[m.end():]))
        elif not numbered and _AUTHOR_START.match(line) and (not entries or entries[-1][1].endswith(".")):
            entries.append((None, line))
        elif entries:
            label, text = entries[-1]
            entries[-1] = (label, _join(text, line))
    return [Entry(label, 1, " ".join(text.split())) for label, text in entries]


def _join(left: str, right: str) -> str:
    """Join two wrapped lines, undoing a hyphenation ("infor-" + "mation")."""
    if re.search(r"[a-z]-$", left) and right[:1].islower():
        return left[:-1] + right
    return f"{left} {right}"


def _feed(builder: DocumentBuilder, paragraph: str, refs: authoryear.Bibliography) -> None:
    """Add a paragraph: `[n]` markers leave the text, author-year citations stay in it and are cited."""
    pos = 0
    points = [(m.start(), m.end(), m) for m in _NUMERIC.finditer(paragraph)]
    points += [(c.end, c.end, c) for c in authoryear.find(paragraph)]
    for start, end, item in sorted(points, key=lambda x: x[0]):
        if start < pos:
            continue
        builder.text(paragraph[pos:start])
        if isinstance(item, authoryear.AuthorYear):
            builder.cite(item.marker, item.locator, refs.resolve(item))
        else:
            for number in _expand(item.group(1)):
                builder.cite(number)
        pos = end
    builder.text(paragraph[pos:])


def _expand(group: str) -> list[str]:
    """"2, 3" -> 2 and 3; "4–6" -> 4, 5 and 6 (a range is the source's own shorthand for each number)."""
    out = []
    for part in re.split(r"\s?,\s?", group):
        span = re.fullmatch(r"(\d+)\s?[–-]\s?(\d+)", part)
        if span and 0 < int(span.group(2)) - int(span.group(1)) < 50:
            out += [str(n) for n in range(int(span.group(1)), int(span.group(2)) + 1)]
        elif part.isdigit():
            out.append(part)
    return out


def parse(body: bytes, path: str, title: str, meta: dict[str, str]) -> Document:
    """Parse a PDF into a Document whose sentences carry their page numbers.

    Raises:
        ParseError: encrypted, damaged, over MAX_PAGES pages, or no text layer ("OCR not supported").
    """
    pages, declared = page_lines(body, path)
    pages, tail = _split_bibliography(pages)
    entries = bibliography(tail)
    bib = authoryear.Bibliography(build_references(entries, [])[0])
    builder = DocumentBuilder()
    width = max((len(ln) for page in pages for ln in page), default=0)
    paragraph, after_break = "", True
    for number, lines in enumerate(pages, 1):
        if paragraph:
            _feed(builder, paragraph + " ", bib)  # a paragraph running on: the new page starts mid-way
            paragraph = ""
        builder.page(number)
        for line in lines:
            if _is_heading(line, after_break and not paragraph, width):
                builder.heading(line)
                continue
            paragraph = _join(paragraph, line) if paragraph else line
            after_break = bool(_ENDS_SENTENCE.search(line)) and len(line) < 0.85 * width
            if after_break:
                _feed(builder, paragraph, bib)
                builder.paragraph()
                paragraph = ""
    _feed(builder, paragraph, bib)
    refs, link = build_references(entries, builder.markers())
    return builder.build(path, declared or title, "pdf", refs, link, meta)
