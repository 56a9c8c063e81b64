"""The encoder backends: the ONNX export cached once per installation, the same passages from
each backend, no torch on the question path, and an index that keeps its backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import IndexMismatch, Pipeline
from qa import index as ix
from qa.library.build import build
from qa.models.encoder import Embedder, load_embedder
from qa.models.export import cache_root, exported
from tests.conftest import ROOT, SEED, make_pipeline

QUESTIONS = [
    "When did the Fujian Media Group create an ICC?",
    "Who directed the establishment of international communication centers?",
    "How many international communication centers were there by 2024?",
    "What did Xi Jinping call for in 2021?",
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return load_embedder(backend="torch")


def seed_passages(pipe: Pipeline, questions: list[str]) -> list[list[tuple[str, int, int]]]:
    return [[(p.document.path, p.start, p.end) for p in pipe.ask(q).passages] for q in questions]


def test_each_backend_gives_the_same_passages_on_the_seed(tmp_path: Path, embedder: Embedder,
                                                          torch_embedder: Embedder):
    fp32 = load_embedder(backend="onnx")
    got = {}
    for emb in (embedder, fp32, torch_embedder):
        pipe = make_pipeline(tmp_path / emb.backend, emb, encoder=emb.backend)
        assert pipe.library.index([str(SEED)]).published
        assert ix.current(pipe.index_dir).manifest["encoder"] == emb.backend
        got[emb.backend] = seed_passages(pipe, QUESTIONS)
    assert got["onnx-int8"] == got["torch"] == got["onnx"]


def test_onnx_vectors_match_sentence_transformers(embedder: Embedder, torch_embedder: Embedder):
    texts = [s for s in SEED.read_text().split(". ") if len(s) > 20][:40]
    ref = torch_embedder.encode(texts)
    fp32 = load_embedder(backend="onnx").encode(texts)
    int8 = embedder.encode(texts)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert float((ref * fp32).sum(1).min()) > 0.9999
    assert float((ref * int8).sum(1).mean()) > 0.985 and float((ref * int8).sum(1).min()) > 0.96


def test_an_index_keeps_the_backend_it_was_built_with(tmp_path: Path, embedder: Embedder,
                                                      torch_embedder: Embedder, corpus_dir: Path):
    built = make_pipeline(tmp_path / "index", torch_embedder, encoder="torch")
    assert built.library.index([str(SEED)]).published
    later = make_pipeline(tmp_path / "index", embedder)  # the default setting: onnx-int8
    assert later.library.backend() == "torch"
    assert later.embedder_of(later.serving.snapshot()).backend == "torch"  # questions embedded as the passages were
    with pytest.raises(IndexMismatch, match="rebuild"):  # vectors of two backends never mix
        build([str(corpus_dir)], tmp_path / "index", embedder, later.config)
    report = later.library.index([str(corpus_dir)])  # an update encodes with the index's own backend
    assert report.published and ix.current(later.index_dir).manifest["encoder"] == "torch"
    assert later.library.index([str(corpus_dir)], rebuild=True).published  # a rebuild takes the setting's
    assert ix.current(later.index_dir).manifest["encoder"] == "onnx-int8"


def test_the_question_path_imports_neither_torch_nor_sentence_transformers(pipeline: Pipeline):
    code = ("import sys\n"
            "from qa import Pipeline\n"
            "from web import create_app\n"
            "pipe = Pipeline({'index': sys.argv[1]})\n"
            "result = pipe.ask(sys.argv[2])\n"
            "app = create_app(test_config={'TESTING': True}, pipeline=pipe)\n"
            "resp = app.test_client().get('/api/ask', query_string={'q': sys.argv[2]})\n"
            "print(result.answered, resp.status_code, resp.get_json()['answered'],\n"
            "      sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, str(pipeline.index_dir), QUESTIONS[0]], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "200", "True", "[]"]


def test_qa_help_imports_nothing_heavy():
    code = ("import sys\nfrom qa.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('numpy', 'faiss', 'onnxruntime', 'torch', 'flask', 'pypdf') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small randomly initialised sentence-transformers model (plumbing, not quality)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from qa.config import BUNDLED_MODEL
    from qa.models.encoder import resolve_model

    base = tmp_path_factory.mktemp("tiny")
    bundled = Path(resolve_model(BUNDLED_MODEL))
    tok = BertTokenizerFast.from_pretrained(str(bundled))
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(base / "bert")
    tok.save_pretrained(base / "bert")
    word = models.Transformer(str(base / "bert"), max_seq_length=64)
    model = SentenceTransformer(modules=[word, models.Pooling(32), models.Normalize()], device="cpu")
    model.save(str(base / "model"))
    return base / "model"


def test_the_export_is_cached_by_model_checksum_and_redone_when_damaged(tiny_model: Path, tmp_path: Path,
                                                                        monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = exported(str(tiny_model), quantized=True)
    assert first.parent == cache_root() / "encoders" and first.name.endswith("-onnx-int8")
    info = json.loads((first / "encoder.json").read_text())
    assert info["dimension"] == 32 and info["max_tokens"] == 64
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]  # written beside, renamed in
    stamp = (first / "model.onnx").stat().st_mtime_ns
    assert exported(str(tiny_model), quantized=True) == first
    assert (first / "model.onnx").stat().st_mtime_ns == stamp  # the second use reads the cache

    (first / "model.onnx").write_bytes(b"damaged")
    with caplog.at_level("WARNING", logger="qa.models.export"):
        again = exported(str(tiny_model), quantized=True)
    assert again == first and "damaged" in caplog.text
    emb = load_embedder(str(tiny_model), "onnx-int8")
    ref = load_embedder(str(tiny_model), "torch")
    texts = ["a short one", "another sentence that is rather longer than the first"]
    assert float((emb.encode(texts) * ref.encode(texts)).sum(1).min()) > 0.97

    (tiny_model / "extra.txt").write_text("a changed model folder")  # another checksum, another export
    try:
        assert exported(str(tiny_model), quantized=True) != first
    finally:
        (tiny_model / "extra.txt").unlink()
