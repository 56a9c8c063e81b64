"""The span reader: which words of the top passages answer the question, or that none do.

A window is a run of whole sentences read together with the question (at most `max_tokens`
tokens); the model scores every token as the start and the end of the answer, and the
[CLS] token as "no answer here". Training (`scripts/train_reader.py`) and answering build
windows with the same code below, so what the model saw while learning is what it reads.

The shipped model is Footnote's own: the bundled all-MiniLM-L6-v2 fine-tuned on SQuAD's
training questions with a no-answer option, exported to ONNX and quantised to int8
(`qa/models/reader/MODEL_CARD.md`). It runs on onnxruntime with `tokenizers`: no torch on
the question path. `TransformersSpanModel` loads a user's own Hugging Face question-answering
folder instead (the `reader` setting).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ConfigError
from qa.models.batches import by_length, feed, first_tokens

MAX_TOKENS = 192  # question + window, the most the reader reads at once
MAX_ANSWER_TOKENS = 30  # longest span considered
QUESTION_TOKENS = 64  # a longer question (a pasted paragraph) is read by its first 64 tokens
BUNDLED = Path(__file__).parents[1] / "models" / "reader"


@dataclass(frozen=True)
class Window:
    """Whole sentences read together; `keys` are the caller's ids for them (any hashable)."""

    sentences: tuple[str, ...]
    keys: tuple[Any, ...]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    def starts(self) -> list[int]:
        """Where each sentence begins in `text`."""
        out, at = [], 0
        for s in self.sentences:
            out.append(at)
            at += len(s) + 1
        return out


@dataclass(frozen=True)
class Span:
    """The reader's answer in one window: `sentence` indexes the window's sentences and
    `start`/`end` are character offsets inside that sentence. `score` is the span's start
    plus end logit; `null` the no-answer logit pair of the same window; `margin` = score - null
    (positive: the model would rather answer)."""

    window: int
    sentence: int
    key: Any
    start: int
    end: int
    text: str
    score: float
    null: float

    @property
    def margin(self) -> float:
        return self.score - self.null


