"""What the training scripts share: where data and checkpoints live, the article split, and a
checkpoint that makes a run bounded in time and resumable.

A run is cut short by `--max-minutes` or by the machine; the checkpoint (saved atomically every
few minutes outside the repository) lets the same command carry on where it stopped, with the
time already spent counted against the bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "train" / "squad_v1.0_train.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "footnote" / "train"
# arguments that do not change what is trained: a run resumed with other values is the same run
NOT_THE_RUN = ("max_minutes", "out", "cache", "checkpoint_minutes", "stop_after")


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def parse(ap: argparse.ArgumentParser, argv: list[str] | None, max_minutes: float, lr: float) -> argparse.Namespace:
    """The script's own arguments (already on `ap`) and those of every training run."""
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=max_minutes,
                    help="wall-time bound on training (resumes count)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop after this many steps as if cut short, keeping the checkpoint (to test resuming)")
    ap.add_argument("--checkpoint-minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    return ap.parse_args(argv)


def padded(group: list[dict]) -> dict:
    """Model inputs for a batch of encoded examples (`ids`, `types`), padded to its longest."""
    import torch

    width = max(len(g["ids"]) for g in group)
    ids = torch.zeros((len(group), width), dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for r, g in enumerate(group):
        ids[r, :len(g["ids"])] = torch.tensor(g["ids"])
        types[r, :len(g["ids"])] = torch.tensor(g["types"])
        mask[r, :len(g["ids"])] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def epochs(plan: list[list[int]], args: argparse.Namespace) -> list[list[int]]:
    """The batches of the whole run: `plan` (one epoch) repeated for `--epochs`, cut at `--max-steps`."""
    total = int(len(plan) * args.epochs)
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    return (plan * math.ceil(args.epochs))[:total]


def linear_schedule(opt, total: int):
    """The learning rate warms up over the first 5% of the steps, then falls linearly to 0."""
    import torch

    warm = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))


def run_steps(ckpt: Checkpoint, args: argparse.Namespace, examples: list[dict], plan: list[list[int]],
          loss_of: Callable[[list[dict]], Any], what: str) -> int | None:
    """Train the checkpoint's model on `plan` (batches of indexes into `examples`) from where the
    checkpoint left off: `loss_of(batch)` is the loss, gradients are clipped to norm 1, a line is
    logged every 100 steps and the checkpoint saved every few minutes.

    Returns:
        The step reached (saved), at the end of the plan or at `--max-minutes`; None when
        `--stop-after` stopped the run as if cut short, its checkpoint kept for resuming.
    """
    import numpy as np
    import torch

    total = len(plan)
    step = ckpt.resume(total)
    ckpt.model.train()
    log(f"training {total} steps of {args.batch} {what}")
    losses: list[float] = []
    while step < total:
        if ckpt.out_of_time(args.max_minutes):
            log(f"--max-minutes reached at step {step}/{total}; stopping training there")
            break
        loss = loss_of([examples[i] for i in plan[step]])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ckpt.model.parameters(), 1.0)
        ckpt.opt.step()
        ckpt.sched.step()
        ckpt.opt.zero_grad()
        step += 1
        losses.append(loss.item())
        if step % 100 == 0 or step == total:
            log(f"step {step}/{total} loss {np.mean(losses[-100:]):.3f}")
        ckpt.maybe_save(step)
        if args.stop_after is not None and step >= args.stop_after:
            ckpt.save(step)
            log(f"stopped at step {step}/{total} (--stop-after); run again without it to resume")
            return None
    ckpt.save(step)
    log(f"checkpoint {ckpt.path} at step {step}/{total} (a second stage may start from it: --init)")
    return step


def begin_run(args: argparse.Namespace) -> tuple[list[dict], str] | None:
    """Begin a run: torch's threads and seed set, and the training file's articles with its
    sha256 (which keys the checkpoint and goes in the model card). None, with the error printed,
    when the file is missing: it is read in place, never copied into the repository."""
    if not args.data.is_file():
        print(f"error: training data not found at {args.data} (SQuAD 1.0 train, read in place)", file=sys.stderr)
        return None
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    raw = args.data.read_bytes()
    return json.loads(raw)["data"], hashlib.sha256(raw).hexdigest()


def split_articles(articles: list[dict], validation: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(validation, training) articles, split before anything is built from them."""
    order = list(range(len(articles)))
    rng.shuffle(order)
    return [articles[i] for i in order[:validation]], [articles[i] for i in order[validation:]]


class Checkpoint:
    """Model, optimiser and schedule state of one run, keyed by the arguments and the data."""

    def __init__(self, path: Path, model, opt, sched, every_minutes: float, began: float | None = None) -> None:
        self.path, self.model, self.opt, self.sched = path, model, opt, sched
        self.every = every_minutes * 60
        self.began = time.monotonic() if began is None else began  # what the time bound counts from
        self.last = time.monotonic()
        self.spent = 0.0  # seconds of earlier, cut-short runs
        self.key = path.stem.rsplit("-", 1)[-1]

    @classmethod
    def of(cls, args: argparse.Namespace, data_sha: str, name: str, model, opt, sched,
           began: float | None = None) -> Checkpoint:
        """The checkpoint of this run: `name`, then a key of the arguments that change what is
        trained and of the data; `began` (monotonic) is what `--max-minutes` counts from (now)."""
        same = {k: str(v) for k, v in vars(args).items() if k not in NOT_THE_RUN}
        key = hashlib.sha256(json.dumps(same, sort_keys=True).encode() + data_sha.encode()).hexdigest()[:12]
        return cls(args.cache / f"{name}-{key}.pt", model, opt, sched, args.checkpoint_minutes, began)

    def resume(self, total: int) -> int:
        """Load the saved state when there is one; the step to carry on from."""
        import torch

        if not self.path.is_file():
            return 0
        state = torch.load(self.path, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.spent = state["spent"]
        log(f"resumed from {self.path} at step {state['step']}/{total}")
        return state["step"]

    def minutes(self) -> float:
        """Training time so far, earlier runs included."""
        return (self.spent + time.monotonic() - self.began) / 60

    def out_of_time(self, max_minutes: float) -> bool:
        return self.minutes() > max_minutes

    def save(self, step: int) -> None:
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                    "step": step, "spent": self.spent + time.monotonic() - self.began}, tmp)
        tmp.replace(self.path)  # atomic: a kill mid-save leaves the previous checkpoint
        self.last = time.monotonic()

    def maybe_save(self, step: int) -> None:
        if time.monotonic() - self.last > self.every:
            self.save(step)
