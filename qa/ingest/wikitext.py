"""MediaWiki wikitext: prose without markup, `<ref>` notes numbered as MediaWiki numbers them.

mwparserfromhell gives the node tree. `<ref>` tags are taken out before any text is rendered
(`strip_code()` would leave their bodies in the prose); a named ref used again
(`<ref name=x/>`) resolves to its one definition, wherever it stands (list-defined refs inside
`{{reflist|refs=...}}` or `<references>...</references>` included); `{{efn}}` and `{{refn}}` are
notes of their groups; `{{rp|13}}` is the locator of the ref before it; `{{sfn}}` is a short
note whose full citation is found through its CITEREF anchor. Infoboxes, tables, files and
other templates are left out of the prose, and the punctuation a left-out template leaves
("Toronto (, ) is") with them (`DocumentBuilder.gap`); sections of links and references are
not body text.
"""

from __future__ import annotations

import re
from typing import Any

import mwparserfromhell
from mwparserfromhell.nodes import Comment, ExternalLink, Heading, HTMLEntity, Tag, Template, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

from qa.errors import ParseError
from qa.ingest.builder import DocumentBuilder
from qa.ingest.cite_templates import SHORT_FORMS, anchor, format_citation, is_citation, name_of, positional, short_form
from qa.ingest.reference_fields import parse_fields
from qa.ingest.reference_lists import BodySections, group_label
from qa.records import Document, Reference

_DROPPED_TAGS = {"table", "gallery", "imagemap", "timeline", "score", "syntaxhighlight", "source", "graph",
                 "mapframe", "templatedata", "references", "noinclude", "includeonly", "ref"}
_BLOCK_TAGS = {"div", "blockquote", "p", "center", "poem", "hr", "ul", "ol"}
_LINK_DROPPED = re.compile(r"^\s*:?\s*(?:file|image|category|media|datei|bild|kategorie|[a-z]{2,3}(?:-[a-z]+)?)\s*:",
                           re.I)
_NOTES = {"efn": "lower-alpha", "efn-ua": "upper-alpha", "efn-lr": "lower-roman", "efn-ur": "upper-roman",
          "refn": ""}
_WRAPPERS = {"nowrap", "nobr", "small", "big", "nobold", "noitalic", "em", "strong", "abbr", "sic", "resize",
             "lang", "transl", "script", "nihongo", "keep together", "vanchor", "visible anchor"}
_MAGIC = re.compile(r"__[A-Z]+__")
_OPEN_REF = re.compile(r"<ref(?:\s[^<>]*)?>", re.I)  # [^<>]: "<ref <ref <ref" is scanned once, not per "<ref"
_REF_TAG = re.compile(r"<ref(?=[\s>])|</ref\s*>", re.I)
# An indented table (":{|") is still a table, but mwparserfromhell only sees one at a line start.
_INDENTED_TABLE = re.compile(r"^[:*#]+(?=\{\|)", re.M)


def _attr(tag: Tag, name: str) -> str:
    return str(tag.get(name).value).strip().strip("\"'") if tag.has(name) else ""


def inline_template(t: Template, render: Any) -> str | None:
    """What an inline template shows in running text, or None for templates that are not prose."""
    name = name_of(t).lower()
    args = positional(t, render)
    if name == "convert" and args:
        return " ".join(args[:4] if len(args) > 3 and args[1] in ("to", "-", "–", "and", "or") else args[:2])
    if name in _WRAPPERS or name.startswith("lang-"):
        return args[-1] if args else ""
    if name == "isbn" and args:
        return "ISBN " + args[0]
    if name in ("c.", "circa") and args:
        return "c. " + args[0]
    if name == "as of" and args:
        return "As of " + args[0]
    return {"ndash": "–", "mdash": "—", "snd": " – ", "nbsp": " ", "'": "'", "spaced ndash": " – "}.get(name)


def render(code: Any) -> str:
    """Plain text of a piece of wikitext (links as their words, inline templates as shown, refs dropped)."""
    if code is None:
        return ""
    out = []
    for n in (code.nodes if isinstance(code, Wikicode) else [code]):
        if isinstance(n, Text):
            out.append(str(n.value))
        elif isinstance(n, HTMLEntity):
            out.append(n.normalize())
        elif isinstance(n, Wikilink):
            out.append("" if _LINK_DROPPED.match(str(n.title)) else render(n.text or n.title))
        elif isinstance(n, ExternalLink):
            out.append(render(n.title) if n.title else str(n.url))
        elif isinstance(n, Template):
            out.append(inline_template(n, render) or "")
        elif isinstance(n, Tag) and n.tag.lower() not in _DROPPED_TAGS and n.contents is not None:
            out.append(" " if n.tag.lower() == "br" else render(n.contents))
    return _MAGIC.sub("", "".join(out))


