# Two entry points for a fresh machine (see README):
#   make demo   set up .venv (idempotent) and run the default evaluation
#   make test   set up .venv (idempotent) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so the ranges below install nothing more
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,sionna,sdr]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/gnnmimo evaluate --detector zf --detector mmse --detector vblast --detector oamp \
	    --detector ep --detector kbest:k=32 --checkpoint epgnn-nr8-nt4-8-qam16 \
	    --nr 8 --nt 4,8 --qam 16 --channel iid --snr 8:3:26 \
	    --target-errors 300 --max-symbols 200000 --seed 0 \
	    --json results/demo.json --markdown results/demo.md --plot results/demo.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
