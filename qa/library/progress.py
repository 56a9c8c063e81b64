"""How `qa index` shows a run's progress: one bar redrawn in place on a terminal, and on a file or
pipe a plain line every few seconds (a log gets no bar debris, and still shows that work goes on).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import TextIO

from qa.library.build import BuildReport

REDRAW = 0.1  # seconds between two redraws of the bar: faster is flicker, and costs on tiny files
BAR = 24  # the bar's width at most, in characters


class IndexProgress:
    """A `qa.library.build.Progress` callback that writes the run's progress to a stream.

    On a terminal: one line, rewritten in place with `\\r`, fitted to the terminal's width: a bar,
    "120/400 files, 5,300 passages, 180 passages/s, about 2 min left", and the file being read
    (shortened from the middle) when there is room. Elsewhere: the same figures as a line every
    `interval` seconds and one at the end, never a bar.

    Args:
        stream: where to write (stderr: stdout carries the run's summary).
        report: the run's report, whose `passages_read` grows as files are read.
        interval: seconds between lines when the stream is not a terminal.
        clock: seconds, monotonic (tests give their own).
    """

    def __init__(self, stream: TextIO, report: BuildReport, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.report, self.interval, self.clock = stream, report, interval, clock
        self.tty = stream.isatty()
        self.started: float | None = None  # at the first call: loading the model is no part of the rate
        self.written: float | None = None  # when a line was last written
        self.drawn = 0  # characters of the bar now on screen, 0 when none

    def __call__(self, done: int, total: int, current: str) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
            self.written = None if self.tty else now  # the bar shows at once, the first line after `interval`
        final = done >= total
        wait = REDRAW if self.tty else self.interval
        if total <= 0 or not (final or self.written is None or now - self.written >= wait):
            return
        self.written = now
        if self.tty:
            self._draw(done, total, "" if final else current, now)
            if final:
                self.close()
        else:
            self.stream.write(f"indexed {self.figures(done, total, now)}\n")
            self.stream.flush()

    def figures(self, done: int, total: int, now: float) -> str:
        """ "120/400 files, 5,300 passages, 180 passages/s, about 2 min left" ("in 2 min" at the end)."""
        elapsed = now - (self.started or now)
        out = f"{done:,}/{total:,} files, {self.report.passages_read:,} passages"
        if elapsed >= 0.5:
            out += f", {self.report.passages_read / elapsed:,.0f} passages/s"
        if done >= total:
            return out + f", in {duration(elapsed)}"
        if done and elapsed >= 0.5:
            out += f", about {duration(max(elapsed / done * (total - done), 1))} left"
        return out

    def close(self) -> None:
        """End the bar's line, if one is drawn, so that what is written next starts a line of its own."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0

    def _draw(self, done: int, total: int, current: str, now: float) -> None:
        width = _columns(self.stream) - 1  # the last column would wrap on some terminals
        text = self.figures(done, total, now)
        cells = min(BAR, width - len(text) - 3)  # "[", "] " and the figures beside it
        if cells >= 5:
            filled = cells * done // total
            text = f"[{'#' * filled}{'-' * (cells - filled)}] {text}"
        shown = "".join(c if c.isprintable() else "?" for c in current)  # a file name must not drive the terminal
        if shown and width - len(text) - 2 >= 12:
            text += "  " + middle(shown, width - len(text) - 2)
        text = text[:width]
        self.stream.write("\r" + text + " " * (self.drawn - len(text)))
        self.stream.flush()
        self.drawn = len(text)


def duration(seconds: float) -> str:
    """ "8 s", "2 min", "1 h 5 min": as precise as a wait is worth knowing."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def middle(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut from the middle: both a path's folder and its
    file name say something, which cutting either end would lose."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _columns(stream: TextIO) -> int:
    """The terminal's width: the stream's own, else `COLUMNS`, stdout's, or 80 (a terminal that
    does not say its size reports 0 columns)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns or shutil.get_terminal_size().columns
