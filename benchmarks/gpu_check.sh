#!/usr/bin/env bash
# On a machine with a CUDA GPU: the device-parametrised tests on CUDA, then the speed harness on it.
# Run from the repository root after `make setup` (with a CUDA build of torch 2.13):
#   bash benchmarks/gpu_check.sh [--official-remimo PATH]
# Writes results/speed-cuda.json and results/speed-cuda.md; about five minutes on one modern GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_precision.py tests/test_gnn.py \
    tests/test_remimo.py -k "cuda or not device"
cd benchmarks
"$PYTHON" speed.py --device cuda --precisions fp32,bf16,fp16 --sections peak,remimo,sweep,small,compile \
    --paper-batch 200 --json ../results/speed-cuda.json --markdown ../results/speed-cuda.md "$@"
