"""Markdown: headings become sections, `[^id]` footnotes link explicitly to their definitions.

The source is read as CommonMark by markdown-it-py (linear in the input: a heading padded with
spaces or a run of emphasis openers costs no more than prose), with pipe tables, strikethrough
and the footnote plugin of mdit-py-plugins. Walking its tokens:

- headings become sections; paragraphs, list items, block quotes and table rows become
  paragraphs of prose, fed to `qa.ingest.text.feed`, so the inline citation forms of plain text
  (`[1]`, `[^1]: 12` locators, `[a]`, maintenance tags dropped) read the same here, except
  inside inline code (`a[1]` is code) or when escaped (`\\[1\\]`);
- a table is not run together as prose: each row is its own paragraph, its non-empty cells
  joined by " | " (header row included, so a row reads as the table shows it);
- links keep their words (reference-style `[words][1]` with a `[1]: http://...` definition is
  a link, never a citation, and the definition is not text); images keep their alt text;
  inline code keeps its text; emphasis marks and HTML tags go (`<br>` is a space); code blocks,
  raw `<script>`/`<style>`/`<pre>` blocks and HTML comments are left out;
- a footnote definition `[^id]: ...` is a reference wherever it stands, with everything that
  belongs to it (indented continuation lines and paragraphs); a marker whose label has no
  definition is left as text `[^id]` for `feed`, and so becomes an unresolved citation;
- a closing run of reference headings and entries ("References", then "1. ^ ..." or a numbered
  list under that heading) is the reference list, read by `qa.ingest.reference_lists`.

Reference text is the note rendered as plain text, whitespace normalised; a link inside it keeps
its target after its words (`words <https://...>`) so the reference's `url` field can be read,
and what the note emphasises (`*Orchard Review*`, a title in italics) is the reference's field
`emphasis`: [start, end] offsets into its text, so a page can show it as the source meant it.
The document's title is its front matter `title`, else its first level-1 heading as plain text.
Containers nested deeper than markdown-it's limit (20 levels) are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from qa.ingest.builder import DocumentBuilder
from qa.ingest.reference_lists import Entry, build_references, is_heading, parse_entry
from qa.ingest.text import MARKER, feed
from qa.records import Document

_MD = (MarkdownIt("commonmark", {"maxNesting": 20, "store_labels": True})
       .enable(["table", "strikethrough"])
       .disable("text_join")  # keeps backslash escapes and entities apart: `\\[1\\]` is no marker
       # definitions stay where they stand (in source order, referenced or not); `^[...]` is prose
       .use(footnote_plugin, inline=False, move_to_end=False))
# HTML blocks whose content is not prose: script, style, pre, textarea, comments, <!DOCTYPE>, <?...?>.
_RAW_HTML = re.compile(r"\s*<(?:[!?]|(?:script|style|pre|textarea)(?:[\s>]|$))", re.I)
_BREAK = re.compile(r"<br\b", re.I)
_WEB = re.compile(r"https?://", re.I)

_CODE = "\x00"
_EM_OPEN, _EM_CLOSE = "\x01", "\x02"  # where emphasis starts and ends in "note" mode (see `unmark`)
_NO_EM = str.maketrans("", "", _EM_OPEN + _EM_CLOSE)  # the source's own, taken out so they cannot pose as ours
_PROSE, _PLAIN, _NOTE = "prose", "plain", "note"  # markers kept / dropped / dropped, link targets kept


@dataclass
class Block:
    """One heading or paragraph: `prose` carries citation markers for `feed_prose`; `note` is how it
    reads as a reference entry, `emphasis` the [start, end] spans of `note` the source emphasises;
    `number` is its ordered-list item number, if it opens one; `level` a heading's level."""

    kind: str
    prose: str
    note: str
    line: int
    number: str | None = None
    emphasis: list[list[int]] = field(default_factory=list)
    level: int = 0


