"""Training the GSM 7B on one GPU: the naive recipe against ``vdpm-harness train gsm``'s trainer, on the same data, in
one run: tokens/s, model FLOP utilisation (MFU) and peak memory of each.

Workload: synthetic 1280x720 H.264 clips (``bench_dsr_gpu.make_videos``), ``--questions`` training records each in the
``train_qas.json`` format (a DSR-style question, four options, a letter answer), sampled at the recipe's training
setting: 32 frames, at most 230,400 pixels a frame (616x336), i.e. a video grid of 16x24x44, 4,224 visual tokens plus
the GSM's 32 geometry tokens and the text: about 4,300 tokens a sample. The model is the real-size GSM 7B
(``vdpm-harness models make-random DIR --config 7b --gsm``: Qwen2.5-VL-7B with the Pi3 ViT-L encoder, 32 queries and
two Q-Formers of the language model's width) with seeded random weights: a random model costs the time a trained one
does. Trained: the language model with ``lm_head``, both mergers, the Q-Formers and queries; frozen: the Qwen ViT and
the Pi3 encoder (the paper's recipe).

* **naive**: transformers' model as it is (``Qwen25VLGSMForConditionalGeneration``, the plugin's class), bf16 weights,
  SDPA attention, transformers' gradient checkpointing, ``torch.optim.AdamW`` on the bf16 parameters, one sample a
  step (batch 1), the loss over the full logits (``labels``). Samples are prepared before the clock starts.
* **trainer**: the trainer's own code (:class:`vdpm_harness_training.gsm.trainer.Trainer`: ``build`` then ``step``
  after step, samples prepared ahead by worker processes as in a real run): FSDP2 on one GPU with float32 master
  weights, bf16 compute, float32 gradients; AdamW with bf16 moments; packs of several samples with variable-length
  flash attention; the loss on the supervised positions only; activation checkpointing of ``--checkpointing`` of the
  decoder layers; the vision tower's windows in one varlen call. No checkpoint is written.

MFU, as issue 12 defines it: ``(6 x N_lm x tokens + 2 x N_vit x vit_patches + 2 x N_pi3 x pi3_patches) / seconds /
peak``, where ``N_lm`` counts the language model's parameters (decoder layers, embeddings, final norm; not
``lm_head``), ``N_vit`` the Qwen ViT's without its merger, ``N_pi3`` the Pi3 encoder's; ``vit_patches`` = the grid's
``t x h x w`` (16,896 a sample), ``pi3_patches`` = frames x h x w (33,792: the encoder sees every frame); the peak is
the dense bf16 989 TFLOP/s of an H100/H200 SXM. Reported per phase: tokens/s and MFU over the timed steps (after the
warm-up steps), the trainer's also end to end (waiting for data included), peak GPU memory (``max_memory_allocated``),
each step's time.

Each phase (the naive recipe, then each ``--variants`` entry of the trainer) runs in a fresh process, so that one
phase's memory, compilation or crash cannot touch the next; a phase that fails (out of memory included) is reported
as failed with its error and peak memory, and the others still run.

    python perf/bench_train_gpu.py --variants ckpt1,ckpt1+compile --out results-train   # one H200; report.json
    python perf/bench_train_gpu.py --smoke --variants ckpt1,ckpt0.5 --out /tmp/smoke  # a CPU check: tiny GSM, fp32
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dsr_gpu import H100_BF16_PEAK, H200_BF16_PEAK, make_videos  # noqa: E402 - the synthetic clips of issue 5

#: The recipe's training frames (TencentARC/DSR_Suite train.sh: 32 frames, 784..230400 pixels, linspace(dtype=int)).
TRAIN_FRAMES = {"nframes": 32, "sampler": "floor", "min_pixels": 784, "max_pixels": 230_400, "size_multiple": 28}
SMOKE_FRAMES = {"nframes": 8, "sampler": "floor", "min_pixels": 784, "max_pixels": 9408, "size_multiple": 28}
QUESTION = ("From the perspective of the camera at {t0:.1f}s, how does the distance between the red square and the "
            "camera change between {t0:.1f}s and {t1:.1f}s?\nOptions:\nA Become larger.\nB Become smaller.\n"
            "C Keep nearly constant.\nD Become larger and then become smaller.")  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- data and model ---------------------------------------------------------------------------------------------------


def make_data(folder: Path, videos: int, questions: int, smoke: bool, workers: int) -> Path:
    """Clips and a ``train_qas.json`` of ``questions`` records over them."""
    size = (160, 120, 3, 4) if smoke else (1280, 720, 8, 12)
    clips = make_videos(folder, videos, seed=11, workers=workers, size=size)
    rng = np.random.default_rng(3)
    records = []
    for i in range(questions):
        t0 = float(rng.uniform(0.5, 2.0))
        text = QUESTION.format(t0=t0, t1=t0 + float(rng.uniform(1.0, 2.0)))
        turns = [{"from": "human", "value": "<video>\n" + text}, {"from": "gpt", "value": "ABCD"[int(rng.integers(4))]}]
        records.append({"video": clips[i % len(clips)].name, "conversations": turns})
    (folder / "train_qas.json").write_text(json.dumps(records, indent=1))
    return folder


def make_model(folder: Path, smoke: bool) -> Path:
    from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints

    if not (folder / "config.json").is_file():
        if smoke:
            gsm_checkpoints.make_tiny(folder)
        else:
            gsm_checkpoints.make_random(folder, "7b")
    return folder


def parameter_counts(model) -> dict[str, int]:
    """N_lm (language model without lm_head), N_vit (ViT without its merger), N_pi3 (Pi3 encoder), all."""
    inner = model.model
    merger = sum(p.numel() for p in inner.visual.merger.parameters())
    return {
        "language_model": sum(p.numel() for p in inner.language_model.parameters()),
        "vit": sum(p.numel() for p in inner.visual.parameters()) - merger,
        "pi3_encoder": sum(p.numel() for p in inner.gsm.spatial_encoder.parameters()),
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }  # fmt: skip


def work(samples) -> dict[str, int]:
    """Tokens and patches of prepared samples (``video_grid_thw`` rows: t, h, w)."""
    grids = [int(np.prod(s.video_grid_thw.tolist())) for s in samples]
    return {"tokens": sum(s.length for s in samples), "vit_patches": sum(grids), "pi3_patches": 2 * sum(grids),
            "samples": len(samples)}  # fmt: skip


def model_flops(counts: dict[str, int], done: dict[str, int]) -> float:
    return (6 * counts["language_model"] * done["tokens"] + 2 * counts["vit"] * done["vit_patches"]
            + 2 * counts["pi3_encoder"] * done["pi3_patches"])  # fmt: skip


def summary(counts, done, seconds: float, peak: float) -> dict[str, float]:
    flops = model_flops(counts, done)
    return {"tokens": done["tokens"], "samples": done["samples"], "seconds": round(seconds, 3),
            "tokens_per_second": done["tokens"] / seconds, "tflops_per_second": flops / seconds / 1e12,
            "mfu": flops / seconds / peak}  # fmt: skip


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None


def reset_memory(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# --- naive ------------------------------------------------------------------------------------------------------------


def run_naive(model_dir: Path, data: Path, args, device, peak: float) -> dict:
    """transformers' model, SDPA, gradient checkpointing, torch AdamW on bf16 parameters, batch 1."""
    import torch
    from transformers import AutoConfig

    from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints
    from vdpm_harness_training.gsm.records import load_examples
    from vdpm_harness_training.gsm.samples import IGNORE, Layout, build

    reset_memory(device)
    dtype = "float32" if args.smoke else "bfloat16"
    config = AutoConfig.from_pretrained(model_dir)
    t0 = time.perf_counter()
    model = gsm_checkpoints.build_model(config, dtype=dtype, device=device, attn_implementation="sdpa",
                                        initialise=True)  # fmt: skip
    model.config.use_cache = False
    model.train()
    for name, parameter in model.named_parameters():
        frozen = name.startswith(("model.visual.", "model.gsm.spatial_encoder.")) and ".merger." not in name
        parameter.requires_grad_(not frozen)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, weight_decay=0.01)
    counts = parameter_counts(model)
    log(
        f"naive: model built in {time.perf_counter() - t0:.1f} s ({counts['total'] / 1e9:.2f} B parameters, "
        f"{counts['trainable'] / 1e9:.2f} B trainable)"
    )
    from vdpm_harness_training.gsm.model import token_layout

    layout = Layout(processor=str(model_dir), frames=args.frames, prompt="record", max_seq_length=16384,
                    **token_layout(model))  # fmt: skip
    steps = args.naive_warmup + args.naive_steps
    examples = load_examples([str(data)])
    samples = [build(examples[i % len(examples)], layout) for i in range(steps)]
    log(f"naive: {steps} samples prepared ({samples[0].length} tokens the first)")
    times, done = [], {"tokens": 0, "vit_patches": 0, "pi3_patches": 0, "samples": 0}
    for step, sample in enumerate(samples):
        synchronize(device)
        started = time.perf_counter()
        labels = torch.full_like(sample.input_ids, IGNORE)
        labels[1:] = sample.targets[:-1]  # transformers shifts labels itself: label i is token i's own id
        out = model(input_ids=sample.input_ids[None].to(device), attention_mask=torch.ones(1, sample.length,
                    dtype=torch.long, device=device), pixel_values_videos=sample.pixel_values_videos.to(device),
                    video_grid_thw=sample.video_grid_thw.to(device), second_per_grid_ts=sample.second_per_grid_ts,
                    labels=labels[None].to(device))  # fmt: skip
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        seconds = time.perf_counter() - started
        times.append(seconds)
        timed = step >= args.naive_warmup
        if timed:
            for key, value in work([sample]).items():
                done[key] += value
        log(
            f"naive step {step + 1}/{steps}{'' if timed else ' (warm-up)'}: {seconds:.2f} s, "
            f"{sample.length / seconds:,.0f} tokens/s, loss {out.loss.item():.3f}"
        )
    result = summary(counts, done, sum(times[args.naive_warmup :]), peak)
    result.update({"step_seconds": [round(t, 3) for t in times], "peak_memory_gb": peak_memory_gb(device),
                   "parameters": counts, "batch": 1})  # fmt: skip
    del model, optimizer, out
    reset_memory(device)
    return result


