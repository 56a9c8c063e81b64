"""The span reader: windows, span offsets, no-answer, sources that differ, a user's own reader,
the seed's short answers, pasted statements, and training end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.eval.scoring import normalize_answer
from qa.ingest.sentences import sentence_spans
from qa.pipeline import Pipeline
from qa.read.reader import CHOOSE, COVERAGE, Found
from qa.read.signals import content_words, coverage, pasted, span_kind
from qa.read.spans import BUNDLED, MAX_TOKENS, OnnxSpanModel, Tokens, Window, best_span, pack, trained_window
from qa.records import DocumentRef, PassageHit, Sentence
from tests.conftest import DATA, ROOT, make_target, script

READER_DATA = DATA / "reader"
TRAIN = ROOT.parent / "shared" / "train" / "squad_v1.0_train.json"


@pytest.fixture(scope="module")
def reader() -> OnnxSpanModel:
    return OnnxSpanModel()


def test_pack_keeps_sentences_whole_and_overlaps_by_one():
    assert pack([10, 10, 10, 10], 25) == [(0, 2), (1, 3), (2, 4)]
    assert pack([30, 5, 5], 25) == [(0, 1), (1, 3)]  # too long alone: a window of its own
    assert pack([5, 5, 5], 100) == [(0, 3)]
    assert pack([], 10) == []


def test_windows_fit_beside_the_question(reader: OnnxSpanModel):
    sentences = [f"Sentence number {i} says that the canal at lock {i} is {i * 3} metres deep." for i in range(40)]
    q = "How deep is the canal at lock 17?"
    windows = reader.tokens.windows(q, sentences, list(range(40)))
    assert len(windows) > 1 and windows[0].keys[0] == 0 and windows[-1].keys[-1] == 39
    for enc in reader.tokens.encode(q, windows):
        assert len(enc.ids) <= MAX_TOKENS
    covered = [k for w in windows for k in w.keys]
    assert sorted(set(covered)) == list(range(40))


def test_the_reader_reads_windows_as_long_as_it_was_trained_on(reader: OnnxSpanModel, tmp_path: Path):
    card = json.loads((BUNDLED / "model_card.json").read_text())
    assert reader.tokens.max_tokens == trained_window(BUNDLED) == int(card["arguments"]["window_tokens"]) == 128
    sentences = [f"Lock {i} on the canal was rebuilt in {1800 + i} by the company's engineers." for i in range(40)]
    assert max(len(e.ids) for e in reader.tokens.encode("When was lock 17 rebuilt?", reader.tokens.windows(
        "When was lock 17 rebuilt?", sentences, list(range(40))))) <= 128
    assert trained_window(tmp_path) == MAX_TOKENS  # no card: the most the reader reads
    (tmp_path / "model_card.json").write_text(json.dumps({"arguments": {"window_tokens": "512"}}))
    assert trained_window(tmp_path) == MAX_TOKENS  # never past it
    (tmp_path / "model_card.json").write_text("{not json")
    assert trained_window(tmp_path) == MAX_TOKENS


def test_a_long_question_still_leaves_room_to_read(reader: OnnxSpanModel):
    q = "Where does the canal run? " * 150
    [window] = reader.tokens.windows(q, ["The canal runs from Saltham to Brindle."], ["s"])
    [enc] = reader.tokens.encode(q, [window])
    assert len(enc.ids) <= MAX_TOKENS and 1 in enc.sequence_ids


def test_best_span_maps_tokens_back_to_offsets_inside_one_sentence():
    tokens = Tokens(BUNDLED / "tokenizer.json")
    window = Window(("The lock is 22 metres long.", "It was rebuilt in 1824."), ("a", "b"))
    [enc] = tokens.encode("How long is the lock?", [window])
    start, end = np.full(len(enc.ids), -5.0), np.full(len(enc.ids), -5.0)
    ctx = [i for i, s in enumerate(enc.sequence_ids) if s == 1]
    words = [window.text[enc.offsets[i][0]:enc.offsets[i][1]] for i in ctx]
    start[ctx[words.index("22")]] = 4.0
    end[ctx[words.index("metres")]] = 3.0
    end[ctx[words.index("1824")]] = 3.5  # a better end, but in the next sentence: not allowed
    start[0], end[0] = 1.0, 1.0
    span = best_span(window, enc, start, end, 0)
    assert (span.key, span.text, span.start, span.end) == ("a", "22 metres", 12, 21)
    assert window.sentences[0][span.start:span.end] == span.text
    assert span.null == 2.0 and span.margin == pytest.approx(5.0)


def test_the_reader_finds_the_span_and_says_no_answer_elsewhere(reader: OnnxSpanModel):
    sents = ("The canal was proposed by the engineer Harriet Vane in 1791.",
             "Parliament approved the scheme in March 1793 after two years of debate.")
    span, other = reader.read("Who proposed the canal?", [Window(sents, (0, 1))])  # one a sentence, best first
    assert other.sentence == 1 and other.score < span.score
    assert span.text == "Harriet Vane" and span.margin > 0
    assert sents[span.sentence][span.start:span.end] == span.text
    none = reader.read("What do otters eat in winter?", [Window(sents, (0, 1))])
    assert max(s.margin for s in none) < 0  # the no-answer option wins


def test_a_span_in_the_sentence_that_restates_the_question_ranks_higher():
    """rank = margin + passage relevance + verbatim codes + COVERAGE x question words held."""
    asked = content_words("When did the canal company cut its tolls?")
    restating, other = "The canal company cut its tolls in 1851.", "Traffic fell by half after 1840."
    assert coverage(asked, restating) == 1.0 and coverage(asked, other) == 0.0
    assert coverage(set(), restating) == 0.0
    doc = DocumentRef("d", "Canal", "canal.md")
    hit = PassageHit(1, doc, f"{other} {restating}", 0.5, 0, 70, relevance=2.0)
    a = Found(doc, 1, Sentence(33, 73), restating, 35, 39, margin=4.0, passage=hit, coverage=1.0)
    b = Found(doc, 0, Sentence(0, 32), other, 27, 31, margin=5.5, passage=hit, codes=1)
    assert a.rank == pytest.approx(4.0 + 2.0 + COVERAGE) and b.rank == pytest.approx(5.5 + 2.0 + 1)
    assert a.rank > b.rank


def test_the_cross_encoder_reads_the_best_spans_sentences_and_joins_their_rank(canal: Pipeline):
    reading = canal.read("Who proposed the canal?")
    read = [f for f in reading.found if f.relevance is not None]
    assert len(read) == min(CHOOSE, len(reading.found)) == 2 and reading.found[:CHOOSE] == tuple(read)
    assert read[0].rank >= read[1].rank
    assert reading.signals["relevance"] == read[0].relevance  # read once, for the choice and the decision
    assert all(f.relevance is None for f in reading.found[CHOOSE:])


def test_a_span_that_is_the_opening_pronoun_points_at_the_sentence_before(canal: Pipeline):
    """The reader may rank "This forced the company" (the sentence restating the question)
    first; the span names nothing itself, so the sentence before is the answer's."""
    reading = canal.read("Why did the company cut its tolls in 1851?")
    assert reading.best.text.startswith("Traffic on the canal fell")
    restating = next(f for f in reading.found if f.text.startswith("This forced the company"))
    assert restating.start == 0 and restating.rank > reading.best.rank