def render(tokens: list[Token], mode: str = _PROSE, cited: dict[str, str] | None = None) -> str:
    """Inline tokens to plain text.

    Args:
        tokens: an inline token's children.
        mode: "prose" writes footnote markers as `[^id]`, a bare `[1]` that has a link
            definition as the marker `[1]`, and fences inline code and escaped characters with
            NULs (for `feed_prose`);
            "plain" drops markers; "note" drops them, writes each web link's target after
            its words and marks emphasis with `_EM_OPEN`/`_EM_CLOSE` (read by `unmark`).
        cited: in "prose" mode, collects link definition label -> marker for such markers.

    Returns:
        The text, whitespace not yet normalised.
    """
    out: list[str] = []
    links: list[tuple[str, int, str | None]] = []  # open links: target, where their words start, label
    for tok in tokens:
        kind = tok.type
        if kind == "text":
            out.append(tok.content.translate(_NO_EM) if mode == _NOTE else tok.content)
        elif kind in ("code_inline", "text_special"):  # fenced by NULs (none are left in the source)
            out.append(f"{_CODE}{tok.content}{_CODE}" if mode == _PROSE else tok.content.translate(_NO_EM))
        elif kind in ("em_open", "em_close") and mode == _NOTE:
            out.append(_EM_OPEN if kind == "em_open" else _EM_CLOSE)
        elif kind in ("softbreak", "hardbreak"):
            out.append(" ")
        elif kind == "image":  # its children are the alt text
            out.append(render(tok.children or [], mode, cited))
        elif kind == "footnote_ref" and mode == _PROSE:
            out.append(f"[^{tok.meta['label']}]")
        elif kind == "html_inline" and _BREAK.match(tok.content):
            out.append(" ")
        elif kind == "link_open":
            links.append((str(tok.attrs.get("href", "")), len(out), tok.meta.get("label")))
        elif kind == "link_close" and links:
            href, start, label = links.pop()
            words = "".join(out[start:])
            marker = _numbered_citation(words, label)
            if marker and mode == _PROSE:
                out[start:] = [f"[{marker}]"]
                if cited is not None and label:
                    cited[label] = marker
            elif mode == _NOTE and _WEB.match(href) and href not in words:
                out.append(f" <{href}>")
    return "".join(out)


def unmark(marked: str) -> tuple[str, list[list[int]]]:
    """A note rendered in "note" mode as its reference text (whitespace normalised, emphasis marks
    taken out) and the [start, end] spans of that text that were emphasised (nested emphasis is
    one span; a span never starts or ends on a space)."""
    out: list[str] = []
    spans: list[list[int]] = []
    length, depth, start, space = 0, 0, 0, False
    for piece in re.split(f"([{_EM_OPEN}{_EM_CLOSE}]|\\s+)", marked):
        if piece == _EM_OPEN:
            depth += 1
            if depth == 1:
                start = length + (space and length > 0)  # after the space still to be written
        elif piece == _EM_CLOSE:
            depth = max(depth - 1, 0)
            if depth == 0 and length > start:
                spans.append([start, length])
        elif piece.isspace():
            space = True
        elif piece:
            if space and length:
                out.append(" ")
                length += 1
            out.append(piece)
            length += len(piece)
            space = False
    return "".join(out), spans


def _within(spans: list[list[int]], note: str, text: str) -> list[list[int]]:
    """Spans of `note` as offsets into `text`, a piece of it (an entry without its "1. ^" label)."""
    offset = note.find(text)
    if offset < 0:
        return []
    moved = ([max(s - offset, 0), min(e - offset, len(text))] for s, e in spans)
    return [[s, e] for s, e in moved if s < e]


def _numbered_citation(words: str, label: str | None) -> str | None:
    """The marker of a reference link written as a bare marker, `Claim [1].` with `[1]: http://...`
    defined (words and label the same `[1]`, `[a]`, `[note 1]`), else None: `[words][1]` is a link."""
    if not label or words.strip().lower() != label.lower():
        return None
    m = MARKER.fullmatch(f"[{words.strip()}]")
    return m.group("id") if m else None


def blocks(body: str) -> tuple[list[Block], list[tuple[int, Entry, list[list[int]]]]]:
    """Read Markdown into headings and paragraphs, and footnote definitions with their lines and
    the spans of their text that are emphasised.

    Code blocks and raw HTML blocks are left out; each table row is one paragraph. A link
    definition cited as a bare marker (`[1]: https://...` for `Claim [1].`) is a reference too.
    """
    env: dict[str, Any] = {}
    cited: dict[str, str] = {}  # link definition label -> the marker that cites it
    out: list[Block] = []
    notes: list[tuple[int, Entry, list[list[int]]]] = []
    open_notes: list[tuple[str, int, list[str]]] = []  # label, line, text parts (definitions may nest)
    row: list[tuple[str, str]] | None = None  # the cells of the table row being read
    row_line = 0
    number: str | None = None  # the ordered-list item whose first paragraph is next
    level = 0  # of the heading being read; 0 outside headings
    for tok in _MD.parse(body, env):
        kind, line = tok.type, tok.map[0] if tok.map else 0
        if kind == "footnote_reference_open":
            open_notes.append((tok.meta["label"], line, []))
        elif kind == "footnote_reference_close":
            label, start, parts = open_notes.pop()
            text, emphasis = unmark(" ".join(parts))
            if text:
                notes.append((start, Entry(label, 1, text), emphasis))
        elif kind == "list_item_open":
            number = tok.info or None  # "" for a bullet item
        elif kind == "heading_open":
            level = int(tok.tag[1:])
        elif kind == "heading_close":
            level = 0
        elif kind == "tr_open":
            row, row_line = [], line
        elif kind == "tr_close":
            cells = [(prose, note) for prose, note in row or [] if prose.strip()]
            if cells:
                out.append(Block("para", " | ".join(p for p, _ in cells), " | ".join(n for _, n in cells), row_line))
            row = None
        elif kind in ("inline", "html_block"):
            children = (tok.children or []) if kind == "inline" else _html_children(tok.content, env)
            if open_notes:
                open_notes[-1][2].append(render(children, _NOTE))
            elif row is not None:
                row.append((render(children, _PROSE, cited), unmark(render(children, _NOTE))[0]))
            elif level:
                title = _squash(render(children, _PLAIN))
                out.append(Block("heading", title, title, line, level=level))
                number = None
            else:
                note, emphasis = unmark(render(children, _NOTE))
                out.append(Block("para", render(children, _PROSE, cited), note, line, number, emphasis))
                number = None
    for label, marker in cited.items():
        ref = env["references"][label]
        text = f"{ref['title']} <{ref['href']}>" if ref.get("title") else ref["href"]
        notes.append((ref.get("map", [len(body)])[0], Entry(marker, 1, text), []))  # no line known: last
    return out, notes


