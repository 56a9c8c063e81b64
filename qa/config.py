"""Settings, declared once as (name, default, help) and layered: defaults < footnote.toml < environment < explicit."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import ConfigError
from qa.read.signals import CALIBRATION

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Setting:
    """One setting: its default (whose type values are coerced to), help, and for numbers the
    range a value must lie in (a `candidates` of 0 or a port of 70000 is refused by name)."""

    name: str
    default: Any
    help: str
    least: float | None = None
    most: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("index", "index", "Folder holding the built index, or a postgresql:// DSN of a PostgreSQL index "
                              "(README \"Scaling out\")."),
    Setting("model", BUNDLED_MODEL, "Sentence-transformers model: the bundled one, a name, or a local folder."),
    Setting("encoder", "onnx-int8", "How the embedding model runs: onnx-int8 (exported once to ONNX with int8 weights, "
                                    "no torch), onnx (float32) or torch (sentence-transformers). An existing index "
                                    "keeps the backend it was built with until `qa index --rebuild`."),
    Setting("encoder_threads", 0, "onnxruntime threads for the encoder (0: one per physical core).", least=0),
    Setting("vector_index", "auto", "FAISS index of each segment: auto (exhaustive search up to 50,000 passages, IVF "
                                    "beyond), flat, ivf or hnsw. Applies to segments written from then on."),
    Setting("chunk_chars", 700, "Largest passage size in characters (a longer sentence is cut into passages "
                                "of this size, at clause marks, then spaces).",
            least=100),
    Setting("chunk_overlap", 1, "Sentences shared by neighbouring passages.", least=0),
    Setting("max_file_mb", 20, "Source files larger than this many MiB are skipped and reported.", least=0.001),
    Setting("parse_seconds", 60.0, "Longest one file may take to parse, in seconds; its worker is stopped and the "
                                   "file reported and skipped (0: no limit).", least=0),
    Setting("parse_memory_mb", 1024, "Most memory (address space, in MiB) a worker may use to parse one file; a file "
                                     "needing more is reported and skipped (0: no limit).", least=0),
    Setting("max_question_chars", 1000, "Longest question accepted, in characters.", least=1),
    Setting("candidates", 50, "Passages taken from each retriever before fusion.", least=1),
    Setting("top_k", 5, "Passages returned with every answer.", least=1),
    Setting("rerank_passages", 20, "Fused candidates the cross-encoder rereads whole to rank them: the first 8 always, "
                                   "the rest when none of those is a clear match.", least=0),
    Setting("answer_passages", 2, "Reranked passages the span reader reads (plus the next one when within 1 logit "
                                  "of the top).", least=1),
    Setting("reranker", "", "Cross-encoder: empty for Footnote's own (6 layers, distilled here from the 12-layer "
                            "ms-marco-MiniLM-L-12-v2, int8 ONNX), `ms-marco-l12` for that teacher (about twice as "
                            "slow), or a folder holding model.onnx and tokenizer.json."),
    Setting("reader", "", "Span reader: empty for Footnote's own (int8 ONNX), a folder that "
                          "scripts/train_reader.py wrote (model.onnx), or a local Hugging Face "
                          "question-answering model folder (run with transformers and torch)."),
    Setting("min_support", CALIBRATION.threshold, "Lowest answer confidence (0..1, from the calibration file "
                                                  "qa/models/calibration.json) that still counts as an answer.",
            least=0, most=1),
    Setting("sources", "sources", "Folder that uploads go to and the browser's reindex reads (left at sources: the "
                                  "first folder the index was built from, when there is one)."),
    Setting("upload_max_mb", 20, "Largest file accepted by an upload, in MiB.", least=0.001),
    Setting("admin_token", "", "Token required to upload, remove and reindex from the browser; empty disables them."),
    Setting("admin_token_file", "", "File holding the admin token (safer than admin_token in a footnote.toml or "
                                    "`--admin-token`, which `ps` shows); its first line is the token."),
    Setting("admin_idle_minutes", 30, "An admin session unused this long is signed out.", least=1),
    Setting("host", "127.0.0.1", "Address `qa serve` binds to."),
    Setting("trusted_hosts", "", "Host names the web app answers to, comma-separated (empty: the loopback names and "
                                 "the `host` setting; * answers to any, for use behind a proxy that checks Host)."),
    Setting("port", 5000, "Port `qa serve` listens on.", least=0, most=65535),
    Setting("threads", 8, "Questions the web server answers at once (waitress gets threads + queue_limit "
                          "worker threads, so the ones waiting are counted).", least=1),
    Setting("queue_limit", 64, "Questions the web server holds at once, being answered or waiting their turn; one "
                               "more gets 503 with Retry-After: 1.", least=1),
    Setting("question_seconds", 30.0, "Longest a question may search and read (its wait in the queue not "
                                      "counted); a longer one is abandoned with a 503.", least=0.001),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def default(name: str) -> Any:
    return _BY_NAME[name].default
ENV_PREFIX = "FOOTNOTE_"


def load(overrides: dict[str, Any] | None = None, config_file: str | os.PathLike | None = "footnote.toml",
         environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Merge the layers into one plain dict.

    Args:
        overrides: explicit values (CLI flags, a test mapping); None values are ignored.
        config_file: a TOML file of settings, read when it exists.
        environ: the environment to read `FOOTNOTE_<NAME>` from (default os.environ).

    Returns:
        A dict with a value for every declared setting.
    """
    config = {s.name: s.default for s in SETTINGS}
    if config_file and Path(config_file).is_file():
        with open(config_file, "rb") as fh:
            try:
                values = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{config_file} is not valid TOML: {exc}") from exc
        config.update(_checked(values, str(config_file)))
    env = os.environ if environ is None else environ
    for s in SETTINGS:
        raw = env.get(ENV_PREFIX + s.name.upper())
        if raw is not None:
            config[s.name] = _coerce(s, raw)
    config.update(_checked({k: v for k, v in (overrides or {}).items() if v is not None}, "overrides"))
    return config


def _checked(values: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {where}: {', '.join(unknown)}")
    return {k: _coerce(_BY_NAME[k], v) for k, v in values.items()}


def _coerce(setting: Setting, value: Any) -> Any:
    kind = type(setting.default)
    try:
        value = value if isinstance(value, kind) and not isinstance(value, bool) else kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {setting.name!r} wants a {kind.__name__}, got {value!r}") from exc
    if (setting.least is not None and value < setting.least) or (setting.most is not None and value > setting.most):
        span = f"at least {setting.least:g}" if setting.most is None else f"from {setting.least:g} to {setting.most:g}"
        raise ConfigError(f"setting {setting.name!r} must be {span}, got {value!r}")
    return value