def test_answer_offsets_slice_the_document_inside_evidence_zero(canal: Pipeline):
    for q in ("How long is the Marlow Canal?", "Who designed the aqueduct?", "When did the whole canal reopen?"):
        a = canal.ask(q).answer
        assert a is not None, q
        text = canal.library.document(a.evidence[0].document.id)["text"]
        assert text[a.start:a.end] == a.text
        assert a.evidence[0].start <= a.start < a.end <= a.evidence[0].end


@pytest.mark.parametrize(("question", "expected"), [
    ("Who designed the aqueduct?", "Lowe and Partners"),
    ("How many locks are in the flight at Crane Hill?", "14"),
    ("Who led the restoration society's founders?", "Margaret Ellery"),
    ("When did the aqueduct open to boats?", "September 1994"),
])
def test_short_answers_on_the_canal(canal: Pipeline, question: str, expected: str):
    a = canal.ask(question).answer
    assert a is not None and normalize_answer(expected) in normalize_answer(a.text)
    assert len(a.text.split()) <= len(expected.split()) + 3


def test_an_answer_that_leans_on_the_sentence_before_shows_it_as_context(canal: Pipeline):
    a = canal.ask("What did the loss of traffic force the company to do in 1851?").answer
    assert a is not None and "cut its tolls" in a.text
    assert a.evidence[0].sentence.startswith("This forced the company")
    assert a.evidence[1].context and a.evidence[1].sentence.startswith("Traffic on the canal fell")
    assert a.evidence[1].end < a.evidence[0].start
    assert a.to_dict()["evidence"][1]["context"] is True and "context" not in a.to_dict()["evidence"][0]


