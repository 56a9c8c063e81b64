"""Data classes for what ingest produces and what answers carry: text with offsets, never strings pasted together."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa.read.explain import Explanation


@dataclass(frozen=True)
class Sentence:
    """One sentence of a document, as character offsets into the document's clean text, with
    the index of the paragraph it belongs to (paragraphs are data, never re-found in the text)."""

    start: int
    end: int
    page: int | None = None
    section: str | None = None
    paragraph: int = 0


# The reserved keys of `Reference.stored_fields` (no parsed field starts with "_").
_LABEL, _NOTE = "_label", "_note"


@dataclass(frozen=True)
class Reference:
    """One entry of a source's reference list (or one `<ref>` body).

    `key` is how markers point at it ("1", "a", "note 1", an HTML anchor); `text` is the
    note exactly as the source gives it, whitespace normalised; `fields` holds what could be
    parsed from it (url, title, authors, date, ...) and never anything invented. `label` is
    the entry's label as a reader of the source sees it ("13", "e", "note 1"; an HTML anchor
    key never is one), None when the source shows none or the index predates labels; `note`
    says the source lists it among its explanatory notes, apart from its references.
    """

    key: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    resolved: str | None = None
    label: str | None = None
    note: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "label": self.label, "note": self.note, "text": self.text,
                               **self.fields}
        if self.resolved:
            out["resolved"] = self.resolved
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        fields = {k: v for k, v in d.items() if k not in ("key", "text", "resolved", "label", "note")}
        return cls(d["key"], d["text"], fields, d.get("resolved"), d.get("label"), d.get("note", False))

    def stored_fields(self) -> dict[str, Any]:
        """The fields as the index stores them: `label` and `note` ride along under reserved keys,
        so carrying them needed no change to the index's schema."""
        return {**self.fields, **({_LABEL: self.label} if self.label is not None else {}),
                **({_NOTE: True} if self.note else {})}

    @classmethod
    def from_stored(cls, key: str, text: str, fields: dict[str, Any], resolved: str | None) -> Reference:
        """The reference `stored_fields` was written for; one from an index built before labels
        reads back with no label, not a note."""
        rest = {k: v for k, v in fields.items() if k not in (_LABEL, _NOTE)}
        return cls(key, text, rest, resolved, fields.get(_LABEL), bool(fields.get(_NOTE)))


@dataclass(frozen=True)
class Citation:
    """A marker as the source wrote it, where it stood, and the reference it resolves to.

    `sentence` indexes `Document.sentences`; `position` is the clean-text offset where the
    marker was removed; `reference` is a `Reference.key` or None when the source does not
    make the link certain.
    """

    sentence: int
    marker: str
    position: int
    locator: str | None = None
    reference: str | None = None


@dataclass
class Document:
    """One parsed source file: clean text, its paragraphs and sentences (as offsets into it), its
    references and citations."""

    path: str
    title: str
    format: str
    text: str
    sentences: list[Sentence]
    references: list[Reference] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    paragraphs: list[tuple[int, int]] = field(default_factory=list)  # (start, end); `Sentence.paragraph` indexes it

    def sentence_text(self, i: int) -> str:
        s = self.sentences[i]
        return self.text[s.start : s.end]


@dataclass(frozen=True)
class DocumentRef:
    """How an answer names a document: enough to cite it and to link to it."""

    id: str
    title: str
    path: str
    meta: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title, "path": self.path}
        # `language` ("non-English?") travels too: an answer drawn from such a document is weak
        out.update({k: v for k, v in self.meta.items() if k in ("url", "author", "date", "license", "language")})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocumentRef:
        return cls(d["id"], d["title"], d["path"], {k: v for k, v in d.items() if k not in ("id", "title", "path")})


def locator_label(locator: str) -> str:
    """How a locator reads: "13" -> "p. 13", "13–15" -> "pp. 13–15"; one that is not a page
    ("sec. 2", "iv") stays as written. The CLI, the pages and the JSON all use this wording."""
    plain = locator.replace("–", "").replace("-", "").replace(" ", "")
    if not plain.isdigit():
        return locator
    return f"pp. {locator}" if len(plain) < len(locator.replace(" ", "")) else f"p. {locator}"


