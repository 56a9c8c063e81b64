"""Bulk indexing on Ray (`qa index --ray`): a two-node Ray cluster on loopback, started and stopped
here, indexes what a local run indexes (the same documents, passages, sentences and ids, every vector
within cosine 0.999), on both nodes, updates as a local run does, and an address with no cluster
behind it, or Ray missing, fails in one line.

The int8 encoder (the default) quantises activations with one scale per batch, so a vector depends a
little on the texts encoded with it (a file encoded alone or beside others: cosine down to about
0.993). The actors encode the very groups a local run encodes, so the default encoder's vectors are
held to 0.999 like the float32 export's. Measured on 2 cores, both encoders' are bit-identical to
the local run's (all 585 passages of the first test, though an actor encodes on one thread and
the local run on two); actors given groups of half the size would fall to cosine 0.985.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qa import Pipeline
from qa.cli import main
from qa.library.build import FLUSH, BuildReport
from tests.conftest import DATA, ROOT, SEED, make_pipeline

RAY = Path(sys.executable).with_name("ray")
RESERVED = range(10002, 20000)  # kept free of every Ray port on this machine
START_SECONDS = 120
COSINE = 0.999  # every vector against the local run's, whatever the encoder
NODE_PORTS = 18  # node manager, object manager, dashboard agent (2), metrics, runtime env agent, 12 workers


def sources(folder: Path) -> Path:
    """A copy of the test corpus (tests/data/corpus plus the seed article) that a test may change."""
    folder.mkdir()
    for f in [SEED, *(DATA / "corpus").iterdir()]:
        shutil.copy(f, folder / f.name)
    return folder


def generated(folder: Path, files: int = 36, paragraphs: int = 16) -> None:
    """Files of distinct paragraphs of varied length in `folder` (a passage each), so that a run
    encodes several groups of `build.FLUSH` texts, on both nodes."""
    rng = random.Random(17)
    words = ("keeper", "lamp", "harbour", "orchard", "ledger", "signal", "tide", "graft", "beacon",
             "cider", "station", "frost", "rope", "lens", "blossom", "storm", "archive", "pier")
    for f in range(files):
        paras = [f"Record {f}.{p}: " + " ".join(
            f"The {rng.choice(words)} of {rng.choice(words)} {rng.randint(1800, 1999)} "
            f"{' '.join(rng.choices(words, k=rng.randint(2, 9)))}." for _ in range(rng.randint(1, 5)))
            for p in range(paragraphs)]
        (folder / f"record-{f:02}.txt").write_text("\n\n".join(paras) + "\n")


def free_ports(n: int) -> list[int]:
    """`n` ports free now on loopback, none in RESERVED."""
    ports: set[int] = set()
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] not in RESERVED:
                ports.add(s.getsockname()[1])
    return sorted(ports)


def node_options(ports: list[int]) -> list[str]:
    """A node's ports (so none falls in RESERVED, where Ray puts its workers by default), one CPU and
    a small object store."""
    return [f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
            f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
            f"--metrics-export-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
            "--worker-port-list=" + ",".join(map(str, ports[6:NODE_PORTS])),
            "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=200000000",
            "--disable-usage-stats", "--block"]


def start_node(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        # Without token authentication, as the drivers (this process, the `qa` it runs) connect: a
        # ~/.ray/auth_token left by another Ray would otherwise turn it on for the nodes alone.
        return subprocess.Popen([str(RAY), "start", *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})


def wait_for_nodes(address: str, count: int, nodes: list[subprocess.Popen]) -> None:
    """Wait until `count` nodes of the cluster are alive (a node that exits fails the fixture)."""
    import ray

    host, port = address.split(":")
    deadline = time.monotonic() + START_SECONDS
    while True:
        assert all(n.poll() is None for n in nodes), "a Ray node exited while starting (see its log)"
        assert time.monotonic() < deadline, f"the Ray cluster did not have {count} nodes after {START_SECONDS} s"
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        while sum(n["Alive"] for n in ray.nodes()) < count:
            assert time.monotonic() < deadline, f"the Ray cluster did not have {count} nodes after {START_SECONDS} s"
            time.sleep(0.5)
    finally:
        ray.shutdown()


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """Stop the `ray start` processes started here and every process they started, by process id
    (`ray stop` would stop every Ray on the machine)."""
    import psutil

    family = []
    for node in nodes:
        try:
            parent = psutil.Process(node.pid)
            family += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=15)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
    for node in nodes:
        node.wait(10)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[str]:
    """A head node and a worker node on loopback, one CPU each, in a temp folder of their own;
    yields the head's address."""
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths under it must fit 107 bytes
    ports = free_ports(2 + 2 * NODE_PORTS)
    address = f"127.0.0.1:{ports[0]}"
    nodes = [start_node(["--head", f"--port={ports[0]}", f"--temp-dir={temp}", "--include-dashboard=false",
                         f"--dashboard-port={ports[1]}", *node_options(ports[2:2 + NODE_PORTS])], temp / "head.log")]
    try:
        wait_for_nodes(address, 1, nodes)
        nodes.append(start_node([f"--address={address}", *node_options(ports[2 + NODE_PORTS:])], temp / "worker.log"))
        wait_for_nodes(address, 2, nodes)
        yield address
    finally:
        stop_nodes(nodes)


