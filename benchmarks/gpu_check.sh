#!/usr/bin/env bash
# GPU verification, run on a bare CUDA machine from the repository root:
#   bash benchmarks/gpu_check.sh            (writes gpu_check.md/json to $OUT or ./gpu_check_out)
# The machine is expected to have python3 with torch, transformers and nvidia-ml-py; anything
# else the harness's telemetry + decode loop needs (pydantic) travels as wheels in .whl/:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d .whl pydantic pydantic-core annotated-types typing-inspection
set -euo pipefail
OUT="${OUT:-gpu_check_out}"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader || true
python3 benchmarks/gpu_check.py --out "$OUT" "$@"
# the decode loop against generate (issue 17): harness eager / compiled (CUDA graphs) / generate, batch 1 and 32
python3 benchmarks/gpu_decode_speed.py --out "$OUT"
