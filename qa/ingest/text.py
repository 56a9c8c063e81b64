"""Plain text, including Wikipedia pages copied as text, with inline markers and a reference list.

Inline forms: `[1]`, `[4][5][6]`, `[1]: 13`, `[1]:13–15`, notes `[a]` / `[note 1]`, Markdown
`[^1]`; maintenance tags such as `[update]` or `[citation needed]` are dropped from the text
and are not citations. The reference list at the end (see `reference_lists`) is removed from the body.
"""

from __future__ import annotations

import re

from qa.ingest.builder import DocumentBuilder
from qa.ingest.reference_lists import Entry, build_references, is_heading, parse_entry
from qa.records import Document

_PAGE = r"\d+(?:\s?[–-]\s?\d+)?"
_LOCATOR = rf"(?::\s?(?P<loc>(?:pp?\.\s?)?{_PAGE}(?:,\s?{_PAGE})*|[ivxlc]+(?:[–-][ivxlc]+)?)(?![\w]))?"
MARKER = re.compile(
    r"\[(?:\^(?P<md>[^\]\s]{1,40})|(?P<id>\d{1,4}|[a-z]|note \d{1,3}|nb \d{1,3})|(?P<tag>[a-z][a-z ?–'-]{2,40}))\]"
    + _LOCATOR
)
# Bracketed words that Wikipedia adds for maintenance, never citations.
_TAG_WORDS = ("needed", "?", "update", "discuss", "verification", "dead link", "clarif", "dubious",
              "citation", "edit", "original research", "not in", "failed", "unreliable", "disputed")


def paragraphs(body: str) -> list[str]:
    """Blank lines separate paragraphs when the file has any; otherwise every line is one."""
    if re.search(r"\n[ \t]*\n", body):
        return [" ".join(p.split("\n")) for p in re.split(r"\n[ \t]*\n", body) if p.strip()]
    return [line for line in body.split("\n") if line.strip()]


def split_reference_section(paras: list[str]) -> tuple[list[str], list[Entry]]:
    """Separate the body from reference entries.

    Markdown definitions (`[^x]: ...`) are taken wherever they stand; other entries form the
    trailing run of entry lines and reference headings.
    """
    body, entries = [], []
    for p in paras:
        e = parse_entry(p) if p.lstrip().startswith("[^") else None
        (entries.append(e) if e else body.append(p))
    cut = len(body)
    under_heading = False
    for i in range(len(body) - 1, -1, -1):
        if is_heading(body[i]):
            cut, under_heading = i, True
        elif parse_entry(body[i]):
            cut = i
        elif re.match(r"^\s*\d{1,4}\.\s", body[i]):
            continue  # maybe a bare numbered entry; kept only if a heading is found above
        else:
            break
    tail = body[cut:]
    if under_heading or any(parse_entry(p) for p in tail):
        trailing = [e for p in tail if (e := parse_entry(p, numbered_ok=under_heading))]
        return body[:cut], trailing + entries
    return body, entries


def feed(builder: DocumentBuilder, paragraph: str) -> None:
    """Add one paragraph of prose to the builder, turning inline markers into citations."""
    pos = 0
    for m in MARKER.finditer(paragraph):
        tag = m.group("tag")
        if tag and not any(w in tag for w in _TAG_WORDS):
            continue  # an ordinary bracketed word, part of the prose
        builder.text(paragraph[pos:m.start()])
        if not tag:
            builder.cite(m.group("md") or m.group("id"), _clean_locator(m.group("loc")))
        pos = paragraph.index("]", m.start()) + 1 if tag else m.end()  # a tag takes no locator
    builder.text(paragraph[pos:])
    builder.paragraph()


def _clean_locator(loc: str | None) -> str | None:
    return " ".join(loc.split()) if loc else None


def parse(body: str, path: str, title: str, meta: dict[str, str], fmt: str = "text") -> Document:
    """Parse plain text into a Document.

    Args:
        body: the decoded file, front matter already removed.
        path, title, meta: how the document is named and described.
        fmt: the format name recorded on the document.
    """
    prose, entries = split_reference_section(paragraphs(body))
    builder = DocumentBuilder()
    for p in prose:
        feed(builder, p)
    refs, link = build_references(entries, builder.markers())
    return builder.build(path, title, fmt, refs, link, meta)