# --- trainer ----------------------------------------------------------------------------------------------------------


def run_trainer(model_dir: Path, data: Path, out: Path, args, peak: float) -> dict:
    """The trainer's build and steps (``Trainer.build``, ``Trainer.take``, ``Trainer.step``), no checkpoints."""
    from rich.console import Console

    from vdpm_harness.prefetch import Prefetcher
    from vdpm_harness_training.gsm import parallel
    from vdpm_harness_training.gsm.config import build_config
    from vdpm_harness_training.gsm.records import data_digest, load_examples
    from vdpm_harness_training.gsm.samples import prepare
    from vdpm_harness_training.gsm.trainer import Trainer

    steps = args.trainer_warmup + args.trainer_steps
    config = build_config(None, (), **{
        "out": str(out / "trainer"), "model.base": str(model_dir), "model.random_weights": True,
        "data.train": [str(data)], "data.frames": args.frames, "data.decode_workers": args.workers,
        "data.prefetch": max(2 * args.workers, args.batch_size * 2), "batch_size": args.batch_size,
        "pack_tokens": args.pack_tokens, "data.max_seq_length": min(8192, args.pack_tokens),
        "activation_checkpointing": args.checkpointing, "compile": args.compile, "kernels": args.kernels,
        "precision": "fp32" if args.smoke else "bf16", "optimizer.state_dtype": "bfloat16",
        "schedule.max_steps": steps + args.profile, "save_every": 0, "device": "cpu" if args.smoke else "cuda",
    })  # fmt: skip
    world = parallel.join(config.device)
    device = world.device
    reset_memory(device)
    examples = load_examples(config.data.train)
    trainer = Trainer(config, examples, "bench", {"base": str(model_dir), "data_digest": data_digest(examples)},
                      world, Console(stderr=True), progress=False)  # fmt: skip
    t0 = time.perf_counter()
    trainer.build()
    counts = parameter_counts(trainer.wrapper.model)
    log(
        f"trainer: built in {time.perf_counter() - t0:.1f} s (FSDP2 over {world.size} process, "
        f"{len(trainer.checkpointed)} of {len(trainer.wrapper.model.model.language_model.layers)} decoder layers "
        f"checkpointed, optimizer {type(trainer.optimizer).__module__}.{type(trainer.optimizer).__name__})"
    )
    records, done, wall_done = [], {"tokens": 0, "vit_patches": 0, "pi3_patches": 0, "samples": 0}, 0.0
    step_seconds = 0.0
    optimizer_seconds: list[float] = []
    optimizer_step = trainer.optimizer.step

    def timed_optimizer_step(*a, **k):  # the optimizer's share of a step (synchronised before and after)
        synchronize(device)
        started = time.perf_counter()
        result = optimizer_step(*a, **k)
        synchronize(device)
        optimizer_seconds.append(time.perf_counter() - started)
        return result

    trainer.optimizer.step = timed_optimizer_step
    profiled = None
    with Prefetcher(prepare, workers=config.data.decode_workers, depth=config.data.prefetch) as prefetcher:
        stream = prefetcher.map(trainer.jobs(0))
        for step in range(steps + args.profile):
            started = time.perf_counter()
            trainer.step_skipped = 0
            samples = trainer.take(stream, step)
            waited = time.perf_counter() - started
            if step == steps:  # one more step under the profiler, not counted: where its GPU time goes
                profiled = profile_step(trainer, step, samples, out / "step_trace.json", device)
                continue
            record = trainer.step(step, samples)
            wall = time.perf_counter() - started
            record["data_wait_seconds"] = round(waited, 3)
            record["optimizer_seconds"] = round(optimizer_seconds[-1], 3)
            records.append(record)
            timed = step >= args.trainer_warmup
            if timed:
                for key, value in work(samples).items():
                    done[key] += value
                step_seconds += record["seconds"]
                wall_done += wall
            log(f"trainer step {step + 1}/{steps}{'' if timed else ' (warm-up)'}: {record['samples']} samples, "
                f"{record['packs']} packs, {record['tokens']:,} tokens in {record['seconds']:.2f} s "
                f"({record['tokens_per_second']:,.0f} tokens/s; data wait {waited:.2f} s), loss {record['loss']:.3f}, "
                f"peak {record.get('peak_memory_gb', '-')} GB")  # fmt: skip
    result = summary(counts, done, step_seconds, peak)
    end_to_end = summary(counts, done, wall_done, peak)
    result.update({
        "end_to_end": {k: end_to_end[k] for k in ("seconds", "tokens_per_second", "mfu")}, "profile": profiled,
        "optimizer_seconds_mean": float(np.mean(optimizer_seconds[args.trainer_warmup : steps])),
        "peak_memory_gb": peak_memory_gb(device), "parameters": counts, "steps": records,
        "setup": {"processes": world.size, "fsdp2": True, "master_weights": "float32", "compute": config.precision,
                  "adamw_moments": config.optimizer.state_dtype, "batch_size": config.batch_size,
                  "pack_tokens": config.pack_tokens, "activation_checkpointing": config.activation_checkpointing,
                  "checkpointed_layers": len(trainer.checkpointed), "compile": config.compile,
                  "kernels": trainer.kernels},
    })  # fmt: skip
    parallel.leave(world)
    return result


