#!/usr/bin/env bash
# The GPU checks of issue #8, for a session lent an NVIDIA GPU (run from the repo root):
# the cuDNN-vs-XLA attention test, then `launch.bench --suite=gpu`. Results go to $OUT
# (default ./gpu_results); copy the table into docs/benchmarks.md with the date.
set -uo pipefail
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import jax; print(jax.__version__, jax.devices())" | tee "$OUT/jax.txt"
pip install -q --no-deps -e . > "$OUT/install.txt" 2>&1
python -m pytest -q tests/models/test_attention_impl.py 2>&1 | tail -5 | tee "$OUT/attention_tests.txt"
python -m launch.bench --suite=gpu --steps=10 --out="$OUT/gpu_bench.json" 2>&1 \
  | grep -v "^I[0-9]" | tee "$OUT/gpu_bench.md"