def test_the_sentence_after_is_context_when_it_names_what_was_asked(canal: Pipeline):
    # the evidence shown, whatever the calibration decides about answering
    always = Pipeline({**canal.config, "min_support": 0.0}, embedder=canal.embedder)
    a = always.ask("Why did the company cut its tolls in 1851?").answer
    assert a is not None
    assert a.evidence[0].sentence.startswith("Traffic on the canal fell") and a.text in a.evidence[0].sentence
    assert a.evidence[1].context and a.evidence[1].sentence.startswith("This forced the company")


def test_sources_that_differ_are_listed_with_their_own_evidence(canal: Pipeline):
    a = canal.ask("When did the Harwick Bridge open?").answer
    assert a is not None
    years = {a.text[-4:]} | {c.text[-4:] for c in a.conflicts}
    assert years == {"1887", "1891"}
    [c] = a.conflicts
    assert c.evidence[0].document.id != a.evidence[0].document.id
    assert c.evidence[0].sentence[c.start - c.evidence[0].start:c.end - c.evidence[0].start] == c.text
    assert a.to_dict()["conflicts"][0]["text"] == c.text


def test_the_page_shows_each_differing_source_with_its_footnotes(canal: Pipeline):
    from web import create_app

    page = create_app(test_config={"TESTING": True}, pipeline=canal).test_client().get(
        "/", query_string={"q": "When did the Harwick Bridge open?"}).get_data(as_text=True)
    assert "Sources differ" in page and "1887" in page and "1891" in page
    assert page.count('class="evidence"') == 2  # the answer's sentence and the other source's
    cited = re.findall(r'<span class="doc-cite">.*?<span class="path">(.*?)</span>', page, re.S)
    assert sorted(p.rsplit("/", 1)[-1] for p in cited) == ["bridge-almanac.txt", "bridge-gazette.txt"]  # each its own


def test_answers_that_agree_are_no_conflict(canal: Pipeline):
    a = canal.ask("Who built the iron of the Harwick Bridge?").answer
    assert a is not None and "Tamford Ironworks" in a.text and a.conflicts == ()


def test_span_kinds_and_pasted_statements():
    assert [span_kind(t) for t in ("14 May 1887", "June 2023", "310,000", "Harriet Vane", "because of floods")] == \
        ["date", "date", "number", "name", None]
    s = "The canal was proposed by the engineer Harriet Vane in 1791."
    assert pasted(s, s) and pasted(s.rstrip("."), s)
    assert not pasted("Who proposed the canal in 1791?", s) and not pasted("Harriet Vane", s)


def _article_sentences(path: Path) -> list[str]:
    body = path.read_text(encoding="utf-8").split("---", 2)[2]
    return [body[a:b] for a, b in sentence_spans(body)]


def test_fifty_pasted_sentences_are_answered_with_themselves(canal: Pipeline):
    sentences = _article_sentences(READER_DATA / "marlow-canal.txt")[:50]
    assert len(sentences) == 50
    for s in sentences:
        a = canal.ask(s).answer
        assert a is not None and a.text == s and a.evidence[0].sentence == s, s


def test_pasted_seed_sentences_are_answered_with_themselves(pipeline: Pipeline):
    for s in ("In July 2023, the Fujian Media Group created an ICC at the direction of the Fujian Provincial "
              "Committee of the CCP.", "The GWICC subsequently partnered with Agência Brasil and also set up a "
              "liaison station in Milan."):
        a = pipeline.ask(s).answer
        assert a is not None and a.text == s and a.evidence[0].sentence == s


SEED_QUESTIONS = [
    ("When did the Fujian Media Group create an ICC?", "July 2023"),
    ("How many ICCs were created from 2021 to 2023?", "over 30"),
    ("When did the country's ICCs organize a national association?", "June 2023"),
    ("Which countries do the HolaFujian accounts focus on?", "Japan and Indonesia"),
    ("What ICC did the Shanghai United Media Group launch?", "Shanghai Global News Network"),
    ("Under what brand does SGNN operate social media accounts?", "ShanghaiEye"),
    ("What does the Guangdong ICC brand itself as in English?", "GDToday and Daily Bae"),
    ("When did Guangdong launch an ICC?", "November 2023"),
    ("Under which broadcaster did Shandong form an ICC?", "Shandong Television"),
    ("What did Hebei create in January 2024?", "Great Wall International Communication Center"),
    ("Where did the GWICC set up a liaison station?", "Milan"),
    ("Which newspaper partnered with the Heilongjiang Daily Newspaper Group?", "Ta Kung Pao"),
    ("Which countries does the Heilongjiang ICC focus its external propaganda on?", "Russia and South Korea"),
    ("How many ICCs had been established as of December 2024?", "over 70"),
    ("Who did the GWICC partner with?", "Agência Brasil"),
]


