"""Asking within some sources: which documents a question may be answered from.

People often know where the answer should come from ("in the 2023 report", "in these three
articles"); searching only there keeps a better-worded passage elsewhere from winning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Scope:
    """Documents a question is asked within; empty means every document.

    Args:
        paths: a document matches when one of these is its file or a folder holding it, written
            as `qa sources` and /sources list documents (`sources/cat.html`, `sources`) or as
            the absolute path `qa index` read it from.
        documents: document ids (as `qa sources --json` and the JSON answer give them).
    """

    paths: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.paths or self.documents)

    def matches(self, doc_id: str, path: str, source: str) -> bool:
        """Whether a document (its id, listed path and absolute source path) is in the scope."""
        return doc_id in self.documents or any(_under(p, where) for where in self.paths for p in (path, source))

    def describe(self) -> str:
        """The scope in words, for messages: "sources/cat.html, document 3f2a…"."""
        return ", ".join([*self.paths, *(f"document {d}" for d in self.documents)])


def _under(path: str, where: str) -> bool:
    """`path` is `where` or lies inside the folder `where` (whole path parts, not prefixes:
    "sources/cat" does not hold "sources/cathedral.html")."""
    p, w = PurePosixPath(path), PurePosixPath(where.rstrip("/") or "/")
    return p == w or w in p.parents
