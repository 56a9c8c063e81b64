"""Reference lists as copied from Wikipedia or written by hand, and the rule for linking markers to them.

Forms read: `^ ab Author...` (backlink letters glued on), `^ Jump up to: a b Author...`,
`1. ^ ...`, `[1] ...`, `a. ^ ...` (notes), `[^1]: ...` (Markdown). The linking rule is the
one DESIGN.md sets: numbered entries link by number; an unnumbered list links only when it is
provably complete, otherwise no marker resolves to it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from qa.ingest.reference_fields import citation_shaped, parse_fields
from qa.records import Reference

# A numbered or lettered label, optionally followed by a caret: "1. ^", "12 ^", "a. ^", "[3]", "[^x]:".
_LABELLED = re.compile(
    r"^\s*(?:\[\^(?P<md>[^\]\s]+)\]:|\[(?P<br>\d{1,4}|[a-z]|note \d+)\]|(?P<num>\d{1,4}|[a-z]|note \d{1,3})\.?\s*\^)\s*"
)
_CARET = re.compile(r"^\s*\^\s*")
_JUMP = re.compile(r"^(?:Jump up to:|Jump up)\s*")
# Backlink letters: "ab" glued to the text or "a b " spaced; only a run a, ab, abc... counts.
_BACKLINKS = re.compile(r"^((?:[a-z] ?){2,26})(?=[^a-z ]|[A-Z])")
_SPACED_BACKLINKS = re.compile(r"^((?:[a-z] ){2,26})")
REFERENCE_HEADINGS = {
    "references", "notes", "sources", "citations", "footnotes", "bibliography",
    "works cited", "notes and references", "references and notes", "explanatory notes",
}
# Sections of a wiki page that hold lists of links or references, not the article's prose.
NON_BODY_SECTIONS = REFERENCE_HEADINGS | {"external links", "see also", "further reading", "literature",
                                          "references and sources", "general and cited sources",
                                          "einzelnachweise", "weblinks", "literatur", "anmerkungen"}


_ALPHABETS = {"lower-alpha": "abcdefghijklmnopqrstuvwxyz", "upper-alpha": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
              "lower-greek": "αβγδεζηθικλμνξοπρστυφχψω"}
_ROMAN = ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"), (40, "xl"),
          (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"))


def group_label(group: str, n: int) -> str:
    """The marker MediaWiki shows for the n-th note of a reference group: "3", "c", "iii", "note 3".

    Args:
        group: the group name ("" for ordinary references; "lower-alpha" for {{efn}} notes).
        n: the note's number in its group, from 1.
    """
    if not group:
        return str(n)
    if group in _ALPHABETS:
        letters, label = _ALPHABETS[group], ""
        while n:  # 27 -> "aa", as MediaWiki continues the sequence
            n, r = divmod(n - 1, len(letters))
            label = letters[r] + label
        return label
    if group in ("lower-roman", "upper-roman"):
        label = ""
        for value, numeral in _ROMAN:
            count, n = divmod(n, value)
            label += numeral * count
        return label.upper() if group == "upper-roman" else label
    return f"{group} {n}"


class BodySections:
    """Tracks whether a wiki page's walk is in its prose or in a See also / References section.

    Such a section ends at the next heading of the same or a higher level, as on the page.
    """

    def __init__(self) -> None:
        self.skip_level: int | None = None

    @property
    def in_body(self) -> bool:
        return self.skip_level is None

    def enter(self, level: int, title: str) -> bool:
        """Note a heading; returns whether the text after it is body text."""
        if title.lower().strip(" :") in NON_BODY_SECTIONS:
            self.skip_level = min(level, self.skip_level or level)
        elif self.skip_level is not None and level <= self.skip_level:
            self.skip_level = None
        return self.in_body


@dataclass(frozen=True)
class Entry:
    """One reference-list entry: its label when the source numbers it, how many backlinks it shows."""

    label: str | None
    backlinks: int
    text: str


def parse_entry(line: str, numbered_ok: bool = False) -> Entry | None:
    """Read one line as a reference entry, or None when it is not one.

    Args:
        line: one paragraph of the source.
        numbered_ok: also accept a bare `12. text` (only under a References heading).
    """
    label = None
    m = _LABELLED.match(line)
    if m:
        label = m.group("md") or m.group("br") or m.group("num")
        rest = line[m.end():]
    elif _CARET.match(line):
        rest = _CARET.sub("", line, count=1)
    elif numbered_ok and (m := re.match(r"^\s*(\d{1,4})\.\s+", line)):
        label, rest = m.group(1), line[m.end():]
    else:
        return None
    rest = _JUMP.sub("", rest)
    backlinks = 1
    for pattern in (_SPACED_BACKLINKS, _BACKLINKS):
        b = pattern.match(rest)
        letters = b.group(1).replace(" ", "") if b else ""
        if letters and letters == "abcdefghijklmnopqrstuvwxyz"[: len(letters)]:
            backlinks, rest = len(letters), rest[b.end():]
            break
    text = " ".join(rest.split())
    return Entry(label, backlinks, text) if text else None


def is_heading(line: str) -> bool:
    """Whether a short line is a reference-section heading ("References", "Notes", ...)."""
    return line.strip().strip(":#= ").lower() in REFERENCE_HEADINGS


def build_references(entries: list[Entry], markers: list[str]) -> tuple[list[Reference], dict[str, str]]:
    """Turn entries into References and decide which markers link to which.

    Args:
        entries: the list in source order.
        markers: every marker in the body, in reading order, repeats included.

    Returns:
        The references (keys: the label, or "u1", "u2", ... for unnumbered entries; lettered and
        "note n" entries are notes; fields only from citation-shaped ones) and the marker -> key
        links that the source makes certain.
    """
    refs, link = [], {}
    unnumbered = [e for e in entries if e.label is None]
    complete = _provably_complete(unnumbered, markers)
    n = 0
    for e in entries:
        if e.label is not None:
            key = e.label
            link[e.label] = key
        else:
            n += 1
            key = f"u{n}"
            if complete:
                link[str(n)] = key
        refs.append(Reference(key, e.text, parse_fields(e.text) if citation_shaped(e.text) else {}, None,
                              e.label, e.label is not None and not e.label.isdigit()))
    return refs, link


def _provably_complete(unnumbered: list[Entry], markers: list[str]) -> bool:
    """An unnumbered list maps to markers 1..N only when nothing is missing: exactly as many
    entries as distinct numeric markers, numbered 1..N, and each entry's backlink count equal
    to how often its marker is used. Anything less (an excerpt, a trimmed list) is not proof."""
    uses = Counter(m for m in markers if m.isdigit())
    if not unnumbered or len(unnumbered) != len(uses):
        return False
    if set(uses) != {str(i) for i in range(1, len(unnumbered) + 1)}:
        return False
    return all(uses[str(i)] == e.backlinks for i, e in enumerate(unnumbered, 1))
