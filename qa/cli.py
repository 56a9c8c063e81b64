"""The `qa` command: index, ask, sources, remove, inspect, serve, eval. Only this module sets up logging and exits."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from typing import TYPE_CHECKING, Any, TextIO

from qa.config import load
from qa.errors import BadRequest, FootnoteError
from qa.search.scope import Scope

if TYPE_CHECKING:
    from qa import Pipeline, Result

EXIT_ERROR = 1
EXIT_NOTHING_PUBLISHED = 2


def _pipeline(args: argparse.Namespace) -> Pipeline:
    from qa import Pipeline

    return Pipeline(load({"index": args.index, "model": getattr(args, "model", None),
                          "reader": getattr(args, "reader", None)}))


def cmd_index(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args)
    if args.merge or args.upgrade:
        return _compact(args)
    if args.copy_to:
        return _copy_to(args)
    pipe = _pipeline(args)
    from qa.library.watch import scan, watch

    paths = args.paths or ["sources"]
    before = scan(paths) if args.watch else None
    status = _index_once(pipe, paths, args, not args.quiet, rebuild=args.rebuild)
    if not args.watch:
        return status

    def reindex() -> None:
        try:
            _index_once(pipe, paths, args, False, rebuild=False)
        except FootnoteError as exc:  # e.g. another writer holds the lock: try again on the next change
            print(f"error: {exc}", file=sys.stderr, flush=True)

    print(f"watching {', '.join(paths)} for changes (Ctrl-C stops)", flush=True)
    watch(paths, reindex, interval=args.interval, since=before)
    return 0


def _check(args: argparse.Namespace) -> int:
    """`qa index --check`: read every file of the serving generation through (SQLite's
    quick_check included); one line a problem, exit status 1 when there is one."""
    from qa import index as ix

    folder = load({"index": args.index})["index"]
    problems = ix.backend(folder).check(folder)
    for line in problems:
        print(f"damaged: {line}", file=sys.stderr)
    print(f"{folder}/: {len(problems)} problem(s)" + ("; `qa index` repairs them, reading the documents again"
                                                      if problems else ", every file reads whole"))
    return EXIT_ERROR if problems else 0


def _compact(args: argparse.Namespace) -> int:
    """`qa index --upgrade` / `--merge`: change the index's layout, never its contents."""
    from qa import index as ix
    from qa.library import build as indexer

    config = load({"index": args.index})
    folder = config["index"]
    if args.upgrade:
        done = ix.backend(folder).upgrade(folder)
        print(f"{folder}/ now has the current layout (every vector kept)" if done else
              f"{folder}/ already has the current layout")
    if args.merge:
        done = indexer.merge(folder, config["vector_index"])
        print(f"{folder}/ merged into one segment" if done else f"{folder}/ has one segment and nothing deleted")
    return 0


def _copy_to(args: argparse.Namespace) -> int:
    """`qa index --copy-to DSN`: the serving generation of `--index` (a folder) copied into
    PostgreSQL, every stored vector reused (nothing is parsed or encoded)."""
    from qa import index as ix

    folder, target = load({"index": args.index})["index"], args.copy_to
    if ix.is_postgres(folder) or not ix.is_postgres(target):
        raise BadRequest("--copy-to copies the index folder named by --index into a postgresql:// DSN")
    gen = ix.backend(target).copy_index(folder, target)
    print(f"copied {gen.manifest['documents']} documents, {gen.manifest['passages']} passages from {folder}/ to "
          f"{ix.where(target)} (every vector reused, none encoded); ask it with --index {ix.where(target)}")
    return 0


