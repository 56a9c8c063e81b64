"""End to end with the real model, FAISS and SQLite: the seed answers with exact footnotes, or abstains."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from qa import EmptyQuery, Pipeline, QueryTooLong
from tests.backends import BACKENDS, on_postgres
from tests.conftest import ROOT, SEED, make_pipeline


@pytest.fixture(scope="module", params=BACKENDS)
def pipeline(request, pipeline: Pipeline, corpus_dir: Path, embedder) -> Pipeline:
    """The session index, and the same sources indexed into PostgreSQL (`make test-scale`)."""
    return pipeline if request.param == "embedded" else on_postgres(request, [corpus_dir], embedder)


def evidence_footnotes(result) -> list[tuple[str, str | None, object]]:
    return [(f.marker, f.locator, f.reference) for e in result.answer.evidence for f in e.footnotes]


def test_fujian_question_has_marker_1_page_13_and_no_reference(pipeline: Pipeline):
    r = pipeline.ask("When did the Fujian Media Group create an ICC?")
    assert r.answered
    ev = r.answer.evidence[0]
    assert ev.sentence.startswith("In July 2023, the Fujian Media Group created an ICC")
    assert evidence_footnotes(r) == [("1", "13", None)]
    assert r.answer.text == "July 2023"


@pytest.mark.parametrize("question, sentence_start, notes", [
    ("How many ICCs had been established by December 2024?", "As of December 2024, over 70 ICCs", [("16", None)]),
    ("Which ICC focuses its propaganda on Russia and South Korea?", "In February 2024, the Hong Kong-based",
     [("1", "19")]),
    ("When was the Point Morrow lighthouse first lit?", "The Point Morrow lighthouse was first lit", [("1", None)]),
    ("Who bred the Starlight apple?", "The Starlight apple was bred there", [("2", "88")]),
])
def test_right_sentence_and_footnotes(pipeline: Pipeline, question, sentence_start, notes):
    r = pipeline.ask(question)
    assert r.answered
    assert any(e.sentence.startswith(sentence_start) for e in r.answer.evidence)
    assert [(m, loc) for m, loc, _ in evidence_footnotes(r)] == notes


def test_resolved_reference_carries_text_and_fields(pipeline: Pipeline):
    r = pipeline.ask("When was the Point Morrow lighthouse first lit?")
    ref = r.answer.evidence[0].footnotes[0].reference
    assert ref.text == 'Lindqvist, Ada (1901). "Forty Years at Point Morrow". Coast Review. https://example.org/coast-review/1901'
    assert ref.fields["url"] == "https://example.org/coast-review/1901"
    assert r.answer.text == "12 March 1871"


def test_pasted_statement_finds_its_sentence(pipeline: Pipeline):
    claim = "The GWICC subsequently partnered with Agência Brasil and also set up a liaison station in Milan."
    r = pipeline.ask(claim)
    assert r.answer.evidence[0].sentence == claim
    assert evidence_footnotes(r) == [("1", "18", None)]


def test_sentence_without_marker_cites_document_and_position(pipeline: Pipeline):
    r = pipeline.ask("Who catalogued the Point Morrow logbooks in 1999?")
    ev = r.answer.evidence[0]
    assert ev.sentence.startswith("Dr. Paul Okafor") and ev.footnotes == ()
    assert ev.document.title == "Lighthouses of the Farallon coast" and ev.end > ev.start


@pytest.mark.parametrize("question", ["What is the boiling point of mercury?", "Who won the 1966 World Cup?",
                                      "How do I bake sourdough bread?"])
def test_off_topic_questions_abstain(pipeline: Pipeline, question):
    r = pipeline.ask(question)
    assert not r.answered and r.answer is None and r.passages


def test_offsets_are_exact_for_every_evidence(pipeline: Pipeline):
    for q in ["When did the Fujian Media Group create an ICC?", "What brand does SGNN use on social media?",
              "When did frost destroy the harvest?", "When was the lighthouse automated?"]:
        r = pipeline.ask(q)
        for ev in r.answer.evidence if r.answer else ():
            text = pipeline.library.document(ev.document.id)["text"]
            assert text[ev.start:ev.end] == ev.sentence
        if r.answer:
            doc_text = pipeline.library.document(r.answer.evidence[0].document.id)["text"]
            assert doc_text[r.answer.start:r.answer.end] == r.answer.text
        for p in r.passages:
            assert pipeline.library.document(p.document.id)["text"][p.start:p.end] == p.text


def test_question_limits(pipeline: Pipeline):
    with pytest.raises(EmptyQuery):
        pipeline.ask("   ")
    with pytest.raises(QueryTooLong):
        pipeline.ask("why " * 2600)
    assert pipeline.ask("x" * 1000).question  # exactly at the limit is accepted


@pytest.mark.parametrize("question", ["中" * 1000, "a " * 499 + "b", "https://example.org/a/b?c=1 " * 35,
                                      "1234 5678 " * 100, "Größenwahn und Übermut " * 43])
def test_every_model_reads_a_question_at_the_character_limit(pipeline: Pipeline, question: str):
    """Over 254 tokens, a question once crashed the cross-encoder; each model now reads its first tokens."""
    assert len(" ".join(question.split())) <= 1000
    result = pipeline.ask(question)
    assert result.question and len(result.passages) > 0


@pytest.mark.parametrize("question", ["\x01", "\x00", ".", "?", "\u200b", "?! ..."])
def test_a_question_without_words_is_refused(pipeline: Pipeline, question: str):
    with pytest.raises(EmptyQuery, match="no words"):
        pipeline.ask(question)


CONTRACT_KEYS = {"question", "answered", "answer", "passages", "timings_ms"}


def validate_contract(obj: dict) -> None:
    """The JSON shape DESIGN.md promises (fields may be added, none renamed)."""
    assert obj.keys() >= CONTRACT_KEYS
    assert isinstance(obj["answered"], bool)
    assert {"retrieve", "answer", "total"} <= obj["timings_ms"].keys()
    for p in obj["passages"]:
        assert {"document", "text", "score", "start", "end"} <= p.keys()
        assert {"id", "title"} <= p["document"].keys()
    relevance = [p["relevance"] for p in obj["passages"]]
    read = [r for r in relevance if r is not None]
    assert relevance[:len(read)] == sorted(read, reverse=True)  # the reranked passages lead, best first
    if not obj["answered"]:
        assert obj["answer"] is None
        return
    a = obj["answer"]
    assert {"text", "score", "evidence"} <= a.keys() and a["evidence"]
    for e in a["evidence"]:
        assert {"sentence", "document", "start", "end", "footnotes"} <= e.keys()
        assert {"id", "title", "path"} <= e["document"].keys()
        for f in e["footnotes"]:
            assert {"marker", "locator", "reference"} <= f.keys() and isinstance(f["marker"], str)
            assert f["reference"] is None or isinstance(f["reference"]["text"], str)


def qa_cmd(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_index_then_ask_json(tmp_path: Path):
    src = tmp_path / "sources"
    src.mkdir()
    (src / SEED.name).write_bytes(SEED.read_bytes())
    idx = str(tmp_path / "index")
    built = qa_cmd("index", str(src), "--index", idx, "-q")
    assert built.returncode == 0, built.stderr
    assert "1 added" in built.stdout
    asked = qa_cmd("ask", "When did the Fujian Media Group create an ICC?", "--json", "--index", idx)
    assert asked.returncode == 0, asked.stderr
    obj = json.loads(asked.stdout)
    validate_contract(obj)
    ev = obj["answer"]["evidence"][-1]
    assert ev["footnotes"] == [{"marker": "1", "locator": "13", "where": "p. 13", "reference": None}]
    assert ev["document"]["path"].endswith("sources/international-communication-centers.txt")
    off = qa_cmd("ask", "What is the boiling point of mercury?", "--json", "--index", idx)
    assert off.returncode == 0 and json.loads(off.stdout)["answered"] is False
    readable = qa_cmd("ask", "When did the Fujian Media Group create an ICC?", "--index", idx)
    assert "Reference not included in the source (marker [1], p. 13)" in " ".join(readable.stdout.split())
    removed = qa_cmd("remove", str(src / SEED.name), "--index", idx)
    assert removed.returncode == 0 and "1 removed" in removed.stdout and "0 documents" in removed.stdout
    again = qa_cmd("remove", str(src / SEED.name), "--index", idx)
    assert again.returncode == 1 and "not in the index" in again.stderr


def test_pipeline_json_matches_contract(pipeline: Pipeline):
    for q in ["When did the Fujian Media Group create an ICC?", "What is the boiling point of mercury?"]:
        validate_contract(json.loads(json.dumps(pipeline.ask(q).to_dict())))


@pytest.mark.parametrize("args, message", [
    (["ask", "anything", "--index", "{tmp}/none"], "no index at"),
    (["ask", "   ", "--index", "{tmp}/none"], "the question is empty"),
    (["index", "{tmp}/missing-folder", "--index", "{tmp}/idx"], "nothing could be indexed"),
    (["serve", "--port", "70000", "--index", "{tmp}/idx"], "'port' must be from 0 to 65535, got 70000"),
    (["serve", "--admin-token", "short", "--index", "{tmp}/idx"], "use at least 16"),
    (["sources", "--limit", "0", "--index", "{tmp}/idx"], "--limit 1 or more"),
])
def test_cli_errors_are_one_clear_line(tmp_path: Path, args, message):
    r = qa_cmd(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_settings_files_values_and_bytes_are_one_clear_line(tmp_path: Path):
    (tmp_path / "footnote.toml").write_text("top_k = [unclosed\n")
    r = qa_cmd("sources", cwd=tmp_path)
    assert r.returncode != 0 and "footnote.toml is not valid TOML" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "footnote.toml").unlink()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FOOTNOTE_CANDIDATES": "0"}
    r = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "x", "--index", str(tmp_path)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "'candidates' must be at least 1, got 0" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "qa.cli", "ask", b"caf\xe9 au lait?", "--index", str(tmp_path)],
                       cwd=tmp_path, capture_output=True, timeout=300)
    assert r.returncode != 0 and b"not valid UTF-8" in r.stderr and b"Traceback" not in r.stderr


def test_a_busy_port_is_said_before_the_models_load(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = qa_cmd("serve", "--port", str(taken.getsockname()[1]), "--index", str(tmp_path / "idx"))
    assert r.returncode != 0 and "cannot listen on 127.0.0.1:" in r.stderr and "Traceback" not in r.stderr
    assert "warm" not in r.stderr.lower() and "serving" not in r.stdout


def test_escape_sequences_in_sources_do_not_reach_a_terminal(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    # a text file with control characters is refused as binary; HTML can still carry them as entities
    (src / "evil.html").write_text("<html><head><title>Evil &#x1b;]0;pwned&#x07;&#x1b;[2J title</title></head>"
                                   "<body><p>Gulls nest on &#x1b;[31mred&#x1b;[0m cliffs.</p></body></html>")
    make_pipeline(tmp_path / "idx", embedder).library.index([str(src)])
    leader, follower = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "sources", "--index", str(tmp_path / "idx")],
                            cwd=ROOT, env=env, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    os.close(leader)
    assert b"Evil" in out and b"title" in out and b"\x1b" not in out and b"\x07" not in out
    piped = qa_cmd("sources", "--json", "--index", str(tmp_path / "idx"))  # data keeps what the source says
    assert "\x1b" in json.loads(piped.stdout)["documents"][0]["title"]


def test_model_mismatch_is_refused_naming_the_rebuild(pipeline: Pipeline):
    r = qa_cmd("ask", "anything", "--index", str(pipeline.index_dir), "--model", "/some/other-model")
    assert r.returncode == 1 and "qa index --rebuild" in r.stderr and "Traceback" not in r.stderr


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path: Path, embedder):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("Zebras in the Okavango migrate 500 kilometres each year.[1]\n")
    (src / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (src / "empty.md").write_bytes(b"")
    (src / "latin.txt").write_bytes("Caf\xe9 owners in Lyon opened 40 new caf\xe9s in 2019.".encode("cp1252"))
    (src / "undecodable.txt").write_bytes(b"Text \x81\x8d\x8f\x90\x9d and \xff\xfe\xfd more \x81\xc3\x28")
    with open(src / "huge.txt", "wb") as fh:
        fh.truncate(50 * 2**20)  # 50 MiB, sparse: refused by size before it is read
    (src / "notes.docx").write_bytes(b"PK\x03\x04")
    report = make_pipeline(tmp_path / "idx", embedder).library.index([str(src)])
    failed = {Path(p).name: why for p, why in report.failed}
    assert sorted(Path(p).name for p in report.added) == ["good.txt", "latin.txt"]
    assert "binary" in failed["binary.txt"]
    assert "empty" in failed["empty.md"]
    assert "UTF-8" in failed["undecodable.txt"]
    assert "too large" in failed["huge.txt"]
    assert "unsupported format" in failed["notes.docx"] and ".md" in failed["notes.docx"]
    latin = make_pipeline(tmp_path / "idx", embedder).ask("How many cafés opened in Lyon in 2019?")
    assert "Café owners in Lyon" in latin.answer.evidence[0].sentence


def test_strict_makes_skipped_files_an_error(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("A good sentence about herons.\n")
    (src / "empty.txt").write_bytes(b"")
    r = qa_cmd("index", str(src), "--index", str(tmp_path / "idx"), "--strict", "-q")
    assert r.returncode == 1 and "empty.txt" in r.stderr and "--strict" in r.stderr
