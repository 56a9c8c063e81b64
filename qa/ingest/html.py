"""HTML, and Wikipedia pages in particular: body prose, headings as sections, `[n]` markers linked by anchor.

Wikipedia renders citations in two forms. The classic one (`sup.reference > a[href*="#cite_note-"]`,
`ol.references > li#cite_note-...`, `span.reference-text`, page locators as
`<sup class="reference nowrap">: 13</sup>`) and Parsoid's (`sup.mw-ref`, `ol.mw-references`,
`span.mw-reference-text`). Both link each marker to its note by an anchor, so a marker resolves
exactly to the note whose `id` its link points at, and to nothing when that note is absent.
Navigation, infoboxes, tables, tables of contents, edit links, hatnotes and the reference lists
themselves are not body text. Lexbor (selectolax) parses like a browser, so broken markup
still yields the text a browser would show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from qa.errors import ParseError
from qa.ingest.builder import DocumentBuilder
from qa.ingest.reference_fields import citation_shaped, parse_fields
from qa.ingest.reference_lists import BodySections, group_label
from qa.records import Document, Reference

_SKIP_TAGS = {"script", "style", "link", "meta", "noscript", "table", "figure", "img", "svg", "nav", "header",
              "footer", "aside", "form", "button", "input", "select", "textarea", "iframe", "audio", "video",
              "map", "head", "template", "object", "canvas", "math", "caption"}
_SKIP_CLASSES = {"infobox", "navbox", "vertical-navbox", "toc", "mw-editsection", "hatnote", "dablink", "rellink",
                 "reflist", "references", "mw-references", "mw-references-wrap", "refbegin", "thumb", "sidebar",
                 "metadata", "ambox", "navigation-not-searchable", "noprint", "mw-empty-elt", "shortdescription",
                 "gallery", "catlinks", "printfooter", "mw-jump-link", "mw-indicators", "portal", "sistersitebox",
                 "mw-cite-backlink", "error", "mw-authority-control", "side-box", "mbox-small"}
_SKIP_IDS = {"toc", "catlinks", "siteSub", "contentSub", "jump-to-nav", "mw-navigation", "footer", "mw-head",
             "mw-panel", "p-lang", "coordinates"}
_BLOCKS = {"p", "div", "li", "ul", "ol", "dl", "dd", "dt", "blockquote", "section", "pre", "center", "article",
           "main", "body", "tr", "br", "hr"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ROOTS = ("#mw-content-text .mw-parser-output", ".mw-parser-output", "#mw-content-text", "main", "article", "body")
# A list's counter style, in a Parsoid group name or a classic list's class or style ("reflist-lower-alpha").
_LIST_STYLE = re.compile(r"(?:lower|upper)-(?:alpha|roman|greek)")
_DISPLAYSTYLE = re.compile(r"^\{\\displaystyle\s*(.*)\}$", re.S)
_SPACE = re.compile(r"\s+")
# Nesting kept for the HTML parser: deeper elements lose their tags (their text stays). Lexbor,
# like the HTML standard, looks down the stack of open elements at each block tag, so 100,000
# nested <div> (1.1 MB) took 38 s; browsers stop nesting at 512 too (Chromium's parser).
MAX_DEPTH = 512
_MARKUP = re.compile(r"<(?:(!--)|(/?)([A-Za-z][A-Za-z0-9:-]*))")
_RAW_TEXT = {"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}
# Never counted as open: void elements, and elements whose end tag is optional (the next <p> or
# <li> closes them), so that sloppy but ordinary pages are never thought deep.
_UNCOUNTED = {"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen",
              "link", "meta", "param", "source", "track", "wbr", "p", "li", "dt", "dd", "option", "optgroup", "rb",
              "rt", "rp", "rtc", "tr", "td", "th", "thead", "tbody", "tfoot", "colgroup", "caption", "html", "head",
              "body", "plaintext"}


def flatten(body: str, limit: int = MAX_DEPTH) -> str:
    """The page with the tags of elements nested deeper than `limit` removed (their text kept), in
    one pass; a page within the limit is returned as it is.

    Tags are matched by name as a browser matches well-formed markup; comments and the text of
    <script>, <style> and the like are skipped. Only the tag names are matched by the regex, so
    the pass costs a few percent of the parse.
    """
    stack: list[str] = []
    opened: dict[str, int] = {}  # name -> how many are on the stack
    dropped: dict[str, int] = {}  # name -> opening tags removed whose end tag is still to come
    cut: list[tuple[int, int]] = []
    skip = 0
    for m in _MARKUP.finditer(body):
        if m.start() < skip:
            continue
        comment, closing, name = m.groups()
        if comment:
            end = body.find("-->", m.end())
            skip = len(body) if end < 0 else end + 3
            continue
        name = name.lower()
        if not closing and name in _RAW_TEXT:
            end = re.compile(rf"</{name}[\s/>]", re.I).search(body, m.end())
            skip = end.start() if end else len(body)
            continue
        if not closing and name in _UNCOUNTED:
            continue
        lt = body.find("<", m.end())  # the tag ends before the next "<": a bounded search, linear in all
        gt = body.find(">", m.end(), len(body) if lt < 0 else lt)
        if gt < 0 or (not closing and body[gt - 1] == "/"):
            continue
        if closing and dropped.get(name):
            dropped[name] -= 1
            cut.append((m.start(), gt + 1))
        elif closing and opened.get(name):
            while (top := stack.pop()) != name:
                opened[top] -= 1
            opened[name] -= 1
        elif not closing and len(stack) < limit:
            stack.append(name)
            opened[name] = opened.get(name, 0) + 1
        elif not closing:
            dropped[name] = dropped.get(name, 0) + 1
            cut.append((m.start(), gt + 1))
    if not cut:
        return body
    starts = [0] + [end for _, end in cut]
    ends = [start for start, _ in cut] + [len(body)]
    return "".join(body[a:b] for a, b in zip(starts, ends, strict=True))


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").split())


def _skipped(node: LexborNode) -> bool:
    """Whether an element is never prose (navigation, boxes, tables, edit links, reference lists)."""
    return (node.tag in _SKIP_TAGS or bool(_classes(node) & _SKIP_CLASSES)
            or node.attributes.get("id") in _SKIP_IDS or node.attributes.get("role") == "navigation")


def _is_marker(node: LexborNode) -> bool:
    classes = _classes(node)
    return node.tag == "sup" and ("reference" in classes or "mw-ref" in classes
                                  or "mw:Extension/ref" in (node.attributes.get("typeof") or ""))


def _math(node: LexborNode) -> str:
    """A formula as its TeX source (what Wikipedia gives as alt text), without the display wrapper."""
    math = node.css_first("math[alttext]") or node.css_first("img[alt]")
    tex = (math.attributes.get("alttext") or math.attributes.get("alt") or "") if math else ""
    m = _DISPLAYSTYLE.match(tex.strip())
    return m.group(1).strip() if m else tex.strip()


def _children(node: LexborNode) -> Iterator[LexborNode]:
    return node.iter(include_text=True)


def plain(node: LexborNode) -> str:
    """The visible text of an element (markers, styles and backlinks left out), whitespace normalised."""
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.tag == "-text":
            out.append(n.text_content or "")
        elif n.tag == "br":
            out.append(" ")
        elif "mwe-math-element" in _classes(n):
            out.append(_math(n))
        elif n is node or not (_skipped(n) or _is_marker(n) or n.attributes.get("rel") == "mw:referencedBy"):
            stack.extend(reversed(list(_children(n))))
    return _SPACE.sub(" ", "".join(out)).strip()


def _fragment(href: str | None) -> str | None:
    """`#cite_note-3`, `./Dog#cite_note-3` and `https://en.wikipedia.org/wiki/X#cite_note-3` all name `cite_note-3`."""
    return unquote(href.rsplit("#", 1)[1]) if href and "#" in href else None


def marker_label(link: LexborNode) -> str:
    """The label a reader sees on a marker's link: "[13]" -> "13", "[note 1]" -> "note 1", and
    Parsoid's "[lower-alpha 5]" -> "e" (its stylesheet shows the group's counter, not the name)."""
    label = link.text().strip().strip("[]").strip()
    group, _, number = label.rpartition(" ")
    if group and number.isdigit() and " " not in group:
        return group_label(group, int(number))
    return label


def _shown_labels(tree: LexborHTMLParser) -> dict[str, str]:
    """Each note's label as the first marker linking to it shows it: what a reader sees next to the marker."""
    shown: dict[str, str] = {}
    for sup in tree.css("sup"):
        link = sup.css_first("a[href*='#cite_note-']") if _is_marker(sup) else None
        target = _fragment(link.attributes.get("href")) if link is not None else None
        if target and target not in shown and (label := marker_label(link)):
            shown[target] = label
    return shown


