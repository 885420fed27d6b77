# Two entry points for a fresh machine (see README):
#   make demo   set up .venv (idempotent) and run the default evaluation
#   make test   set up .venv (idempotent) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test bench leaderboard

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so the ranges below install nothing more
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,sionna,sdr]'
	rm -f $(VENV)/.installed-* && touch $@

# the shipped checkpoints beside the classical detectors, each on the system it was trained for,
# every detector paired with EP on the same instances (zoo/pretrained/*.md; README "Two commands")
DEMO := --paired-with ep --target-errors 500 --max-symbols 32000 --batch-size 500 --seed 0 --overwrite

demo: $(STAMP)
	$(BIN)/gnnmimo evaluate --detector mmse --detector vblast --detector ep --detector kbest:k=32 \
	    --checkpoint epgnn-nr8-nt4-8-qam16 --checkpoint ep-transformer-nr8-nt4-8-qam16 \
	    --nr 8 --nt 8 --qam 16 --snr 17:2:23 $(DEMO) \
	    --json results/demo-8x8.json --markdown results/demo-8x8.md --plot results/demo-8x8.png
	$(BIN)/gnnmimo evaluate --detector mmse --detector oamp --detector ep \
	    --checkpoint ampgnn-nr16-nt4-8-qam16 --checkpoint oamp-gnn-nr16-nt4-8-qam16 \
	    --checkpoint oampnet-nr16-nt4-8-qam16 --checkpoint remimo-nr16-nt4-8-qam16 \
	    --nr 16 --nt 8 --qam 16 --snr 12:1:15 $(DEMO) \
	    --json results/demo-16x8.json --markdown results/demo-16x8.md --plot results/demo-16x8.png
	$(BIN)/gnnmimo evaluate --detector mmse --detector ep --checkpoint remimo-nr16-nt4-8-qam4 \
	    --nr 16 --nt 8 --qam 4 --snr 4:2:10 $(DEMO) \
	    --json results/demo-16x8-qam4.json --markdown results/demo-16x8-qam4.md --plot results/demo-16x8-qam4.png

# docs/leaderboard.{md,json}: re-measures the configurations whose checkpoints changed (README "Leaderboard")
leaderboard: $(STAMP)
	$(BIN)/gnnmimo leaderboard --threads 1

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
