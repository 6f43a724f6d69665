#!/usr/bin/env bash
# One prepared run for a GPU machine (issue 25; chapter 11): installs jax's CUDA build next to the CPU one, then
# measures every online algorithm's `paper` preset from states (updates/s, GFLOP per update) and CSIL++ from
# 84 x 84 pixels (encoders, updates/s, env steps/s with rendering), storing both under book/_artefacts/ch11/ with the
# device named in the files. About 5 minutes on one H100. Usage, from the repository root with .venv installed:
#
#     bash scripts/gpu_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JAX_VERSION=$($PY -c "import jax; print(jax.__version__)")
$PY -m pip install -q "jax[cuda12]==${JAX_VERSION}"
$PY -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', d; print('device:', d.device_kind)"
mkdir -p book/_artefacts/ch11
$PY benchmarks/learner_throughput.py --paper --rounds 5 --updates 20 --out book/_artefacts/ch11/gpu_paper.json
$PY benchmarks/pixels_throughput.py --sizes 84 --batch 128 --rounds 5 --out book/_artefacts/ch11/gpu_pixels.json
