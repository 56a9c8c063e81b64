"""Load test: many clients asking `qa serve` at once, on loopback, then during a reindex that publishes.

Indexes sources/ plus the contexts of the public SQuAD 2.0 file (read in place from
../shared/eval; the seed corpus alone when it is absent) into a temporary folder, starts the
real `qa serve` on a free port with the default settings, and runs phases of concurrent
clients (threads, one urllib request at a time each) asking a mix of real questions: the
file's, answerable and not, and the seed's. The last phase adds an article to the served
source folder and runs `qa index` on it while the clients ask; the server picks up the new
generation by itself.

Each phase prints requests/s (answers, 200s, completed within it), p50/p95/p99 latency, errors (any other status or
a failed connection; refusals with Retry-After are counted apart, as busy), wrong answers
(an answer or evidence sentence that is not the slice of `/api/documents/<id>` it claims) and
the server process's peak RSS so far (VmHWM). Exits 1 on any error or wrong answer.

Usage: python scripts/load.py [--seconds 60] [--clients 2,16,32] [--reindex-clients 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from latency import QUESTIONS, percentile

from qa.eval.evaluate import Corpus, load_all, write_sources

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT.parent / "shared" / "eval" / "squad" / "squad_v2.0_dev_subset.json"
QA = [sys.executable, "-m", "qa.cli"]
TIMEOUT = 120  # seconds a client waits for one answer


@dataclass
class Phase:
    """What the clients of one phase saw."""

    name: str
    clients: int
    started: float = 0.0  # perf_counter() when the clients started
    seconds: float = 0.0  # how long they were asking (answers still due after it are waited for)
    latencies_ms: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)  # seconds from the start to each answer
    answers: list[dict[str, Any]] = field(default_factory=list)  # every 200 body
    errors: list[str] = field(default_factory=list)
    busy: int = 0
    wrong: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0  # the server's CPU time (user + system) during the phase
    most_held: int = 0  # the most questions /api/health reported running + waiting
    health_ms: list[float] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        lat = self.latencies_ms or [float("nan")]
        compute = [b["timings_ms"]["total"] for b in self.answers] or [float("nan")]  # from the question's turn
        in_time = sum(t <= self.seconds for t in self.done_at)  # a closed loop's throughput: answers within it
        return {"phase": self.name, "clients": self.clients, "seconds": round(self.seconds, 1),
                "answers": len(self.answers), "requests_per_s": round(in_time / self.seconds, 2),
                "p50_ms": round(percentile(lat, 50), 1), "p95_ms": round(percentile(lat, 95), 1),
                "p99_ms": round(percentile(lat, 99), 1), "compute_p95_ms": round(percentile(compute, 95), 1),
                "errors": len(self.errors), "busy": self.busy, "wrong": len(self.wrong),
                "cpu_ms_per_answer": round(1000 * self.cpu_seconds / max(1, len(self.answers)), 1),
                "most_held": self.most_held, "health_max_ms": round(max(self.health_ms, default=0), 1),
                "peak_rss_mib": round(self.peak_rss_mib, 1),
                **self.notes}


def get_json(url: str, timeout: float = TIMEOUT) -> tuple[int, dict[str, str], Any]:
    """GET a URL: status, headers and decoded JSON body (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            body = None
        return exc.code, dict(exc.headers), body


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used, all its threads (onnxruntime's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client(base: str, questions: list[str], first: int, running: threading.Event, phase: Phase,
           lock: threading.Lock) -> None:
    """Ask questions one after another, from `first` on, until `running` is cleared."""
    i = first
    while running.is_set():
        url = f"{base}/api/ask?{urllib.parse.urlencode({'q': questions[i % len(questions)]})}"
        i += 1
        t0 = time.perf_counter()
        try:
            status, headers, body = get_json(url)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, or not JSON
            with lock:
                phase.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)
            continue
        now = time.perf_counter()
        with lock:
            if status == 200:
                phase.latencies_ms.append((now - t0) * 1000)
                phase.done_at.append(now - phase.started)
                phase.answers.append(body)
            elif status == 503 and "Retry-After" in headers:
                phase.busy += 1
            else:
                phase.errors.append(f"{status}: {(body or {}).get('error')}")
        if status == 503 and "Retry-After" in headers:
            time.sleep(float(headers["Retry-After"]))  # as a well-behaved client would


def monitor(base: str, running: threading.Event, phase: Phase, lock: threading.Lock) -> None:
    """Poll /api/health while the phase runs: the most questions held, and how fast it answers."""
    while running.is_set():
        t0 = time.perf_counter()
        try:
            status, _, body = get_json(f"{base}/api/health", timeout=30)
        except (OSError, ValueError) as exc:
            status, body = f"{type(exc).__name__}: {exc}", None
        with lock:
            if status != 200:
                phase.errors.append(f"/api/health: {status}")
            else:
                phase.health_ms.append((time.perf_counter() - t0) * 1000)
                held = body["questions"]["running"] + body["questions"]["waiting"]
                phase.most_held = max(phase.most_held, held)
        time.sleep(0.5)


