"""Author-year citations in papers ("(Smith 2006)", "Smith and Jones (2006, p. 4)") and the one entry they name.

Such a citation resolves only when its first author's surname, any second author it names and
its year match exactly one bibliography entry; two entries by the same author in the same
year without a letter ("1999a") leave it unresolved, as DESIGN.md asks: never guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.records import Reference

_NAME = r"[A-Z][\w'’-]+(?:\s(?:de|van|von|der)\s[A-Z][\w'’-]+)?"
_WHO = rf"(?P<first>{_NAME})(?:\s(?:and|&)\s(?P<second>{_NAME})|\set\sal\.)?"
_YEAR = r"(?P<year>(?:1[5-9]|20)\d{2}[a-z]?)"
_LOC = r"(?:,\s(?:pp?\.\s?)?(?P<loc>\d+(?:\s?[–-]\s?\d+)?))?"
_ITEM = re.compile(rf"^{_WHO},?\s{_YEAR}{_LOC}$")
# A name runs to the end of its word (letters, apostrophes, hyphens), so each capital inside one
# word leads to the same end and the same outcome: only the first is tried (the atomic group).
# Trying each in turn made a word like "A-A-A-..." quadratic (20 KB of it took 11 s).
NARRATIVE = re.compile(rf"(?<![\w'’-])(?>[\w'’-]*?(?<!\w)(?=[A-Z][\w'’-])){_WHO}\s\({_YEAR}{_LOC}\)")
PARENTHETICAL = re.compile(r"\(([^()]{4,200}?)\)")
_ENTRY_YEAR = re.compile(r"\b((?:1[5-9]|20)\d{2}[a-z]?)\b")
_LEAD = re.compile(r"\s*(\w+)")


@dataclass(frozen=True)
class AuthorYear:
    """One author-year citation: its text as written, where it ends, the names, year and page."""

    marker: str
    end: int
    first: str
    second: str | None
    year: str
    locator: str | None


def find(text: str) -> list[AuthorYear]:
    """Every author-year citation in a paragraph, in order (a parenthesis may hold several, split by ';')."""
    found = []
    for m in NARRATIVE.finditer(text):
        found.append(_cite(m, m.end(), text[m.start("first"):m.end()].replace("(", "").replace(")", "")))
    ends = {f.end for f in found}  # a set, not a scan of `found` per item: a paragraph of many is linear
    for m in PARENTHETICAL.finditer(text):
        for item in m.group(1).split(";"):
            if (i := _ITEM.match(item.strip())) and m.end() not in ends:
                found.append(_cite(i, m.end(), item.strip()))
                ends.add(m.end())
    return sorted(found, key=lambda f: f.end)


def _cite(m: re.Match[str], end: int, written: str) -> AuthorYear:
    marker = re.sub(rf",?\s?(?:pp?\.\s?)?{m.group('loc')}$", "", written) if m.group("loc") else written
    return AuthorYear(" ".join(marker.split()), end, m.group("first"), m.group("second"), m.group("year"),
                      m.group("loc"))


class Bibliography:
    """The entries author-year citations may name, filed by year and first word of the authors.

    A citation is compared only with the entries of its year whose authors begin with its
    first author's name, and each distinct (first, second, year) once: comparing every citation
    with every entry was quadratic in a long paper or a book.
    """

    def __init__(self, references: list[Reference]) -> None:
        self._filed: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in references:
            year = _ENTRY_YEAR.search(r.text)
            authors = r.text[: year.start()] if year else ""
            if year and (lead := _LEAD.match(authors)):
                self._filed.setdefault((year.group(1), lead.group(1)), []).append((r.key, authors))
        self._known: dict[tuple[str, str | None, str], str | None] = {}

    def resolve(self, cite: AuthorYear) -> str | None:
        """The key of the one reference this citation names, or None when none or several match."""
        asked = (cite.first, cite.second, cite.year)
        if asked not in self._known:
            filed = self._filed.get((cite.year, _LEAD.match(cite.first).group(1)), [])
            matches = [key for key, authors in filed if _names(cite, authors)]
            self._known[asked] = matches[0] if len(matches) == 1 else None
        return self._known[asked]


def _names(cite: AuthorYear, authors: str) -> bool:
    """Whether an entry's authors (the text before its year) begin with the citation's first
    author and name its second one, if any."""
    if not re.match(rf"\s*{re.escape(cite.first)}\b", authors):
        return False
    return cite.second is None or re.search(rf"\b{re.escape(cite.second)}\b", authors) is not None