@dataclass(frozen=True)
class Footnote:
    """A citation attached to an evidence sentence, with its reference when certain."""

    marker: str
    locator: str | None
    reference: Reference | None

    @property
    def where(self) -> str | None:
        """The locator as it reads ("p. 13"), None without one."""
        return locator_label(self.locator) if self.locator else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "marker": self.marker,
            "locator": self.locator,
            "where": self.where,
            "reference": self.reference.to_dict() if self.reference else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Footnote:
        return cls(d["marker"], d["locator"], Reference.from_dict(d["reference"]) if d["reference"] else None)


@dataclass(frozen=True)
class Evidence:
    """A verbatim sentence supporting an answer: `document.text[start:end] == sentence`."""

    sentence: str
    document: DocumentRef
    start: int
    end: int
    footnotes: tuple[Footnote, ...]
    score: float
    page: int | None = None
    section: str | None = None
    context: bool = False  # shown beside the answer's sentence because one of the two leans on the other
    notes: tuple[int, ...] = ()  # the numbers of its notes in the answer (`Answer.notes`)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sentence": self.sentence,
            "document": self.document.to_dict(),
            "start": self.start,
            "end": self.end,
            "footnotes": [f.to_dict() for f in self.footnotes],
            "notes": list(self.notes),
            "score": round(self.score, 4),
        }
        if self.page is not None:
            out["page"] = self.page
        if self.section:
            out["section"] = self.section
        if self.context:
            out["context"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(d["sentence"], DocumentRef.from_dict(d["document"]), d["start"], d["end"],
                   tuple(Footnote.from_dict(f) for f in d["footnotes"]), d["score"], d.get("page"),
                   d.get("section"), d.get("context", False), tuple(d.get("notes", ())))


@dataclass(frozen=True)
class Conflict:
    """Another document's answer of the same kind that the reader rated about as high: shown
    beside the answer instead of silently dropped. `start`/`end` are document offsets."""

    text: str
    score: float
    evidence: tuple[Evidence, ...]
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": round(self.score, 4), "start": self.start, "end": self.end,
                "evidence": [e.to_dict() for e in self.evidence]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conflict:
        return cls(d["text"], d["score"], tuple(Evidence.from_dict(e) for e in d["evidence"]), d["start"], d["end"])


@dataclass(frozen=True)
class Note:
    """A numbered footnote of an answer: a citation the source put on an evidence sentence
    (`footnote` None only in answers numbered before marker-less sentences went unnumbered,
    which cited the document itself). `start`/`end` are the first sentence it is cited on;
    `page` that sentence's page."""

    n: int
    footnote: Footnote | None
    document: DocumentRef
    start: int
    end: int
    page: int | None = None

    def text(self) -> str:
        """The footnote as one line of plain text (the CLI's footnote, "copy citation" on the page)."""
        doc = self.document
        where = f"{doc.title}, {doc.path}, characters {self.start}–{self.end}"
        if doc.meta.get("url"):
            where += f", {doc.meta['url']}"
        if self.footnote is None:
            return f"{where} (no citation marked in the source)"
        loc = f", {self.footnote.where}" if self.footnote.where else ""
        ref = self.footnote.reference
        if ref is None:
            return f"Reference not included in the source (marker [{self.footnote.marker}]{loc}); cited in {where}"
        url = ref.fields.get("url")
        tail = f" <{url}>" if url and url not in ref.text else ""
        return f"{ref.text}{tail}{loc}"

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "footnote": self.footnote.to_dict() if self.footnote else None,
                "document": self.document.to_dict(), "start": self.start, "end": self.end, "page": self.page,
                "text": self.text()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Note:
        return cls(d["n"], Footnote.from_dict(d["footnote"]) if d["footnote"] else None,
                   DocumentRef.from_dict(d["document"]), d["start"], d["end"], d.get("page"))


@dataclass(frozen=True)
class Answer:
    """An extractive answer: `text` is a slice of `evidence[0]`'s sentence (its document's
    `text[start:end]`); a context sentence the answer leans on may follow as `evidence[1]`.
    `notes` are the footnotes numbered once for every view (see `numbered`)."""

    text: str
    score: float
    evidence: tuple[Evidence, ...]
    start: int
    end: int
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[Note, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "start": self.start,
            "end": self.end,
            "evidence": [e.to_dict() for e in self.evidence],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "notes": [n.to_dict() for n in self.notes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(d["text"], d["score"], tuple(Evidence.from_dict(e) for e in d["evidence"]), d["start"], d["end"],
                   tuple(Conflict.from_dict(c) for c in d.get("conflicts", [])),
                   tuple(Note.from_dict(n) for n in d.get("notes", [])))


def numbered(answer: Answer) -> Answer:
    """The answer with its footnotes numbered: the answer's sentences in reading order, then each
    conflict's. The same citation (document, marker, locator, reference) keeps one number; a
    sentence without a marker gets none (`Evidence.notes` empty): a number would lead only to "no
    citation", and the sentence is cited by its document and position, as every view shows."""
    notes: list[Note] = []
    numbers: dict[tuple, int] = {}

    def number(evidence: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
        out = []
        for ev in evidence:
            mine = []
            for fn in ev.footnotes:
                key = (ev.document.id, fn.marker, fn.locator, fn.reference and fn.reference.key)
                if key not in numbers:
                    numbers[key] = len(notes) + 1
                    notes.append(Note(numbers[key], fn, ev.document, ev.start, ev.end, ev.page))
                mine.append(numbers[key])
            out.append((ev, tuple(dict.fromkeys(mine))))
        return tuple(replace(ev, notes=n) for ev, n in out)

    order = sorted(range(len(answer.evidence)), key=lambda i: answer.evidence[i].start)
    done = dict(zip(order, number(tuple(answer.evidence[i] for i in order)), strict=True))
    evidence = tuple(done[i] for i in range(len(answer.evidence)))
    conflicts = tuple(replace(c, evidence=number(c.evidence)) for c in answer.conflicts)
    return replace(answer, evidence=evidence, conflicts=conflicts, notes=tuple(notes))


@dataclass(frozen=True)
class PassageHit:
    """A retrieved passage: its fused retrieval score (0..1) and, when the cross-encoder read it,
    its relevance logit (about -11..11), which is what ranks it."""

    id: int
    document: DocumentRef
    text: str
    score: float
    start: int
    end: int
    relevance: float | None = None
    sentences: tuple[int, int] = (0, 0)  # indexes of its first and last sentence in the document

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "document": {"id": self.document.id, "title": self.document.title, "path": self.document.path},
            "text": self.text,
            "score": round(self.score, 4),
            "relevance": None if self.relevance is None else round(self.relevance, 3),
            "start": self.start,
            "end": self.end,
            "sentences": list(self.sentences),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PassageHit:
        return cls(d["id"], DocumentRef.from_dict(d["document"]), d["text"], d["score"], d["start"], d["end"],
                   d.get("relevance"), tuple(d.get("sentences", (0, 0))))


@dataclass(frozen=True)
class Result:
    """What `ask` returns: an answer or an abstention, the closest passages, and timings.

    `index` and `generation` say what answered (the index folder, absolute, and the name of
    its serving generation), so a client of `qa serve` can tell which index it asked.
    """

    question: str
    answer: Answer | None
    passages: tuple[PassageHit, ...]
    timings_ms: dict[str, float]
    index: str = ""
    generation: str = ""
    explanation: Explanation | None = None  # asked for with `explain`: why answered or not

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer.to_dict() if self.answer else None,
            "passages": [p.to_dict() for p in self.passages],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "index": {"path": self.index, "generation": self.generation},
            **({"explain": self.explanation.to_dict()} if self.explanation else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """The object `to_dict` made (what `qa ask --server` reads back from `/api/ask`)."""
        from qa.read.explain import Explanation  # the reader's module imports this one

        where = d.get("index") or {}
        return cls(d["question"], Answer.from_dict(d["answer"]) if d["answer"] else None,
                   tuple(PassageHit.from_dict(p) for p in d["passages"]), d["timings_ms"],
                   where.get("path", ""), where.get("generation", ""),
                   Explanation.from_dict(d["explain"]) if d.get("explain") else None)

