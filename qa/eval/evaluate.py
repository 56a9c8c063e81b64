"""`qa eval`: index a question set's contexts as the corpus, ask every question, score the answers.

SQuAD v1.1/v2.0 JSON: one document an article, each context one paragraph of it. Passages
never cross a paragraph (see `qa.ingest.passages`), so the gold paragraph's character range in the
indexed text is known and recall@k is exact. CLAPNQ JSON lines: every row's passage joins
one pooled corpus (the unanswerable rows' passages are on-topic distractors), and the
evidence is scored against the annotators' gold sentences. Metrics live in `qa.eval.scoring`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import ConfigError, FootnoteError, IndexNotFound
from qa.eval import scoring
from qa.models.encoder import Embedder
from qa.pipeline import Pipeline
from qa.read.signals import CALIBRATION
from qa.records import Result

Progress = Callable[[int, int], None]
SEED = 13


@dataclass(frozen=True)
class Question:
    """One question and where its answer is: a paragraph of a document, answers, gold sentences."""

    id: str
    text: str
    document: str
    paragraph: int
    answers: tuple[str, ...]
    sentences: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.answers or self.sentences)


@dataclass(frozen=True)
class Corpus:
    """A question set: documents by file stem as (title, paragraphs), and the questions."""

    kind: str
    documents: dict[str, tuple[str, tuple[str, ...]]]
    questions: tuple[Question, ...]


def _clean(text: str) -> str:
    return " ".join(text.split())


def load(path: str | Path) -> Corpus:
    """Read SQuAD JSON (`{"data": [...]}`) or CLAPNQ JSON lines.

    Raises:
        ConfigError: the file is missing or neither format.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return squad_corpus(data)
    try:
        return _clapnq([json.loads(line) for line in raw.splitlines() if line.strip()])
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"{path} is neither SQuAD JSON nor CLAPNQ JSON lines ({exc})") from exc


def load_all(paths: list[str | Path]) -> Corpus:
    """Pool several files of one format into one corpus (CLAPNQ ships answerable and
    unanswerable questions apart; asked against one pool, each file's passages distract the other).

    Raises:
        ConfigError: the files mix formats, or two give different text for one document.
    """
    corpora = [load(p) for p in paths]
    if len({c.kind for c in corpora}) != 1:
        raise ConfigError("the files mix SQuAD and CLAPNQ; evaluate them apart")
    docs: dict[str, tuple[str, tuple[str, ...]]] = {}
    for c in corpora:
        for stem, doc in c.documents.items():
            if docs.setdefault(stem, doc) != doc:
                raise ConfigError(f"document {stem} differs between the files")
    return Corpus(corpora[0].kind, docs, tuple(q for c in corpora for q in c.questions))


def squad_corpus(data: dict) -> Corpus:
    """Documents (an article each, its contexts as paragraphs) and questions of SQuAD JSON."""
    docs, questions = {}, []
    for article in data["data"]:
        stem = re.sub(r"[^\w.-]+", "_", article["title"]).strip("._") or "article"
        paras = tuple(_clean(p["context"]) for p in article["paragraphs"])
        docs[stem] = (article["title"].replace("_", " "), paras)
        for n, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                golds = () if qa.get("is_impossible") else tuple(a["text"] for a in qa["answers"])
                questions.append(Question(qa["id"], qa["question"], stem, n, golds))
    return Corpus("squad", docs, tuple(questions))


def _clapnq(rows: list[dict]) -> Corpus:
    docs, questions = {}, []
    for row in rows:
        passage = row["passages"][0]
        text = _clean(passage["text"])
        stem = "p" + hashlib.sha1(f"{passage['title']}\n{text}".encode()).hexdigest()[:12]
        docs[stem] = (passage["title"], (text,))
        outputs = row.get("output") or []
        sents = tuple(dict.fromkeys(_clean(s) for o in outputs for s in o.get("selected_sentences") or []))
        answers = tuple(a for o in outputs if (a := (o.get("answer") or "").strip())) if sents else ()
        questions.append(Question(str(row["id"]), row["input"], stem, 0, answers, sents))
    return Corpus("clapnq", docs, tuple(questions))


