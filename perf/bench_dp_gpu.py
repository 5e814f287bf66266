"""Data-parallel evaluation on every GPU of one machine against one GPU, on the same DSR-shaped samples.

Runs the real command line (``python -m vdpm_harness run`` on one GPU, ``torchrun --standalone --nproc_per_node=N
-m vdpm_harness run`` on N) with a randomly initialised Qwen2.5-VL-7B over the synthetic DSR-Bench table of
``bench_dsr_gpu.py``, then:

* checks that the merged predictions of the N-GPU run equal the single-GPU ones (greedy decoding; chunks are claimed
  in multiples of the batch size, so batches hold the same samples either way);
* kills one rank with SIGKILL in the middle of an N-GPU run, resumes on one GPU, and checks that every sample is
  stored exactly once and nothing was lost;
* reports the scaling efficiency: throughput on N GPUs / (N x throughput on one GPU), end to end and in steady state
  (first to last stored prediction).

    python perf/bench_dp_gpu.py --samples 160 --videos 40 --out results-dp
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dsr_gpu import bench_args, make_videos, write_dsr_table  # noqa: E402

from vdpm_harness.records import FramePolicy  # noqa: E402
from vdpm_harness.store import PredictionStore  # noqa: E402


def run_command(model_dir: Path, video_dir: Path, out: Path, batch_size: int, workers: int, max_new_tokens: int):
    policy = FramePolicy(nframes=32, max_pixels=768 * 28 * 28, size_multiple=28)
    args = ["run", "--model", "qwen25vl", "--bench", "dsr", "--out", str(out), "--decode-workers", str(workers)]
    for value in (f"path={model_dir}", "random_weights=true", "dtype=bfloat16", f"batch_size={batch_size}"):
        args += ["--model-arg", value]
    for value in bench_args(video_dir, policy, max_new_tokens):
        args += ["--bench-arg", value]
    return args


def launch(gpus: int, args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1")
    if gpus == 1:
        env["CUDA_VISIBLE_DEVICES"] = "0"
        command = [sys.executable, "-m", "vdpm_harness", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                   "-m", "vdpm_harness", *args]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def pair_folder(out: Path) -> Path:
    return next(out.glob("*/dsr"))


def stored(out: Path) -> dict:
    return {p.sample_id: p for p in PredictionStore(pair_folder(out)).load().values()}


def steady_rate(predictions) -> float:
    times = sorted(datetime.fromisoformat(p.created).timestamp() for p in predictions)
    return (len(times) - 1) / max(times[-1] - times[0], 1.0)


def timed_run(gpus: int, args: list[str], log: Path) -> float:
    start = time.perf_counter()
    proc = launch(gpus, args, log)
    if proc.wait() != 0:
        raise RuntimeError(f"{gpus}-GPU run failed; see {log}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=None, help="default: every visible GPU")
    parser.add_argument("--samples", type=int, default=160)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--video-dir", type=Path, default=Path("/tmp/dsr-bench-videos"))
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/qwen25vl-7b-random"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=12, help="decode workers per GPU")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("results-dp"))
    args = parser.parse_args(argv)

    import torch

    gpus = args.gpus or torch.cuda.device_count()
    args.out.mkdir(parents=True, exist_ok=True)
    videos = make_videos(args.video_dir, args.videos, seed=7, workers=os.cpu_count() or 4)
    write_dsr_table(args.video_dir, videos, args.samples)
    if not (args.model_dir / "config.json").exists():
        from vdpm_harness_plugins.models.qwen25vl.checkpoints import make_random

        make_random(args.model_dir, "7b")
    report = {"gpu": torch.cuda.get_device_name(0), "gpus": gpus, "samples": args.samples, "torch": torch.__version__}

    def command(out: Path, gpus_used: int):
        return run_command(args.model_dir, args.video_dir, out, args.batch_size, max(args.workers, 1),
                           args.max_new_tokens)  # fmt: skip

    one, many, killed = args.out / "one-gpu", args.out / f"{gpus}-gpu", args.out / "killed"
    wall_one = timed_run(1, command(one, 1), args.out / "one-gpu.log")
    print(f"1 GPU: {wall_one:.1f} s", flush=True)
    wall_many = timed_run(gpus, command(many, gpus), args.out / f"{gpus}-gpu.log")
    print(f"{gpus} GPUs: {wall_many:.1f} s", flush=True)
    a, b = stored(one), stored(many)
    report["one_gpu"] = {"wall_s": wall_one, "steady_samples_per_s": steady_rate(a.values())}
    report["many_gpu"] = {"wall_s": wall_many, "steady_samples_per_s": steady_rate(b.values())}
    report["scaling_efficiency_end_to_end"] = wall_one / (gpus * wall_many)
    report["scaling_efficiency_steady"] = report["many_gpu"]["steady_samples_per_s"] / (
        gpus * report["one_gpu"]["steady_samples_per_s"]
    )
    report["predictions_equal"] = {k: p.response for k, p in a.items()} == {k: p.response for k, p in b.items()}
    report["n_one"], report["n_many"] = len(a), len(b)
    report["rank_shards"] = sorted(p.name for p in pair_folder(many).glob("predictions*.jsonl"))

    # kill one rank mid-run, then resume on one GPU
    proc = launch(gpus, command(killed, gpus), args.out / "killed.log")
    deadline = time.time() + 900
    while time.time() < deadline:
        folders = list(killed.glob("*/dsr"))
        done = sum(len(p.read_text().splitlines()) for p in folders[0].glob("predictions*.jsonl")) if folders else 0
        if done >= args.samples // 3:
            break
        time.sleep(0.5)
    workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "vdpm_harness"], capture_output=True, text=True)
    victim = int(workers.stdout.split()[-1])
    os.kill(victim, signal.SIGKILL)
    proc.wait(timeout=300)
    before = stored(killed)
    wall_resume = timed_run(1, command(killed, 1), args.out / "resume.log")
    after = stored(killed)
    lines = [json.loads(x) for p in pair_folder(killed).glob("predictions*.jsonl") for x in p.read_text().splitlines()]
    ok_keys = [x["key"] for x in lines if x["status"] == "ok"]
    report["kill_resume"] = {
        "killed_pid": victim, "stored_before_resume": len(before), "stored_after": len(after),
        "ok_records": len(ok_keys), "unique_ok_keys": len(set(ok_keys)), "resume_wall_s": wall_resume,
        "equal_to_one_gpu": {k: p.response for k, p in after.items()} == {k: p.response for k, p in a.items()},
    }  # fmt: skip
    (args.out / "bench_dp_gpu.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
