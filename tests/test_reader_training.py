"""The windows `scripts/train_reader.py` trains the reader on: answered windows whose offsets
point at the answer, and the no-answer windows of each kind a recipe asks for."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

from qa.read.spans import BUNDLED, Tokens
from tests.conftest import ROOT, script

CANAL_ARTICLE = {"title": "Canal", "paragraphs": [
    {"context": "The canal opened in 1822. Harriet Vane proposed it to the Board. It was the first canal "
                "in the county. Its largest lock lifts boats nine metres. Tolls were cut in 1851.",
     "qas": [{"question": "Who proposed the canal to the Board?",
              "answers": [{"text": "Harriet Vane", "answer_start": 26}]},
             {"question": "When was the first canal in the county opened?",
              "answers": [{"text": "1822", "answer_start": 20}]}]},
    {"context": "Later the railway arrived at Point Morrow. Its station was built by Peter Wimsey in 1860.",
     "qas": [{"question": "Who built the Point Morrow station?",
              "answers": [{"text": "Peter Wimsey", "answer_start": 68}]}]},
]}
ANSWER_OF = {qa["question"]: qa["answers"][0]["text"] for p in CANAL_ARTICLE["paragraphs"] for qa in p["qas"]}


def windows(recipe, seed: int = 3) -> list[dict]:
    tr = script("train_reader")
    return tr.build([CANAL_ARTICLE], Tokens(BUNDLED / "tokenizer.json", max_tokens=128), 124, recipe, None,
                    random.Random(seed))


def test_answered_windows_point_at_their_answer():
    tr = script("train_reader")
    for w in windows(tr.Recipe(context_share=1.0)):
        if w["ans"] is not None:
            k, a, b = w["ans"]
            assert w["sents"][k][a:b] == ANSWER_OF[w["q"]]


def test_no_answer_windows_of_each_kind_in_the_mix():
    tr = script("train_reader")
    for mix, kind in (((1, 0, 0), "near"), ((0, 1, 0), "other"), ((0, 0, 1), "adversarial")):
        made = windows(tr.Recipe(negative_share=0.5, mix=mix))
        answered = [w for w in made if w["ans"] is not None]
        negatives = [w for w in made if w["ans"] is None]
        assert len(answered) == 3 and negatives, kind
        kinds = set()
        for w in negatives:
            if w["q"] in ANSWER_OF:  # the question asked against sentences without its answer
                assert ANSWER_OF[w["q"]] not in " ".join(w["sents"])
                own = "Peter Wimsey" in ANSWER_OF[w["q"]]
                kinds.add("near" if (w["sents"][0] in CANAL_ARTICLE["paragraphs"][1]["context"]) == own else "other")
            else:  # a changed question against the window that answered the original
                assert w["sents"] in [x["sents"] for x in answered]
                kinds.add("adversarial")
        assert kind in kinds, (kind, kinds)


def test_a_window_without_the_sentence_that_names_what_was_asked_is_still_answered():
    """"Its station" after "Point Morrow": the reader sees the answer's sentence alone too."""
    tr = script("train_reader")
    alone = [w for w in windows(tr.Recipe(context_share=1.0)) if w["ans"] is not None and w["ans"][0] == 0
             and w["sents"][0].startswith("Its station")]
    assert alone and all("Point Morrow" not in " ".join(w["sents"]) for w in alone)
    assert not [w for w in windows(tr.Recipe()) if w["ans"] is not None and w["sents"][0].startswith("Its station")]
    spans = [(0, 42), (43, 88)]
    text = CANAL_ARTICLE["paragraphs"][1]["context"]
    assert tr.named_before("Who built the Point Morrow station?", text, spans, 1)
    assert not tr.named_before("Who built the Point Morrow station?", text, spans, 0)
    assert not tr.named_before("Who built the station?", text, spans, 1)


