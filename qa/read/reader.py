"""Read the reranked passages: which sentence and which words answer the question, whether to
answer at all, and which other sources disagree.

The span model (`qa.read.spans`) reads the top passages in windows of whole sentences; the
abstention signals and their calibration (`qa.read.signals`) decide whether the best span is an
answer. Nothing is generated: the answer is a slice of a stored sentence, and its footnotes are
the citations the source itself put on that sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from qa.index import View
from qa.read import signals as sig
from qa.read.explain import Explanation, explain
from qa.read.spans import SpanModel
from qa.records import Answer, Conflict, DocumentRef, Evidence, Footnote, PassageHit, Sentence, numbered
from qa.search.rerank import CrossEncoder
from qa.words import normalize_answer

CLOSE = 1.0  # a passage this close to the top one is read too; answers this close to the best may conflict
# Added to a span's rank times the share of the question's content words its sentence holds:
# chosen by article-wise cross-validation on the public SQuAD 2.0 file among 0-6 (3 in 9 of 12
# folds); the answer sentence is picked 0.816 of the time held out, against 0.810 without.
COVERAGE = 3.0
# The sentences of this many best spans are read by the cross-encoder (after their document's
# title) and its logit joins their rank: held out article by article on SQuAD 2.0 the answer
# sentence is then picked 0.827 of the time against 0.818 (weight 1 won in 10 of 12 folds among
# 0.25-3; the best two did as well as the best four).
CHOOSE = 2


@dataclass(frozen=True)
class Found:
    """A span the reader found, placed in its document: `start`/`end` are offsets inside
    `text`, the sentence's text. `margin` is the reader's span score minus its no-answer
    score; `rank` orders spans across passages: the margin, plus the passage's relevance
    logit, plus one for each of the question's numbers and codes the sentence holds verbatim
    (`qa.read.signals.verbatim_codes`), plus COVERAGE times the share of the question's
    content words the sentence holds (`qa.read.signals.coverage`): the reader alone sometimes
    prefers a span in a sentence that shares little with the question over one in the
    sentence that restates it. For the CHOOSE best, the cross-encoder's logit for the
    sentence (`relevance`, None until it is read) is added too."""

    document: DocumentRef
    index: int
    sentence: Sentence
    text: str
    start: int
    end: int
    margin: float
    passage: PassageHit
    codes: int = 0
    coverage: float = 0.0
    relevance: float | None = None

    @property
    def span(self) -> str:
        return self.text[self.start:self.end]

    @property
    def rank(self) -> float:
        return (self.margin + (self.passage.relevance or 0.0) + self.codes + COVERAGE * self.coverage
                + (self.relevance or 0.0))


@dataclass(frozen=True)
class Reading:
    """A question read, before deciding whether to answer.

    `hits` are the passages as the searcher ranked them; `found` the reader's spans in the top
    passages, best first, one a sentence; `signals` what the calibration weighs for the best
    one; `pasted` says the question is the best sentence itself, pasted to find its source
    (answered with the whole sentence).
    """

    hits: tuple[PassageHit, ...]
    found: tuple[Found, ...]
    signals: dict[str, float]
    pasted: bool = False

    @property
    def best(self) -> Found | None:
        return self.found[0] if self.found else None


class Reader:
    """Find the answer in ranked passages, or decide there is none.

    Args:
        span_model: returns the span model (loaded on first use).
        cross_encoder: returns the cross-encoder, which scores the answer's sentence for the
            abstention signals (shared with the searcher).
        answer_passages: how many of the top passages are read.
        min_support: the least calibrated confidence that is answered.
        calibration: the fitted abstention calibration.
    """

    def __init__(self, span_model: Callable[[], SpanModel], cross_encoder: Callable[[], CrossEncoder],
                 answer_passages: int, min_support: float, calibration: sig.Calibration = sig.CALIBRATION) -> None:
        self.span_model, self.cross_encoder = span_model, cross_encoder
        self.answer_passages, self.min_support, self.calibration = answer_passages, min_support, calibration

    def read(self, view: View, question: str, hits: tuple[PassageHit, ...],
             check: Callable[[], None] | None = None) -> Reading:
        """Read the top `answer_passages` of the ranked hits (and the next while within CLOSE of
        the top one) in windows of whole sentences.

        The evidence is the sentence that holds the best span, so an answer in the sentence
        after the one that repeats the question's words is found where it is. The sentences of
        the CHOOSE best spans are read by the cross-encoder too, and its logit joins their rank
        (`Found.rank`). A best span that opens its sentence with a pronoun ("This forced the
        company" for "Why did the company cut its tolls?") names nothing itself: what it
        points at is the sentence before, whose best span is taken instead when it was read
        (on SQuAD 2.0 this applies to 19 of 3,859 questions' two best spans, nearly all wrong).
        A question that is one of those sentences, pasted, is answered with that sentence and
        not read.

        `check`, when given, is called before the span model reads and before the answer's
        sentence is scored (it raises when the question's time is up). The windows are read in
        one call: how they are batched changes the int8 model's numbers slightly."""
        check = check or (lambda: None)
        read = hits[:self.passages_read(hits)]
        sentences = {(p, idx): (hit, sent, text) for p, hit in enumerate(read)
                     for idx, sent, text in view.sentences(hit.document.id, *hit.sentences)}
        for (_, idx), (hit, sent, text) in sentences.items():
            if sig.pasted(question, text):
                found = Found(hit.document, idx, sent, text, 0, len(text), 0.0, hit)
                return Reading(hits, (found,), self._signals(view, question, found), pasted=True)
        check()
        model = self.span_model()
        windows = []
        for p in range(len(read)):
            keys = [k for k in sentences if k[0] == p]
            windows += model.tokens.windows(question, [sentences[k][2] for k in keys], keys)
        by_sentence: dict[tuple[str, int], Found] = {}
        asked = sig.content_words(question)
        for span in model.read(question, windows):
            hit, sent, text = sentences[span.key]
            found = Found(hit.document, span.key[1], sent, text, span.start, span.end, span.margin, hit,
                          sig.verbatim_codes(question, text), sig.coverage(asked, text))
            key = (hit.document.id, found.index)
            if key not in by_sentence or found.rank > by_sentence[key].rank:
                by_sentence[key] = found
        ranked = sorted(by_sentence.values(), key=lambda f: -f.rank)
        if not ranked:
            return Reading(hits, (), {})
        check()
        top = ranked[:CHOOSE]
        read_too = self.cross_encoder().score(question, [self._titled(f) for f in top])
        top = sorted((replace(f, relevance=float(r)) for f, r in zip(top, read_too, strict=True)),
                     key=lambda f: -f.rank)
        chosen = (*top, *ranked[CHOOSE:])
        before = by_sentence.get((chosen[0].document.id, chosen[0].index - 1))
        if before is not None and chosen[0].start == 0 and sig.needs_previous(chosen[0].span):
            chosen = (before, *(f for f in chosen if f is not before))
        return Reading(hits, chosen, self._signals(view, question, chosen[0]))

    def passages_read(self, hits: tuple[PassageHit, ...]) -> int:
        """How many of the first hits are read for spans: `answer_passages`, and the next one
        too when its relevance is within CLOSE of the top one's."""
        n = self.answer_passages
        top = hits[0].relevance if hits and hits[0].relevance is not None else 0.0
        nxt = hits[n].relevance if len(hits) > n else None
        return min(len(hits), n + (nxt is not None and top - nxt <= CLOSE))

    def explain(self, question: str, reading: Reading, answer: Answer | None) -> Explanation:
        """Why `answer` was given (or none): `qa.read.explain`."""
        return explain(question, reading.hits, self.passages_read(reading.hits), reading.found, reading.signals,
                       answer, self.calibration, self.min_support, reading.pasted)

    def answer(self, view: View, question: str, reading: Reading) -> Answer | None:
        """The best span as the answer, or None when its confidence is below `min_support`.

        `evidence[0]` is the sentence holding the span; context sentences follow (`_context`);
        the footnotes are numbered once, for every view of the answer (`qa.records.numbered`)."""
        best = reading.best
        if best is None:
            return None
        score = 1.0 if reading.pasted else self.calibration.confidence(reading.signals)
        if score < self.min_support:
            return None
        evidence = [self._evidence(view, best.document, best.index, score)]
        if not reading.pasted:
            evidence += [self._evidence(view, best.document, i, score, context=True)
                         for i in self._context(view, question, best)]
        start = best.sentence.start + best.start
        return numbered(Answer(best.span, score, tuple(evidence), start, start + len(best.span),
                               self._conflicts(view, question, reading)))

    @staticmethod
    def _titled(found: Found) -> str:
        """The span's sentence after its document's title, which names the topic a sentence
        mid-article leaves implicit: what the cross-encoder reads for a sentence."""
        title = found.document.title
        return f"{title}. {found.text}" if title else found.text

    def _signals(self, view: View, question: str, found: Found) -> dict[str, float]:
        """The abstention signals of a span: its sentence read by the cross-encoder
        (`_titled`; read already when it was among the CHOOSE best), its passage's relevance,
        the reader's margin, and the question's words the text lacks."""
        doc = found.document
        [(_, _, lead)] = view.sentences(doc.id, 0, 0)
        relevance = found.relevance
        if relevance is None:
            relevance = float(self.cross_encoder().score(question, [self._titled(found)])[0])
        return sig.evidence_signals(question, found.text, relevance, found.passage.text,
                                    found.passage.relevance or 0.0, f"{doc.title} {lead}", margin=found.margin)

    @staticmethod
    def _context(view: View, question: str, best: Found) -> list[int]:
        """Sentences shown with the answer's, flagged `context`: the one before when the answer's
        sentence leans on it ("This forced the company ..."); and the one after when that one
        leans on the answer's and names more of what was asked, at least half of it ("Traffic on
        the canal fell by half. This forced the company to cut its tolls in 1851." for "Why did
        the company cut its tolls in 1851?")."""
        out = []
        if best.index > 0 and sig.needs_previous(best.text):
            out.append(best.index - 1)
        after = view.sentences(best.document.id, best.index + 1, best.index + 1)
        if after and sig.needs_previous(after[0][2]):
            asked = sig.content_words(question)
            named = len(asked & sig.content_words(after[0][2]))
            if named >= 0.5 * len(asked) and named > len(asked & sig.content_words(best.text)):
                out.append(best.index + 1)
        return out

    def _conflicts(self, view: View, question: str, reading: Reading) -> tuple[Conflict, ...]:
        """Spans of other documents that disagree with the best one: of the same kind (date,
        number, name), different after SQuAD normalisation, within CLOSE of its reader margin
        and themselves above `min_support`."""
        best = reading.best
        kind = sig.span_kind(best.span) if best and not reading.pasted else None
        if kind is None:
            return ()
        seen, out = {normalize_answer(best.span)}, []
        for f in reading.found[1:]:
            if (f.document.id == best.document.id or abs(best.margin - f.margin) > CLOSE
                    or sig.span_kind(f.span) != kind or normalize_answer(f.span) in seen):
                continue
            score = self.calibration.confidence(self._signals(view, question, f))
            if score >= self.min_support:
                seen.add(normalize_answer(f.span))
                start = f.sentence.start + f.start
                out.append(Conflict(f.span, score, (self._evidence(view, f.document, f.index, score),),
                                    start, start + len(f.span)))
        return tuple(out)

    @staticmethod
    def _evidence(view: View, doc: DocumentRef, idx: int, score: float, context: bool = False) -> Evidence:
        [(_, sent, text)] = view.sentences(doc.id, idx, idx)
        notes = tuple(Footnote(c.marker, c.locator, ref) for c, ref in view.citations(doc.id, [idx]))
        return Evidence(text, doc, sent.start, sent.end, notes, score, sent.page, sent.section, context)
