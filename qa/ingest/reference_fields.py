"""Parse fields (authors, title, date, URL, DOI, ISBN, work, pages) out of a reference's text.

Only what the text itself shows is returned; a field that cannot be read is left out, never
guessed. The reference text itself is kept verbatim beside these fields.
"""

from __future__ import annotations

import re
from typing import Any

_URL = re.compile(r"https?://[^\s<>\"\]]+")
_DOI = re.compile(r"\b(?:doi:\s?|https?://(?:dx\.)?doi\.org/)(10\.\d{4,9}/[^\s,;\"\]]+)", re.I)
_ISBN = re.compile(r"\bISBN[:\s]*((?:97[89][-\s]?)?(?:\d[-\s]?){9}[\dXx])")
_DATE_IN_PARENS = re.compile(
    r"\((\d{4}(?:-\d{2}(?:-\d{2})?)?|(?:\d{1,2} )?[A-Z][a-z]+\.? (?:\d{1,2}, )?\d{4}|\d{4}[a-z]?)\)")
_QUOTED = re.compile(r"[\"“]([^\"”]{3,}?)[\"”]")
_PAGES = re.compile(r"\bpp?\.\s?(\d+(?:\s?[–-]\s?\d+)?)")
_IDENTIFIER = re.compile(r"\b(?:ISSN|PMID|PMC|OCLC|arXiv|JSTOR|Bibcode|S2CID)\b"
                         r"|\b(?:Retrieved|Archived from|Accessed) ")
# A short form at the start: "Moss 1999, p. 13.", "Smith & Jones 2006", "Larson et al. (2014)".
_SHORT_FORM = re.compile(r"^(?:[A-Z][\w'’-]*,? (?:(?:&|and) )?)+(?:et al\.,? )?\(?\d{4}[a-z]?\)?(?:[,.:;]|$)")
# Words that may stand lower-case in a list of authors ("van Dijk", "Smith, J. et al.", "eds.").
_PARTICLES = {"and", "et", "al", "de", "del", "der", "den", "van", "von", "da", "di", "du", "la", "le", "y", "ed",
              "eds", "&"}


def parse_fields(text: str) -> dict[str, Any]:
    """Read citation fields from a reference's text.

    Args:
        text: the reference as the source gives it.

    Returns:
        Any of: url, doi, isbn, date, title, authors (list), work, pages.
    """
    fields: dict[str, Any] = {}
    if m := _DOI.search(text):
        fields["doi"] = m.group(1).rstrip(".")
    if m := _URL.search(text):
        fields["url"] = m.group(0).rstrip(".,;)")
    elif "doi" in fields:
        fields["url"] = "https://doi.org/" + fields["doi"]
    if m := _ISBN.search(text):
        fields["isbn"] = re.sub(r"[-\s]", "", m.group(1))
    if m := _PAGES.search(text):
        fields["pages"] = m.group(1)
    date = _DATE_IN_PARENS.search(text)
    if date:
        fields["date"] = date.group(1)
        authors = text[: date.start()].strip().rstrip(",")
        if authors and len(authors) < 200 and not _quoted(authors):
            fields["authors"] = [a.strip() for a in authors.split(";") if a.strip()]
    if m := _quoted(text):
        fields["title"] = m.group(1).strip().rstrip(".,")
        after = text[m.end():].lstrip(" .,")
        work = re.split(r"\.\s|,\s|\.$", after, maxsplit=1)[0].strip()
        if work and len(work) < 120 and not work.lower().startswith(("archived", "retrieved", "in ")):
            fields["work"] = work
    return fields


def citation_shaped(text: str) -> bool:
    """Whether a note reads as a citation (a link, an identifier, authors then a date, a short
    form) rather than as an explanatory remark, whose quoted words are no title: fields are
    read only from the former.

    Args:
        text: the note as the source gives it.
    """
    if _URL.search(text) or _DOI.search(text) or _ISBN.search(text) or _IDENTIFIER.search(text):
        return True
    if _SHORT_FORM.match(text):
        return True
    date = _DATE_IN_PARENS.search(text)
    return bool(date) and 0 < date.start() < 200 and _names(text[: date.start()])


def _names(text: str) -> bool:
    """Whether text is a list of names ("Hale, Ann", "Reed, J.; van Dijk, K."), not prose."""
    words = [w.strip(".,;:()") for w in text.split()]
    return all(not w or w[0].isupper() or w[0].isdigit() or w.lower() in _PARTICLES for w in words)


def _quoted(text: str) -> re.Match[str] | None:
    """The first quoted title, searched only up to the last closing quote: an opening quote
    with no closing one after it can never match, and trying each such opening quote to the
    end of the text was quadratic (a reference of 24,000 "“" took 6 s)."""
    last = max(text.rfind('"'), text.rfind("”"))
    return _QUOTED.search(text, 0, last + 1) if last > 0 else None