def test_adversarial_questions_swap_a_number_a_name_an_opposite_or_negate():
    tr = script("train_reader")
    article = ("The canal opened in 1822 and closed in 1931. Harriet Vane and Peter Wimsey ran it for the town. "
               "The boats were slow.")
    question = "Who ran the first canal opened in 1822 with Harriet Vane?"
    made = {tr.adversarial(question, article, random.Random(seed), opposites=True) for seed in range(60)}
    assert "Who ran the first canal opened in 1931 with Harriet Vane?" in made
    assert "Who ran the first canal opened in 1822 with Peter Wimsey?" in made
    assert "Who ran the last canal opened in 1822 with Harriet Vane?" in made
    # an ordinary word capitalised at a sentence's start ("The") is not a name to swap in
    assert not any("with The" in q for q in made - {None})
    # the shipped run's questions: no opposites
    shipped = {tr.adversarial(question, article, random.Random(seed)) for seed in range(60)}
    assert not any("last" in q for q in shipped - {None})
    assert tr.adversarial("When was the canal opened?", article, random.Random(1)) == "When was not the canal opened?"


def test_questions_written_to_have_no_answer_are_no_answer_windows_of_their_paragraph():
    tr = script("train_reader")
    article = {"title": "Canal", "paragraphs": [{**CANAL_ARTICLE["paragraphs"][0], "qas": [
        *CANAL_ARTICLE["paragraphs"][0]["qas"],
        {"question": "Who proposed the canal to the King?", "answers": [], "is_impossible": True}]}]}
    made = tr.build([article], Tokens(BUNDLED / "tokenizer.json", max_tokens=128), 124, tr.Recipe(negative_share=0),
                    None, random.Random(3))
    [refused] = [w for w in made if w["q"] == "Who proposed the canal to the King?"]
    assert refused["ans"] is None and " ".join(refused["sents"]) in article["paragraphs"][0]["context"]
    assert len(made) == 3


def test_tuning_folds_leave_out_every_nth_article_by_title(tmp_path):
    tr = script("train_reader")
    path = tmp_path / "squad2.json"
    path.write_text(json.dumps({"data": [{"title": t, "paragraphs": []} for t in "EDCBAGF"]}))
    assert [a["title"] for a in tr.tune_articles(path, None)] == list("ABCDEFG")
    assert [a["title"] for a in tr.tune_articles(path, "1/3")] == list("BCEF")
    assert [a["title"] for a in tr.tune_articles(path, "3/3")] == list("ABDEG")


def test_calibrate_fits_on_readings_made_by_the_fold_models(tmp_path):
    """`scripts/calibrate.py --readings` (what `scripts/reader_folds.py` writes) fits and scores
    without reading anything, and refuses to write a calibration for the shipped reader from them."""
    rng = random.Random(5)
    signals = ("margin", "relevance", "passage_relevance", "missing_names", "missing_numbers", "near_miss", "negation")
    records = []
    for n in range(240):
        answerable = n % 2 == 0
        right = answerable and rng.random() < 0.8
        sig = {s: rng.gauss(2.0 if right else 0.0, 1.0) for s in signals}
        records.append({"id": str(n), "article": f"a{n // 2 % 4}", "answerable": answerable, "read": True,
                        "signals": sig, "pasted": False, "span": "x", "right": right, "em": float(right),
                        "f1": float(right)})
    readings = tmp_path / "readings.json"
    readings.write_text(json.dumps(records))
    run = [sys.executable, str(ROOT / "scripts" / "calibrate.py"), str(tmp_path / "unused.json"), "--readings",
           str(readings)]
    out = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    held = json.loads(re.search(r"held out .*?: (\{.*\})", out.stdout).group(1).replace("'", '"'))
    assert 0.8 < held["has_answer_answered"] < 0.95 and held["no_answer_abstained"] > 0.5
    refused = subprocess.run([*run, "--write"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert refused.returncode == 2 and "--readings" in refused.stderr