class _Notes:
    """Every note of the page: which node defines which key, and the reference each key becomes."""

    def __init__(self, code: Wikicode) -> None:
        self.key: dict[int, tuple[str, str]] = {}  # id(node) -> (group, key)
        self.body: dict[str, Any] = {}
        self.short: dict[str, Template] = {}
        self.anchors: dict[str, list[str]] = {}
        anonymous = 0
        for node in code.ifilter(recursive=True):
            if isinstance(node, Tag) and node.tag.lower() == "ref":
                group, name = _attr(node, "group"), _attr(node, "name")
                body = node.contents if not node.self_closing and node.contents and str(node.contents).strip() else None
            elif isinstance(node, Template) and name_of(node).lower() in _NOTES:
                group = render(node.get("group").value).strip() if node.has("group") else _NOTES[name_of(node).lower()]
                name = render(node.get("name").value).strip() if node.has("name") else ""
                body = node.get("1").value if node.has("1") else None
            elif isinstance(node, Template) and name_of(node).lower() in ("sfn", "sfnp"):
                key = "sfn:" + "|".join(str(p).strip() for p in node.params)
                self.key[id(node)] = ("", key)
                self.short.setdefault(key, node)
                continue
            elif isinstance(node, Template) and is_citation(node):
                if target := anchor(node, render):
                    self.anchors.setdefault(target, []).append(format_citation(node, render)[0])
                continue
            else:
                continue
            if not name:
                anonymous += 1
            key = f"{group + ':' if group else ''}{name or f'#{anonymous}'}"
            self.key[id(node)] = (group, key)
            if body is not None:
                self.body.setdefault(key, body)

    def references(self) -> list[Reference]:
        refs = []
        for key, body in self.body.items():
            refs.append(self._note(key, body))
        for key, t in self.short.items():
            text, locator, target = short_form(t, render)
            refs.append(Reference(key, text, {"pages": locator} if locator else {}, self._resolve(target)))
        return refs

    def _note(self, key: str, body: Wikicode) -> Reference:
        pieces, fields, targets = [], {}, []
        for n in body.nodes:
            if isinstance(n, Template) and is_citation(n):
                text, found = format_citation(n, render)
                pieces.append(text)
                fields = fields or found
            elif isinstance(n, Template) and SHORT_FORMS.match(name_of(n)):
                text, _, target = short_form(n, render)
                pieces.append(text)
                targets.append(target)
            else:
                pieces.append(render(n))
        text = " ".join("".join(pieces).split())
        resolved = "; ".join(r for t in targets if (r := self._resolve(t))) or None
        return Reference(key, text, fields or parse_fields(text), resolved)

    def _resolve(self, target: str | None) -> str | None:
        """The full citation an anchor names, only when exactly one citation carries it."""
        found = self.anchors.get(target or "", [])
        return found[0] if len(found) == 1 else None