def run_phase(base: str, pid: int, questions: list[str], phase: Phase, seconds: float,
              during: threading.Thread | None = None) -> Phase:
    """Run `phase.clients` clients for `seconds` (and until `during`, if given, has finished)."""
    running, lock = threading.Event(), threading.Lock()
    running.set()
    step = max(1, len(questions) // phase.clients)
    threads = [threading.Thread(target=client, args=(base, questions, k * step, running, phase, lock))
               for k in range(phase.clients)]
    threads.append(threading.Thread(target=monitor, args=(base, running, phase, lock)))
    cpu = cpu_seconds(pid)
    t0 = phase.started = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        time.sleep(min(1.0, seconds / 4))  # the clients are asking before the reindex starts
        during.start()
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    if during is not None:
        during.join()
        time.sleep(1.0)  # a second of answers from the new generation
    running.clear()
    phase.seconds = time.perf_counter() - t0
    for t in threads:
        t.join()
    phase.cpu_seconds = cpu_seconds(pid) - cpu
    phase.peak_rss_mib = peak_rss_mib(pid)
    return phase


def reindex_phase(base: str, pid: int, questions: list[str], phase: Phase, seconds: float,
                  where: tuple[Path, Path, Path], before: str) -> Phase:
    """`run_phase` while `qa index` adds the file `added` to the served folder `src` and publishes
    into `index`; notes whether the server went on to the new generation and how many answers
    came from each."""
    src, index, added = where
    reindex: dict[str, Any] = {}

    def publish() -> None:
        shutil.copy(added, src / added.name)
        t0 = time.perf_counter()
        r = subprocess.run([*QA, "index", str(src), "--index", str(index), "--quiet"], cwd=ROOT,
                           capture_output=True, text=True)
        reindex.update(seconds=time.perf_counter() - t0, returncode=r.returncode, stderr=r.stderr)

    run_phase(base, pid, questions, phase, seconds, during=threading.Thread(target=publish))
    after = get_json(f"{base}/api/health")[2]["generation"]
    served: dict[str, int] = {}
    for body in phase.answers:
        served[body["index"]["generation"]] = served.get(body["index"]["generation"], 0) + 1
    phase.notes = {"published": after != before and reindex.get("returncode") == 0,
                   "index_seconds": round(reindex.get("seconds", 0), 1),
                   "answers_by_generation": {"before": served.get(before, 0), "after": served.get(after, 0)}}
    if not phase.notes["published"]:
        phase.errors.append(f"the reindex did not publish ({before} -> {after}): {reindex.get('stderr')}")
    return phase


def check_answers(base: str, phase: Phase, documents: dict[str, str]) -> None:
    """Every answer's text and evidence sentences against the slices of their documents' text
    (`/api/documents/<id>`, fetched once each)."""

    def text(doc_id: str) -> str | None:
        if doc_id not in documents:
            status, _, body = get_json(f"{base}/api/documents/{urllib.parse.quote(doc_id, safe='')}?limit=1")
            documents[doc_id] = body["text"] if status == 200 else None
        return documents[doc_id]

    for body in phase.answers:
        answer = body.get("answer")
        if not body.get("answered") or not answer:
            continue
        for claim in (answer, *answer["conflicts"]):
            first = claim["evidence"][0]["document"]["id"]
            if (t := text(first)) is None or t[claim["start"]:claim["end"]] != claim["text"]:
                phase.wrong.append(f"{body['question']!r}: answer {claim['text']!r} is not {first}"
                                   f"[{claim['start']}:{claim['end']}]")
            for ev in claim["evidence"]:
                doc_id = ev["document"]["id"]
                if (t := text(doc_id)) is None or t[ev["start"]:ev["end"]] != ev["sentence"]:
                    phase.wrong.append(f"{body['question']!r}: evidence is not {doc_id}[{ev['start']}:{ev['end']}]")


def start_server(index: Path, log: Path, timeout: float = 180) -> tuple[str, subprocess.Popen]:
    """`qa serve` on a free loopback port, its output in `log`; returns once /api/health says ok.

    Raises:
        RuntimeError: the server stopped or was not ready within `timeout` seconds.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*QA, "serve", "--index", str(index), "--port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get_json(f"{base}/api/health", timeout=30)[0] == 200:
                return base, proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"qa serve did not start on {base}:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def corpus(src: Path, file: Path) -> tuple[list[str], Path]:
    """Fill `src` with the sources to serve; return the questions to ask and the article the
    reindex adds (one of the file's, held back; without the file a copy of the seed article)."""
    for f in (ROOT / "sources").iterdir():
        if f.is_file():
            shutil.copy(f, src / f.name)
    questions = list(QUESTIONS)
    held = src.parent / "held"
    held.mkdir()
    if file.is_file():
        pooled = load_all([file])
        write_sources(pooled, src)
        questions += [q.text for q in pooled.questions]
        last = next(reversed(pooled.documents))
        write_sources(Corpus(pooled.kind, {last: pooled.documents[last]}, ()), held)
        (src / f"{last}.txt").unlink()
    else:
        seed = min(f for f in (ROOT / "sources").iterdir() if f.suffix == ".txt")
        shutil.copy(seed, held / f"copy-of-{seed.name}")
    random.Random(13).shuffle(questions)
    return questions, next(held.iterdir())


def table(rows: list[dict[str, Any]]) -> str:
    cols = [("phase", "phase", "{}"), ("clients", "clients", "{}"), ("answers", "answers", "{}"),
            ("requests_per_s", "req/s", "{:.1f}"), ("p50_ms", "p50 ms", "{:.0f}"), ("p95_ms", "p95 ms", "{:.0f}"),
            ("p99_ms", "p99 ms", "{:.0f}"), ("compute_p95_ms", "compute p95 ms", "{:.0f}"),
            ("errors", "errors", "{}"), ("busy", "busy 503", "{}"), ("wrong", "wrong", "{}"),
            ("cpu_ms_per_answer", "CPU ms/answer", "{:.0f}"), ("most_held", "most held", "{}"),
            ("health_max_ms", "health max ms", "{:.0f}"),
            ("peak_rss_mib", "peak RSS MiB", "{:.0f}")]
    cells = [[h for _, h, _ in cols]] + [[f.format(r[k]) for k, _, f in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of each phase (default 60)")
    parser.add_argument("--clients", default="2,16,32", help="clients of each steady phase (default 2,16,32)")
    parser.add_argument("--reindex-clients", type=int, default=16,
                        help="clients during the reindex (default 16; 0 skips it)")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="SQuAD file whose contexts and questions "
                        "join the seed's (skipped when absent)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # a shared machine's other work shows in the figures
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))

    with tempfile.TemporaryDirectory(prefix="footnote-load-") as t:
        tmp = Path(t)
        src, index = tmp / "src", tmp / "index"
        src.mkdir()
        questions, added = corpus(src, args.file)
        say(f"corpus: sources/{' + ' + args.file.name + ' contexts' if args.file.is_file() else ' only'} "
            f"({len(list(src.iterdir()))} files), {len(questions)} questions; the reindex adds {added.name}")
        subprocess.run([*QA, "index", str(src), "--index", str(index), "--quiet"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        base, proc = start_server(index, tmp / "serve.log")
        try:
            _, _, health = get_json(f"{base}/api/health")
            say(f"serving {health['generation']}: {health['documents']} documents, {health['passages']} passages "
                f"on {base}, queue limit {health['questions']['limit']}")
            documents: dict[str, str] = {}
            phases = []
            for n in (int(c) for c in args.clients.split(",")):
                say(f"{n} clients for {args.seconds:g} s ...")
                phase = run_phase(base, proc.pid, questions, Phase("steady", n), args.seconds)
                check_answers(base, phase, documents)
                phases.append(phase)

            if args.reindex_clients:
                say(f"{args.reindex_clients} clients for {args.seconds:g} s while `qa index` adds {added.name} ...")
                phase = reindex_phase(base, proc.pid, questions, Phase("reindex", args.reindex_clients),
                                      args.seconds, (src, index, added), health["generation"])
                check_answers(base, phase, documents)
                phases.append(phase)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        queue_warnings = (tmp / "serve.log").read_text().count("Task queue depth")

    rows = [p.row() for p in phases]
    by_clients = {r["clients"]: r["requests_per_s"] for r in rows if r["phase"] == "steady"}
    ratio = by_clients[16] / by_clients[2] if 2 in by_clients and 16 in by_clients and by_clients[2] else None
    failed = sum(r["errors"] + r["wrong"] for r in rows)
    if args.json:
        print(json.dumps({"seconds": args.seconds, "cores": os.cpu_count(),
                          "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], "phases": rows,
                          "ratio_16_to_2": ratio, "waitress_queue_warnings": queue_warnings,
                          "examples": {p.name + str(p.clients): (p.errors + p.wrong)[:5] for p in phases}}, indent=1))
    else:
        print(f"\n/api/ask under load, {args.seconds:g} s a phase, {os.cpu_count()} cores, load average "
              f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after:\n{table(rows)}")
        if ratio is not None:
            print(f"requests/s with 16 clients / with 2: {ratio:.2f}  (target >= 0.90)")
        for r in rows[-1:] if rows[-1]["phase"] == "reindex" else []:
            done, by = "published" if r["published"] else "DID NOT publish", r["answers_by_generation"]
            print(f"reindex: `qa index` took {r['index_seconds']} s and {done}; answers from the generation "
                  f"before {by['before']}, after {by['after']}")
        print(f"waitress 'Task queue depth' warnings: {queue_warnings} (questions wait in the app's bound instead)")
        for p in phases:
            for line in (p.errors + p.wrong)[:5]:
                print(f"  {p.name} {p.clients}: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
