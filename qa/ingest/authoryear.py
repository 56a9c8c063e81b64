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
NARRATIVE = re.compile(rf"\b{_WHO}\s\({_YEAR}{_LOC}\)")
PARENTHETICAL = re.compile(r"\(([^()]{4,200}?)\)")
_ENTRY_YEAR = re.compile(r"\b((?:1[5-9]|20)\d{2}[a-z]?)\b")


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
        found.append(_cite(m, m.end(), m.group(0).replace("(", "").replace(")", "")))
    for m in PARENTHETICAL.finditer(text):
        for item in m.group(1).split(";"):
            if (i := _ITEM.match(item.strip())) and not any(f.end == m.end() for f in found):
                found.append(_cite(i, m.end(), item.strip()))
    return sorted(found, key=lambda f: f.end)


def _cite(m: re.Match[str], end: int, written: str) -> AuthorYear:
    marker = re.sub(rf",?\s?(?:pp?\.\s?)?{m.group('loc')}$", "", written) if m.group("loc") else written
    return AuthorYear(" ".join(marker.split()), end, m.group("first"), m.group("second"), m.group("year"),
                      m.group("loc"))


def resolve(cite: AuthorYear, references: list[Reference]) -> str | None:
    """The key of the one reference this citation names, or None when none or several match."""
    matches = [r.key for r in references if _matches(cite, r.text)]
    return matches[0] if len(matches) == 1 else None


def _matches(cite: AuthorYear, entry: str) -> bool:
    year = _ENTRY_YEAR.search(entry)
    if not year or year.group(1) != cite.year:
        return False
    authors = entry[: year.start()]
    if not re.match(rf"\s*{re.escape(cite.first)}\b", authors):
        return False
    return cite.second is None or re.search(rf"\b{re.escape(cite.second)}\b", authors) is not None
