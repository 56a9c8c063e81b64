"""`qa index` progress: one bar redrawn in place on a terminal, a line every few seconds elsewhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

from qa.cli import main
from qa.library.build import BuildReport
from qa.library.progress import IndexProgress, duration, middle
from tests.conftest import make_pipeline


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does when `qa index` runs in one."""

    def isatty(self) -> bool:
        return True


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sources(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"note_{i}.txt").write_text(f"Note {i} says the tide mill at Woodbridge turned in {1170 + i}.\n\n"
                                              f"A second paragraph of note {i} names the miller.\n")
    return folder


def test_a_terminal_gets_one_bar_redrawn_in_place(tmp_path: Path, embedder, monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    pipe = make_pipeline(tmp_path / "idx", embedder)
    report = BuildReport()
    stream = FakeTerminal()
    pipe.library.index([str(sources(tmp_path / "src", 5))], progress=IndexProgress(stream, report), report=report)
    out = stream.getvalue()
    assert report.added and report.passages_read == report.passages == 10
    assert out.startswith("\r[") and out.endswith("\n") and out.count("\n") == 1  # one line, redrawn
    frames = out.rstrip("\n").split("\r")[1:]
    assert all(len(f) <= 71 for f in frames)  # fitted to the terminal, never wrapping
    assert re.fullmatch(r"\[#{24}\] 5/5 files, 10 passages(, [\d,]+ passages/s)?, in \d+ s *", frames[-1])


def test_the_bar_shortens_the_path_from_the_middle(monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    clock, stream, report = Clock(), FakeTerminal(), BuildReport()
    meter = IndexProgress(stream, report, clock=clock)
    meter(0, 4, "sources/")
    clock.now += 10
    report.passages_read = 1500
    path = "sources/" + "deeply/nested/" * 6 + "tide\x1b[2Jmill.txt"
    meter(1, 4, path)
    frame = stream.getvalue().split("\r")[-1]
    assert frame.startswith("[######------------------] 1/4 files, 1,500 passages, 150 passages/s, about 30 s left  ")
    shown = frame.split("  ", 1)[1].rstrip()
    assert len(frame.rstrip()) == 139 and "…" in shown
    assert shown.startswith("sources/deeply/") and shown.endswith("tide?[2Jmill.txt")  # no escape reaches the terminal
    meter.close()
    assert stream.getvalue().endswith("\n")


def test_elsewhere_a_line_every_interval_and_one_at_the_end():
    clock, stream, report = Clock(), io.StringIO(), BuildReport()
    meter = IndexProgress(stream, report, interval=5.0, clock=clock)
    for done in range(12):  # a file a second, 100 passages each
        meter(done, 12, f"sources/f{done}.txt")
        clock.now += 1
        report.passages_read += 100
    meter(12, 12, "")
    assert stream.getvalue().splitlines() == [
        "indexed 5/12 files, 500 passages, 100 passages/s, about 7 s left",
        "indexed 10/12 files, 1,000 passages, 100 passages/s, about 2 s left",
        "indexed 12/12 files, 1,200 passages, 100 passages/s, in 12 s",
    ]


def test_qa_index_writes_progress_lines_not_bars_when_not_on_a_terminal(tmp_path: Path, capsys):
    src = sources(tmp_path / "src", 3)
    assert main(["index", str(src), "--index", str(tmp_path / "idx")]) == 0
    out, err = capsys.readouterr()
    assert "3 added" in out
    assert re.fullmatch(r"indexed 3/3 files, 6 passages(, [\d,]+ passages/s)?, in \d+ s\n", err)
    assert main(["index", str(src), "--index", str(tmp_path / "idx"), "--rebuild", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_durations_read_as_a_wait_is_worth_knowing():
    assert [duration(s) for s in (8.4, 125, 3900)] == ["8 s", "2 min", "1 h 5 min"]
    assert middle("abcdefghij", 7) == "abc…hij" and middle("short", 7) == "short"