def test_seed_short_answers_are_the_expected_words(pipeline: Pipeline):
    """At least 13 of 15: the expected words, with at most three more."""
    misses = []
    for question, expected in SEED_QUESTIONS:
        a = pipeline.ask(question).answer
        got = a.text if a else None
        if got is None or normalize_answer(expected) not in normalize_answer(got) \
                or len(got.split()) > len(expected.split()) + 3:
            misses.append((question, got))
    assert len(misses) <= 2, misses


def test_a_users_own_reader_folder_is_loaded_through_transformers(tmp_path: Path, canal: Pipeline):
    """Plumbing only: a tiny randomly initialised model, created here, reads through `--reader`."""
    from transformers import BertConfig, BertForQuestionAnswering

    folder = tmp_path / "tiny-reader"
    vocab = json.loads((BUNDLED / "tokenizer.json").read_text())["model"]["vocab"]
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    BertForQuestionAnswering(config).save_pretrained(folder)
    shutil.copy(BUNDLED / "tokenizer.json", folder / "tokenizer.json")
    pipe = Pipeline({**canal.config, "reader": str(folder), "min_support": 0.0}, embedder=canal.embedder)
    result = pipe.ask("Who designed the aqueduct?")
    assert type(pipe.models.span_model()).__name__ == "TransformersSpanModel"
    a = result.answer
    assert a is not None and a.evidence[0].sentence[a.start - a.evidence[0].start:a.end - a.evidence[0].start] == a.text
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Who designed the aqueduct?", "--json",
                          "--index", str(canal.index_dir), "--reader", str(folder)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "question" in json.loads(out.stdout)
    bad = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "x", "--index", str(canal.index_dir),
                          "--reader", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "tokenizer.json" in bad.stderr


def test_a_reader_folder_that_train_reader_wrote_runs_on_onnxruntime(tmp_path: Path, canal: Pipeline):
    folder = tmp_path / "my-reader"
    shutil.copytree(BUNDLED, folder)
    pipe = Pipeline({**canal.config, "reader": str(folder)}, embedder=canal.embedder)
    model = pipe.models.span_model()
    assert type(model).__name__ == "OnnxSpanModel" and model.tokens.max_tokens == trained_window(folder)
    assert pipe.ask("Who designed the aqueduct?").answer.text == canal.ask("Who designed the aqueduct?").answer.text


def test_the_shipped_reader_imports_no_torch(tmp_path: Path):
    code = ("import sys; from qa import Pipeline; p = Pipeline({'index': sys.argv[1]}); p.models.span_model(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_make_train_reader_defaults_are_the_shipped_models_run():
    """`make train-reader` with no arguments trains what the model card says was shipped."""
    card = json.loads((BUNDLED / "model_card.json").read_text())
    tr = script("train_reader")
    args = tr.arguments([])
    where = ("data", *script("training").NOT_THE_RUN)  # where things are, not what is trained
    defaults = {k: str(v) for k, v in vars(args).items() if k not in where and k in card["arguments"]}
    assert defaults == {k: v for k, v in card["arguments"].items() if k not in where}
    # options added since that run default to what it did: one stage, its windows
    later = set(vars(args)) - set(card["arguments"]) - set(where)
    assert later <= {"negative_mix", "opposites", "context_share", "init", "tune", "tune_fold"}
    assert args.init is None and args.tune is None
    assert tr.recipe_of(args) == tr.Recipe(negative_share=float(card["arguments"]["negative_share"]))


@pytest.mark.slow
@pytest.mark.skipif(not TRAIN.is_file(), reason="../shared/train (SQuAD 1.0 train) is not here")
def test_make_train_reader_trains_resumes_exports_and_loads(tmp_path: Path):
    out, cache = tmp_path / "reader", tmp_path / "cache"
    args = f"--max-steps 20 --questions 300 --validation-questions 20 --out {out} --cache {cache}"

    first = make_target("train-reader", args + " --stop-after 10")
    assert "stopped at step 10/20" in first and not out.exists()
    assert len(list(cache.glob("reader-*.pt"))) == 1
    second = make_target("train-reader", args)
    assert "resumed from" in second and "at step 10/20" in second
    card = json.loads((out / "model_card.json").read_text())
    assert card["steps"] == 20 and card["validation_fp32"]["questions"] == 20
    assert (out / "MODEL_CARD.md").read_text().count(card["sha256"]) == 1
    assert card["validation_window_tokens"] == trained_window(out) == OnnxSpanModel(out).tokens.max_tokens == 128
    found = OnnxSpanModel(out).read("Who proposed the canal?", [Window(("Harriet Vane proposed the canal.",), (0,))])
    assert len(found) == 1 and found[0].text in "Harriet Vane proposed the canal."
