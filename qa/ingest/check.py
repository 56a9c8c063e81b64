"""What a parser made of one file, for `qa inspect`: sentences with their footnotes, and a summary.

Meant for checking a source before indexing it: how many markers were found, how many resolve
to a reference the source itself links them to, and which sentences carry which notes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qa.ingest import read_document
from qa.records import Document


def inspect_document(doc: Document) -> dict[str, Any]:
    """A JSON-ready report of a parsed document.

    Returns:
        {"path", "title", "format", "meta", "summary": {sentences, markers, resolved,
        unresolved, references, references_cited}, "sentences": [{index, start, end, page,
        section, text, footnotes: [{marker, locator, reference}]}], "references": [...]}
    """
    refs = {r.key: r for r in doc.references}
    notes: dict[int, list[dict[str, Any]]] = {}
    for c in doc.citations:
        ref = refs.get(c.reference) if c.reference else None
        notes.setdefault(c.sentence, []).append(
            {"marker": c.marker, "locator": c.locator, "reference": ref.to_dict() if ref else None})
    resolved = sum(1 for c in doc.citations if c.reference in refs)
    return {
        "path": doc.path, "title": doc.title, "format": doc.format, "meta": doc.meta,
        "summary": {"sentences": len(doc.sentences), "markers": len(doc.citations), "resolved": resolved,
                    "unresolved": len(doc.citations) - resolved, "references": len(doc.references),
                    "references_cited": len({c.reference for c in doc.citations if c.reference in refs})},
        "sentences": [{"index": i, "start": s.start, "end": s.end, "page": s.page, "section": s.section,
                       "text": doc.text[s.start:s.end], "footnotes": notes.get(i, [])}
                      for i, s in enumerate(doc.sentences)],
        "references": [r.to_dict() for r in doc.references],
    }


def inspect_file(path: str | Path, max_bytes: int, fmt: str | None = None) -> dict[str, Any]:
    """Parse one file and report on it (see `inspect_document`).

    Args:
        path: the source file.
        max_bytes: the size limit indexing uses.
        fmt: a format name overriding the extension (wikitext saved as .txt).

    Raises:
        ParseError: the file cannot be read as that format.
    """
    return inspect_document(read_document(path, max_bytes, fmt=fmt))
