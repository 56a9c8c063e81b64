"""Uploads, removals and the background reindex job, on a real index."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import UnsupportedFormat
from qa.errors import JobRunning, ParseError, UploadRejected, UploadTooLarge
from qa.library.uploads import safe_name
from tests.conftest import make_pipeline


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../b.md", "..\\x.txt", "/etc/passwd.txt", "", "..txt"])
def test_path_tricks_are_refused(name):
    with pytest.raises(UploadRejected):
        safe_name(name)


def test_names_are_sanitised_and_types_checked():
    assert safe_name("My notes (v2).md") == "My-notes-v2.md"
    assert safe_name("Ünïcode café.txt") == "Unicode-cafe.txt"
    assert safe_name(".hidden.txt") == "hidden.txt"
    with pytest.raises(UnsupportedFormat, match="supported: "):
        safe_name("report.docx")
    with pytest.raises(UnsupportedFormat):
        safe_name("script.txt.exe")


def test_upload_then_reindex_then_delete(tmp_path: Path, embedder, index_location: str):
    pipe = make_pipeline(index_location, embedder, sources=str(tmp_path / "sources"))
    shown = pipe.library.add_source("puffins.md", b"# Puffins\n\nAtlantic puffins dig burrows up to a metre deep.\n")
    assert Path(shown).name == "puffins.md" and (tmp_path / "sources" / "puffins.md").is_file()
    status = pipe.library.reindex_job.start()
    assert status["state"] == "running"
    status = pipe.library.reindex_job.wait(120)
    assert status["state"] == "done" and status["added"] and status["total"] == 1
    r = pipe.ask("How deep do puffins dig their burrows?")
    assert "a metre deep" in r.answer.evidence[0].sentence
    doc_id = r.answer.evidence[0].document.id
    report = pipe.library.delete_document(doc_id)
    assert report.removed and not (tmp_path / "sources" / "puffins.md").exists()
    assert pipe.library.documents(limit=None)[0] == []


def test_bad_uploads_never_reach_the_folder(tmp_path: Path, embedder):
    pipe = make_pipeline(tmp_path / "idx", embedder, sources=str(tmp_path / "sources"), upload_max_mb=1)
    with pytest.raises(UploadTooLarge):
        pipe.library.add_source("big.txt", b"word " * 300_000)
    with pytest.raises(ParseError, match="binary"):
        pipe.library.add_source("fake.txt", b"\x00\x01\x02binary")
    with pytest.raises(UploadRejected):
        pipe.library.add_source("../../escape.txt", b"Escaping text.")
    assert not any((tmp_path / "sources").iterdir())


def test_one_reindex_at_a_time(tmp_path: Path, embedder, index_location: str):
    src = tmp_path / "sources"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.txt").write_text(f"Fact {i}: the beacon at cape {i} flashes every {i + 2} seconds.\n")
    pipe = make_pipeline(index_location, embedder, sources=str(src))
    pipe.library.reindex_job.start()
    with pytest.raises(JobRunning):
        pipe.library.reindex_job.start()
    assert pipe.library.reindex_job.wait(300)["state"] == "done"
