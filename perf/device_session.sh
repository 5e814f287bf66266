#!/usr/bin/env bash
# The GPU measurements of one device session, in one go (start it detached: setsid nohup bash perf/device_session.sh
# JOB... &, then poll $DEV). Installs the carried wheels (WHL, default .whl) and this tree without touching the
# image's packages, then runs each named job in order; every job writes its log and JSON report into $DEV.
#   gsm     perf/bench_gsm_gpu.py: random-weight GSM 7B against the plain 7B on the same DSR-shaped samples (issue 11)
#   prefix  perf/bench_dsr_gpu.py: shared against unshared prompt prefixes, 2.58 questions a video, a profile of the
#           shared path, a restart and the naive loop (issue 16)
#   train   perf/bench_train_gpu.py: the naive training recipe against the trainer's variants (TRAIN_VARIANTS),
#           real-size GSM 7B (issue 12)
#   gsm-shared     the GSM with and without shared prefixes against the plain model with them (issues 11, 16)
#   margins        shared against unshared prefixes at the first token: differing tokens and their margins (issue 16)
#   train-profile  the trainer's variants with one profiled step and the optimizer's time (issue 12)
#   train-cli      `vdpm-harness train gsm` itself at real size: 6 steps, checkpoints every 3, then the same command
#                  again (issue 12)
set -u
DEV=${DEV:-/tmp/dev}
WHL=${WHL:-.whl}
mkdir -p "$DEV"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl \
  > "$DEV/install.log" 2>&1
PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/pkg . \
  >> "$DEV/install.log" 2>&1
export PYTHONPATH=/tmp/pkg:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$DEV/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  >> "$DEV/gpu.txt" 2>&1
for job in "$@"; do
  echo "$(date +%T) start $job" >> "$DEV/jobs.txt"
  case "$job" in
    gsm) python3 perf/bench_gsm_gpu.py --samples 64 --videos 16 --batch-size 8 --workers 12 --video-dir /tmp/videos-gsm --out /tmp/gsm \
           > "$DEV/gsm.log" 2>&1; cp /tmp/gsm/bench_gsm_gpu.json "$DEV/bench_gsm_gpu_h200.json" ;;
    prefix) python3 perf/bench_dsr_gpu.py --samples 130 --questions-per-video 2.58 --durations 10,60 --batch-size 8 \
              --workers 12 --paths warmup,unshared,shared,profile,restart,naive --naive-samples 12 --video-dir /tmp/videos-16 \
              --out /tmp/issue16 \
              > "$DEV/prefix.log" 2>&1; cp /tmp/issue16/bench_dsr_gpu.json "$DEV/bench_dsr_gpu_h200_issue16.json"
            cp /tmp/issue16/bench_dsr_gpu_profile.json "$DEV/" ;;
    train) python3 perf/bench_train_gpu.py --variants "${TRAIN_VARIANTS:-ckpt1,ckpt1+compile}" --out /tmp/train \
             > "$DEV/train.log" 2>&1; cp /tmp/train/*.json "$DEV/" ;;
    gsm-shared) python3 perf/bench_gsm_gpu.py --samples 64 --videos 25 --durations 10,60 --batch-size 8 --workers 12 \
                  --models qwen25vl,qwen25vl-gsm,qwen25vl-gsm:unshared --video-dir /tmp/videos-s2 --out /tmp/gsm2 \
                  > "$DEV/gsm2.log" 2>&1; cp /tmp/gsm2/bench_gsm_gpu.json "$DEV/bench_gsm_gpu_h200_shared.json" ;;
    margins) python3 perf/bench_dsr_gpu.py --samples 64 --videos 25 --durations 10,60 --batch-size 8 \
               --paths margins,margins-gsm --margin-samples 48 --video-dir /tmp/videos-s2 --out /tmp/margins \
               > "$DEV/margins.log" 2>&1; cp /tmp/margins/bench_dsr_gpu_margins.json "$DEV/" ;;
    train-profile) python3 perf/bench_train_gpu.py --skip-naive --variants "${TRAIN_VARIANTS:-ckpt1,ckpt0.75}" \
                     --profile --out /tmp/train2 > "$DEV/train2.log" 2>&1; cp /tmp/train2/report.json "$DEV/train2.json" ;;
    train-cli) python3 perf/bench_train_gpu.py --prepare-only --out /tmp/train > "$DEV/train-cli.log" 2>&1
               for attempt in first again; do  # the second run of the same command finds the run finished
                 python3 -m vdpm_harness train gsm --base /tmp/train/gsm-7b-random --train /tmp/train/data \
                   --out /tmp/train-cli --max-steps 6 --no-progress --set model.random_weights=true \
                   --set optimizer.state_dtype=bfloat16 --set save_every=3 --set compile=true \
                   >> "$DEV/train-cli.log" 2>&1; echo "$attempt rc=$?" >> "$DEV/train-cli.log"
               done
               cp /tmp/train-cli/metrics.jsonl "$DEV/train-cli-metrics.jsonl"; ls -la /tmp/train-cli/* >> "$DEV/train-cli.log" ;;
    *) echo "unknown job $job" >> "$DEV/jobs.txt" ;;
  esac
  echo "$(date +%T) end $job rc=$?" >> "$DEV/jobs.txt"
done
echo done > "$DEV/DONE"
