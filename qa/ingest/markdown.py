"""Markdown: headings become sections, `[^id]` footnotes link explicitly to their definitions."""

from __future__ import annotations

import re

from qa.ingest.builder import DocumentBuilder
from qa.ingest.reference_lists import build_references, is_heading, parse_entry
from qa.ingest.text import feed
from qa.records import Document

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"(?<!\^)\[([^\]^][^\]]*)\]\((?:[^()\s]|\([^)]*\))*(?:\s+\"[^\"]*\")?\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_NUMBERED = re.compile(r"^\s*\d{1,4}[.)]\s+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def inline(text: str) -> str:
    """Markdown inline markup to plain prose (links keep their words; emphasis marks go)."""
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    for _ in range(2):  # nested emphasis such as ***x***
        text = _EMPHASIS.sub(r"\2", text)
    return text.replace("\\", "")


def blocks(body: str) -> list[tuple[str, str]]:
    """Split Markdown into ("heading"|"para"|"note", text) blocks; code blocks are left out."""
    out: list[tuple[str, str]] = []
    para: list[str] = []
    in_fence = False
    lines = body.split("\n")

    def flush() -> None:
        if para:
            out.append(("para", " ".join(para)))
            para.clear()

    for i, line in enumerate(lines):
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if m := _HEADING.match(line):
            flush()
            out.append(("heading", m.group(2)))
        elif line.strip() and _SETEXT.match(nxt) and not para:
            out.append(("heading", line.strip()))
        elif _SETEXT.match(line) and out and out[-1][0] == "heading":
            continue
        elif not line.strip():
            flush()
        elif line.lstrip().startswith("[^") and parse_entry(line):
            flush()
            para.append(line.strip())
        elif _BULLET.match(line) or _NUMBERED.match(line):
            flush()  # a numbered item keeps its number: it may label a reference entry
            para.append(_BULLET.sub("", line).strip())
        elif line.startswith(("    ", "\t")) and not para:
            continue  # indented code block
        else:
            para.append(line.strip().lstrip("> ").strip())
    flush()
    return out


def parse(body: str, path: str, title: str, meta: dict[str, str]) -> Document:
    """Parse Markdown into a Document (see `qa.ingest.text` for the citation forms).

    Footnote definitions are taken wherever they stand; a closing run of reference headings
    and entries ("References" then "1. ^ ...") is the reference list; the rest is prose.
    """
    parts = blocks(body)
    cut = len(parts)
    while cut and (is_heading(parts[cut - 1][1]) or parse_entry(parts[cut - 1][1])):
        cut -= 1
    under_heading = any(kind == "heading" for kind, _ in parts[cut:])
    builder = DocumentBuilder()
    entries = []
    for i, (kind, text) in enumerate(parts):
        entry = parse_entry(text, numbered_ok=under_heading) if kind == "para" else None
        if i >= cut or (entry and text.lstrip().startswith("[^")):
            if entry:
                entries.append(entry)
        elif kind == "heading":
            builder.heading(inline(text))
        else:
            feed(builder, inline(text))
    refs, link = build_references(entries, builder.markers())
    return builder.build(path, title, "markdown", refs, link, meta)