def _list_group(ol: LexborNode) -> str:
    """The reference group a list shows: Parsoid names it (`data-mw-group`); a classic notes list
    only styles its counter (`reflist-lower-alpha`, `list-style-type: lower-alpha`) on itself or
    on its wrapper. "" is the plain numbered references."""
    if group := ol.attributes.get("data-mw-group"):
        return group
    node: LexborNode | None = ol
    for _ in range(3):
        if node is None:
            break
        if m := _LIST_STYLE.search(f"{node.attributes.get('class') or ''} {node.attributes.get('style') or ''}"):
            return m.group(0)
        node = node.parent
    return ""


def references(tree: LexborHTMLParser) -> list[Reference]:
    """Every note of the page's reference lists, keyed by its anchor id, with fields and short-form targets.

    Each note is labelled as a reader of the page sees it: as the markers linking to it show it,
    else by its place in its list and the list's group; a note outside the plain numbered group
    is an explanatory note. Fields are read only from a note that is a citation (CS1's `<cite>`,
    or citation-shaped text): an explanatory note's quoted words are no title.
    """
    anchors = {c.attributes.get("id"): c for c in tree.css('cite[id^="CITEREF"]')}
    shown = _shown_labels(tree)
    places: dict[int, int] = {}  # list (mem_id) -> notes seen in it so far
    refs, seen = [], set()
    for li in tree.css('li[id^="cite_note-"]'):
        key = li.attributes.get("id") or ""
        ol = li.parent if li.parent is not None and li.parent.tag == "ol" else None
        if ol is not None:
            places[ol.mem_id] = places.get(ol.mem_id, 0) + 1
        body = li.css_first("span.reference-text") or li.css_first("span.mw-reference-text") or li
        text = plain(body)
        if key in seen or not text:
            continue
        seen.add(key)
        label = shown.get(key) or (group_label(_list_group(ol), places[ol.mem_id]) if ol is not None else None)
        citation = body.css_first("cite") is not None or citation_shaped(text)
        fields = parse_fields(text) if citation else {}
        link = next((a.attributes.get("href") for a in body.css("a.external")
                     if (a.attributes.get("href") or "").startswith("http")), None)
        if citation and link and "url" not in fields:
            fields["url"] = link
        targets = [anchors[f] for a in body.css("a[href*='#CITEREF']")
                   if (f := _fragment(a.attributes.get("href"))) in anchors]
        resolved = "; ".join(dict.fromkeys(plain(t) for t in targets if t.parent is not None
                                           and not _inside(t, body))) or None
        refs.append(Reference(key, text, fields, resolved, label, bool(label) and not label.isdigit()))
    return refs