def contents(pipe: Pipeline) -> tuple[list[dict], dict[int, tuple[str, int, int]], dict[int, np.ndarray]]:
    """What an index serves: each document as its page shows it (text, sentences with their
    footnotes, references; by id), its passages by id (document, start, end), and their vectors."""
    docs = [{k: v for k, v in pipe.library.document(d["id"], limit=None).items() if k != "indexed_at"}
            for d in sorted(pipe.library.documents(limit=None)[0], key=lambda d: d["id"])]
    passages, vectors = {}, {}
    for segment in pipe.serving.snapshot().segments:
        conn = segment.connect()
        try:
            for pid, doc_id, start, end in conn.execute("SELECT id, doc_id, start, end FROM passages"):
                if doc_id in segment.live:
                    passages[pid], vectors[pid] = (doc_id, start, end), segment.vectors.reconstruct(pid)
        finally:
            conn.close()
    return docs, passages, vectors


def texts_and_vectors(pipe: Pipeline) -> dict[tuple[str, str], np.ndarray]:
    """Each passage's vector by (document path, passage text)."""
    docs, passages, vectors = contents(pipe)
    by_id = {d["id"]: d for d in docs}
    return {(by_id[doc]["path"], by_id[doc]["text"][start:end]): vectors[i]
            for i, (doc, start, end) in passages.items()}


def assert_same_index(local: Pipeline, remote: Pipeline) -> None:
    """The same documents, sentences, passages and ids; each vector within COSINE."""
    docs, passages, vectors = contents(local)
    ray_docs, ray_passages, ray_vectors = contents(remote)
    assert docs and passages
    assert ray_docs == docs and ray_passages == passages
    cosines = [float(vectors[i] @ ray_vectors[i]) for i in passages]
    assert min(cosines) >= COSINE, min(cosines)


def same_report(report: BuildReport) -> tuple:
    """A report's outcome, without the time it took or where the work ran."""
    return (report.added, report.updated, report.removed, report.unchanged, report.failed, report.encoded,
            report.documents, report.passages, report.published)


def test_without_ray_installed_index_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed: `import ray` fails
    assert main(["index", str(SEED), "--index", str(tmp_path / "idx"), "--ray", "auto", "-q"]) == 1
    assert capsys.readouterr().err == "error: Ray is not installed; install it with: pip install 'footnote[ray]'\n"
    assert not (tmp_path / "idx").exists()