def sample(questions: tuple[Question, ...], limit: int | None, seed: int = SEED) -> list[Question]:
    """A seeded sample of `limit` questions spread over all documents in proportion to their size.

    Each document's questions are shuffled and placed at evenly spaced points of 0..1 (with a
    random offset); taking the lowest points first gives every document its share, +-1.
    """
    if not limit or limit >= len(questions):
        return list(questions)
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        groups.setdefault(q.document, []).append(i)
    keyed = []
    for members in groups.values():
        rng.shuffle(members)
        offset = rng.random()
        keyed += [((k + offset) / len(members), i) for k, i in enumerate(members)]
    chosen = sorted(i for _, i in sorted(keyed)[:limit])
    return [questions[i] for i in chosen]


def write_sources(corpus: Corpus, folder: Path) -> None:
    """One text file a document: front matter with its title, paragraphs separated by blank lines."""
    for stem, (title, paras) in corpus.documents.items():
        body = "\n\n".join(paras)
        (folder / f"{stem}.txt").write_text(f"---\ntitle: {_clean(title)}\n---\n{body}\n", encoding="utf-8")


def paragraph_ranges(pipe: Pipeline, corpus: Corpus) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """Document id and paragraph character ranges, by file stem, read back from the index.

    Raises:
        FootnoteError: a document is missing, or its paragraphs did not survive ingest one to one.
    """
    out = {}
    for doc in pipe.library.documents(limit=None)[0]:
        stem = Path(doc["path"]).stem
        if stem not in corpus.documents:
            continue
        spans = [tuple(p) for p in pipe.library.document(doc["id"], limit=0)["paragraphs"]]
        expected = len(corpus.documents[stem][1])
        if len(spans) != expected:
            raise FootnoteError(f"{stem}: {expected} paragraphs written but {len(spans)} indexed")
        out[stem] = (doc["id"], spans)
    missing = sorted(set(corpus.documents) - set(out))
    if missing:
        raise FootnoteError(f"the index lacks {len(missing)} document(s) of the file (first: {missing[0]}); "
                            "use an empty --index folder or none")
    return out


def score(question: Question, result: Result, doc_id: str, gold: tuple[int, int],
          sentence_ranges: list[tuple[int, int]], latency_ms: float) -> scoring.Outcome:
    """Score one answer against one question (`sentence_ranges`: CLAPNQ gold sentences, located)."""
    rank = next((i for i, p in enumerate(result.passages)
                 if p.document.id == doc_id and scoring.overlaps((p.start, p.end), gold)), None)
    top = result.passages[0] if result.passages else None

    def on_gold_sentence(document_id: str, span: tuple[int, int]) -> bool:
        return document_id == doc_id and any(scoring.overlaps(span, g) for g in sentence_ranges)

    if question.sentences:
        held = top is not None and on_gold_sentence(top.document.id, (top.start, top.end))
    else:
        held = top is not None and scoring.contains_answer(top.text, question.answers)
    a = result.answer
    if a is None:
        return scoring.Outcome(question.answerable, False, rank, False, 0.0, 0.0, latency_ms,
                               0.0 if question.sentences else None, 0.0 if question.sentences else None,
                               top_holds_answer=held)
    main = a.evidence[0]  # the sentence holding the answer span
    em, f1 = scoring.exact_match(a.text, question.answers), scoring.best_f1(a.text, question.answers)
    if not question.sentences:
        # right only in the question's own paragraph: another paragraph repeating the gold string
        # does not answer it (on 600 questions that credit was 0.734 against 0.691)
        own = main.document.id == doc_id and scoring.overlaps((main.start, main.end), gold)
        return scoring.Outcome(question.answerable, True, rank,
                               own and scoring.contains_answer(main.sentence, question.answers), em, f1, latency_ms,
                               top_holds_answer=held)
    mine = [(e.start, e.end) for e in a.evidence if e.document.id == doc_id]
    hit = [any(scoring.overlaps(m, g) for g in sentence_ranges) for m in mine]
    found = [any(scoring.overlaps(m, g) for m in mine) for g in sentence_ranges]
    ok = on_gold_sentence(main.document.id, (main.start, main.end))
    return scoring.Outcome(True, True, rank, ok, em, f1, latency_ms,
                           sum(hit) / len(a.evidence), sum(found) / len(found) if found else 0.0,
                           top_holds_answer=held)