def profile_step(trainer, step: int, samples, trace: Path, device) -> dict:
    """``trainer.step`` under the torch profiler: its GPU time by kernel family and the GPU's busy share
    (:func:`trace_gaps.kernel_families`)."""
    import trace_gaps
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        trainer.step(step, samples)
        synchronize(device)
    trace.parent.mkdir(parents=True, exist_ok=True)
    profiler.export_chrome_trace(str(trace))
    return trace_gaps.kernel_families(trace)


# --- main -------------------------------------------------------------------------------------------------------------


def variant_settings(name: str) -> dict:
    """A trainer variant's settings from its name: ``ckpt<share>`` (the share of decoder layers recomputed) with
    ``+compile`` (``compile = true``: the decoder layers, the frozen towers' blocks and the AdamW update compiled) or
    ``+liger`` (Liger Kernel's fused RMSNorm, SwiGLU and rotary embedding: ``kernels = "liger"``; the configuration
    refuses both together), e.g. ``ckpt1``, ``ckpt0.82+compile``, ``ckpt1+liger``."""
    base, *flags = name.split("+")
    if not base.startswith("ckpt") or set(flags) - {"compile", "liger"}:
        raise SystemExit(f"unknown trainer variant {name!r}: expected ckpt<share>[+compile][+liger], "
                         "e.g. ckpt1+compile")  # fmt: skip
    return {"checkpointing": float(base.removeprefix("ckpt")), "compile": "compile" in flags,
            "kernels": "liger" if "liger" in flags else "torch"}  # fmt: skip


