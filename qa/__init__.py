"""Footnote: citation-grounded extractive question answering over your own sources.

The web app and the CLI use only the names exported here. They are imported on first use
(PEP 562), so `qa --help`, `qa sources` or an error message do not wait for numpy, FAISS
and the parsers to load.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "SETTINGS": "qa.config", "load": "qa.config",
    "Answer": "qa.records", "Conflict": "qa.records", "Evidence": "qa.records", "Footnote": "qa.records",
    "PassageHit": "qa.records", "Reference": "qa.records", "Result": "qa.records",
    "DocumentNotFound": "qa.errors", "EmptyQuery": "qa.errors", "FootnoteError": "qa.errors",
    "IndexLocked": "qa.errors", "IndexMismatch": "qa.errors", "IndexNotFound": "qa.errors",
    "ParseError": "qa.errors", "QueryTooLong": "qa.errors", "UnsupportedFormat": "qa.errors",
    "evaluate_file": "qa.eval.evaluate", "inspect_file": "qa.ingest.check", "Pipeline": "qa.pipeline",
    "report_table": "qa.eval.scoring",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