def _inside(node: LexborNode, ancestor: LexborNode) -> bool:
    p = node.parent
    while p is not None:
        if p.mem_id == ancestor.mem_id:
            return True
        p = p.parent
    return False


class _Walker:
    """Feeds the body of a page to the builder in reading order."""

    def __init__(self, builder: DocumentBuilder, keys: set[str]) -> None:
        self.b = builder
        self.keys = keys
        self.sections = BodySections()

    def walk(self, root: LexborNode) -> None:
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:  # explicit stack: deeply nested markup must not exhaust Python's recursion
            node, closing = stack.pop()
            if closing:
                self.b.paragraph()
            elif node.tag == "-text":
                if self.sections.in_body:
                    self.b.text(node.text_content or "")
            elif node.tag in _HEADINGS:
                self._heading(_HEADINGS[node.tag], plain(node))
            elif _is_marker(node):
                if self.sections.in_body:
                    self._marker(node)
            elif _skipped(node) or node.is_comment_node:
                continue
            elif "mwe-math-element" in _classes(node):
                self.b.text(_math(node) if self.sections.in_body else "")
            else:
                if node.tag in _BLOCKS:
                    self.b.paragraph()
                    stack.append((node, True))
                stack.extend((c, False) for c in reversed(list(_children(node))))

    def _heading(self, level: int, title: str) -> None:
        if self.sections.enter(level, title):
            self.b.heading(title)
        else:
            self.b.paragraph()

    def _marker(self, sup: LexborNode) -> None:
        link = sup.css_first("a[href*='#cite_note-']")
        if link is None:
            shown = plain(sup)
            if shown.startswith(":"):  # "[1]: 13" renders its page as a separate sup after the marker
                self.b.locate(shown[1:])
            return
        target = _fragment(link.attributes.get("href"))
        if label := marker_label(link):
            self.b.cite(label, None, target if target in self.keys else None)


def parse(body: str, path: str, title: str, meta: dict[str, str]) -> Document:
    """Parse an HTML page into a Document.

    Args:
        body: the decoded page.
        path, meta: how the document is named and described.
        title: used when the page has no `<h1 id="firstHeading">`, `<title>` or `<h1>` of its own.

    Raises:
        ParseError: the page has no body the parser can find.
    """
    try:
        tree = LexborHTMLParser(flatten(body))
    except SelectolaxError as exc:  # Lexbor reads any text; it fails only when it cannot allocate
        raise MemoryError(f"{path}: the HTML parser ran out of memory ({exc})") from exc
    root = next((n for sel in _ROOTS if (n := tree.css_first(sel)) is not None), None) or tree.root
    if root is None:
        raise ParseError(f"{path}: no HTML body found")
    refs = references(tree)
    builder = DocumentBuilder()
    _Walker(builder, {r.key for r in refs}).walk(root)
    return builder.build(path, _page_title(tree) or title, "html", refs, None, meta)


def _page_title(tree: LexborHTMLParser) -> str | None:
    for sel in ("h1#firstHeading", "title", "h1"):
        node = tree.css_first(sel)
        text = plain(node) if node is not None else ""
        if text:
            return re.sub(r"\s+[-–—]\s+Wikipedia$", "", text)
    return None
