"""Changing the index from the browser and the API: token, CSRF, uploads, removal, live reindex."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from waitress.server import create_server

from qa import Pipeline
from qa.errors import ConfigError
from tests.conftest import make_pipeline
from web import create_app

TOKEN = "s3cret-token-of-24-chars"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def admin_app(tmp_path: Path, embedder):
    """An app over its own index and source folder, with an admin token configured."""
    src = tmp_path / "sources"
    src.mkdir()
    (src / "herons.txt").write_text("Grey herons nest in colonies called heronries.[1]\n1. ^ Bird Book (2001).\n")
    pipe = make_pipeline(tmp_path / "idx", embedder, sources=str(src), admin_token=TOKEN, upload_max_mb=1)
    pipe.library.index([str(src)])
    return create_app(test_config={"TESTING": True}, pipeline=pipe)


def upload(client, name: str, data: bytes, headers=AUTH):
    return client.post("/api/sources", headers=headers, content_type="multipart/form-data",
                       data={"files": (io.BytesIO(data), name)})


def test_api_refuses_without_or_with_a_wrong_token(admin_app):
    c = admin_app.test_client()
    for method, url in [("post", "/api/reindex"), ("get", "/api/reindex"), ("delete", "/api/sources/x")]:
        assert getattr(c, method)(url).status_code == 401
        assert getattr(c, method)(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert upload(c, "a.txt", b"Text.", headers={}).status_code == 401


def test_disabled_without_a_configured_token(app, client):
    r = client.post("/api/reindex", headers=AUTH)
    assert r.status_code == 403 and "--admin-token" in r.get_json()["error"]
    assert "--admin-token" in client.get("/sources").get_data(as_text=True)


@pytest.mark.parametrize("name, data, status", [
    ("notes.docx", b"PK\x03\x04", 415),
    ("big.txt", b"words " * 300_000, 413),
    ("../escape.txt", b"Escaping text.", 400),
    ("..%2Fescape.txt", b"Escaping text.", 400),
    ("binary.txt", b"\x00\x01\x02\x03", 422),
])
def test_api_upload_refusals(admin_app, tmp_path: Path, name, data, status):
    r = upload(admin_app.test_client(), name, data)
    assert r.status_code == status and r.get_json()["error"]
    assert sorted(p.name for p in (tmp_path / "sources").iterdir()) == ["herons.txt"]
    assert not (tmp_path / "escape.txt").exists()


def test_api_upload_reindex_delete(admin_app, tmp_path: Path):
    c = admin_app.test_client()
    r = upload(c, "puffins.md", b"# Puffins\n\nAtlantic puffins dig burrows up to a metre deep.\n")
    assert r.status_code == 201 and r.get_json()["saved"][0].endswith("puffins.md")
    assert c.post("/api/reindex", headers=AUTH).status_code == 202
    status = wait_done(lambda: c.get("/api/reindex", headers=AUTH).get_json())
    assert status["state"] == "done" and len(status["added"]) == 1 and status["total"] == 1
    body = c.get("/api/ask?q=How deep do puffins dig burrows?").get_json()
    doc_id = body["answer"]["evidence"][-1]["document"]["id"]
    r = c.delete(f"/api/sources/{doc_id}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["removed"][0].endswith("puffins.md")
    assert not (tmp_path / "sources" / "puffins.md").exists()
    assert c.delete(f"/api/sources/{doc_id}", headers=AUTH).status_code == 404


def wait_done(read, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read()
        if status["state"] != "running":
            return status
        time.sleep(0.2)
    raise AssertionError("reindex did not finish")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_browser_forms_need_sign_in_and_csrf(admin_app, tmp_path: Path):
    c = admin_app.test_client()
    page = c.get("/sources").get_data(as_text=True)
    assert "Admin token" in page and 'name="files"' not in page
    assert c.post("/sources/reindex").status_code == 401
    assert c.post("/sources/login", data={"token": "wrong"}).status_code == 403
    assert c.post("/sources/login", data={"token": TOKEN}).status_code == 302
    page = c.get("/sources").get_data(as_text=True)
    assert 'name="files"' in page and "Remove" in page
    token = csrf_of(page)
    r = c.post("/sources/upload", data={"files": (io.BytesIO(b"Kelp grows fast.\n"), "kelp.txt")},
               content_type="multipart/form-data")
    assert r.status_code == 403  # no CSRF token
    r = c.post("/sources/upload", data={"csrf": token, "files": (io.BytesIO(b"Kelp grows half a metre a day.\n"),
                                                                  "kelp.txt")},
               content_type="multipart/form-data", follow_redirects=True)
    assert "Saved" in r.get_data(as_text=True) and (tmp_path / "sources" / "kelp.txt").is_file()
    r = c.post("/sources/upload", data={"csrf": token, "files": (io.BytesIO(b"PK"), "x.epub")},
               content_type="multipart/form-data", follow_redirects=True)
    assert "unsupported format" in r.get_data(as_text=True)
    assert c.post("/sources/reindex", data={"csrf": token}).status_code == 302
    assert wait_done(lambda: c.get("/sources/reindex/status").get_json())["state"] == "done"
    page = c.get("/sources").get_data(as_text=True)
    assert "kelp.txt" in page and "Done" in page


def test_a_signed_out_or_idle_session_is_revoked_even_for_a_copied_cookie(admin_app, monkeypatch):
    c = admin_app.test_client()
    assert c.post("/sources/login", data={"token": TOKEN}).status_code == 302
    saved = c.get_cookie("session").value  # what an attacker copied while signed in
    token = csrf_of(c.get("/sources").get_data(as_text=True))
    assert c.post("/sources/logout", data={"csrf": token}).status_code == 302
    thief = admin_app.test_client()
    thief.set_cookie("session", saved)
    assert thief.post("/sources/reindex", data={"csrf": token}).status_code == 401
    assert 'name="files"' not in thief.get("/sources").get_data(as_text=True)
    # a session unused for admin_idle_minutes ends
    assert c.post("/sources/login", data={"token": TOKEN}).status_code == 302
    token = csrf_of(c.get("/sources").get_data(as_text=True))
    later = time.monotonic() + 31 * 60
    monkeypatch.setattr("web.admin.time.monotonic", lambda: later)
    assert c.post("/sources/reindex", data={"csrf": token}).status_code == 401


def test_wrong_tokens_are_limited_per_client(admin_app):
    c = admin_app.test_client()
    for _ in range(5):
        assert c.post("/api/reindex", headers={"Authorization": "Bearer wrong-wrong-wrong"}).status_code == 403
    r = c.post("/api/reindex", headers=AUTH)  # the right token, after five wrong ones: still refused
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60 and "try again" in r.get_json()["error"]
    assert c.post("/sources/login", data={"token": TOKEN}).status_code == 429
    other = admin_app.test_client()
    other_client = {"REMOTE_ADDR": "127.0.0.2"}
    assert other.get("/api/reindex", headers=AUTH, environ_base=other_client).status_code == 200


def test_short_tokens_are_refused_and_a_token_file_is_read(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder, admin_token="short")
    with pytest.raises(ConfigError, match="at least 16"):
        create_app(pipeline=pipe)
    (tmp_path / "token").write_text(TOKEN + "\n")
    app = create_app(pipeline=make_pipeline(tmp_path / "idx", embedder, admin_token_file=str(tmp_path / "token")))
    assert app.test_client().get("/api/reindex", headers=AUTH).status_code == 200
    with pytest.raises(ConfigError, match="cannot read the admin token"):
        create_app(pipeline=make_pipeline(tmp_path / "idx", embedder, admin_token_file=str(tmp_path / "none")))


@pytest.mark.parametrize("setting, host, status", [
    ("", "localhost", 200), ("", "127.0.0.1:5000", 200),
    ("", "attacker.example", 400), ("", "attacker.example:5000", 400),
    ("footnote.example.org", "footnote.example.org", 200), ("footnote.example.org", "localhost", 400),
    ("*", "anything.example", 200),
])
def test_only_trusted_host_names_are_answered(tmp_path: Path, embedder, setting, host, status):
    app = create_app(pipeline=make_pipeline(tmp_path / "idx", embedder, trusted_hosts=setting))
    r = app.test_client().get("/api/sources", headers={"Host": host})
    assert r.status_code in ((status,) if status == 400 else (200, 503))  # 503: this index is empty
    if status == 400:
        assert "trusted_hosts" in r.get_json()["error"]


def test_reindex_while_serving_has_no_failed_requests(tmp_path: Path, embedder):
    """A live server answers a stream of questions while a reindex runs and publishes."""
    src = tmp_path / "sources"
    src.mkdir()
    for i in range(30):
        (src / f"station-{i}.txt").write_text(
            " ".join(f"Weather station {i}-{j} recorded {i + j} millimetres of rain." for j in range(30)) + "\n")
    pipe: Pipeline = make_pipeline(tmp_path / "idx", embedder, sources=str(src), admin_token=TOKEN)
    pipe.library.index([str(src)])
    server = create_server(create_app(pipeline=pipe), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    question = "Which lake froze solid in the winter of 1893?"
    failures, answers, stop = [], [], threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"{base}/api/ask?{urllib.parse.urlencode({'q': question})}",
                                            timeout=60) as resp:
                    answers.append(json.load(resp))
            except Exception as exc:  # any failure at all is what this test counts
                failures.append(repr(exc))

    def ask() -> dict:
        with urllib.request.urlopen(f"{base}/api/ask?{urllib.parse.urlencode({'q': question})}", timeout=60) as resp:
            return json.load(resp)

    first = ask()  # before anything changed
    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        before = len(answers)
        (src / "lake.txt").write_text("Lake Vorsk froze solid in the winter of 1893, stranding twelve ships.\n")
        for i in range(30):  # change many files so the run takes a while
            (src / f"station-{i}.txt").write_text((src / f"station-{i}.txt").read_text() + f"Updated {i}.\n")
        req = urllib.request.Request(f"{base}/api/reindex", method="POST", headers=AUTH)
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 202
        status = wait_done(lambda: pipe.library.reindex_job.status(), timeout=300)
        assert status["state"] == "done" and status["published"]
        time.sleep(1.0)
        after = ask()  # after the publish (the hammer's last answer may have started before it)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        server.close()
    assert failures == []
    assert len(answers) > before
    assert not first["answered"] or "Lake Vorsk" not in first["answer"]["evidence"][-1]["sentence"]
    assert after["answered"] and "Lake Vorsk" in after["answer"]["evidence"][-1]["sentence"]


def test_a_browser_reindex_from_another_working_folder_adds_no_duplicates(tmp_path: Path, embedder, monkeypatch):
    project = tmp_path / "project"
    (project / "sources").mkdir(parents=True)
    (project / "sources" / "herons.txt").write_text("Grey herons nest in colonies called heronries.\n")
    monkeypatch.chdir(project)
    make_pipeline(Path("idx"), embedder).library.index(["sources"])  # as `qa index sources` run there
    before = make_pipeline(project / "idx", embedder).library.documents()[0]
    monkeypatch.chdir(tmp_path)  # the server starts somewhere else
    pipe = make_pipeline(project / "idx", embedder, admin_token=TOKEN)
    c = create_app(test_config={"TESTING": True}, pipeline=pipe).test_client()
    assert c.post("/api/reindex", headers=AUTH).status_code == 202
    status = wait_done(lambda: c.get("/api/reindex", headers=AUTH).get_json())
    assert status["state"] == "done" and not status["added"] and not status["removed"], status
    after = c.get("/api/sources").get_json()
    assert after["total"] == 1 and [d["id"] for d in after["documents"]] == [d["id"] for d in before]


def test_an_upload_is_parsed_in_a_worker_within_the_limits(tmp_path: Path, embedder):
    from tests.test_ingest_limits import SLOW_TEXT

    src = tmp_path / "sources"
    src.mkdir()
    pipe = make_pipeline(tmp_path / "idx", embedder, sources=str(src), admin_token=TOKEN, upload_max_mb=10,
                         parse_seconds=1)
    c = create_app(test_config={"TESTING": True}, pipeline=pipe).test_client()
    r = upload(c, "slow.txt", SLOW_TEXT.encode())
    assert r.status_code == 422 and "took longer than 1 s to parse" in r.get_json()["error"]
    assert not (src / "slow.txt").exists() and not list(src.iterdir())  # nothing kept, no temporary file left
    assert upload(c, "fine.txt", b"Kittiwakes nest on narrow ledges.\n").status_code == 201
