"""Tune the reader on a SQuAD 2.0 file's own questions, and say what holds on unseen articles.

    .venv/bin/python scripts/reader_folds.py ../shared/eval/squad/squad_v2.0_dev_subset.json \\
        --index /tmp/evalidx --init ~/.cache/footnote/train/reader-KEY.pt [--folds 3] [TRAIN_READER_ARGS]

SQuAD 1.0 train has no unanswerable questions; the public SQuAD 2.0 file's 1,841 are the only
ones written by people, and they may train the reader only inside article-wise
cross-validation. For each fold K of N this runs `scripts/train_reader.py --init CKPT --tune FILE
--tune-fold K/N` (the earlier run's weights tuned on the other folds' questions, answerable and
not), then reads fold K's questions with that model (`reader` setting), as `scripts/calibrate.py`
reads them. The readings of all folds go to one file, every question read by a model that never
saw its article; `scripts/calibrate.py FILE --readings READINGS` then fits and scores the
abstention on them by nested article-wise CV. The model to ship is the same run on every
article (`train_reader.py ... --tune FILE` without `--tune-fold`); its figures on this file are
then in-sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import train_reader
from calibrate import read_questions
from training import CACHE

from qa import load
from qa.eval.evaluate import load_all, open_index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="a SQuAD 2.0 JSON file (public data only)")
    parser.add_argument("--init", required=True, help="the checkpoint of the run to tune (train_reader.py logs it)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--index", default=None, help="reuse or keep the eval index here")
    parser.add_argument("--work", type=Path, default=CACHE / "folds", help="fold models and readings")
    args, train_args = parser.parse_known_args()  # the rest are train_reader.py's
    data = json.loads(args.file.read_text())["data"]
    titles = sorted(a["title"] for a in data)  # as train_reader.tune_articles orders them
    article_of = {qa["id"]: a["title"] for a in data for p in a["paragraphs"] for qa in p["qas"]}
    corpus, config = load_all([str(args.file)]), load(config_file=None)
    records = []
    for k in range(1, args.folds + 1):
        out = args.work / f"fold-{k}-of-{args.folds}"
        code = train_reader.main(["--init", args.init, "--tune", str(args.file), "--tune-fold", f"{k}/{args.folds}",
                                  "--out", str(out), *train_args])
        if code:
            return code
        held = {t for i, t in enumerate(titles) if i % args.folds == k - 1}
        with tempfile.TemporaryDirectory(prefix="footnote-folds-") as tmp:
            pipe = open_index(corpus, {**config, "reader": str(out)}, args.index or tmp)
            records += read_questions(pipe, corpus, [q for q in corpus.questions if article_of[q.id] in held])
        print(f"fold {k}/{args.folds}: {sorted(held)} read with {out}", file=sys.stderr, flush=True)
    path = args.work / f"readings-{args.file.stem}-{args.folds}-folds.json"
    path.write_text(json.dumps(records))
    print(f"wrote {path}: scripts/calibrate.py {args.file} --readings {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
