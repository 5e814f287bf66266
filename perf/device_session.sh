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
#   train-kernels  the trainer's variants without the naive recipe: compiled (decoder layers, frozen towers, AdamW
#                  update) with every layer or 23 of 28 recomputed, and Liger Kernel's fused RMSNorm/SwiGLU/RoPE
#                  eager (the configuration refuses Liger with compile) (issue 12)
#   train-cli      `vdpm-harness train gsm` itself at real size (issue 12). The device's 64 GiB disk holds no
#                  checkpoint of the full recipe (bf16 weights 18.3 GB + float32 masters 32.9 GB + bf16 moments
#                  32.9 GB), so: (1) the full recipe (LLM trained) for CLI_RECIPE_SECONDS, killed before any
#                  checkpoint is due; (2) the same model with the LLM frozen (merger and GSM trained; 23 GB a
#                  checkpoint): 6 steps with a checkpoint every 3, uninterrupted; (3) the same command in another
#                  folder, the process group killed with SIGKILL once step 3's checkpoint is complete, then rerun to
#                  the end, then run once more (trained already). CLI_SETS: extra --set options for all of them.
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
    train-kernels) python3 perf/bench_train_gpu.py --skip-naive --variants "${TRAIN_VARIANTS:-ckpt1+compile,ckpt0.82+compile,ckpt1+liger}" \
                     --out /tmp/train3 > "$DEV/train3.log" 2>&1; cp /tmp/train3/report.json "$DEV/train3.json" ;;
    train-cli) python3 perf/bench_train_gpu.py --prepare-only --out /tmp/train > "$DEV/train-cli.log" 2>&1
               common=(--base /tmp/train/gsm-7b-random --train /tmp/train/data --no-progress --set model.random_weights=true
                       --set optimizer.state_dtype=bfloat16 --set batch_size=8 --set pack_tokens=18432 --set data.decode_workers=12
                       ${CLI_SETS:-})
               frozen=(--set 'optimizer.groups={"merger": {"params": ["model.visual.merger."], "lr": 1e-6}, "gsm": {"params": ["model.gsm."], "lr": 1e-6}}'
                       --set 'optimizer.frozen=["model.visual.", "model.gsm.spatial_encoder.", "model.language_model.", "lm_head."]'
                       --set save_every=3 --set keep_checkpoints=1 --max-steps 6)
               echo "$(date +%T) recipe" >> "$DEV/train-cli.log"
               timeout -s KILL "${CLI_RECIPE_SECONDS:-240}" python3 -m vdpm_harness train gsm "${common[@]}" --out /tmp/cli-recipe \
                 --max-steps 100 >> "$DEV/train-cli.log" 2>&1; echo "recipe rc=$?" >> "$DEV/train-cli.log"
               cp /tmp/cli-recipe/metrics.jsonl "$DEV/cli-recipe-metrics.jsonl"; rm -rf /tmp/cli-recipe
               echo "$(date +%T) frozen LLM, uninterrupted" >> "$DEV/train-cli.log"
               python3 -m vdpm_harness train gsm "${common[@]}" "${frozen[@]}" --out /tmp/cli-clean >> "$DEV/train-cli.log" 2>&1
               echo "clean rc=$?" >> "$DEV/train-cli.log"; cp /tmp/cli-clean/metrics.jsonl "$DEV/cli-clean-metrics.jsonl"
               du -sh /tmp/cli-clean/checkpoints/* >> "$DEV/train-cli.log" 2>&1; rm -rf /tmp/cli-clean
               echo "$(date +%T) frozen LLM, killed after step 3's checkpoint" >> "$DEV/train-cli.log"
               setsid python3 -m vdpm_harness train gsm "${common[@]}" "${frozen[@]}" --out /tmp/cli-kill >> "$DEV/train-cli.log" 2>&1 &
               victim=$!
               until [ -f /tmp/cli-kill/checkpoints/step-000003/training.json ] || ! kill -0 $victim 2>/dev/null; do sleep 1; done
               sleep 5; kill -9 -- -$victim; wait $victim; echo "killed rc=$? at $(date +%T)" >> "$DEV/train-cli.log"
               cp /tmp/cli-kill/metrics.jsonl "$DEV/cli-killed-metrics.jsonl"
               for attempt in resumed again; do
                 python3 -m vdpm_harness train gsm "${common[@]}" "${frozen[@]}" --out /tmp/cli-kill >> "$DEV/train-cli.log" 2>&1
                 echo "$attempt rc=$? at $(date +%T)" >> "$DEV/train-cli.log"
               done
               cp /tmp/cli-kill/metrics.jsonl "$DEV/cli-resumed-metrics.jsonl"; ls -la /tmp/cli-kill/* >> "$DEV/train-cli.log" ;;
    *) echo "unknown job $job" >> "$DEV/jobs.txt" ;;
  esac
  echo "$(date +%T) end $job rc=$?" >> "$DEV/jobs.txt"
done
echo done > "$DEV/DONE"
