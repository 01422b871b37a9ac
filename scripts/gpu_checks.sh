#!/usr/bin/env bash
# The GPU checks of issue #8, for a session lent an NVIDIA GPU (the `device` tool runs this
# from the repo root): the cuDNN-vs-XLA attention test, then `launch.bench --suite=gpu`.
# Results go to $OUT (default ./gpu_results); copy the table into docs/benchmarks.md with
# the date.
#
# The device image has jax, flax, optax, orbax, absl and pytest but no network; the only
# other package these checks import is ml_collections. Before calling the device, put its
# wheel in the working tree (untracked files travel with it):
#   pip download ml-collections==1.1.0 --no-deps -d gpu_wheels
set -uo pipefail
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
if ! python3 -c "import ml_collections" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps gpu_wheels/*.whl > "$OUT/install.txt" 2>&1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee "$OUT/jax.txt"
# tests/conftest.py defaults JAX to the CPU; point it at the GPU for the cuDNN test.
JAX_PLATFORMS=cuda timeout 300 python3 -m pytest -q -p no:cacheprovider \
  tests/models/test_attention_impl.py -k cudnn_matches 2>&1 | tail -5 | tee "$OUT/attention_tests.txt"
timeout 900 python3 -m launch.bench --suite=gpu --steps=10 --out="$OUT/gpu_bench.json" 2>&1 \
  | grep -v "^I[0-9]" | tee "$OUT/gpu_bench.md"
