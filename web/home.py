"""The home page's content: what is indexed, and example questions drawn from the corpus.

A new user facing an empty question box does not know what the sources hold. The examples are
made from the sources' own sentences by a few fixed patterns ("The X was first lit on ..." ->
"When was the X first lit?"), deterministic for a generation, and kept only when Footnote
actually answers them: an example that abstains would teach the wrong thing. They are worked
out once a generation (a few questions' worth of work, on the first visit) and cached.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from qa import FootnoteError
from qa.library.library import Library
from qa.read.signals import needs_previous

EXAMPLES = 3  # questions shown
TRIES = 5  # questions asked at most to find them (each costs about one answer's time)
DOCUMENTS = 20  # documents looked at, by path
SENTENCES = 40  # sentences read from the start of each

_NP = r"(?:[Tt]he |[Aa]n? )?[A-Z][\w'’-]*(?: [\w'’-]+){0,5}?"  # a short subject: no commas or brackets
_DATE = r"(?:in|on|during|by|from|since|until) [^,;.]*\b(?:1[0-9]|20)\d\d\b"
_PASSIVE = re.compile(rf"^(?P<np>{_NP}) (?P<aux>was|were) (?P<vp>(?:first |later |then |formally |officially )?"
                      r"(?:[a-z]+(?:ed|en)|lit|built|made|held|won|sold|born|bred|laid))\b[^,;]*? " + _DATE)
_ACTIVE = re.compile(rf"^(?:In [^,]{{3,30}}, )?(?P<np>{_NP}) (?P<verb>[a-z]{{3,}}ed) (?P<obj>(?:an?|the|its|their) "
                     r"[\w'’ -]{3,60}?)(?: (?:at|in|on|to|for|with|under|after|called|named|that|which|and)\b|[,.;])")
_DEFINITION = re.compile(rf"^(?P<np>{_NP}) (?P<aux>is|are|was|were) (?:an?|the) [a-z]")
_PAREN = re.compile(r"\s*\([^()]*\)")
_E_ENDINGS = ("at", "iz", "ys", "v", "c", "ut", "ur", "os", "eas", "ag", "am", "ib", "ir")


@dataclass(frozen=True)
class Overview:
    """What the serving index holds, for the home page."""

    documents: int
    passages: int
    indexed: str  # when the serving generation was published
    generation: str


def overview(library: Library) -> Overview:
    """Counts of the serving generation.

    Raises:
        IndexNotFound, IndexMismatch: there is no usable index (the message names the command).
    """
    summary = library.summary()
    created = library.serving.snapshot().generation.manifest.get("created", "")
    return Overview(summary["documents"], summary["passages"], created, summary["generation"])


def candidates(sentence: str) -> Iterator[str]:
    """Questions a sentence answers, by pattern, best-formed first (none for most sentences, and
    none for one that leans on the sentence before: "Its fur is ..." asks nothing on its own)."""
    s = _PAREN.sub("", sentence).strip()
    if needs_previous(s):
        return
    if m := _PASSIVE.match(s):
        yield f"When {m['aux']} {_lower(m['np'])} {m['vp']}?"
    if (m := _ACTIVE.match(s)) and (verb := _base(m["verb"])):
        yield f"When did {_lower(m['np'])} {verb} {m['obj'].strip()}?"
    if (m := _DEFINITION.match(s)) and not m["np"].split()[-1].endswith(("ed", "ing", "ly")):
        yield f"What {m['aux']} {_lower(m['np'])}?"  # "Highlighted are the ..." is no definition


def _lower(np: str) -> str:
    """The subject as it reads inside a question: a leading article or common noun lower-cased
    ("Orchard owners" -> "orchard owners"), a name kept ("Hebei", "Mirela Kovač")."""
    head, _, rest = np.partition(" ")
    common = head in ("The", "A", "An") or (rest[:1].islower() and not head.isupper())
    return f"{head.lower()} {rest}" if common else np


def _base(verb: str) -> str | None:
    """The base form of a regular past tense ("created" -> "create", "formed" -> "form"); None
    when it cannot be told without a dictionary (a doubled consonant: "planned", "added")."""
    stem = verb[:-2]
    if stem.endswith("i"):
        return stem[:-1] + "y"
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsfz":
        return None
    return stem + "e" if stem.endswith(_E_ENDINGS) else stem


def drawn(library: Library) -> list[str]:
    """Candidate questions from the first sentences of the first documents, one document's
    first candidate, then the next document's, and so on (variety before depth)."""
    docs, _ = library.documents(0, DOCUMENTS)

    def of(doc_id: str) -> list[str]:
        sents = library.serving.reading(lambda _, view: view.sentences(doc_id, 0, SENTENCES - 1))
        return list(dict.fromkeys(q for _, _, text in sents for q in candidates(text)))

    per_doc = [of(d["id"]) for d in docs]
    rounds = max((len(qs) for qs in per_doc), default=0)
    return list(dict.fromkeys(qs[i] for i in range(rounds) for qs in per_doc if i < len(qs)))


class Examples:
    """Example questions of the serving generation, worked out once a generation.

    Args:
        answers: asks a question the way the page does (admitted by the question bound) and
            says whether it was answered.
    """

    def __init__(self, answers: Callable[[str], bool]) -> None:
        self._answers = answers
        self._lock = threading.Lock()
        self._cached: tuple[str, list[str]] = ("", [])

    def of(self, library: Library, generation: str) -> list[str]:
        """Up to EXAMPLES questions that are answered, asking at most TRIES; [] when the server
        is too busy to try (not cached, so a later visit tries again)."""
        with self._lock:  # a second visitor waits for the first one's questions, not asks them again
            if self._cached[0] == generation:
                return self._cached[1]
            found: list[str] = []
            try:
                for q in drawn(library)[:TRIES]:
                    if len(found) < EXAMPLES and self._answers(q):
                        found.append(q)
            except FootnoteError as exc:  # busy, too slow, or the index went away: no examples this time
                if exc.status != 503:
                    raise
                return []
            self._cached = (generation, found)
            return found
