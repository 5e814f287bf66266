"""DSR-Bench-shaped inference throughput on one GPU: the naive loop of the original code against the harness, and
the harness with and without shared prompt prefixes.

Workload: synthetic 1280x720 H.264 videos of 20-120 s (``--durations``), 32 frames each at the official pixel
setting (at most 768*28*28 pixels per frame), the DSR prompt, a short answer, through a randomly initialised
Qwen2.5-VL-7B of the real configuration in bf16 (a random model of the real size costs the same time as a trained
one). Questions per video as in DSR-Bench (``--questions-per-video``, default 2.58: 1,484 questions over 575
videos): each video gets one question plus a uniformly spread share of the rest, and the table's rows are shuffled,
so the planner has to bring a video's questions together (the order of the real table is not assumed). ``--videos``
sets the number of videos instead.

Paths, on the same samples in one run:

* naive: what the original evaluation did: one sample at a time, the video decoded inline, the processor on the
  CPU, transformers' default attention (the vision tower runs its windows one by one);
* harness: ``vdpm-harness``'s own pipeline (``Runner`` with the ``qwen25vl`` plugin at its defaults): decoding in
  worker processes ahead of the model, the next batch staged on a helper thread, batched generation with the packed
  varlen prefill attention, the batched vision attention, compiled vision blocks and MLPs/norms, preprocessing on the
  GPU. Run at ``--batch-size`` on all samples and at batch size 1 on ``--identity-samples``;
* harness, exact kernels (``harness1exact``): the same pipeline at batch size 1 with transformers' own vision
  attention, SDPA and nothing compiled: the model computes exactly what the naive loop computes, so any difference
  in its predictions would come from the pipeline (frames, timing, prompt, preprocessing), not from kernels;
* ``shared`` / ``unshared``: the harness at ``--batch-size`` with ``share_prefix`` on (the plugin's default: each
  video encoded and its prompt prefix prefilled once for all its questions in a batch) and off, on all samples,
  with the same kernels; ``shared-exact`` / ``unshared-exact``: the same with the exact kernels on
  ``--identity-samples``; ``warmup``: one batch of ``shared`` first, so that the measured paths find the compile
  cache as warm as a second run of the same command finds it (its time to the first batch is the cold start-up);
  ``restart``: the warm-up again in a fresh process (a second run of the same command: on-disk compile caches only);
``profile``: the ``shared`` path on ``--profile-samples`` under the torch profiler, read back by ``trace_gaps`` (the
GPU's idle time split by what the main thread did meanwhile, kernel time by phase, the heaviest kernels), written to
``OUT/bench_dsr_gpu_profile.json``; ``margins`` (``margins-gsm``: the same for ``qwen25vl-gsm``): shared
against unshared prefixes at the first new token on ``--margin-samples``, with the logits' difference and the
unshared path's top-1 minus top-2 margin, to tell near-ties from defects (``OUT/bench_dsr_gpu_margins.json``).

Reported: samples/s over the whole run and in the steady state (after the first batch, which pays compilation),
projected time for all 1,484 DSR-Bench samples (start-up plus 1,484 samples at the steady rate), GPU busy fraction
(NVML utilisation sampled every 20 ms), model FLOP utilisation (analytic model FLOPs / wall time / peak) of the whole
run and of the projected full run, peak GPU memory, and the fraction of greedy predictions that differ from the naive
loop's; for a ``shared*`` path also the fraction that differ from its ``unshared*`` path (all tokens, and the first
token), the prefills it ran (one per group of questions about a video in a batch) and its approximate model FLOP
utilisation counting only the work done (``mfu_actual``; ``mfu`` counts every question's full prompt). Progress
goes to stdout, the report to ``OUT/bench_dsr_gpu.json`` (and ``bench_dsr_gpu_partial.json`` after each path).

    python perf/bench_dsr_gpu.py --samples 130 --durations 10,60 --paths warmup,unshared,shared,restart,naive \
        --naive-samples 12 --out OUT
    python perf/bench_dsr_gpu.py --smoke --samples 12 --workers 2 --paths unshared,shared --out /tmp/smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DSR_PROMPT = (
    "\nThese are the frames of a video. Select the best answer to the following multiple-choice question based on "
    "the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
QUESTIONS = [
    ("From the camera's perspective, in which direction does the person move?", ["Left", "Right", "Forward", "Back"]),
    ("Does the distance between the car and the camera become larger or smaller?",
     ["Become larger", "Become smaller", "Stay the same", "First larger, then smaller"]),
    ("Which object moves faster during the video?", ["The dog", "The ball", "The person", "The cyclist"]),
]  # fmt: skip
FULL_BENCHMARK = 1484
H100_BF16_PEAK = 989e12  # dense bf16 TFLOP/s of an H100 SXM (NVIDIA's datasheet), the MFU denominator
H200_BF16_PEAK = 989e12


# --- workload ---------------------------------------------------------------------------------------------------------


def render_video(job) -> str:
    """A textured, panning clip with a moving square (deterministic per seed), encoded with libx264."""
    path, seconds, fps, seed, width, height = job
    from vdpm_harness.video import write_video

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, size=(height // 8 + 2, width // 8 + 400, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)

    def frames():
        for t in range(int(seconds * fps)):
            x = (t * 3) % (texture.shape[1] - width)
            frame = texture[:height, x : x + width].copy()
            cx = int(width / 2 + width * 0.4 * math.sin(t / 40))
            cy = int(height / 2 + height * 0.35 * math.cos(t / 55))
            frame[max(cy - 60, 0) : cy + 60, max(cx - 60, 0) : cx + 60] = (220, 40, 40)
            yield frame

    write_video(path, frames(), fps, crf=23, preset="ultrafast", gop=int(fps * 2))
    return path


def make_videos(folder: Path, count: int, seed: int, workers: int, size=(1280, 720, 20, 120)) -> list[Path]:
    """``count`` clips of ``size = (width, height, shortest s, longest s)``, durations uniform in between, 30 fps."""
    width, height, shortest, longest = size
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = [(str(folder / f"clip_{i:03d}.mp4"), float(rng.uniform(shortest, longest)), 30, seed + i, width, height)
            for i in range(count)]  # fmt: skip
    todo = [job for job in jobs if not Path(job[0]).exists()]
    if todo:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(render_video, todo))
    return [Path(job[0]) for job in jobs]


CATEGORIES = ["abs_dis", "abs_dir", "abs_ori", "abs_spd", "abs_spd_comp", "abs_dir_pred", "rel_dis", "rel_dir",
              "rel_ori", "rel_spd", "rel_spd_comp", "rel_dir_pred", "non_temp"]  # fmt: skip


SUBJECTS = ["the person", "the car", "the dog", "the ball", "the cyclist", "the red square", "the bird", "the truck"]


def question_counts(samples: int, videos: int, seed: int = 11) -> list[int]:
    """Questions per video: one each, the rest spread uniformly at random (a multinomial), ``samples`` in all."""
    if not 1 <= videos <= samples:
        raise ValueError(f"{samples} questions cannot cover {videos} videos")
    rng = np.random.default_rng(seed)
    return [1 + int(n) for n in rng.multinomial(samples - videos, [1 / videos] * videos)]


def write_dsr_table(folder: Path, videos: list[Path], counts: list[int], seed: int = 11) -> Path:
    """``counts[k]`` questions about ``videos[k]`` as a DSR-Bench table (VLMEvalKit's TSV layout), rows shuffled, read
    by the ``dsr`` benchmark plugin exactly like the real one. A video's questions differ in their text."""
    import csv

    rows = []
    for k, (video, count) in enumerate(zip(videos, counts)):
        for j in range(count):
            question, options = QUESTIONS[(k + j) % len(QUESTIONS)]
            question = question.replace("the person", SUBJECTS[j % len(SUBJECTS)]).replace(
                "the car", SUBJECTS[(j + 1) % len(SUBJECTS)])  # fmt: skip
            rows.append((video.name, f"{question} (question {j + 1})", options))
    order = np.random.default_rng(seed).permutation(len(rows))
    path = folder / "DSRBench.tsv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "video", "question", "options", "answer", "task_type"])
        for i, r in enumerate(order):
            video, question, options = rows[r]
            letters = [f"{'ABCD'[j]}. {o}" for j, o in enumerate(options)]
            writer.writerow([i, video, question, json.dumps(letters), "A", CATEGORIES[i % len(CATEGORIES)]])
    return path


def bench_args(video_dir: Path, policy, max_new_tokens: int) -> tuple[str, ...]:
    return (f"data_dir={video_dir}", f"frames={policy.model_dump_json(exclude_defaults=True)}",
            f"max_new_tokens={max_new_tokens}")  # fmt: skip


# --- measurement ------------------------------------------------------------------------------------------------------


class GpuMonitor:
    """Samples NVML utilisation (the fraction of time a kernel ran) every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.02, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.interval = interval
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.values.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            time.sleep(self.interval)

    def __enter__(self):
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.enabled:
            self._thread.join()

    @property
    def busy(self) -> float:
        return float(np.mean(self.values)) / 100 if self.values else float("nan")


def model_flops(config, prompt_tokens: int, vision_patches: int, new_tokens: int) -> float:
    """Forward FLOPs of one sample: 2 x parameters x tokens for the language model (prompt and generated tokens)
    and the vision tower (patches), plus the attention score and value products of both."""
    text, vision = config.text_config, config.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    lm_params = _lm_params(text)
    lm = 2 * lm_params * (prompt_tokens + new_tokens)
    lm_attention = 4 * text.num_hidden_layers * text.num_attention_heads * head_dim * prompt_tokens**2 / 2  # causal
    vision_params = _vision_params(vision)
    tower = 2 * vision_params * vision_patches
    window = (vision.window_size // vision.patch_size) ** 2
    full_blocks = len(vision.fullatt_block_indexes)
    frames = max(vision_patches // 2880, 1)
    per_frame = vision_patches / frames
    attention = (
        4 * vision.hidden_size * vision_patches * ((vision.depth - full_blocks) * window + full_blocks * per_frame)
    )
    return lm + lm_attention + tower + attention


def _lm_params(text) -> int:
    h, i, layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    kv = text.num_key_value_heads * (h // text.num_attention_heads)
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * i
    return layers * per_layer + text.vocab_size * h  # the output projection counts; the embedding lookup does not


def _vision_params(vision) -> int:
    h, i = vision.hidden_size, vision.intermediate_size
    per_block = 4 * h * h + 3 * h * i
    merger = (h * 4) ** 2 + h * 4 * vision.out_hidden_size
    return vision.depth * per_block + merger


# --- the two paths ----------------------------------------------------------------------------------------------------


def naive(benchmark, model_dir: Path, max_new_tokens: int, device: str, dtype: str, limit: int | None = None) -> dict:
    """The original loop: per sample, decode inline, process on the CPU, generate one at a time (the benchmark's
    first ``limit`` samples)."""
    import torch
    from transformers import AutoProcessor

    from vdpm_harness.records import TextPart
    from vdpm_harness.video import decode
    from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_random_model

    model, config = load_random_model(model_dir, dtype=dtype, device=device, vision_attention="transformers")
    processor = AutoProcessor.from_pretrained(model_dir)
    cuda = device.startswith("cuda")
    outputs, stats = [], {"prompt_tokens": 0, "patches": 0, "flops": 0.0}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    with GpuMonitor(enabled=cuda) as monitor:
        for sample in list(benchmark.samples())[:limit]:
            request = benchmark.build_request(sample)
            [part] = request.video_parts()
            video = decode(part.video, part.frames)
            content = [{"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "video"}
                       for p in request.messages[0].content]  # fmt: skip
            messages = [{"role": "user", "content": content}]
            chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = processor(
                text=[chat], videos=[video.frames], return_tensors="pt",
                videos_kwargs={"video_metadata": [video.metadata()], "do_sample_frames": False,
                               "size": {"shortest_edge": 28 * 28, "longest_edge": part.frames.max_pixels},
                               "cap_pixels_per_frame": True},
            ).to(device)  # fmt: skip
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, inputs["input_ids"].shape[1] :].tolist()
            outputs.append((sample.sample_id, new))
            patches = int(np.prod(inputs["video_grid_thw"][0].tolist()))
            stats["prompt_tokens"] += inputs["input_ids"].shape[1]
            stats["patches"] += patches
            stats["flops"] += model_flops(config, inputs["input_ids"].shape[1], patches, len(new))
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    del model
    if cuda:
        torch.cuda.empty_cache()
    return {"wall": wall, "busy": monitor.busy, "peak_mem": peak, "tokens": dict(outputs), **stats}


EXACT = ("vision_attention=transformers", "attn_implementation=sdpa", "compile=off")


def harness(model_dir: Path, args: tuple[str, ...], batch_size: int, workers: int, out: Path, device: str,
            dtype: str, limit: int | None = None, exact: bool = False, share_prefix: bool | None = None,
            name: str = "harness", model: str = "qwen25vl", random_weights: bool = True) -> dict:  # fmt: skip
    """The harness's own pipeline: ``Runner`` with the ``model`` plugin (``qwen25vl`` or ``qwen25vl-gsm``) on the
    ``dsr`` benchmark plugin, at the plugin's defaults (``exact``: with the naive loop's kernels; ``share_prefix``:
    the option, when given). A run in which any sample failed raises: a failed sample costs no GPU time, so no rate of
    such a run means anything."""
    import torch

    from vdpm_harness.config import build_config
    from vdpm_harness.pipeline import Runner
    from vdpm_harness.plugins import get_host
    from vdpm_harness.store import PredictionStore
    from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL
    from vdpm_harness_plugins.models.qwen25vl.prefix import SharedRun

    config = build_config(
        models=model, benches="dsr", out=str(out), decode_workers=workers, prefetch=4 * batch_size + 8,
        limit=limit, bench_args=args,
        model_args=(f"path={model_dir}", *(("random_weights=true",) if random_weights else ()), f"dtype={dtype}",
                    f"device={device}", f"batch_size={batch_size}", *(EXACT if exact else ()),
                    *(() if share_prefix is None else (f"share_prefix={str(share_prefix).lower()}",))),
    )  # fmt: skip
    config.models[0].label = label = f"{model}-random-bs{batch_size}-{name}"
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    batches: list[tuple[float, int]] = []  # (time a batch finished, its size): the steady-state rate
    prefills = [0]  # prompt prefills run: one per row without sharing, one per group of a video's questions with it
    original = Qwen25VL.generate_staged  # qwen25vl-gsm's class inherits it
    last_print = [time.perf_counter()]

    def timed_generate(self, staged):
        for run in staged.runs:
            prefills[0] += run.prefix["input_ids"].shape[0] if isinstance(run, SharedRun) else len(run[0])
        responses = original(self, staged)
        now = time.perf_counter()
        batches.append((now, len(responses)))
        if now - last_print[0] > 15 or len(batches) == 1:
            last_print[0] = now
            done = sum(n for _, n in batches)
            print(f"  {name}: {done} samples in {now - start:.0f} s ({len(batches)} batches, {prefills[0]} prefills)",
                  flush=True)  # fmt: skip
        return responses

    Qwen25VL.generate_staged = timed_generate
    start = time.perf_counter()
    try:
        with GpuMonitor(enabled=cuda) as monitor:
            [outcome] = Runner(config, get_host()).run()
    finally:
        Qwen25VL.generate_staged = original
    wall = time.perf_counter() - start
    if outcome.result is None:
        raise RuntimeError(outcome.error)
    if outcome.result.n_errors:
        reasons = getattr(outcome.result, "error_reasons", None)
        raise RuntimeError(f"{label}: {outcome.result.n_errors} of {outcome.result.n_samples} samples failed, so "
                           f"no speed is reported; reasons: {reasons}")  # fmt: skip
    records = PredictionStore(out / label / "dsr").load().values()
    steady = None
    if len(batches) > 2:  # from the end of the first batch to the end of the last
        steady = sum(n for _, n in batches[1:]) / (batches[-1][0] - batches[0][0])
    return {"wall": wall, "busy": monitor.busy, "peak_mem": torch.cuda.max_memory_allocated() if cuda else 0,
            "tokens": {r.sample_id: r.usage.get("output_ids") for r in records}, "n": len(records),
            "errors": outcome.result.n_errors, "steady_rate": steady,
            "first_batch_s": batches[0][0] - start if batches else None, "batch_size": batch_size,
            "prompt_tokens": sum(r.usage.get("prompt_tokens", 0) for r in records),
            "shared_rows": sum("shared_prefix_tokens" in (r.usage or {}) for r in records), "prefills": prefills[0],
            "timings": outcome.timings}  # fmt: skip


# --- main -------------------------------------------------------------------------------------------------------------


def restart(args, out: Path) -> dict:
    """Start-up of a second run of the same command: this script's ``warmup`` path (one batch of ``shared``) in a
    fresh process on the same machine, which finds the on-disk compile caches of the runs before it (torch
    inductor's FX graph and autotuning caches) but nothing in memory. Returns its time from launch to exit and its
    time from the ``Runner``'s start to the end of its first batch."""
    import subprocess

    command = [sys.executable, __file__, "--paths", "warmup", "--samples", str(args.samples),
               "--questions-per-video", str(args.questions_per_video), "--video-dir", str(args.video_dir),
               "--durations", args.durations,
               "--model-dir", str(args.model_dir), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
               "--max-new-tokens", str(args.max_new_tokens), "--out", str(out)]  # fmt: skip
    if args.videos:
        command += ["--videos", str(args.videos)]
    if args.smoke:
        command.append("--smoke")
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    process = time.perf_counter() - start
    entry = json.loads((out / "bench_dsr_gpu.json").read_text())["paths"]["warmup"]
    return {"process_s": process, "first_batch_s": entry.get("first_batch_s"), "wall_s": entry["wall_s"],
            "samples": entry["samples"]}  # fmt: skip


def profiled(args, dsr_args, device: str, dtype: str) -> dict:
    """The ``shared`` path on ``--profile-samples`` samples under the torch profiler (after the paths before it, so
    compilation is done): where the GPU waits and what the main thread does meanwhile (:mod:`trace_gaps`)."""
    import trace_gaps
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    try:  # the staging thread is started after the profiler, which by default records only threads it has seen
        from torch._C._profiler import _ExperimentalConfig

        extra = {"experimental_config": _ExperimentalConfig(profile_all_threads=True)}
    except (ImportError, TypeError):
        extra = {}
    with trace_gaps.annotate(), profile(activities=activities, **extra) as profiler:
        run = harness(args.model_dir, dsr_args, args.batch_size, args.workers, args.out / "run-profile", device, dtype,
                      args.profile_samples, share_prefix=True, name="profile")  # fmt: skip
    trace = args.out / "profile_trace.json"
    profiler.export_chrome_trace(str(trace))
    summary = trace_gaps.analyse(trace)
    summary.update(samples=run["n"], wall_s=run["wall"], main_thread_s=run["timings"], nvml_busy=run["busy"],
                   profiler_overhead_note="times under the profiler are longer than without it")  # fmt: skip
    return summary


def margins(args, dsr_args, device: str, dtype: str, model: str = "qwen25vl") -> dict:
    """Shared against unshared prompt prefixes on the same kernels, at the first new token, on the benchmark's first
    ``--margin-samples`` samples (a video's questions together, batches of ``--batch-size``, as the planner makes
    them): per sample the largest difference between the two paths' first-step logits (float32 copies of the bf16
    model's), whether the greedy first token differs, and the unshared path's margin (its top logit minus the
    second). A differing token whose margin is below the logits' own difference is a near-tie: rounding, not a
    defect, decided it."""
    import torch

    from vdpm_harness import PreparedRequest
    from vdpm_harness.config import parse_assignments
    from vdpm_harness.plugins import get_host
    from vdpm_harness.video import decode
    from vdpm_harness_plugins.models.qwen25vl import prefix

    host = get_host()
    benchmark = host.create("benchmarks", "dsr", {k: v for _, k, v in parse_assignments(dsr_args, "")})
    folder = args.model_dir if model == "qwen25vl" else args.gsm_dir
    plugin = host.create("models", model, {"path": str(folder), "random_weights": not args.smoke, "dtype": dtype,
                                           "device": device, "batch_size": args.batch_size})  # fmt: skip
    plugin.load()
    requests = [benchmark.build_request(sample) for sample in benchmark.samples()]
    order = sorted(range(len(requests)), key=lambda i: (prefix.request_key(requests[i]) or "", i))
    order = order[: args.margin_samples]
    config = plugin._model.generation_config
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    decoded: dict = {}
    rows = []
    for start in range(0, len(order), args.batch_size):
        batch = []
        for i in order[start : start + args.batch_size]:
            videos = []
            for part in requests[i].video_parts():
                key = (part.video, part.frames.model_dump_json())
                if key not in decoded:
                    decoded[key] = decode(part.video, part.frames)
                videos.append(decoded[key])
            batch.append(PreparedRequest(requests[i], f"margin-{i}", 0, videos))
        prompts = [plugin._prompt(j, one) for j, one in enumerate(batch)]
        responses: list = [None] * len(batch)
        run = plugin._stage_shared(prompts, responses)
        _, shared = prefix.generate_shared(plugin._model, run, max_new_tokens=1, eos_token_ids=eos,
                                           pad_token_id=config.pad_token_id, keep_logits=True,
                                           sharing=plugin._sharing())  # fmt: skip
        chunk_prompts, inputs, _ = plugin._stage_chunk(prompts, responses)
        with torch.inference_mode():
            out = plugin._model.generate(**inputs, max_new_tokens=1, do_sample=False, output_logits=True,
                                         return_dict_in_generate=True)  # fmt: skip
        unshared = {p.index: row for p, row in zip(chunk_prompts, out.logits[0].float())}
        for p, row in zip(run.prompts, shared[0]):
            reference = unshared[p.index]
            top = torch.topk(reference, 2).values
            rows.append({"sample": batch[p.index].request.sample_id,
                         "max_abs_diff": float((row - reference).abs().max()),
                         "first_token_differs": int(row.argmax()) != int(reference.argmax()),
                         "unshared_margin": float(top[0] - top[1])})  # fmt: skip
        print(f"  margins ({model}): {len(rows)} samples", flush=True)
    plugin.close()
    differing = [r for r in rows if r["first_token_differs"]]
    return {
        "model": model, "samples": len(rows), "first_token_differs": len(differing) / max(len(rows), 1),
        "max_abs_diff_median": float(np.median([r["max_abs_diff"] for r in rows])) if rows else None,
        "max_abs_diff_max": max((r["max_abs_diff"] for r in rows), default=None),
        "margin_median": float(np.median([r["unshared_margin"] for r in rows])) if rows else None,
        "differing_margins": [round(r["unshared_margin"], 4) for r in differing],
        "differing_are_near_ties": all(r["unshared_margin"] <= r["max_abs_diff"] for r in differing),
        "rows": rows,
    }  # fmt: skip


def path_settings(name: str, args) -> dict:
    """What a harness path runs: batch size, sample limit, exact kernels, ``share_prefix`` (None: the default)."""
    single = name.startswith("harness1")
    exact = name.endswith("exact")
    limit = args.identity_samples if single or name.endswith("-exact") else None
    if name == "warmup":
        limit = args.batch_size
    share = {"shared": True, "unshared": False}.get(name.removesuffix("-exact"))
    return {"batch_size": 1 if single else args.batch_size, "limit": limit, "exact": exact, "share_prefix": share}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=130)
    parser.add_argument("--questions-per-video", type=float, default=2.58,
                        help="DSR-Bench: 1,484 questions over 575 videos")  # fmt: skip
    parser.add_argument("--videos", type=int, default=None, help="distinct videos (default: from the above)")
    parser.add_argument("--durations", default="20,120", help="shortest,longest video in seconds (uniform between)")
    parser.add_argument("--video-dir", type=Path, default=Path("/tmp/dsr-bench-videos"))
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/qwen25vl-7b-random"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=12, help="decode worker processes of the harness path")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--paths", default="warmup,unshared,shared,naive", help="which paths to run, in order")
    parser.add_argument(
        "--identity-samples",
        type=int,
        default=24,
        help="samples of the batch-size-1 and exact-kernel harness runs, whose predictions are compared",
    )
    parser.add_argument("--naive-samples", type=int, default=None, help="samples of the naive loop (default: all)")
    parser.add_argument("--profile-samples", type=int, default=40, help="samples of the profiled shared path")
    parser.add_argument("--margin-samples", type=int, default=48, help="samples of the margins paths")
    parser.add_argument(
        "--gsm-dir",
        type=Path,
        default=Path("/tmp/qwen25vl-gsm-7b-random"),
        help="the GSM of the margins-gsm path (made with random weights when missing)",
    )
    parser.add_argument("--out", type=Path, default=Path("results-bench"))
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak (default: by GPU name)")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check of the script itself: tiny model, small short videos, fp32")  # fmt: skip
    args = parser.parse_args(argv)

    import torch

    from vdpm_harness.config import parse_assignments
    from vdpm_harness.records import FramePolicy
    from vdpm_harness.video import target_size

    args.out.mkdir(parents=True, exist_ok=True)
    device, dtype = ("cpu", "float32") if args.smoke else ("cuda", "bfloat16")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke test)"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (H200_BF16_PEAK if "H200" in gpu else H100_BF16_PEAK)
    t0 = time.perf_counter()
    shortest, longest = (float(x) for x in args.durations.split(","))
    size = (320, 180, 2, 4) if args.smoke else (1280, 720, shortest, longest)
    n_videos = args.videos or max(1, min(args.samples, round(args.samples / args.questions_per_video)))
    counts = question_counts(args.samples, n_videos)
    videos = make_videos(args.video_dir, n_videos, seed=7, workers=os.cpu_count() or 4, size=size)
    print(f"{n_videos} videos ready in {time.perf_counter() - t0:.1f} s; {args.samples} questions, "
          f"{args.samples / n_videos:.2f} a video (at most {max(counts)})", flush=True)  # fmt: skip
    if not (args.model_dir / "config.json").exists():
        from vdpm_harness_plugins.models.qwen25vl.checkpoints import make_random, make_tiny

        if args.smoke:
            make_tiny(args.model_dir)
        else:
            make_random(args.model_dir, "7b")
    if "margins-gsm" in args.paths.split(",") and not (args.gsm_dir / "config.json").exists():
        from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints

        gsm_checkpoints.make_tiny(args.gsm_dir) if args.smoke else gsm_checkpoints.make_random(args.gsm_dir, "7b")
    write_dsr_table(args.video_dir, videos, counts)
    pixels = 64 * 28 * 28 if args.smoke else 768 * 28 * 28
    policy = FramePolicy(nframes=32, max_pixels=pixels, size_multiple=28)
    dsr_args = bench_args(args.video_dir, policy, args.max_new_tokens)

    report = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(), "samples": args.samples,
              "videos": len(videos), "questions_per_video": args.samples / len(videos),
              "max_questions_per_video": max(counts), "batch_size": args.batch_size, "workers": args.workers,
              "max_new_tokens": args.max_new_tokens, "peak_flops": peak, "command": sys.argv, "paths": {}}  # fmt: skip
    runs = {}
    for name in args.paths.split(","):
        print(f"path {name} ...", flush=True)
        if name == "restart":
            report["restart"] = restart(args, args.out / "run-restart")
            print(f"restart: {report['restart']}", flush=True)
            continue
        if name == "profile":
            report["profile"] = profiled(args, dsr_args, device, dtype)
            print(f"profile: {json.dumps(report['profile'], indent=1)}", flush=True)
            (args.out / "bench_dsr_gpu_profile.json").write_text(json.dumps(report["profile"], indent=1))
            continue
        if name in ("margins", "margins-gsm"):
            model = "qwen25vl-gsm" if name == "margins-gsm" else "qwen25vl"
            result = report.setdefault("margins", {})[model] = margins(args, dsr_args, device, dtype, model)
            print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'rows'})}", flush=True)
            (args.out / "bench_dsr_gpu_margins.json").write_text(json.dumps(report["margins"], indent=1))
            continue
        if name == "naive":
            from vdpm_harness.plugins import get_host

            benchmark = get_host().create("benchmarks", "dsr", {k: v for _, k, v in parse_assignments(dsr_args, "")})
            runs[name] = naive(benchmark, args.model_dir, args.max_new_tokens, device, dtype, args.naive_samples)
        else:
            settings = path_settings(name, args)
            runs[name] = harness(args.model_dir, dsr_args, settings["batch_size"], args.workers,
                                 args.out / f"run-{name}", device, dtype, settings["limit"], exact=settings["exact"],
                                 share_prefix=settings["share_prefix"], name=name)  # fmt: skip
        run = runs[name]
        print(f"{name}: {len(run['tokens'])} samples in {run['wall']:.1f} s, GPU busy {run['busy']:.0%}, "
              f"peak {run['peak_mem'] / 2**30:.1f} GiB", flush=True)  # fmt: skip
        (args.out / "bench_dsr_gpu_partial.json").write_text(
            json.dumps({k: {**v, "tokens": None} for k, v in runs.items()})
        )
    if not runs:  # only restart, profile or margins paths: nothing to compare rates with
        (args.out / "bench_dsr_gpu.json").write_text(json.dumps(report, indent=2))
        return 0
    if "naive" in runs:
        naive_run = runs["naive"]
        flops = naive_run["flops"] / len(naive_run["tokens"])
    else:  # the same analytic count from the harness's prompt lengths (the frames' size is fixed by the policy)
        from transformers import AutoConfig

        run = runs[next(iter(runs))]
        tokens = run["prompt_tokens"] / len(run["tokens"])
        width, height = target_size(1280, 720, policy) if not args.smoke else target_size(320, 180, policy)
        patches = policy.nframes * (height // 14) * (width // 14)
        flops = model_flops(AutoConfig.from_pretrained(args.model_dir), int(tokens), patches, args.max_new_tokens)
    cold = runs["warmup"]["first_batch_s"] if "warmup" in runs else None
    for name, run in runs.items():
        n = len(run["tokens"])
        rate = n / run["wall"]
        entry = {"samples": n, "wall_s": run["wall"], "samples_per_s": rate, "gpu_busy": run["busy"],
                 "peak_mem_gib": run["peak_mem"] / 2**30, "mfu": flops * rate / peak,
                 "projected_full_min": FULL_BENCHMARK / rate / 60}  # fmt: skip
        if run.get("first_batch_s") is not None:  # from the Runner's start: loading, planning, the first batch
            entry["first_batch_s"] = run["first_batch_s"]
        if run.get("steady_rate"):
            # start-up (loading, planning, the first batch with its compilation) once, then the steady rate
            projected = run["first_batch_s"] + (FULL_BENCHMARK - run["batch_size"]) / run["steady_rate"]
            entry.update(steady_samples_per_s=run["steady_rate"], steady_mfu=flops * run["steady_rate"] / peak,
                         first_batch_s=run["first_batch_s"], projected_full_min=projected / 60,
                         projected_full_mfu=flops * FULL_BENCHMARK / projected / peak)  # fmt: skip
            if cold is not None:  # the same with the cold start-up of a first run on the machine
                cold_projected = cold + (FULL_BENCHMARK - run["batch_size"]) / run["steady_rate"]
                entry["projected_full_min_cold_start"] = cold_projected / 60
        if run.get("prefills"):
            entry.update(prefills=run["prefills"], samples_per_prefill=n / run["prefills"],
                         shared_rows=run["shared_rows"], mfu_actual=entry["mfu"] * run["prefills"] / n)  # fmt: skip
        if run.get("timings"):  # the main thread: waiting for frames / for staging, generating, storing
            entry["main_thread_s"] = run["timings"]
        reference = "un" + name if name.startswith("shared") else None
        if reference in runs:
            other = runs[reference]["tokens"]
            common = [k for k in run["tokens"] if k in other]
            entry["differs_from_unshared"] = float(np.mean([other[k] != run["tokens"][k] for k in common]))
            entry["first_token_differs_from_unshared"] = float(
                np.mean([other[k][:1] != run["tokens"][k][:1] for k in common])
            )
            entry["speedup_vs_unshared"] = rate / (len(other) / runs[reference]["wall"])
        if name != "naive" and "naive" in runs:
            reference = runs["naive"]["tokens"]
            common = [k for k in run["tokens"] if k in reference]
            if common:
                entry["differs_from_naive"] = float(np.mean([reference[k] != run["tokens"][k] for k in common]))
            entry["speedup_vs_naive"] = rate / (len(reference) / runs["naive"]["wall"])
        report["paths"][name] = entry
    report["model_tflop_per_sample"] = flops / 1e12
    if "naive" in runs:
        report["prompt_tokens_per_sample"] = runs["naive"]["prompt_tokens"] / len(runs["naive"]["tokens"])
        report["patches_per_sample"] = runs["naive"]["patches"] / len(runs["naive"]["tokens"])
    (args.out / "bench_dsr_gpu.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print("\n| path | samples | samples/s (steady) | projected 1,484 samples | GPU busy | MFU run (steady, full) "
          "| peak memory | prefills | differs from unshared (first token) | differs from naive |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, e in report["paths"].items():
        steady = f" ({e['steady_samples_per_s']:.3f})" if "steady_samples_per_s" in e else ""
        mfu = f"{e['mfu']:.1%}" + (f" ({e['steady_mfu']:.1%}, {e['projected_full_mfu']:.1%})" if steady else "")
        diff = f"{e['differs_from_naive']:.1%}" if "differs_from_naive" in e else "-"
        unshared = (f"{e['differs_from_unshared']:.1%} ({e['first_token_differs_from_unshared']:.1%})"
                    if "differs_from_unshared" in e else "-")  # fmt: skip
        print(f"| {name} | {e['samples']} | {e['samples_per_s']:.3f}{steady} | {e['projected_full_min']:.1f} min "
              f"| {e['gpu_busy']:.0%} | {mfu} | {e['peak_mem_gib']:.1f} GiB | {e.get('prefills', '-')} | {unshared} "
              f"| {diff} |")  # fmt: skip
    if "restart" in report:
        r = report["restart"]
        print(f"\nrestart (the same command again, a fresh process): first batch after {r['first_batch_s']:.1f} s of "
              f"the Runner, process {r['process_s']:.1f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
