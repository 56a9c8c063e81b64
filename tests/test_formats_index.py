"""Every format indexes and answers with its footnotes; bad files are reported by name while the run goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests import pdf_fixtures as pf
from tests.conftest import DATA, make_pipeline


def sentence(pipe, claim: str):
    """The evidence item that is the pasted claim itself (an answer may add its neighbours)."""
    return next(e for e in pipe.ask(claim).answer.evidence if e.sentence == claim)


def test_formats_index_answer_and_bad_files_are_skipped(tmp_path: Path, embedder):
    src = tmp_path / "sources"
    src.mkdir()
    for name in ("wiki_classic.html", "wiki_parsoid.html", "article.wikitext", "notes.md"):
        shutil.copy(DATA / "formats" / name, src / name)
    pf.paper(src / "mills.pdf", pf.NUMBERED, pf.NUMBERED_REFS)
    pf.encrypted(src / "locked.pdf")
    pf.no_text_layer(src / "scan.pdf")
    (src / "empty.txt").write_bytes(b"")
    (src / "broken.wiki").write_text("A claim.<ref>never closed\n")
    (src / "report.docx").write_bytes(b"PK\x03\x04")
    pipe = make_pipeline(tmp_path / "index", embedder)
    report = pipe.library.index([str(src)])
    assert report.published and len(report.added) == 5
    failed = {Path(p).name: why for p, why in report.failed}
    assert set(failed) == {"locked.pdf", "scan.pdf", "empty.txt", "broken.wiki", "report.docx"}
    assert "no text layer, OCR not supported" in failed["scan.pdf"]
    assert "encrypted PDF" in failed["locked.pdf"]

    ev = sentence(pipe, "Its wheel was rebuilt in 1970.")  # a pasted claim finds its sentence
    assert ev.page == 2 and ev.footnotes == ()

    [note] = sentence(pipe, "The tower was built of granite.").footnotes
    assert (note.marker, note.locator, note.reference.text) == ("2", "45", "Moss 1999, p. 45.")
    assert note.reference.resolved == "Moss, Cy (1999). Keepers of the Reef. Dock Books."

    [note] = sentence(pipe, "The oldest one still working was lit in 1720.").footnotes
    assert (note.marker, note.locator) == ("2", "13")
    assert note.reference.resolved == "Moss, Bo (1999). Keepers. Dock Books."