class _Walker:
    """Feeds the article's prose to the builder, turning refs into numbered markers."""

    def __init__(self, builder: DocumentBuilder, notes: _Notes, defined: set[str]) -> None:
        self.b, self.notes, self.defined = builder, notes, defined
        self.numbers: dict[str, dict[str, int]] = {}
        self.bol = True  # at the beginning of a line
        self.sections = BodySections()

    def walk(self, code: Wikicode) -> None:
        for n in code.nodes:
            if isinstance(n, Heading):
                self._heading(n.level, " ".join(render(n.title).split()))
            elif isinstance(n, Text):
                self._text(str(n.value))
            elif isinstance(n, Comment) or not self.sections.in_body:
                continue
            elif id(n) in self.notes.key:
                self._cite(n)
            elif isinstance(n, Template):
                self._template(n)
            elif isinstance(n, Tag):
                self._tag(n)
            else:
                self._text(render(n))

    def _text(self, s: str) -> None:
        """Add text, where a blank line ends a paragraph and each list item is one."""
        if not self.sections.in_body:
            self.bol = s.endswith("\n") or (self.bol and not s.strip())
            return
        for i, line in enumerate(_MAGIC.sub("", s).split("\n")):
            if i:
                if self.bol:
                    self.b.paragraph()
                self.bol = True
                self.b.text(" ")
            if line.strip():
                self.bol = False
                self.b.text(line)
            elif line and not self.bol:
                self.b.text(" ")  # the space between two links, or a &nbsp;

    def _heading(self, level: int, title: str) -> None:
        if self.sections.enter(level, title):
            self.b.heading(title)
        else:
            self.b.paragraph()
        self.bol = True

    def _cite(self, n: Any) -> None:
        group, key = self.notes.key[id(n)]
        numbers = self.numbers.setdefault(group, {})
        number = numbers.setdefault(key, len(numbers) + 1)
        self.b.cite(group_label(group, number), None, key if key in self.defined else None)
        if isinstance(n, Template) and key.startswith("sfn:"):
            _, locator, _ = short_form(n, render)
            if locator:
                self.b.locate(locator)

    def _template(self, t: Template) -> None:
        name = name_of(t).lower()
        if name == "rp":
            args = positional(t, render)
            loc = args[0] if args else next((render(p.value) for p in t.params if str(p.name).strip() in
                                             ("p", "pp", "page", "pages", "at", "loc")), "")
            self.b.locate(loc)
        elif name in _WRAPPERS or name.startswith("lang-"):
            params = [p for p in t.params if not p.showkey]
            if params:
                self.walk(params[-1].value)  # the shown text may carry refs of its own
        elif (shown := inline_template(t, render)) is not None:
            self._text(shown)
        elif self.sections.in_body:
            self.b.gap()  # what it showed (a pronunciation, a class name) is gone; so goes what framed it

    def _tag(self, tag: Tag) -> None:
        kind = tag.tag.lower()
        if kind in _DROPPED_TAGS:
            return
        if kind in ("li", "dd", "dt") and tag.wiki_markup:
            self.b.paragraph()
            self.bol = False
        elif kind == "br":
            self.b.text(" ")
        elif kind in ("math", "nowiki", "code", "chem"):
            self.b.text(str(tag.contents or ""))
        elif tag.contents is not None:
            block = kind in _BLOCK_TAGS
            if block:
                self.b.paragraph()
            self.walk(tag.contents)
            if block:
                self.b.paragraph()


def unclosed_ref(body: str) -> int | None:
    """Where the first `<ref>` that is never closed starts (None when every one is), found in one
    pass before the tokenizer runs.

    mwparserfromhell tries every tag start that fails again to the end of the text, so 40 KB of
    `<ref ` took over a minute; such a page is refused here at once. A `<ref` is closed by a `>`
    before any other `<` and, unless it ends `/>`, by its `</ref>` (matched as the tokenizer
    nests them); comments are skipped, as the tokenizer skips them.
    """
    text = _blank_comments(body)
    opened: list[int] = []
    for m in _REF_TAG.finditer(text):
        if m.group(0).startswith("</"):
            if opened:
                opened.pop()
            continue
        gt = text.find(">", m.start())
        if gt < 0 or text.find("<", m.start() + 1, gt) >= 0:
            return m.start()
        if text[gt - 1] != "/":
            opened.append(m.start())
    return opened[0] if opened else None


def _blank_comments(body: str) -> str:
    """The text with each `<!-- ... -->` blanked, offsets kept; an unclosed one is text, as the tokenizer reads it."""
    out, pos = [], 0
    while (start := body.find("<!--", pos)) >= 0 and (end := body.find("-->", start + 4)) >= 0:
        out += [body[pos:start], " " * (end + 3 - start)]
        pos = end + 3
    return "".join(out) + body[pos:]


def parse(body: str, path: str, title: str, meta: dict[str, str]) -> Document:
    """Parse MediaWiki wikitext into a Document.

    Raises:
        ParseError: a `<ref>` is never closed (its note would run into the prose).
    """
    if (start := unclosed_ref(body)) is not None:
        raise ParseError(f"{path}: unclosed <ref> tag near line {body.count(chr(10), 0, start) + 1}")
    try:
        code = mwparserfromhell.parse(_INDENTED_TABLE.sub("", body))
    except (RecursionError, ValueError) as exc:
        raise ParseError(f"{path}: wikitext too deeply nested to parse ({type(exc).__name__})") from exc
    for node in code.ifilter_text(recursive=True):
        if m := _OPEN_REF.search(str(node.value)):
            line = body[: body.find(m.group(0))].count("\n") + 1
            raise ParseError(f"{path}: unclosed <ref> tag near line {line}")
    notes = _Notes(code)
    refs = notes.references()
    builder = DocumentBuilder()
    _Walker(builder, notes, {r.key for r in refs}).walk(code)
    return builder.build(path, title, "wikitext", refs, None, meta)
