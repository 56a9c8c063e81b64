"""Asking within some sources (`Scope`): the CLI's --in/--document, the pipeline, both retrievers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qa.errors import DocumentNotFound
from qa.index import segments
from qa.pipeline import Pipeline
from qa.search.scope import Scope
from tests.backends import BACKENDS, on_postgres
from tests.conftest import DATA, ROOT


@pytest.fixture(scope="module", params=BACKENDS)
def canal(request, canal: Pipeline, embedder) -> Pipeline:
    """The canal index, and the same sources indexed into PostgreSQL (`make test-scale`)."""
    return canal if request.param == "embedded" else on_postgres(request, [DATA / "reader"], embedder)
BRIDGE = "When did the Harwick Bridge open?"


def documents(pipe: Pipeline) -> dict[str, dict]:
    """The canal index's documents by file name."""
    docs, _ = pipe.library.documents()
    return {d["path"].rsplit("/", 1)[-1]: d for d in docs}


def test_a_scope_matches_files_and_whole_folders_not_name_prefixes():
    scope = Scope(paths=("sources/cat",), documents=("abc",))
    assert scope.matches("x", "sources/cat", "/data/sources/cat")
    assert scope.matches("x", "sources/cat/kittens.html", "/data/sources/cat/kittens.html")
    assert not scope.matches("x", "sources/cathedral.html", "/data/sources/cathedral.html")
    assert scope.matches("abc", "elsewhere.txt", "/elsewhere.txt")
    assert Scope(paths=("/data/sources/",)).matches("x", "sources/cat.html", "/data/sources/cat.html")
    assert not Scope() and Scope(documents=("abc",))


def test_asked_within_one_source_the_other_neither_answers_nor_differs(canal: Pipeline):
    everywhere = canal.ask(BRIDGE).answer
    assert everywhere is not None and everywhere.conflicts  # the two notes disagree: 1887 and 1891
    for name in ("bridge-gazette.txt", "bridge-almanac.txt"):
        doc = documents(canal)[name]
        result = canal.ask(BRIDGE, scope=Scope(paths=(doc["path"],)))
        assert result.answer is not None and result.answer.conflicts == ()
        assert {p.document.id for p in result.passages} == {doc["id"]}
        assert result.answer.evidence[0].document.id == doc["id"]
    by_id = canal.ask(BRIDGE, scope=Scope(documents=(documents(canal)["bridge-almanac.txt"]["id"],)))
    assert by_id.answer.evidence[0].document.path.endswith("bridge-almanac.txt")


def test_a_folder_scope_holds_every_document_under_it(canal: Pipeline):
    folder = documents(canal)["marlow-canal.txt"]["path"].rsplit("/", 1)[0]
    result = canal.ask(BRIDGE, scope=Scope(paths=(folder,)))
    assert result.answer is not None and result.answer.conflicts  # the whole folder: both notes again


def test_a_scope_with_no_document_is_an_error_naming_it(canal: Pipeline):
    with pytest.raises(DocumentNotFound, match=r"no indexed document is in nowhere/at-all\.txt"):
        canal.ask(BRIDGE, scope=Scope(paths=("nowhere/at-all.txt",)))


def test_dense_search_within_is_the_same_exact_or_through_faiss(canal: Pipeline, monkeypatch):
    """Few passages are scored exactly from their vectors, many through a FAISS selector: one ranking."""
    doc = documents(canal)["marlow-canal.txt"]
    qvec = canal.embedder.encode(["Why did the canal company cut its tolls?"])[0]

    def ranked() -> list[int]:
        def work(snap, view):
            return [pid for pid, _ in snap.dense(qvec, 5, view.within(Scope(paths=(doc["path"],))))]
        return canal.serving.reading(work)

    exact = ranked()
    monkeypatch.setattr(segments, "EXACT_WITHIN", 0)
    assert ranked() == exact and len(exact) == min(5, doc["passages"])

    def owners(snap, view):
        return {h.document.id for h in view.passages(exact).values()}
    assert canal.serving.reading(owners) == {doc["id"]}


def test_lexical_search_within_keeps_only_the_scope(canal: Pipeline):
    docs = documents(canal)

    def work(snap, view):
        everywhere = view.passages(pid for pid, _ in view.lexical("Harwick Bridge opened", 10))
        within = view.within(Scope(paths=(docs["bridge-gazette.txt"]["path"],)))
        scoped = view.passages(pid for pid, _ in view.lexical("Harwick Bridge opened", 10, within))
        return {h.document.id for h in everywhere.values()}, {h.document.id for h in scoped.values()}

    everywhere, scoped = canal.serving.reading(work)
    assert len(everywhere) >= 2 and scoped == {docs["bridge-gazette.txt"]["id"]}


def test_cli_in_and_document_and_a_scope_that_matches_nothing(canal: Pipeline):
    docs = documents(canal)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    source = canal.serving.reading(lambda _, view: view.document(docs["bridge-gazette.txt"]["id"]).source)

    def ask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "qa.cli", "ask", BRIDGE, "--index", str(canal.index_dir),
                               *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    within = ask("--in", source, "--json")
    assert within.returncode == 0, within.stderr
    answer = json.loads(within.stdout)["answer"]
    assert answer["conflicts"] == [] and answer["evidence"][0]["document"]["path"].endswith("bridge-gazette.txt")
    by_id = ask("--document", docs["bridge-almanac.txt"]["id"], "--json")
    assert json.loads(by_id.stdout)["answer"]["evidence"][0]["document"]["path"].endswith("bridge-almanac.txt")
    none = ask("--in", os.path.join(os.path.dirname(source), "no-such-file.txt"))
    assert none.returncode != 0 and "no indexed document is in" in none.stderr and "no-such-file.txt" in none.stderr
    assert "Traceback" not in none.stderr
