"""How values read on the pages: timestamps, which URLs may become links, and a reference's
emphasis. (Locators are worded once, by `qa.records.locator_label`, for the CLI and the pages
alike.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from markupsafe import Markup, escape


def http_url(value: Any) -> str | None:
    """A URL safe to put in href: only http(s); a `javascript:` URL in front matter stays text."""
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def when(stamp: str) -> str:
    """An index timestamp ("2026-11-29T02:02:21+0000") as people read it: "2026-11-29 02:02 UTC"."""
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")


def emphasized(text: str, emphasis: Any) -> Markup:
    """A reference's text, escaped, with its emphasised spans (`[start, end]` offsets, as the
    Markdown parser records them) in `<em>`: the reference reads as its source meant it."""
    out, at = [], 0
    spans = sorted((s, e) for s, e in emphasis or () if isinstance(s, int) and isinstance(e, int))
    for start, end in spans:
        if at <= start < end <= len(text):
            out += [escape(text[at:start]), Markup("<em>"), escape(text[start:end]), Markup("</em>")]
            at = end
    return Markup("").join([*out, escape(text[at:])])


def register(app: Flask) -> None:
    """Make these the templates' `when`, `http_url` and `emphasized` filters."""
    app.add_template_filter(when, "when")
    app.add_template_filter(http_url, "http_url")
    app.add_template_filter(emphasized, "emphasized")
