"""The GSM's cost on one GPU: ``qwen25vl-gsm`` (random-weight GSM 7B) against ``qwen25vl`` (random-weight 7B) on the
same DSR-Bench-shaped samples, in one run, through the harness's own pipeline.

Workload: the one of ``perf/bench_dsr_gpu.py`` (synthetic 1280x720 H.264 videos of 20-120 s, 32 frames each at the
official pixel setting, at most 768*28*28 pixels per frame, i.e. 1008x560; the DSR prompt; a short answer), bf16, both
models at the plugins' defaults (fast path on: batched vision attention, compiled blocks, the GSM's Pi3 encoder blocks
compiled too) and the same batch size. Both models are built from ``vdpm-harness models make-random DIR --config 7b``
(``--gsm`` for the GSM) with ``random_weights=true``: a random model of the real size costs the time a trained one does.

Reported, per model: samples/s over the run and in the steady state (after the first batch, which pays compilation),
peak GPU memory, GPU busy fraction; and the GSM's extra cost against its analytic FLOPs:

* time: ``gsm seconds per sample / plain seconds per sample - 1`` (steady state);
* FLOPs: the GSM's own work per sample (the Pi3 ViT-L over the 32 frames' patches, the spatial merger over the merged
  tokens, two Q-Former layers over the text and the geometry features, and the 32 extra tokens in the language model)
  over the plain model's (:func:`bench_dsr_gpu.model_flops`), the *FLOP share*. The target: extra time <= FLOP share.

The GSM's parts are also timed alone on one batch (synchronised wall clock, median of 3 after a warm-up): encoder
(from the processor's patches), merger, Q-Formers, with their achieved TFLOP/s.

    python perf/bench_gsm_gpu.py --samples 64 --videos 16 --out results-gsm
    python perf/bench_gsm_gpu.py --smoke          # a CPU check of the script: tiny models, small videos, fp32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dsr_gpu import (  # noqa: E402 - the DSR-shaped workload and measurements of issue 5
    H100_BF16_PEAK,
    H200_BF16_PEAK,
    bench_args,
    harness,
    make_videos,
    model_flops,
    question_counts,
    write_dsr_table,
)

#: Tokens of the DSR prompt the first Q-Former reads (system turn, question, options), for the FLOP count.
QFORMER_TEXT_TOKENS = 110


# --- analytic FLOPs ---------------------------------------------------------------------------------------------------


def gsm_flops(config, frames: int, height_patches: int, width_patches: int, text_tokens: int) -> dict[str, float]:
    """Forward FLOPs of the GSM for one request with one video of ``frames`` frames of ``height_patches`` x
    ``width_patches`` patches (2 per multiply-add), by part."""
    from vdpm_harness_plugins.models.qwen25vl.gsm.settings import GSMSettings

    settings = GSMSettings.from_config(config)
    encoder = settings.encoder_config()
    text = config.text_config
    width, layers = encoder.hidden_size, encoder.num_hidden_layers
    mlp = int(width * encoder.mlp_ratio)
    patches = height_patches * width_patches
    tokens = patches + 1 + encoder.num_register_tokens
    per_frame = layers * (2 * tokens * (4 * width * width + 2 * width * mlp) + 4 * tokens * tokens * width)
    per_frame += 2 * patches * 3 * encoder.patch_size**2 * width  # patch embedding
    units = config.vision_config.temporal_patch_size * config.vision_config.spatial_merge_size**2  # 2 x 2 x 2
    merged = frames * patches // units  # one merged token per 2 frames x 2x2 patches (``GSM.regroup``)
    merger_in = units * width
    hidden, inter = text.hidden_size, text.intermediate_size
    kv = text.num_key_value_heads * (hidden // text.num_attention_heads)
    queries = settings.num_queries

    def qformer(keys: int) -> float:
        projections = 2 * queries * hidden * hidden * 2 + 2 * keys * hidden * kv * 2  # q, o; k, v
        return projections + 4 * queries * keys * hidden + 2 * queries * 3 * hidden * inter

    lm_params = text.num_hidden_layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter)
    return {
        "encoder": frames * per_frame,
        "merger": 2 * merged * (merger_in * merger_in + merger_in * hidden),
        "q_formers": qformer(text_tokens) + qformer(merged),
        "extra_tokens": 2 * lm_params * queries,
    }


# --- the harness runs -------------------------------------------------------------------------------------------------


def run_model(entry: str, dirs: dict[str, Path], dsr_args: tuple[str, ...], *, batch_size: int, workers: int,
              out: Path, device: str, dtype: str, random_weights: bool) -> dict:  # fmt: skip
    """One ``--models`` entry (``MODEL`` or ``MODEL:unshared``) through the harness's pipeline
    (:func:`bench_dsr_gpu.harness`, which also counts the prefills and refuses a run with failed samples)."""
    model, _, mode = entry.partition(":")
    if mode not in ("", "shared", "unshared"):
        raise SystemExit(f"unknown mode {mode!r} in --models entry {entry!r}: expected MODEL[:shared|:unshared]")
    run = harness(dirs[model], dsr_args, batch_size, workers, out, device, dtype, share_prefix=mode != "unshared",
                  name=mode or "shared", model=model, random_weights=random_weights)  # fmt: skip
    n = run["n"]
    return {"model": model, "share_prefix": mode != "unshared", "samples": n, "errors": run["errors"],
            "wall_s": run["wall"], "samples_per_s": n / run["wall"], "steady_samples_per_s": run["steady_rate"],
            "first_batch_s": run["first_batch_s"], "gpu_busy": run["busy"], "peak_mem_gib": run["peak_mem"] / 2**30,
            "prefills": run["prefills"], "prompt_tokens": run["prompt_tokens"] / max(n, 1)}  # fmt: skip


# --- the GSM's parts alone --------------------------------------------------------------------------------------------


def time_parts(model_dir: Path, video_dir: Path, policy, batch_size: int, device: str, dtype: str,
               random_weights: bool, repeats: int = 3, compiled: bool = False,
               profile_to: Path | None = None) -> dict:  # fmt: skip
    """The GSM's encoder (frames -> features), merger and Q-Formers timed alone on ``batch_size`` videos."""
    import torch

    from vdpm_harness.video import decode
    from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_processor
    from vdpm_harness_plugins.models.qwen25vl.gsm.checkpoints import load_model

    model, _ = load_model(str(model_dir), random_weights=random_weights, dtype=dtype, device=device,
                          attn_implementation="sdpa")  # fmt: skip
    gsm = model.gsm
    processor = load_processor(str(model_dir))
    videos = sorted(video_dir.glob("clip_*.mp4"))[:batch_size]
    decoded = [decode(str(v), policy) for v in videos]
    out = processor.video_processor(videos=[d.frames for d in decoded], do_sample_frames=False, return_tensors="pt",
                                    size={"shortest_edge": 28 * 28, "longest_edge": policy.max_pixels})  # fmt: skip
    pixels, grid = out["pixel_values_videos"].to(device), out["video_grid_thw"].to(device)
    cuda = device.startswith("cuda")

    def timed(fn):
        results = []
        for _ in range(repeats + 1):  # the first call warms up
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            value = fn()
            if cuda:
                torch.cuda.synchronize()
            results.append(time.perf_counter() - start)
        return value, float(np.median(results[1:]))

    if compiled:  # what the plugin compiles on CUDA (``Qwen25VLGSM._compile``): the encoder's blocks
        from vdpm_harness_plugins.models.qwen25vl import speed

        for layer in gsm.spatial_encoder.encoder.layer:
            speed.compile_for_prefill(layer)
    with torch.no_grad():
        features, encoder_s = timed(lambda: gsm.encode(gsm.frames(pixels, grid)))
        families = None
        if profile_to is not None:  # one more encoder call under the profiler: where its GPU time goes
            import trace_gaps
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=activities) as profiler:
                gsm.encode(gsm.frames(pixels, grid))
                if cuda:
                    torch.cuda.synchronize()
            profiler.export_chrome_trace(str(profile_to))
            families = trace_gaps.kernel_families(profile_to)
        merged_inputs = gsm.regroup(features, grid)
        stacked = torch.cat(merged_inputs)
        merged, merger_s = timed(lambda: gsm.spatial_merger(stacked))
        geometry = list(merged.split([m.shape[0] for m in merged_inputs]))
        positions = [gsm.positions(g, 1.0) for g in grid.tolist()]
        hidden = model.config.text_config.hidden_size
        text = [torch.randn(QFORMER_TEXT_TOKENS, hidden, device=device, dtype=merged.dtype) for _ in geometry]
        _, qformer_s = timed(lambda: gsm(text, geometry, positions))
    t, h, w = grid[0].tolist()
    flops = gsm_flops(model.config, 2 * t, h, w, QFORMER_TEXT_TOKENS)
    n = len(videos)
    del model
    if cuda:
        torch.cuda.empty_cache()
    parts = {"encoder": (encoder_s, flops["encoder"]), "merger": (merger_s, flops["merger"]),
             "q_formers": (qformer_s, flops["q_formers"])}  # fmt: skip
    timings = {name: {"ms_per_sample": 1e3 * s / n, "tflops": f * n / s / 1e12} for name, (s, f) in parts.items()}
    if families is not None:
        timings["encoder"]["kernel_families"] = families
    return timings


