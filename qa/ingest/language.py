"""A cheap guess whether a text is English, so sources the English-only model reads badly are flagged.

The guess counts common English function words: in English prose they make up about a third
of all words, in other languages written in Latin script (German, Norwegian, French) a few
per cent, and in other scripts there are hardly any Latin letters at all. It is a warning
shown beside a source ("answers over it will be weak"), never a reason to refuse one.
"""

from __future__ import annotations

import re

_STOPWORDS = frozenset("""
a about after all also an and are as at be been but by can for from had has have he her his
i if in into is it its may more most not of on one or other our she so some such than that the
their them then there these they this to was we were which while who will with would you
""".split())
_WORD = re.compile(r"[^\W\d_]+")
MIN_WORDS = 40  # below this a share says little; short notes are given the benefit of the doubt
MIN_SHARE = 0.15
MIN_LATIN = 0.5


def looks_english(text: str) -> bool:
    """Whether `text` looks like English prose.

    Args:
        text: clean text of a document (only its first 20,000 characters are read).

    Returns:
        False when the text has enough words and either few of its letters are Latin or
        fewer than 15% of its words are common English function words.
    """
    sample = text[:20000]
    words = _WORD.findall(sample)
    letters = sum(len(w) for w in words)
    if letters and sum(ch.isascii() for w in words for ch in w) / letters < MIN_LATIN:
        return False
    if len(words) < MIN_WORDS:
        return True
    return sum(w.lower() in _STOPWORDS for w in words) / len(words) >= MIN_SHARE
