"""Footnote: citation-grounded extractive question answering over your own sources.

The web app and the CLI use only the names exported here.
"""

from qa.config import SETTINGS, load
from qa.documents import Answer, Conflict, Evidence, Footnote, PassageHit, Reference, Result
from qa.errors import (
    DocumentNotFound,
    EmptyQuery,
    FootnoteError,
    IndexLocked,
    IndexMismatch,
    IndexNotFound,
    ParseError,
    QueryTooLong,
    UnsupportedFormat,
)
from qa.evaluate import evaluate_file
from qa.ingest.report import inspect_file
from qa.pipeline import Pipeline
from qa.scoring import report_table

__all__ = [
    "SETTINGS", "Answer", "Conflict", "DocumentNotFound", "EmptyQuery", "Evidence", "Footnote", "FootnoteError",
    "IndexLocked", "IndexMismatch", "IndexNotFound", "ParseError", "PassageHit", "Pipeline", "QueryTooLong",
    "Reference", "Result", "UnsupportedFormat", "evaluate_file", "inspect_file", "load",
    "report_table",
]
