"""Export a sentence-transformers model to ONNX once, into the user's cache, for onnxruntime to run.

Why: importing torch and sentence-transformers takes seconds before a single question is
embedded, and onnxruntime with int8 weights encodes about 1.7x faster on CPU. The export
needs torch, so it runs once per installation, at first use, and everything after it loads
the cached file without torch.

    $XDG_CACHE_HOME/footnote/encoders/
      stamps.json                       model files (path, size, mtime) -> their sha256
      <model sha256[:16]>-onnx-int8/    model.onnx, tokenizer.json, encoder.json

The folder is keyed by the sha256 of the model's files, so a changed model gets a new
export; it is written beside its final name and renamed into place (another process sees
all of it or none), and `encoder.json` holds the sha256 of `model.onnx`, checked on load.
Nothing of this goes into an index folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path

from qa.errors import ConfigError

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the exported graph or encoder.json changes meaning
SKIPPED = {"README.md", ".gitattributes"}  # files of a model folder that do not change its output


def cache_root() -> Path:
    """Footnote's cache folder (`$XDG_CACHE_HOME/footnote`, by default `~/.cache/footnote`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "footnote"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_sha256(folder: Path, stamps_file: Path) -> str:
    """The sha256 of a model folder's files (names and contents).

    Hashing 90 MB of weights takes a fifth of a second, too much for every cold start, so
    the result is remembered against the files' paths, sizes and modification times.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in SKIPPED and ".git" not in p.parts)
    stamp = hashlib.sha256(json.dumps([(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                                       for p in files]).encode()).hexdigest()
    try:
        stamps = json.loads(stamps_file.read_text())
    except (OSError, ValueError):
        stamps = {}
    if stamp in stamps:
        return stamps[stamp]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode() + b"\0" + sha256_file(p).encode())
    digest = h.hexdigest()
    stamps[stamp] = digest
    _write_atomic(stamps_file, json.dumps(stamps, indent=1))
    return digest


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def local_folder(path_or_name: str) -> Path:
    """The folder holding a model: itself, or a hub name's snapshot in the local cache (offline)."""
    if Path(path_or_name).is_dir():
        return Path(path_or_name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path_or_name, local_files_only=True))
    except Exception as exc:  # the hub raises several kinds; all mean "not on this machine"
        raise ConfigError(f"cannot find embedding model {path_or_name!r} on this machine (offline: only local "
                          f"models load): {exc}") from exc


def exported(path_or_name: str, quantized: bool) -> Path:
    """The cached ONNX export of a model, made now if there is none (or it fails its checksum)."""
    folder = local_folder(path_or_name)
    root = cache_root() / "encoders"
    digest = model_sha256(folder, root / "stamps.json")
    out = root / f"{digest[:16]}-{'onnx-int8' if quantized else 'onnx'}"
    meta = out / "encoder.json"
    if meta.is_file():
        try:
            info = json.loads(meta.read_text())
            if info.get("format") == FORMAT and sha256_file(out / "model.onnx") == info["onnx_sha256"]:
                return out
        except (OSError, ValueError, KeyError):
            pass
        log.warning("the cached encoder export %s is damaged or outdated; exporting it again", out)
        shutil.rmtree(out, ignore_errors=True)
    log.warning("exporting the embedding model to ONNX once for this installation (%s)", out)
    work = root / f".tmp-{out.name}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    work.mkdir(parents=True)
    try:
        info = _export(folder, work, quantized)
        info.update(format=FORMAT, model_sha256=digest, source=str(folder))
        (work / "encoder.json").write_text(json.dumps(info, indent=2))
        try:
            os.rename(work, out)
        except OSError:  # another process published the same export first: use theirs
            if not meta.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _export(folder: Path, work: Path, quantized: bool) -> dict:
    """Trace the model (transformer, pooling, normalisation) to ONNX; quantise its weights to int8."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu")
    st.eval()
    names = list(st.tokenizer.model_input_names)

    class Graph(torch.nn.Module):
        """Tensors in, sentence embeddings out: what sentence-transformers computes from a features dict."""

        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    dummy = st.tokenizer(["an example", "a second, longer example sentence"], padding=True, return_tensors="pt")
    fp32 = work / ("fp32.onnx" if quantized else "model.onnx")
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant for this graph
        torch.onnx.export(Graph(), tuple(dummy[n] for n in names), str(fp32), input_names=names,
                          output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    if quantized:
        quantize(fp32, work / "model.onnx")
        fp32.unlink()
    st.tokenizer.backend_tokenizer.save(str(work / "tokenizer.json"))
    return {"inputs": names, "dimension": int(st.get_embedding_dimension()), "max_tokens": int(st.max_seq_length),
            "quantized": quantized, "onnx_sha256": sha256_file(work / "model.onnx")}


def quantize(fp32: Path, out: Path) -> None:
    """int8 weights by onnxruntime's dynamic quantisation, per output channel: per-tensor scales
    lost too much (mean cosine to fp32 0.950 for the encoder, against 0.994 per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