def open_index(corpus: Corpus, config: dict[str, Any], folder: str, embedder: Embedder | None = None) -> Pipeline:
    """A Pipeline over the corpus's index in `folder`, built there first when none is published."""
    pipe = Pipeline({**config, "index": folder, "top_k": max(5, config["top_k"])}, embedder=embedder)
    try:
        pipe.serving.snapshot()
        return pipe
    except IndexNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="footnote-eval-src-") as src:
        write_sources(corpus, Path(src))
        report = pipe.library.index([src], rebuild=True)
    if report.failed:
        raise FootnoteError(f"could not index {report.failed[0][0]}: {report.failed[0][1]}")
    return pipe


def evaluate_file(paths: str | Path | list[str | Path], config: dict[str, Any], limit: int | None = None,
                  index: str | None = None, seed: int = SEED, progress: Progress | None = None,
                  embedder: Embedder | None = None, outputs: dict[str, dict[str, str]] | None = None,
                  ) -> dict[str, Any]:
    """Run the evaluation of DESIGN.md on a SQuAD or CLAPNQ file.

    Args:
        paths: the question file, or several of one format to pool.
        config: settings (`qa.config.load`); `index` and `top_k` are set here.
        limit: ask a seeded sample of this many questions (the corpus is always every context).
        index: keep the index in this folder and reuse it when it already holds the file's
            documents; None builds a temporary one.
        seed: the sampling seed.
        progress: called as (done, total) after each question.
        embedder: an already loaded model to share.
        outputs: when given, filled with `predictions` ({question id: answer text, "" for an
            abstention}, the official SQuAD 2.0 prediction file) and `evidence` ({question id:
            text of evidence[0], "" for an abstention}) for exactly the questions asked.

    Returns:
        The report of `qa.eval.scoring.summarise`, plus `file`, `kind`, `seed` and `in_sample` (the
        keys whose figures depend on a calibration fitted on this very file).
    """
    paths = paths if isinstance(paths, list) else [paths]
    corpus = load_all(paths)
    with tempfile.TemporaryDirectory(prefix="footnote-eval-") as tmp:
        pipe = open_index(corpus, config, index or str(Path(tmp) / "index"), embedder)
        ranges = paragraph_ranges(pipe, corpus)
        texts = {stem: pipe.library.document(doc_id)["text"] for stem, (doc_id, _) in ranges.items()} \
            if corpus.kind == "clapnq" else {}
        questions = sample(corpus.questions, limit, seed)
        pipe.ask(questions[0].text if questions else "warm up")  # loads the models; not timed
        outcomes = []
        for n, q in enumerate(questions):
            t0 = time.perf_counter()
            result = pipe.ask(q.text)
            ms = (time.perf_counter() - t0) * 1000
            doc_id, spans = ranges[q.document]
            gold_sents = [(i, i + len(s)) for s in q.sentences if (i := texts[q.document].find(s)) >= 0] \
                if q.sentences else []
            outcomes.append(score(q, result, doc_id, spans[q.paragraph], gold_sents, ms))
            if outputs is not None:
                a = result.answer
                outputs.setdefault("predictions", {})[q.id] = a.text if a else ""
                outputs.setdefault("evidence", {})[q.id] = a.evidence[0].sentence if a else ""
            if progress:
                progress(n + 1, len(questions))
        passages = pipe.library.summary()["passages"]
    report = scoring.summarise(outcomes, passages)
    fitted = {f.get("sha256") for f in CALIBRATION.fitted.get("data", [])}
    in_sample = [k for k in IN_SAMPLE if k in report] if fitted & {sha256(p) for p in paths} else []
    return {"file": " ".join(map(str, paths)), "kind": corpus.kind, "seed": seed, **report, "in_sample": in_sample}


# The figures the abstention calibration moves: in-sample on the file it was fitted on.
IN_SAMPLE = ("sentence_accuracy", "sentence_accuracy_answered", "em", "f1", "has_answer_answered",
             "no_answer_abstained", "sentence_precision", "sentence_recall")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
