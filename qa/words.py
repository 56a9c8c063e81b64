"""Words that carry no content, shared by lexical search and the answer signals; and SQuAD's
answer normalisation, shared by the reader (do two answers differ?) and `qa eval`."""

from __future__ import annotations

import re
import string

STOPWORDS = frozenset("""
a an the of in on at to for from by with about as into over after before between under and or but
is are was were be been being do does did has have had what which who whom whose when where why how
that this these those it its they them their there here he she his her we our you your i me my
not no nor so than too very can could should would will shall may might must also any all some each
name named called one many much more most other such only own same then just
""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def content_words(text: str) -> list[str]:
    """The words of `text` worth searching for, lower-cased, once each, in order: no stopwords,
    no single letters (single digits stay: "World War 2")."""
    words = [w for w in _WORD.findall(text.lower()) if (len(w) > 1 or w.isdigit()) and w not in STOPWORDS]
    return list(dict.fromkeys(words))


_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Official SQuAD normalisation (evaluate-v2.0.py): lower, punctuation, articles, spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())
