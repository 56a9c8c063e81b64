"""The server bounds its own work: /api/health, the bound on questions held (503 with
Retry-After past it) and the time limit of one question; over real HTTP where it matters."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from waitress import create_server, wasyncore

from qa import Pipeline
from qa.errors import QuestionTimeout
from web import create_app
from web.ask import Busy, Questions
from web.server import waitress_options

FUJIAN = "When did the Fujian Media Group create an ICC?"


def get(url: str) -> tuple[int, dict, str]:
    """GET a URL: status, headers and body text (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def ask(base: str, question: str, page: bool = False) -> tuple[int, dict, str]:
    return get(f"{base}{'/' if page else '/api/ask'}?{urllib.parse.urlencode({'q': question})}")


def wait_for(condition, what: str) -> None:
    """Wait until `condition()` holds (other threads get there in their own time)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


@pytest.fixture()
def serve():
    """Run an app under a real waitress server, configured as `qa serve` configures it."""
    running = []

    def start(app) -> str:
        server = create_server(app, host="127.0.0.1", port=0, **waitress_options(app.extensions["footnote"].config))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.effective_port}"

    yield start
    for server, thread in running:
        # closed by its own loop thread, so its select() never sees a socket closed under it
        server.trigger.pull_trigger(lambda s=server: wasyncore.close_all(s._map))
        thread.join(timeout=30)
        server.task_dispatcher.shutdown()


@pytest.mark.server
def test_health_reports_generation_models_and_questions(live_server, pipeline):
    assert ask(live_server, FUJIAN)[0] == 200  # the models are loaded by now
    status, headers, text = get(f"{live_server}/api/health")
    summary = pipeline.library.summary()
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(text) == {
        "status": "ok", "generation": summary["generation"], "documents": summary["documents"],
        "passages": summary["passages"], "models": {"encoder": True, "cross_encoder": True, "span_model": True},
        "questions": {"running": 0, "waiting": 0, "limit": 64}}
    assert summary["generation"] == pipeline.serving.snapshot().generation.path.name and summary["documents"] > 1


def test_health_without_an_index_loads_nothing(tmp_path, embedder):
    pipe = Pipeline({"index": str(tmp_path / "none"), "queue_limit": 5}, embedder=embedder)
    client = create_app(pipeline=pipe, test_config={"TESTING": True}).test_client()
    resp = client.get("/api/health")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "no index", "generation": None, "documents": 0, "passages": 0,
                               "models": {"encoder": True, "cross_encoder": False, "span_model": False},
                               "questions": {"running": 0, "waiting": 0, "limit": 5}}
    assert pipe.models.loaded() == {"encoder": True, "cross_encoder": False, "span_model": False}


def test_questions_hold_at_most_the_limit_and_run_at_most_their_turns():
    questions = Questions(running=2, limit=3)
    release, inside = threading.Event(), threading.Semaphore(0)
    done = []

    def hold(n: int) -> None:
        with questions.turn():
            inside.release()
            release.wait()
        done.append(n)

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: questions.counts() == {"running": 2, "waiting": 1, "limit": 3}, "two running, one waiting")
    with pytest.raises(Busy, match=r"the server is busy with other questions \(queue_limit 3\)") as refused, \
            questions.turn():
        pass
    assert refused.value.status == 503 and refused.value.retry_after == 1
    release.set()  # the waiting one gets its turn once a running one is done
    for t in threads:
        t.join(timeout=30)
    assert sorted(done) == [0, 1, 2] and not any(t.is_alive() for t in threads)
    assert questions.counts() == {"running": 0, "waiting": 0, "limit": 3}
    with questions.turn():  # places are given back, also after an error inside
        assert questions.counts()["running"] == 1
    with pytest.raises(ValueError), questions.turn():
        raise ValueError
    assert questions.counts() == {"running": 0, "waiting": 0, "limit": 3}


def test_waitress_gives_every_held_question_a_worker():
    assert waitress_options({"threads": 8, "queue_limit": 64}) == {"threads": 72, "connection_limit": 144}
    assert waitress_options({"threads": 1, "queue_limit": 1}) == {"threads": 2, "connection_limit": 100}


@pytest.mark.server
def test_past_the_limit_a_question_gets_503_with_retry_after(pipeline, embedder, serve):
    app = create_app(pipeline=Pipeline({**pipeline.config, "queue_limit": 1}, embedder=embedder))
    base = serve(app)
    questions = app.extensions["footnote_questions"]
    with questions.turn():  # a question is being answered: the one place is taken
        status, headers, text = ask(base, FUJIAN)
        assert status == 503 and headers["Retry-After"] == "1"
        assert json.loads(text) == {"error": "the server is busy with other questions (queue_limit 1); "
                                             "ask again in a moment"}
        status, headers, text = ask(base, FUJIAN, page=True)
        assert status == 503 and headers["Retry-After"] == "1" and "the server is busy" in text
        assert ask(base, "")[0] == 400  # an unusable question is refused as such, not queued
        status, _, text = get(f"{base}/api/health")  # health never waits for a turn
        assert status == 200 and json.loads(text)["questions"] == {"running": 1, "waiting": 0, "limit": 1}
    status, _, text = ask(base, FUJIAN)
    assert status == 200 and json.loads(text)["answer"]["text"] == "July 2023"
    assert questions.counts() == {"running": 0, "waiting": 0, "limit": 1}


@pytest.mark.server
def test_a_question_over_its_time_is_abandoned_with_one_line(pipeline, embedder, serve):
    app = create_app(pipeline=Pipeline({**pipeline.config, "question_seconds": 0.001}, embedder=embedder))
    base = serve(app)
    status, headers, text = ask(base, FUJIAN)
    message = json.loads(text)["error"]
    assert status == 503 and "Retry-After" not in headers
    assert message == "the question took longer than 0.001 s to answer; try a shorter or more specific question"
    status, _, text = ask(base, FUJIAN, page=True)
    assert status == 503 and "the question took longer than 0.001 s" in text
    assert app.extensions["footnote_questions"].counts() == {"running": 0, "waiting": 0, "limit": 64}


def test_pipeline_ask_takes_its_own_time_limit(pipeline):
    with pytest.raises(QuestionTimeout, match=r"took longer than 0\.001 s") as late:
        pipeline.ask(FUJIAN, seconds=0.001)
    assert late.value.status == 503
    assert pipeline.ask(FUJIAN, seconds=60).to_dict()["answer"] == pipeline.ask(FUJIAN).to_dict()["answer"]