# --- main -------------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--durations", default="20,120", help="shortest,longest video in seconds (uniform between)")
    parser.add_argument("--video-dir", type=Path, default=Path("/tmp/dsr-bench-videos"))
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/qwen25vl-7b-random"))
    parser.add_argument("--gsm-dir", type=Path, default=Path("/tmp/qwen25vl-gsm-7b-random"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=12, help="decode worker processes")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument(
        "--models",
        default="qwen25vl,qwen25vl-gsm",
        help="which models to run, in order: MODEL[:unshared] (shared prompt prefixes by default)",
    )
    parser.add_argument("--out", type=Path, default=Path("results-gsm"))
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak (default: by GPU name)")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny models, small videos")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoConfig

    from vdpm_harness.records import FramePolicy
    from vdpm_harness.video import target_size

    args.out.mkdir(parents=True, exist_ok=True)
    device, dtype = ("cpu", "float32") if args.smoke else ("cuda", "bfloat16")
    random_weights = not args.smoke  # the tiny smoke models carry their weights
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke test)"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (H200_BF16_PEAK if "H200" in gpu else H100_BF16_PEAK)
    shortest, longest = (float(x) for x in args.durations.split(","))
    size = (320, 180, 2, 4) if args.smoke else (1280, 720, shortest, longest)
    t0 = time.perf_counter()
    videos = make_videos(args.video_dir, args.videos, seed=7, workers=os.cpu_count() or 4, size=size)
    print(f"videos ready in {time.perf_counter() - t0:.1f} s", flush=True)
    dirs = {"qwen25vl": args.model_dir, "qwen25vl-gsm": args.gsm_dir}
    for model_id, folder in dirs.items():
        if (folder / "config.json").exists():
            continue
        if model_id == "qwen25vl":
            from vdpm_harness_plugins.models.qwen25vl.checkpoints import make_random, make_tiny
        else:
            from vdpm_harness_plugins.models.qwen25vl.gsm.checkpoints import make_random, make_tiny
        if args.smoke:
            make_tiny(folder)
        else:
            make_random(folder, "7b")
    write_dsr_table(args.video_dir, videos, question_counts(args.samples, len(videos)))
    pixels = 64 * 28 * 28 if args.smoke else 768 * 28 * 28
    policy = FramePolicy(nframes=32, max_pixels=pixels, size_multiple=28)
    dsr_args = bench_args(args.video_dir, policy, args.max_new_tokens)

    report = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(), "samples": args.samples,
              "videos": len(videos), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
              "peak_flops": peak, "models": {}}  # fmt: skip
    for entry in args.models.split(","):
        run = run_model(entry, dirs, dsr_args, batch_size=args.batch_size, workers=args.workers,
                        out=args.out / f"run-{entry.replace(':', '-')}", device=device, dtype=dtype,
                        random_weights=random_weights)  # fmt: skip
        report["models"][entry] = run
        print(f"{entry}: {run['samples']} samples in {run['wall_s']:.1f} s ({run['prefills']} prefills), "
              f"peak {run['peak_mem_gib']:.1f} GiB", flush=True)  # fmt: skip
        (args.out / "bench_gsm_gpu_partial.json").write_text(json.dumps(report, indent=2))

    # analytic FLOPs per sample: the plain model's, and the GSM's own work (frames of the policy's size)
    width, height = target_size(*size[:2], policy)
    h, w = height // 14, width // 14
    plain_config = AutoConfig.from_pretrained(args.model_dir)
    gsm_config = AutoConfig.from_pretrained(args.gsm_dir)
    plain_runs = [run for run in report["models"].values() if run["model"] == "qwen25vl"]
    plain_tokens = plain_runs[0]["prompt_tokens"] if plain_runs else 32 * h * w // 8 + 120
    plain = model_flops(plain_config, int(plain_tokens), 32 * h * w, args.max_new_tokens)
    parts = gsm_flops(gsm_config, 32, h, w, QFORMER_TEXT_TOKENS)
    share = sum(parts.values()) / plain
    report["flops_per_sample"] = {"plain_tflop": plain / 1e12, **{f"gsm_{k}_tflop": v / 1e12 for k, v in parts.items()},
                                  "gsm_flop_share": share}  # fmt: skip
    rate = {}
    for entry, run in report["models"].items():
        rate[entry] = run["steady_samples_per_s"] or run["samples_per_s"]
        # the plain model's FLOPs of the prompts computed (a shared run computes one whole prompt per prefill, and
        # only the question's tokens for the others: counted as nothing, so this is a lower bound there)
        run["mfu"] = plain * rate[entry] * run["prefills"] / run["samples"] / peak
    # the GSM against the plain model with the same prefix setting (the FLOP share is of whole prompts; with shared
    # prefixes both models' per-video work is shared alike, and the GSM's Q-Formers and 32 tokens stay per question)
    report["gsm_extra_time"] = {}
    for mode in ("", ":unshared"):
        if f"qwen25vl{mode}" in rate and f"qwen25vl-gsm{mode}" in rate:
            extra = rate[f"qwen25vl{mode}"] / rate[f"qwen25vl-gsm{mode}"] - 1
            within = extra <= share
            report["gsm_extra_time"][mode.strip(":") or "shared"] = {"extra": extra, "within_flop_share": within}
    for model in ("qwen25vl", "qwen25vl-gsm"):
        if model in rate and f"{model}:unshared" in rate:
            report.setdefault("sharing_speedup", {})[model] = rate[model] / rate[f"{model}:unshared"]
    report["gsm_parts"] = time_parts(args.gsm_dir, args.video_dir, policy, args.batch_size, device, dtype,
                                     random_weights, compiled=device == "cuda",
                                     profile_to=args.out / "encoder_trace.json")  # fmt: skip
    (args.out / "bench_gsm_gpu.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print("\n| model | samples | prefills | samples/s (steady) | peak memory | GPU busy |")
    print("|---|---|---|---|---|---|")
    for entry, run in report["models"].items():
        steady = f" ({run['steady_samples_per_s']:.3f})" if run["steady_samples_per_s"] else ""
        print(f"| {entry} | {run['samples']} | {run['prefills']} | {run['samples_per_s']:.3f}{steady} "
              f"| {run['peak_mem_gib']:.1f} GiB | {run['gpu_busy']:.0%} |")  # fmt: skip
    for mode, result in report["gsm_extra_time"].items():
        print(f"\nGSM extra time ({mode} prefixes) {result['extra']:.1%} against its FLOP share {share:.1%}: "
              f"{'within' if result['within_flop_share'] else 'ABOVE'} target")  # fmt: skip
    for model, speedup in report.get("sharing_speedup", {}).items():
        print(f"{model}: shared prefixes {speedup:.2f}x the unshared steady rate")
    print("\n| GSM part | ms per sample | TFLOP/s |\n|---|---|---|")
    for name, part in report["gsm_parts"].items():
        print(f"| {name} | {part['ms_per_sample']:.1f} | {part['tflops']:.1f} |")
    families = report["gsm_parts"]["encoder"].get("kernel_families", {}).get("families", {})
    if families:
        print("\nencoder GPU time by kernel family: " + ", ".join(f"{k} {v['share']:.0%}" for k, v in families.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
