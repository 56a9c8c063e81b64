"""Measure citation resolution on the shared real Wikipedia articles (`make inspect-eval`).

Runs `qa inspect` (the library call behind it) over ../shared/eval/wikipedia_html/ and
../shared/eval/wikipedia_wikitext/ and checks each resolved marker against what the page itself
says, read independently of the parsers: for HTML the marker's own link target and the text of
the note it points at (stdlib html.parser); for wikitext the raw `<ref>` definition of the
resolved name. It also counts markup debris and reference text left in the clean text. The
data is third-party and stays where it is; nothing is copied into the repository.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

from qa import inspect_file

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
DEBRIS = {
    "html": re.compile(r"cite_note|\[edit\]|\[\d{1,3}\]|\{\{|\^ |Jump up|Retrieved \d"),
    "wikitext": re.compile(r"\{\{|\}\}|<ref|</ref|\[\[|\]\]|\|\s*[a-z-]+\s*=|'''|<!--|&nbsp;"),
}
_WORD = re.compile(r"[^\W_]{3,}")
_ADDED = {"retrieved", "doi", "isbn"}  # words the formatter writes that the raw note spells otherwise


class _Notes(HTMLParser):
    """Every `li id=cite_note-*` text and every marker link target, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.notes: dict[str, list[str]] = {}
        self.targets: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self._in_sup = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "li" and (a.get("id") or "").startswith("cite_note-"):
            self._open.append((tag, a["id"]))
            self.notes[a["id"]] = []
        elif tag == "li":
            self._open.append((tag, None))
        if tag == "sup":
            self._in_sup += 1
        if tag == "a" and self._in_sup and "#cite_note-" in (a.get("href") or ""):
            from urllib.parse import unquote
            self.targets.append(unquote(a["href"].rsplit("#", 1)[1]))

    def handle_endtag(self, tag):
        if tag == "li" and self._open:
            self._open.pop()
        if tag == "sup" and self._in_sup:
            self._in_sup -= 1

    def handle_data(self, data):
        note = next((key for _, key in reversed(self._open) if key), None)
        if note:
            self.notes[note].append(data)


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _ADDED


def _agrees(ours: str, source: str) -> bool:
    """Our reference text is made of the source note's words (formatting aside)."""
    mine = _words(ours)
    return not mine or len(mine & _words(source)) >= 0.9 * len(mine)


def check_html(path: Path, report: dict) -> dict:
    raw = _Notes()
    raw.feed(path.read_text(encoding="utf-8"))
    texts = {k: " ".join("".join(v).split()) for k, v in raw.notes.items()}
    wrong = 0
    for s in report["sentences"]:
        for f in s["footnotes"]:
            ref = f["reference"]
            if ref and (ref["key"] not in raw.targets or not _agrees(ref["text"], texts.get(ref["key"], ""))):
                wrong += 1
    return {"in_file": len(raw.targets), "wrong": wrong}


_REF_DEF = re.compile(r"<ref\s+name\s*=\s*\"?([^\">/]+?)\"?\s*(?:group\s*=\s*\"?[^\">/]*\"?\s*)?>(.*?)</ref>",
                      re.S | re.I)


def check_wikitext(path: Path, report: dict) -> dict:
    raw = re.sub(r"<!--.*?-->", "", path.read_text(encoding="utf-8"), flags=re.S)
    defs: dict[str, str] = {}
    for name, body in _REF_DEF.findall(raw):
        defs.setdefault(name.strip(), body)
    # unnamed notes in the order the parser numbers them: <ref> bodies and {{efn}}/{{refn}} notes
    anonymous = [m.group(1) for m in re.finditer(r"<ref(?:\s+group\s*=[^>/]*)?>(.*?)</ref>|\{\{\s*(?:efn|refn)\b",
                                                 raw, re.S | re.I)]
    wrong = 0
    for s in report["sentences"]:
        for f in s["footnotes"]:
            ref = f["reference"]
            if not ref:
                continue
            key = ref["key"].split(":", 1)[-1] if not ref["key"].startswith("sfn:") else None
            if key is None:
                continue
            source = defs.get(key) if not key.startswith("#") else None
            if key.startswith("#") and int(key[1:]) <= len(anonymous):
                source = anonymous[int(key[1:]) - 1]
            if source is not None and not _agrees(ref["text"], source):
                wrong += 1
    return {"in_file": len(re.findall(r"<ref[\s>]", raw, re.I)), "wrong": wrong}


def leaks(report: dict, fmt: str) -> tuple[int, int]:
    """(debris matches, reference texts found verbatim in the clean text)."""
    text = "\n".join(s["text"] for s in report["sentences"])
    leaked = sum(1 for r in report["references"] if len(r["text"]) >= 40 and r["text"] in text)
    return len(DEBRIS[fmt].findall(text)), leaked


def main(root: Path) -> int:
    folders = [("html", root / "wikipedia_html", None), ("wikitext", root / "wikipedia_wikitext", "wikitext")]
    if not any(folder.is_dir() for _, folder, _ in folders):
        print(f"skipped: no shared evaluation data at {root}")
        return 0
    total = dict.fromkeys(("markers", "resolved", "wrong", "debris", "leaked"), 0)
    print(f"{'file':44s} {'in file':>7s} {'markers':>7s} {'resolved':>8s} {'wrong':>5s} {'debris':>6s} "
          f"{'leaked':>6s} lang")
    for fmt, folder, force in folders:
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            report = inspect_file(path, 64 * 2**20, force)
            check = (check_html if fmt == "html" else check_wikitext)(path, report)
            debris, leaked = leaks(report, fmt)
            n = report["summary"]
            row = {"markers": n["markers"], "resolved": n["resolved"], "wrong": check["wrong"],
                   "debris": debris, "leaked": leaked}
            for k, v in row.items():
                total[k] += v
            print(f"{fmt + '/' + path.name:44s} {check['in_file']:7d} {n['markers']:7d} {n['resolved']:8d} "
                  f"{check['wrong']:5d} {debris:6d} {leaked:6d} {report['meta'].get('language', 'en')}")
    share = total["resolved"] / total["markers"] if total["markers"] else 0.0
    print(json.dumps({**total, "resolved_share": round(share, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
