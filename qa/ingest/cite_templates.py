"""MediaWiki citation templates as readers see them: `{{cite web}}` and kin formatted, `{{sfn}}` short forms.

A citation template becomes the text Wikipedia would show (CS1 order: authors, date, title,
work, publisher, pages, identifiers, access date) and fields read straight from its
parameters, never guessed. Short forms (`{{sfn}}`, `{{harvnb}}`) render as "Smith 2006, p. 45"
and point at the full citation through the CITEREF anchor MediaWiki itself links them by:
"CITEREF" + up to four surnames + year.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mwparserfromhell.nodes import Template

Render = Callable[[Any], str]
# German and older parameter names seen in real articles, mapped to CS1 names.
_ALIASES = {"titel": "title", "autor": "author", "datum": "date", "werk": "work", "hrsg": "publisher",
            "zugriff": "access-date", "accessdate": "access-date", "verlag": "publisher", "seiten": "pages",
            "seite": "page", "jahr": "year", "sprache": "language"}
_WORK = ("work", "website", "newspaper", "journal", "magazine", "periodical", "encyclopedia", "series")
_CITATION = re.compile(r"^(?:cite[ _]|citation$|internetquelle$|literatur$|cite$)", re.I)
SHORT_FORMS = re.compile(r"^(?:sfn|sfnp|harvnb|harv|harvp|harvtxt|harvcolnb)$", re.I)
_YEAR = re.compile(r"\b(\d{4}[a-z]?)\b")


def name_of(template: Template) -> str:
    return str(template.name).strip().replace("_", " ")


def is_citation(template: Template) -> bool:
    return bool(_CITATION.match(name_of(template)))


def params(template: Template, render: Render) -> dict[str, str]:
    """Named parameters, names lower-cased and aliased, values rendered to plain text; empty ones dropped."""
    out: dict[str, str] = {}
    for p in template.params:
        name = str(p.name).strip().lower().replace("_", "-")
        value = " ".join(render(p.value).split())
        if value and p.showkey:
            out.setdefault(_ALIASES.get(name, name), value)
    return out


def positional(template: Template, render: Render) -> list[str]:
    return [" ".join(render(p.value).split()) for p in template.params if not p.showkey]


def _people(p: dict[str, str]) -> list[tuple[str, str]]:
    """(surname, full name as "Last, First") for each author, in order."""
    out = []
    for i in ["", *map(str, range(1, 10))]:
        last = p.get(f"last{i}") or p.get(f"surname{i}") or p.get(f"author{i}") or p.get(f"author{i}-last")
        if not last:
            continue
        first = p.get(f"first{i}") or p.get(f"given{i}") or p.get(f"author{i}-first")
        out.append((last, f"{last}, {first}" if first else last))
    if not out and p.get("authors"):
        out = [(a.strip().split(",")[0], a.strip()) for a in p["authors"].split(";") if a.strip()]
    return out


def anchor(template: Template, render: Render) -> str | None:
    """The CITEREF id a citation template gets: from `ref=` when given, else surnames and year."""
    p = params(template, render)
    ref = template.get("ref").value if template.has("ref") else None
    if ref is not None:
        harvid = next((t for t in ref.filter_templates(recursive=False)
                       if name_of(t).lower() in ("harvid", "sfnref")), None)
        if harvid is not None:
            return "CITEREF" + "".join(positional(harvid, render)).replace(" ", "")
        raw = str(ref).strip()
        if raw.startswith("CITEREF"):
            return raw
        if raw.lower() == "none":
            return None
    year = p.get("year") or (m.group(1) if (m := _YEAR.search(p.get("date", ""))) else None)
    surnames = [s for s, _ in _people(p)][:4]
    return "CITEREF" + "".join(surnames).replace(" ", "") + year if surnames and year else None


def format_citation(template: Template, render: Render) -> tuple[str, dict[str, Any]]:
    """Render a citation template as readable reference text and the fields it states.

    Returns:
        (text, fields) with fields among url, title, authors, date, work, publisher, pages,
        doi, isbn; only those the template gives.
    """
    p = params(template, render)
    people = [full for _, full in _people(p)]
    date = p.get("date") or p.get("year")
    title = p.get("title") or p.get("chapter")
    work = next((p[k] for k in _WORK if p.get(k)), None)
    pages = p.get("pages") or p.get("page") or p.get("at")
    book = "book" in name_of(template).lower()
    parts = []
    if people:
        parts.append(f"{'; '.join(people)} ({date})." if date else f"{'; '.join(people)}.")
    if title:
        parts.append(f"{title}." if book else f'"{title}".')
    if work:
        parts.append(f"{work}.")
    if p.get("publisher"):
        parts.append(f"{p['publisher']}.")
    if date and not people:
        parts.append(f"{date}.")
    if pages:
        parts.append(f"{'pp' if re.search(r'[–,-]', pages) else 'p'}. {pages}.")
    if p.get("doi"):
        parts.append(f"doi:{p['doi']}.")
    if p.get("isbn"):
        parts.append(f"ISBN {p['isbn']}.")
    if p.get("access-date"):
        parts.append(f"Retrieved {p['access-date']}.")
    fields: dict[str, Any] = {k: v for k, v in (("url", p.get("url")), ("title", title), ("date", date),
                              ("work", work), ("publisher", p.get("publisher")), ("pages", pages),
                              ("doi", p.get("doi")), ("isbn", p.get("isbn"))) if v}
    if people:
        fields["authors"] = people
    return " ".join(parts).replace("..", "."), fields


def short_form(template: Template, render: Render) -> tuple[str, str | None, str | None]:
    """An `{{sfn}}` / `{{harvnb}}` as shown ("Smith & Jones 2006, p. 45"), its locator and its anchor.

    Returns:
        (text, locator, CITEREF anchor or None when no year is given).
    """
    names = positional(template, render)
    year = names.pop() if names and _YEAR.fullmatch(names[-1]) else None
    p = params(template, render)
    loc = p.get("p") or p.get("pp") or p.get("loc") or p.get("page") or p.get("pages")
    shown = names[:4]
    who = (f"{shown[0]} et al." if len(shown) == 4 else
           ", ".join(shown[:-1]) + " & " + shown[-1] if len(shown) > 1 else "".join(shown))
    text = " ".join(x for x in (who, year) if x)
    if loc:
        text += f", {'pp' if p.get('pp') else 'p'}. {loc}" if not p.get("loc") else f", {loc}"
    target = "CITEREF" + "".join(shown).replace(" ", "") + year if shown and year else None
    return text + ".", loc, target
