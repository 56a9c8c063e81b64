"""Token batches for the onnxruntime models (encoder, cross-encoder, reader).

Inputs are sorted by length and cut into batches padded only to their own longest, so a batch
of short sentences does not pay for one long passage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def by_length(encodings: Sequence, size: int) -> Iterator[list[int]]:
    """Indices of `encodings` (tokenizers' Encoding objects) in batches of `size`, shortest first."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    for at in range(0, len(order), size):
        yield order[at:at + size]


def feed(encodings: Sequence, width: int | None = None) -> dict[str, np.ndarray]:
    """int64 model inputs for a batch of encodings, padded to the longest (or `width`)."""
    width = width or max(len(e.ids) for e in encodings)
    out = {name: np.zeros((len(encodings), width), dtype="int64") for name in INPUTS}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        out["input_ids"][row, :n] = e.ids
        out["attention_mask"][row, :n] = 1
        out["token_type_ids"][row, :n] = e.type_ids
    return out


def first_tokens(tokenizer, text: str, n: int) -> str:
    """`text` cut after its first `n` tokens (a `tokenizers.Tokenizer`), so that a long question
    (a pasted paragraph, 1,000 CJK characters) leaves a model room for the passage."""
    e = tokenizer.encode(text, add_special_tokens=False)
    return text if len(e.ids) <= n else text[:e.offsets[n - 1][1]]