def pack(sentence_tokens: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Group consecutive sentences into windows of at most `budget` tokens, each window after
    the first starting with the last sentence of the one before (so a sentence that leans on
    the one before it is read with it). A sentence longer than the budget is a window alone
    (the tokenizer cuts it). Returns (first, last + 1) sentence ranges covering all of them."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(sentence_tokens)
    while i < n:
        j, used = i, 0
        while j < n and (j == i or used + sentence_tokens[j] <= budget):
            used += sentence_tokens[j]
            j += 1
        out.append((i, j))
        if j >= n:
            break
        i = j - 1 if j - 1 > i else j
    return out


class Tokens:
    """The tokenizer the reader was trained with, set to read (question, window) pairs."""

    def __init__(self, path: Path, max_tokens: int = MAX_TOKENS) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from tokenizers import Tokenizer

        self.plain = Tokenizer.from_file(str(path))  # for counting: no truncation
        self.plain.no_padding()
        self.plain.no_truncation()
        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_tokens, strategy="only_second")
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text alone, without special tokens."""
        return [len(e.ids) for e in self.plain.encode_batch(list(texts), add_special_tokens=False)]

    def windows(self, question: str, sentences: Sequence[str], keys: Sequence[Any]) -> list[Window]:
        """Windows of whole sentences that fit beside the question."""
        budget = self.max_tokens - len(self.plain.encode(self.short(question)).ids) - 1  # [CLS] q [SEP] ... [SEP]
        spans = pack(self.count(sentences), max(budget, 16))
        return [Window(tuple(sentences[a:b]), tuple(keys[a:b])) for a, b in spans]

    def encode(self, question: str, windows: Sequence[Window]) -> list:
        return self.tok.encode_batch([(self.short(question), w.text) for w in windows])

    def short(self, question: str) -> str:
        """The question cut to its first QUESTION_TOKENS tokens, so a window always has room."""
        return first_tokens(self.plain, question, QUESTION_TOKENS)


def sentence_spans(window: Window, encoding, start_logits: np.ndarray, end_logits: np.ndarray, index: int,
                   max_answer: int = MAX_ANSWER_TOKENS) -> list[Span]:
    """The highest-scoring span inside each sentence of the window (none when the question
    filled the window). One a sentence, not one a window, so that what is known about a
    sentence (the question's codes it holds verbatim) can still change which span wins."""
    ctx = [i for i, s in enumerate(encoding.sequence_ids) if s == 1]
    if not ctx:
        return []
    starts = window.starts()
    offsets = encoding.offsets
    sentence_of = np.searchsorted(np.array(starts), [offsets[i][0] for i in ctx], side="right") - 1
    n = len(ctx)
    pair = start_logits[ctx][:, None] + end_logits[ctx][None, :]  # pair[i, j]: span from token i to j
    i_idx, j_idx = np.indices((n, n))
    ok = (j_idx >= i_idx) & (j_idx - i_idx < max_answer) & (sentence_of[:, None] == sentence_of[None, :])
    pair = np.where(ok, pair, -np.inf)
    null = float(start_logits[0] + end_logits[0])
    out = []
    for k in np.unique(sentence_of):
        rows = np.flatnonzero(sentence_of == k)
        sub = pair[rows]
        flat = int(np.argmax(sub))
        i, j = rows[flat // n], flat % n
        a, b = offsets[ctx[i]][0] - starts[k], offsets[ctx[j]][1] - starts[k]
        out.append(Span(index, int(k), window.keys[k], a, b, window.sentences[k][a:b], float(pair[i, j]), null))
    return out


def best_span(window: Window, encoding, start_logits: np.ndarray, end_logits: np.ndarray, index: int) -> Span | None:
    """The highest-scoring span of the window that lies inside one sentence, or None."""
    return max(sentence_spans(window, encoding, start_logits, end_logits, index), key=lambda s: s.score,
               default=None)


class SpanModel:
    """Reads windows and returns each one's best span; subclasses run the model (`_run`)."""

    tokens: Tokens
    batch = 8

    def _run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def logits(self, encodings: list) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start and end logits for each encoding, batched by length so little is padding."""
        out: list[Any] = [None] * len(encodings)
        for part in by_length(encodings, self.batch):
            start, end = self._run(feed([encodings[i] for i in part]))
            for row, i in enumerate(part):
                n = len(encodings[i].ids)
                out[i] = (start[row, :n], end[row, :n])
        return out

    def read(self, question: str, windows: Sequence[Window]) -> list[Span]:
        """The best span of each sentence of each window, best first."""
        enc = self.tokens.encode(question, windows)
        spans = []
        for w, (window, e, (s, t)) in enumerate(zip(windows, enc, self.logits(enc), strict=True)):
            spans += sentence_spans(window, e, s, t, w)
        return sorted(spans, key=lambda s: -s.score)


def trained_window(folder: Path) -> int:
    """The window (question + sentences, in tokens) a model folder was trained on, from its
    `model_card.json`, at most MAX_TOKENS; MAX_TOKENS when the card does not say.

    A reader reads best what it was trained on: the shipped one, trained on 128-token windows,
    scores closed-setting F1 0.721 on its validation articles when it reads 128-token windows
    and 0.690 when it reads 192-token ones."""
    try:
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        return min(MAX_TOKENS, int(card["arguments"]["window_tokens"]))
    except (OSError, ValueError, KeyError, TypeError):
        return MAX_TOKENS


class OnnxSpanModel(SpanModel):
    """The int8 ONNX span reader on onnxruntime; safe to call from several threads.

    Args:
        folder: holds `model.onnx` and `tokenizer.json` (default: the shipped model), and
            `model_card.json`, which says how long its windows are (`trained_window`).
        threads: onnxruntime intra-op threads (0: one per core).
        max_tokens: the window, when not the one the folder's model was trained on.
    """

    def __init__(self, folder: Path | None = None, threads: int = 0, max_tokens: int | None = None) -> None:
        import onnxruntime as ort

        folder = Path(folder or BUNDLED)
        model, vocab = folder / "model.onnx", folder / "tokenizer.json"
        if not (model.is_file() and vocab.is_file()):
            raise ConfigError(f"the reader folder {folder} must hold model.onnx and tokenizer.json; "
                              "`make train-reader` builds one")
        self.tokens = Tokens(vocab, max_tokens or trained_window(folder))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle onnxruntime threads spin by default, stealing the other sessions' cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def _run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:  # one run at a time keeps both cores for one batch
            start, end = self._session.run(["start_logits", "end_logits"],
                                           {k: v for k, v in inputs.items() if k in self._inputs})
        return start, end


class TransformersSpanModel(SpanModel):
    """A user's own Hugging Face question-answering model folder, run with transformers and
    torch (imported only here). The folder needs `tokenizer.json` (a fast tokenizer)."""

    def __init__(self, folder: Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        vocab = folder / "tokenizer.json"
        if not vocab.is_file():
            raise ConfigError(f"the reader folder {folder} has no tokenizer.json (a fast tokenizer is needed)")
        import torch
        from transformers import AutoModelForQuestionAnswering

        try:
            self._model = AutoModelForQuestionAnswering.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a question-answering model from {folder}: {exc}") from exc
        self._torch = torch
        self._inputs = set(inspect.signature(self._model.forward).parameters)
        self.tokens = Tokens(vocab, min(MAX_TOKENS, int(getattr(self._model.config, "max_position_embeddings", 512))))
        self._lock = threading.Lock()

    def _run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with self._lock, torch.no_grad():
            out = self._model(**{k: torch.from_numpy(v) for k, v in inputs.items() if k in self._inputs})
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()
