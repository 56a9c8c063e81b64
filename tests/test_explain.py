"""Why this answer: `Pipeline.ask(explain=True)`, `qa ask --explain`, the words for each signal."""

from __future__ import annotations

import os
import subprocess
import sys

from qa.pipeline import Pipeline
from qa.read import signals as sig
from qa.read.explain import Explanation, _says
from qa.records import Result
from tests.conftest import ROOT

FUJIAN = "When did the Fujian Media Group create an ICC?"


def test_an_answer_is_explained_by_its_passages_sentences_and_signals(pipeline: Pipeline):
    result = pipeline.ask(FUJIAN, explain=True)
    why, answer = result.explanation, result.answer
    assert answer is not None and why is not None and why.answered
    assert why.summary.startswith("Answered") and f"{why.confidence:.2f}" in why.summary
    assert why.confidence == round(answer.score, 3) and why.threshold == pipeline.reader.min_support
    assert why.chosen["sentence"] == answer.evidence[0].sentence and answer.text == why.chosen["span"]
    assert why.runner_up is not None and why.runner_up["score"] <= why.chosen["score"]
    relevances = [p["relevance"] for p in why.passages]
    assert relevances == sorted(relevances, reverse=True) and why.passages[0]["read"]
    assert {s["name"] for s in why.signals} == set(pipeline.reader.calibration.weights)
    effects = [abs(s["effect"]) for s in why.signals]
    assert effects == sorted(effects, reverse=True)
    for s in why.signals:
        assert s["effect"] == round(s["weight"] * s["value"], 3) and s["says"]


def test_an_abstention_names_what_no_passage_mentions(pipeline: Pipeline):
    why = pipeline.ask("When did the Fujian Media Group open an ICC on Jupiter in 1850?", explain=True).explanation
    assert why is not None and not why.answered
    assert why.summary.startswith("Not answered") and "'Jupiter'" in why.summary and "'1850'" in why.summary
    assert why.missing["names"] == ["Jupiter"] and why.missing["numbers"] == ["1850"]
    vaccine = pipeline.ask("Which vaccine protects lighthouse keepers from scurvy?", explain=True).explanation
    assert not vaccine.answered and "'vaccine'" in vaccine.summary


def test_the_json_carries_the_explanation_only_when_asked(pipeline: Pipeline):
    plain = pipeline.ask(FUJIAN).to_dict()
    assert "explain" not in plain
    asked = pipeline.ask(FUJIAN, explain=True)
    d = asked.to_dict()
    assert d["explain"]["chosen"]["sentence"] == d["answer"]["evidence"][0]["sentence"]
    back = Result.from_dict(d)
    assert back.explanation == asked.explanation and isinstance(back.explanation, Explanation)


def test_each_signal_is_said_in_words():
    found = ()
    assert "prefers no answer" in _says("margin", -2.0, "Who?", found)
    assert "a close match" in _says("relevance", 6.0, "Who?", found)
    assert "a poor match" in _says("relevance", -3.0, "Who?", found)
    assert "'Mars'" in _says("missing_names", 1.0, "Who went to Mars?", found)
    assert "'1999'" in _says("missing_numbers", 1.0, "Who won in 1999?", found)
    assert "negated" in _says("negation", 1.0, "Who did not win?", found)
    assert sig.missing("Who created the centers?", "The group creates a center.")["words"] == []
    assert sig.missing("Which vaccines work?", "Nothing here.")["words"] == ["vaccines", "work"]


def test_cli_explain_prints_why_after_the_answer(pipeline: Pipeline):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "qa.cli", "ask", FUJIAN, "--explain", "--index",
                          str(pipeline.index_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    why = out.stdout.split("Why this answer:", 1)[1]
    assert "Answered: the reader's best sentence has confidence" in why
    assert "Passages read" in why and "Chosen sentence" in why and "Signals" in why
