#!/usr/bin/env bash
# The issue-5 GPU measurements in one go on the device machine (Python 3.12 image with torch; wheels carried in
# .whl/): install, a short profile of the model parts, then the DSR-Bench-shaped benchmark. Writes to $1.
set -u
OUTDIR=${1:-/tmp/issue5}
mkdir -p "$OUTDIR"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/pkg .
export PYTHONPATH=/tmp/pkg:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUTDIR/gpu.txt"
python3 perf/profile_qwen_gpu.py --out "$OUTDIR/profile" --skip preprocess,vision,identity,generate,profile,sdpa_backends \
  > "$OUTDIR/profile.log" 2>&1
python3 perf/bench_dsr_gpu.py --samples 200 --videos 30 --batch-size 8 --workers 12 --identity-samples 24 \
  --out "$OUTDIR/bench" > "$OUTDIR/bench.log" 2>&1
echo done > "$OUTDIR/DONE"