@pytest.mark.scale
def test_ray_auto_without_a_cluster_fails_in_one_line(tmp_path, monkeypatch, capsys):
    """`--ray auto` means the cluster running on this machine; with none it fails instead of starting one."""
    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():
        pytest.skip("a Ray cluster already runs on this machine: --ray auto would join it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["index", str(SEED), "--index", str(tmp_path / "idx"), "--ray", "auto", "-q"]) == 1
    assert capsys.readouterr().err == ("error: --ray auto found no Ray cluster running on this machine: start one "
                                       "with `ray start --head`, or give a cluster's address (--ray HOST:PORT)\n")
    assert not (tmp_path / "idx" / "CURRENT").exists()


@pytest.mark.scale
def test_ray_address_where_nothing_listens_fails_in_seconds(tmp_path, capsys):
    [port] = free_ports(1)
    began = time.monotonic()
    assert main(["index", str(SEED), "--index", str(tmp_path / "idx"), "--ray", f"127.0.0.1:{port}", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port}") and err.count("\n") == 1, err
    assert time.monotonic() - began < 60  # ray.init alone would retry for minutes


@pytest.mark.scale
def test_qa_index_ray_builds_the_index_a_local_run_builds_on_both_nodes(ray_cluster, tmp_path, embedder):
    src = sources(tmp_path / "src")
    generated(src)
    local = make_pipeline(tmp_path / "local", embedder)
    report = local.library.index([str(src)])
    assert report.encoded > 2 * FLUSH  # several encode groups, spread over both actors
    run = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(src), "--index", str(tmp_path / "ray"),
                          "--ray", ray_cluster, "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    summary, nodes = run.stdout.splitlines()
    assert re.sub(r"[\d.]+ s\)", "", summary) == re.sub(r"[\d.]+ s\)", "", report.summary())
    assert nodes.startswith("read and encoded on 2 Ray node(s): "), nodes  # each actor, on its own node, read files
    assert_same_index(local, make_pipeline(tmp_path / "ray", embedder))


@pytest.mark.scale
def test_ray_update_skips_unchanged_files_and_reuses_vectors_as_a_local_update(ray_cluster, tmp_path, embedder):
    src = sources(tmp_path / "src")
    local, remote = (make_pipeline(tmp_path / name, embedder) for name in ("local", "ray"))
    local.library.index([str(src)])
    calls = embedder.calls
    first = remote.library.index([str(src)], ray=ray_cluster)
    assert embedder.calls == calls and first.encoded > 0  # encoded on the cluster, not here
    assert_same_index(local, remote)
    before = texts_and_vectors(remote)
    edited = src / "lighthouses.md"  # a paragraph added at its end: its passages so far keep their text
    edited.write_text(edited.read_text() + "\n\nIn 1911 the keepers of Cape Orin added a fog horn.\n")
    (src / SEED.name).unlink()
    shutil.copy(src / "orchards.txt", src / "copy-of-orchards.txt")  # the same text at a new path: nothing to encode
    expected = local.library.index([str(src)])
    calls = embedder.calls
    report = remote.library.index([str(src)], ray=ray_cluster)
    assert embedder.calls == calls
    assert same_report(report) == same_report(expected)
    assert report.unchanged == ["src/orchards.txt"] and report.updated == ["src/lighthouses.md"]
    assert report.removed == [f"src/{SEED.name}"] and report.added == ["src/copy-of-orchards.txt"]
    assert 0 < report.encoded < len(before)  # only the new text of the edited file
    assert sum(report.nodes.values()) == 2  # the edited and the copied file; the unchanged one is not read
    assert_same_index(local, remote)
    after = texts_and_vectors(remote)
    kept = [(path, text) for path, text in after if (path, text) in before]
    assert any(path.endswith("lighthouses.md") for path, _ in kept)  # the edited file's unchanged passages too
    assert all(np.array_equal(after[k], before[k]) for k in kept)  # with their stored vectors, not new ones