def _index_once(pipe: Pipeline, paths: list[str], args: argparse.Namespace, progress: bool, rebuild: bool) -> int:
    """One indexing run with its report printed; returns the exit status it deserves.

    With `progress`, stderr shows it: a bar in place on a terminal, else a line every 5 s and
    one at the end (see `qa.library.progress`).
    """
    from qa.library.build import BuildReport
    from qa.library.progress import IndexProgress

    report = BuildReport()
    meter = IndexProgress(sys.stderr, report) if progress else None
    try:
        pipe.library.index(paths, rebuild=rebuild, progress=meter, report=report, ray=args.ray)
    finally:
        if meter:
            meter.close()  # a bar left open by an error ends its line before the error is printed
    for path, why in report.failed:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if report.outside:
        print(f"not followed: {len(report.outside)} link(s) leading out of their folder "
              f"({', '.join(report.outside[:3])}{', ...' if len(report.outside) > 3 else ''})", file=sys.stderr)
    for why in report.repaired:
        print(f"repaired: {why}", file=sys.stderr)
    print(report.summary(), flush=True)
    if report.nodes:
        print(f"read and encoded on {len(report.nodes)} Ray node(s): " + ", ".join(
            f"{node[:8]} {files} file(s)" for node, files in report.nodes.items()), flush=True)
    if not report.published and not (report.unchanged or report.removed):
        print(f"error: nothing could be indexed from {', '.join(paths)}", file=sys.stderr)
        return EXIT_NOTHING_PUBLISHED
    if args.strict and report.failed:
        print(f"error: {len(report.failed)} file(s) skipped and --strict is set", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    report = _pipeline(args).library.remove(args.paths)
    if not report.removed:
        print(f"error: not in the index: {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_ERROR
    print(report.summary())
    return 0


def format_result(result: Result) -> str:
    """Readable text for a terminal: answer, supporting sentences, numbered footnotes."""
    out = []
    if not result.answer:
        out.append("The sources do not answer this.")
        if result.passages:
            out.append("\nClosest passages:")
            for p in result.passages[:3]:
                read = "" if p.relevance is None else f"relevance {p.relevance:.1f}, "
                out.append(f"  - {p.document.title} ({p.document.path}, chars {p.start}-{p.end}), "
                           f"{read}retrieval score {p.score:.2f}")
                out.append(textwrap.indent(textwrap.fill(p.text, 96), "      "))
        return "\n".join(out)
    a = result.answer
    out.append(f"Answer: {a.text}   (score {a.score:.2f})\n")
    for c in a.conflicts:
        ev = c.evidence[0]
        out.append(f"Sources differ: {c.text}   (score {c.score:.2f}; {ev.document.title}, {ev.document.path}, "
                   f"chars {ev.start}-{ev.end}) {''.join(f'[{n}]' for n in ev.notes)}\n")
    for ev in a.evidence:
        marks = "".join(f"[{n}]" for n in ev.notes)
        lead = "(the sentence before, for context) " if ev.context else ""
        out.append(textwrap.fill(f"{lead}\u201c{ev.sentence}\u201d {marks}", 100))
        page = f", page {ev.page}" if ev.page else ""
        out.append(f"    \u2014 {ev.document.title}, {ev.document.path}, chars {ev.start}-{ev.end}{page}\n")
    out.append("Footnotes:")
    out += [textwrap.fill(f"[{note.n}] {note.text()}", 100, subsequent_indent="    ") for note in a.notes]
    out.append(f"\n({result.timings_ms['total']:.0f} ms)")
    return "\n".join(out)


def cmd_ask(args: argparse.Namespace) -> int:
    question = " ".join(args.question)
    # A path is matched as written (as `qa sources` lists it) and as the file it names here.
    scope = Scope(tuple(dict.fromkeys(p for w in args.within for p in (w, os.path.abspath(w)))), tuple(args.document))
    result = ask_server(args.server, question, args, scope) if args.server else \
        _pipeline(args).ask(question, scope=scope, explain=args.explain)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_result(result))
        if result.explanation:
            lines = result.explanation.lines()
            print("\nWhy this answer:\n" + "\n".join(f"  {line}" if line else "" for line in lines))
    return 0


def ask_server(url: str, question: str, args: argparse.Namespace, scope: Scope) -> Result:
    """Ask a running `qa serve` instead of loading the models here; say so on stderr when it
    answers from another index than `--index`, or from an older generation of it."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from qa.index import current_name, is_postgres, where
    from qa.records import Result

    query = [("q", question), *(("in", p) for p in scope.paths), *(("document", d) for d in scope.documents),
             *([("explain", "1")] if args.explain else [])]
    address = f"{url.rstrip('/')}/api/ask?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(address, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:  # the server's own message (empty question, too long ...)
        try:
            message = json.load(exc).get("error") or exc.reason
        except ValueError:
            message = exc.reason
        raise FootnoteError(f"{url} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FootnoteError(f"cannot ask the server at {url}: {getattr(exc, 'reason', exc)}") from None
    result = Result.from_dict(body)
    setting = load({"index": args.index})["index"]
    local = where(setting) if is_postgres(setting) else os.path.abspath(setting)
    if result.index and result.index != local:
        print(f"note: {url} answers from the index at {result.index} (generation {result.generation}), "
              f"not {local}", file=sys.stderr)
    elif result.generation and not is_postgres(setting) and current_name(local) not in (None, result.generation):
        print(f"note: {url} answered from generation {result.generation}; {local} now serves "
              f"{current_name(local)} (the server switches once it has opened it, within a second or so)",
              file=sys.stderr)
    return result


def cmd_sources(args: argparse.Namespace) -> int:
    if args.offset < 0 or args.limit < 1:
        raise BadRequest("--offset must be 0 or more and --limit 1 or more")
    pipe = _pipeline(args)
    docs, total = pipe.library.documents(args.offset, args.limit)
    more = args.offset + len(docs) < total
    following = f"qa sources --offset {args.offset + args.limit} --limit {args.limit}" if more else None
    if args.json:
        page = {"documents": docs, "total": total, "offset": args.offset,
                "next": following and following.replace("qa sources", "qa sources --json")}
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return 0
    if not total:
        print("The index is empty.")
    for d in docs:
        print(f"{d['id']}  {d['path']}  \u201c{d['title']}\u201d  [{d['format']}]  {d['passages']} passages, "
              f"{d['references']} references, {d['resolved']}/{d['citations']} citations resolved, "
              f"indexed {d['indexed_at']}")
        if d["meta"].get("language"):
            print("    looks non-English: the default model is English-only, answers over it will be weak "
                  "(a multilingual model is a setting)")
    if following:
        print(f"... {total - args.offset - len(docs)} more: {following}")
    info = pipe.library.summary()
    kinds = ", ".join(f"{k}: {sum(1 for s in info['segments'] if s['kind'] == k)}"
                      for k in sorted({s["kind"] for s in info["segments"]}))
    print(f"\n{info['documents']} documents, {info['passages']} passages in {len(info['segments'])} segment(s) "
          f"({kinds}); encoder {info['encoder']}; generation {info['generation']}")
    return 0


def format_inspection(report: dict) -> str:
    """Sentences with their footnotes as resolved, then the summary line `qa inspect` ends with."""
    out = [f"{report['path']}  \u201c{report['title']}\u201d  [{report['format']}]"]
    for s in report["sentences"]:
        where = ", ".join(x for x in (f"p. {s['page']}" if s["page"] else "", s["section"] or "") if x)
        out.append(textwrap.fill(f"[{s['index']}] {s['text']}" + (f"  ({where})" if where else ""), 100,
                                 subsequent_indent="    "))
        for f in s["footnotes"]:
            loc = f": {f['locator']}" if f["locator"] else ""
            ref = f["reference"]["text"] if f["reference"] else "(reference not included in the source)"
            resolved = f"  -> {f['reference']['resolved']}" if f["reference"] and "resolved" in f["reference"] else ""
            out.append(textwrap.fill(f"[{f['marker']}]{loc} {ref}{resolved}", 100, initial_indent="      ",
                                     subsequent_indent="        "))
    n = report["summary"]
    out.append(f"\n{n['sentences']} sentences; {n['markers']} markers found, {n['resolved']} resolved, "
               f"{n['unresolved']} unresolved; {n['references']} references parsed, {n['references_cited']} cited")
    if report["meta"].get("language"):
        out.append("looks non-English: answers over it will be weak with the default model")
    return "\n".join(out)


def cmd_inspect(args: argparse.Namespace) -> int:
    from qa import inspect_file

    config = load()
    report = inspect_file(args.file, int(config["max_file_mb"] * 2**20), args.format)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_inspection(report))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from web import serve

    config = load({"index": args.index, "model": args.model, "host": args.host, "port": args.port,
                   "admin_token": args.admin_token, "admin_token_file": args.admin_token_file,
                   "sources": args.sources, "reader": args.reader})
    serve(config)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from qa import evaluate_file, report_table

    bar = tqdm(total=0, unit="q", disable=args.quiet or None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    config = load({"model": args.model, "reader": args.reader})
    outputs: dict[str, dict[str, str]] = {}
    report = evaluate_file(args.file, config, limit=args.limit, index=args.index, seed=args.seed, progress=progress,
                           outputs=outputs)
    bar.close()
    for path, key in ((args.predictions, "predictions"), (args.evidence, "evidence")):
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(outputs.get(key, {}), fh, ensure_ascii=False, indent=1)
    print(json.dumps(report, indent=2) if args.json else report_table(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Footnote: answers copied from your sources, "
                                     "with footnotes to the references they cite.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", default=None, help="index folder (default: index/), or a postgresql:// DSN")
        p.add_argument("--model", default=None, help="embedding model: bundled (default), a name or a folder")
        p.add_argument("--reader", default=None, metavar="PATH",
                       help="a reader folder to read spans with: one scripts/train_reader.py wrote, or a "
                            "local Hugging Face question-answering model (default: Footnote's own reader)")

    p = sub.add_parser("index", help="build or update the index from files and folders")
    p.add_argument("paths", nargs="*", help="files and folders to index (default: sources/)")
    p.add_argument("--rebuild", action="store_true", help="start over instead of updating")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any file was skipped")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--watch", action="store_true", help="keep running and reindex when files change")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between checks with --watch")
    p.add_argument("--merge", action="store_true",
                   help="merge the index's segments into one, dropping deleted rows (nothing is encoded)")
    p.add_argument("--check", action="store_true",
                   help="read every file of the index through, SQLite's quick_check included, and report damage")
    p.add_argument("--upgrade", action="store_true",
                   help="convert an index from an older Footnote to the current layout, keeping every vector")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="parse and encode on the Ray cluster at this address (HOST:PORT of its head, or auto: the "
                        "one running on this machine); needs pip install 'footnote[ray]' (README \"Scaling out\")")
    p.add_argument("--copy-to", default=None, metavar="DSN",
                   help="copy the index (--index, a folder) into PostgreSQL at this postgresql:// DSN, reusing "
                        "every stored vector (README \"Scaling out\")")
    common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("remove", help="drop documents from the index by path")
    p.add_argument("paths", nargs="+")
    common(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("ask", help="ask a question (or paste a statement to find its source)")
    p.add_argument("question", nargs="+")
    p.add_argument("--json", action="store_true", help="print the JSON answer object")
    p.add_argument("--server", default=None, metavar="URL",
                   help="ask a running `qa serve` at this address (e.g. http://127.0.0.1:5000) instead of "
                        "loading the models here; the same output")
    p.add_argument("--in", dest="within", action="append", default=[], metavar="PATH",
                   help="answer only from this file or folder (as indexed or as `qa sources` lists it); repeatable")
    p.add_argument("--document", action="append", default=[], metavar="ID",
                   help="answer only from the document with this id (`qa sources --json`); repeatable")
    p.add_argument("--explain", action="store_true",
                   help="say why: the passages read, the sentence chosen and the runner-up, the signals in words")
    common(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("sources", help="list what is indexed, a page at a time")
    p.add_argument("--json", action="store_true", help='one page as {"documents", "total", "next"}')
    p.add_argument("--offset", type=int, default=0, help="skip this many documents (by path)")
    p.add_argument("--limit", type=int, default=100, help="documents a page (default 100)")
    common(p)
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("inspect", help="show how one file parses: sentences, footnotes, references")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--format", default=None, help="read the file as this format (e.g. wikitext for a .txt)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("serve", help="start the web app")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 5000)")
    p.add_argument("--admin-token-file", default=None,
                   help="enable upload, remove and reindex from the browser for holders of the token in this "
                        "file (its first line, at least 16 characters); or set FOOTNOTE_ADMIN_TOKEN")
    p.add_argument("--admin-token", default=None,
                   help="the token itself: unsafe on a shared machine, since `ps` shows it to every user")
    p.add_argument("--sources", default=None, help="folder that uploads go to and reindex reads (default: the "
                   "first folder the index was built from, else sources/)")
    common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="measure answers on a SQuAD JSON or CLAPNQ JSON-lines file")
    p.add_argument("file", nargs="+", help="e.g. ../shared/eval/squad/squad_v2.0_dev_subset.json; "
                   "several files of one format are pooled into one corpus")
    p.add_argument("--limit", type=int, default=None, help="ask a seeded sample of N questions")
    p.add_argument("--seed", type=int, default=13, help="sampling seed (default 13)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--index", default=None, help="keep (and reuse) the eval index here instead of a temporary one")
    p.add_argument("--model", default=None, help="embedding model: bundled (default), a name or a folder")
    p.add_argument("--reader", default=None, metavar="PATH",
                   help="a reader folder: one scripts/train_reader.py wrote, or a Hugging Face QA model")
    p.add_argument("--predictions", default=None, metavar="FILE",
                   help="write {question id: answer text} (\"\" for an abstention), the official SQuAD 2.0 format")
    p.add_argument("--evidence", default=None, metavar="FILE",
                   help="write {question id: evidence sentence} (\"\" for an abstention)")
    p.set_defaults(func=cmd_eval)
    return parser


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Terminal:
    """stdout when it is a terminal: control characters are dropped, so escape sequences inside
    a source (which could recolour, retitle or clear the terminal) print as nothing."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(CONTROL.sub("", text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.stdout.isatty() and not isinstance(sys.stdout, Terminal):
        sys.stdout = Terminal(sys.stdout)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_libraries()
    try:
        return args.func(args)
    except FootnoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `qa ask ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _quiet_libraries() -> None:
    """sentence-transformers and transformers print load bars and warnings a user cannot act on."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run() -> None:
    """Console-script entry point: exit with main's status."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