def run_phase(phase: str, args, model_dir: Path, data: Path, device, peak: float) -> dict:
    """One phase (``naive`` or a trainer variant) in this process; an exception becomes the phase's ``error``."""
    import traceback

    try:
        if phase == "naive":
            return run_naive(model_dir, data, args, device, peak)
        settings = variant_settings(phase)
        args.checkpointing, args.compile, args.kernels = (settings[k] for k in ("checkpointing", "compile", "kernels"))
        return run_trainer(model_dir, data, args.out / phase, args, peak)
    except BaseException as exc:  # noqa: BLE001 - the report says how the phase failed (OOM included)
        log(f"{phase} failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:],
                "peak_memory_gb": peak_memory_gb(device)}  # fmt: skip


def phase_in_child(phase: str, argv: list[str], args) -> dict:
    """Run ``phase`` in a fresh process (so that one phase's memory, compilation or crash cannot touch the next) and
    read its report; a process that dies or runs past ``--phase-timeout`` is reported as such."""
    import subprocess

    target = args.out / f"phase-{phase}.json"
    target.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, __file__, *argv, "--phase", phase], timeout=args.phase_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.phase_timeout:.0f} s"}
    if target.is_file():
        return json.loads(target.read_text())
    return {"error": f"the phase's process exited with {done.returncode} and wrote no report"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results-train"))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--questions", type=int, default=32, help="training records (over the videos)")
    parser.add_argument("--naive-warmup", type=int, default=2)
    parser.add_argument("--naive-steps", type=int, default=4)
    parser.add_argument("--trainer-warmup", type=int, default=1)
    parser.add_argument("--trainer-steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="trainer: samples per optimizer step")
    parser.add_argument("--pack-tokens", type=int, default=18432, help="trainer: tokens per pack (4 samples)")
    parser.add_argument(
        "--variants",
        default="ckpt1",
        help="trainer variants, in order: ckpt<share of decoder layers recomputed>[+compile][+liger]",
    )
    parser.add_argument("--workers", type=int, default=12, help="trainer: sample-preparing worker processes")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--prepare-only", action="store_true", help="write the data and model configuration, then stop")
    parser.add_argument("--profile", action="store_true", help="trainer: one more step under the torch profiler")
    parser.add_argument("--phase-timeout", type=float, default=480, help="seconds a phase may take")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak (default 989)")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny GSM, small videos, fp32")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: one phase, in a child process
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.videos, args.questions, args.naive_warmup, args.naive_steps = 2, 8, 1, 2
        args.trainer_warmup, args.trainer_steps, args.batch_size, args.pack_tokens = 1, 2, 4, 4096
        args.workers = min(args.workers, 1)
    args.frames = SMOKE_FRAMES if args.smoke else TRAIN_FRAMES
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("no CUDA device: run with --smoke for a CPU check of the script")
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (H200_BF16_PEAK if "H200" in gpu else H100_BF16_PEAK)
    data, model_dir = args.out / "data", args.out / ("gsm-tiny" if args.smoke else "gsm-7b-random")
    if args.phase:
        result = run_phase(args.phase, args, model_dir, data, device, peak)
        (args.out / f"phase-{args.phase}.json").write_text(json.dumps(result, indent=1))
        return result
    log(f"device {gpu}; torch {torch.__version__}; peak {peak / 1e12:.0f} TFLOP/s")
    t0 = time.perf_counter()
    make_data(data, args.videos, args.questions, args.smoke, workers=os.cpu_count() or 4)
    make_model(model_dir, args.smoke)
    log(
        f"data ({args.questions} records over {args.videos} clips) and model config ready in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    if args.prepare_only:  # the data and the model configuration, for a run of `vdpm-harness train gsm` on them
        return {"data": str(data), "model": str(model_dir)}
    report: dict = {"device": gpu, "peak_flops": peak, "torch": torch.__version__, "python": platform.python_version(),
                    "frames": args.frames, "smoke": args.smoke, "command": sys.argv, "trainer": {}}  # fmt: skip
    phases = ([] if args.skip_naive else ["naive"]) + args.variants.split(",")
    for phase in phases:
        log(f"phase {phase} (a fresh process)")
        result = phase_in_child(phase, argv, args)
        if phase == "naive":
            report["naive"] = result
        else:
            report["trainer"][phase] = result
        if "error" in result:
            log(f"{phase}: FAILED: {result['error']}")
        elif phase == "naive":
            log(f"naive: {result['tokens_per_second']:,.0f} tokens/s, MFU {result['mfu']:.1%}, "
                f"peak {result['peak_memory_gb']} GB")  # fmt: skip
        else:
            log(f"trainer {phase}: {result['tokens_per_second']:,.0f} tokens/s, MFU {result['mfu']:.1%} (end to end "
                f"{result['end_to_end']['tokens_per_second']:,.0f} tokens/s, MFU {result['end_to_end']['mfu']:.1%}), "
                f"peak {result['peak_memory_gb']} GB")  # fmt: skip
            naive = report.get("naive", {})
            if "tokens_per_second" in naive:
                result["speedup_vs_naive"] = result["tokens_per_second"] / naive["tokens_per_second"]
                log(f"speed-up: {result['speedup_vs_naive']:.2f}x the naive recipe's tokens/s")
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print("\n| phase | tokens/s | MFU | end-to-end tokens/s | peak memory | x naive |\n|---|---|---|---|---|---|")
    for phase, result in [("naive", report.get("naive"))] + list(report["trainer"].items()):
        if result is None:
            continue
        if "error" in result:
            print(f"| {phase} | failed: {result['error'][:80]} | | | {result.get('peak_memory_gb')} GB | |")
            continue
        e2e = result.get("end_to_end", {}).get("tokens_per_second")
        print(f"| {phase} | {result['tokens_per_second']:,.0f} | {result['mfu']:.1%} | "
              f"{'-' if e2e is None else f'{e2e:,.0f}'} | {result['peak_memory_gb']} GB | "
              f"{result.get('speedup_vs_naive', 1.0 if phase == 'naive' else float('nan')):.2f} |")  # fmt: skip
    log(f"report: {args.out / 'report.json'} ({time.perf_counter() - t0:.0f} s in all)")
    return report


if __name__ == "__main__":
    main()