def _html_children(html: str, env: dict[str, Any]) -> list[Token]:
    """An HTML block's inline content (tags become html_inline tokens), or none for raw blocks."""
    if _RAW_HTML.match(html):
        return []
    return _MD.parseInline(html, env)[0].children or []


def _squash(text: str) -> str:
    return " ".join(text.split())


def reference_tail(parts: list[Block]) -> tuple[int, bool]:
    """Where the closing run of reference headings and entries starts, and whether a reference
    heading ("References", "Notes", ...) opens part of it.

    Walks back from the end as `qa.ingest.text.split_reference_section` does: a numbered list
    item that is not an entry by itself may still be one if a reference heading stands above it.
    """
    cut, under_heading = len(parts), False
    for i in range(len(parts) - 1, -1, -1):
        b = parts[i]
        if is_heading(b.note):  # a Markdown heading, or a paragraph that is only "References"
            cut, under_heading = i, True
        elif b.kind == "para" and parse_entry(_entry_text(b)):
            cut = i
        elif b.kind == "para" and b.number is not None:
            continue
        else:
            break
    return cut, under_heading


def _entry_text(b: Block) -> str:
    return f"{b.number}. {b.note}" if b.number is not None else b.note


class _Within:
    """The builder as `feed` sees it for a piece of a paragraph: it cannot close the paragraph."""

    def __init__(self, builder: DocumentBuilder) -> None:
        self._builder = builder

    def paragraph(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._builder, name)


def feed_prose(builder: DocumentBuilder, prose: str) -> None:
    """Add one paragraph rendered in "prose" mode: markers become citations, except inside
    inline code and escapes (`a[1]` and `\\[1\\]` are text, not citations)."""
    for i, piece in enumerate(prose.split(_CODE)):
        if i % 2:
            builder.text(piece)
        else:
            feed(_Within(builder), piece)  # type: ignore[arg-type]
    builder.paragraph()


def parse(body: str, path: str, title: str, meta: dict[str, str]) -> Document:
    """Parse Markdown into a Document (see `qa.ingest.text` for the citation forms).

    Args:
        body: the decoded file, front matter already removed.
        path, title, meta: how the document is named and described.

    Returns:
        The Document, titled by `meta["title"]`, else its first level-1 heading, else `title`;
        footnote definitions and the closing reference list are its references, in source
        order, each with the spans its note emphasises in `fields["emphasis"]` when it has any.
    """
    parts, notes = blocks(body)
    cut, under_heading = reference_tail(parts)
    builder = DocumentBuilder()
    entries = list(notes)
    for i, b in enumerate(parts):
        entry = parse_entry(_entry_text(b), numbered_ok=under_heading) if i >= cut and b.kind == "para" else None
        if entry:
            entries.append((b.line, entry, _within(b.emphasis, b.note, entry.text)))
        elif i >= cut and is_heading(b.note):
            continue  # the list's own heading
        elif b.kind == "heading":
            builder.heading(b.prose)
        else:
            feed_prose(builder, b.prose)  # also a numbered item after entries with no heading above
    entries.sort(key=lambda entry: entry[0])
    refs, link = build_references([e for _, e, _ in entries], builder.markers())
    emphasis = {e.text: spans for _, e, spans in entries if spans}
    refs = [replace(r, fields={**r.fields, "emphasis": emphasis[r.text]}) if r.text in emphasis else r for r in refs]
    heading = next((b.note for b in parts if b.kind == "heading" and b.level == 1 and b.note), None)
    return builder.build(path, meta.get("title") or heading or title, "markdown", refs, link, meta)
