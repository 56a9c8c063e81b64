"""The app over real HTTP: waitress in a thread answers /api/ask; `qa serve` runs as a user starts it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qa import Pipeline

pytestmark = pytest.mark.server

FUJIAN = "When did the Fujian Media Group create an ICC?"


def get(url: str, timeout: float = 30) -> tuple[int, dict, dict]:
    """GET a URL; returns status, headers and the decoded JSON body (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)


def ask_url(base: str, question: str) -> str:
    return f"{base}/api/ask?{urllib.parse.urlencode({'q': question})}"


def test_live_server_answers_api_ask(live_server):
    status, headers, body = get(ask_url(live_server, FUJIAN))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body["answered"] and body["answer"]["text"] == "July 2023"
    assert body["answer"]["evidence"][-1]["footnotes"] == [{"marker": "1", "locator": "13", "where": "p. 13",
                                                              "reference": None}]
    assert headers["Server"] == "waitress" and "script-src 'self'" in headers["Content-Security-Policy"]


def test_live_server_reports_errors_as_json(live_server):
    status, _, body = get(ask_url(live_server, ""))
    assert status == 400 and "empty" in body["error"]
    status, _, body = get(f"{live_server}/api/documents/missing")
    assert status == 404 and "missing" in body["error"]


def test_one_pipeline_serves_concurrent_requests(live_server):
    questions = [FUJIAN, "Who bred the Starlight apple?", "How do I bake sourdough bread?"] * 4
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda q: get(ask_url(live_server, q)), questions))
    assert all(status == 200 for status, _, _ in results)
    answers = [body["answer"]["text"] if body["answered"] else None for _, _, body in results]
    assert answers[:3] * 4 == answers and answers[0] == "July 2023" and answers[2] is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_qa_serve_starts_waitress_on_localhost(pipeline: Pipeline, tmp_path):
    """The installed `qa` command in its own process, run outside the checkout so only the
    installed packages (web/ with its templates included) can be imported."""
    qa = Path(sys.executable).with_name("qa")
    assert qa.exists(), f"{qa} is missing; install with `make install-test`"
    port = free_port()
    proc = subprocess.Popen([str(qa), "serve", "--index", str(pipeline.index_dir), "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, headers, body = get(ask_url(f"http://127.0.0.1:{port}", FUJIAN), timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "qa serve did not answer within 120 s"
                time.sleep(0.5)
        assert status == 200 and body["answer"]["text"] == "July 2023" and headers["Server"] == "footnote"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert f"on http://127.0.0.1:{port}/" in output


def test_qa_ask_server_prints_what_qa_ask_prints(pipeline: Pipeline, live_server, tmp_path, capsys):
    from qa.cli import format_result, main

    def without_timing(text: str) -> str:
        return text.rstrip().rsplit("\n", 1)[0]  # the last line is "(N ms)"

    local = format_result(pipeline.ask(FUJIAN))
    assert main(["ask", FUJIAN, "--server", live_server, "--index", str(pipeline.index_dir)]) == 0
    out = capsys.readouterr()
    assert without_timing(out.out) == without_timing(local) and out.err == ""

    assert main(["ask", FUJIAN, "--json", "--server", live_server, "--index", str(pipeline.index_dir)]) == 0
    remote = json.loads(capsys.readouterr().out)
    mine = pipeline.ask(FUJIAN).to_dict()
    assert {**remote, "timings_ms": None} == {**mine, "timings_ms": None}
    assert remote["index"] == {"path": str(pipeline.index_dir.resolve()),
                               "generation": pipeline.serving.snapshot().generation.path.name}

    assert main(["ask", FUJIAN, "--server", live_server, "--index", str(tmp_path / "elsewhere")]) == 0
    assert f"answers from the index at {pipeline.index_dir.resolve()}" in capsys.readouterr().err

    assert main(["ask", " ", "--server", live_server]) == 1
    assert "answered 400" in capsys.readouterr().err
    assert main(["ask", FUJIAN, "--server", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot ask the server" in capsys.readouterr().err
