"""Where the time of one DSR-Bench-shaped Qwen2.5-VL-7B batch goes on the GPU, part by part, in one run.

One synthetic sample at the official setting (32 frames of 560x1008, 11.7k prompt tokens), a randomly initialised
Qwen2.5-VL-7B of the real configuration in bf16. Each part is timed on its own (CUDA synchronised, median of
``--repeats`` after a warm-up), and its outputs are compared with the reference path bit for bit:

* preprocessing: the video processor on the CPU (the naive loop) against on the GPU;
* the vision tower with transformers' window-by-window attention, the padded SDPA call and the varlen flash call;
* the prefill (vision tower + language model, last-token logits) at batch 1 and of a left-padded batch of 4 with
  transformers' SDPA attention against the row-wise ``vdpm_rowwise`` attention;
* ``generate`` with 1 and 8 new tokens at batch 1, 4 and 8 (the difference is the decoding steps);
* a torch profiler pass over one batch-4 ``generate``: the kernels that take the GPU time, and the CPU operators;
* optionally (``--compile``), the vision blocks under ``torch.compile``.

    python perf/profile_qwen_gpu.py --out results-profile
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

QUESTIONS = [
    "From the camera's perspective, in which direction does the person move?",
    "Does the distance between the car and the camera become larger or smaller over the course of the video?",
    "Which object moves faster?",
    "Relative to the dog's orientation at the start, where is the ball at the end of the video, and how far away?",
]
DSR_SUFFIX = (
    "\nA. Left\nB. Right\nC. Forward\nD. Back\nAnswer with the option's letter from the given choices directly."
)


def synthetic_frames(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Smooth moving gradients with noise: (T, H, W, 3) uint8, deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        base = 127 + 60 * np.sin((x + 9 * t) / 37.0) * np.cos((y - 5 * t) / 23.0)
        for c in range(3):
            out[t, :, :, c] = np.clip(base + 40 * c + rng.normal(0, 8, size=(height, width)), 0, 255)
    return out


def timed(fn, repeats: int, sync) -> tuple[float, object]:
    """Median wall time of ``fn()`` (synchronised) after one warm-up call, and the last result."""
    result = fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/qwen25vl-7b-random"))
    parser.add_argument("--out", type=Path, default=Path("results-profile"))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", default="560x1008", help="frame height x width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time the vision blocks under torch.compile")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip")
    parser.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny model, small frames")
    args = parser.parse_args(argv)
    if args.smoke:
        args.frames, args.size, args.repeats = 4, "56x84", 1

    import torch
    from transformers import AutoProcessor

    from vdpm_harness_plugins.models.qwen25vl.attention import register
    from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_random_model, make_random, make_tiny
    from vdpm_harness_plugins.models.qwen25vl.vision_attention import patch_vision_attention

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = not args.smoke
    dev = "cuda" if cuda else "cpu"
    report: dict = {"gpu": torch.cuda.get_device_name(0) if cuda else "cpu (smoke)", "torch": torch.__version__,
                    "parts": {}, "errors": {}}  # fmt: skip
    skip = set(filter(None, args.skip.split(",")))

    def save():
        (args.out / "profile.json").write_text(json.dumps(report, indent=2, default=str))

    def part(name):
        def wrap(fn):
            if name in skip:
                return
            start = time.perf_counter()
            try:
                report["parts"][name] = fn()
            except Exception:  # noqa: BLE001 - one failing part must not lose the others
                report["errors"][name] = traceback.format_exc()
                print(report["errors"][name], flush=True)
            result = json.dumps(report["parts"].get(name), default=str)
            print(f"[{time.perf_counter() - start:6.1f} s] {name}: {result}", flush=True)
            save()

        return wrap

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if not (args.model_dir / "config.json").exists():
        if args.smoke:
            make_tiny(args.model_dir)
        else:
            make_random(args.model_dir, "7b")
    t0 = time.perf_counter()
    model, config = load_random_model(args.model_dir, dtype="bfloat16" if cuda else "float32", device=dev,
                                      attn_implementation="sdpa")  # fmt: skip
    report["load_s"] = time.perf_counter() - t0
    processor = AutoProcessor.from_pretrained(args.model_dir)
    processor.tokenizer.padding_side = "left"
    height, width = (int(v) for v in args.size.split("x"))
    frames = [synthetic_frames(args.frames, height, width, seed) for seed in range(8)]
    indices = np.linspace(0, 1799, args.frames).astype(int).tolist()
    metadata = {"total_num_frames": 1800, "fps": 30.0, "frames_indices": indices, "duration": 60.0}
    visual = model.model.visual

    def chat(question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question + DSR_SUFFIX}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def inputs(n: int, device: str = dev):
        return processor(
            text=[chat(QUESTIONS[i % len(QUESTIONS)]) for i in range(n)], videos=frames[:n], padding=True,
            return_tensors="pt",
            videos_kwargs={"video_metadata": [metadata] * n, "do_sample_frames": False,
                           "size": {"shortest_edge": 28 * 28, "longest_edge": 768 * 28 * 28},
                           "cap_pixels_per_frame": True, "device": device},
        ).to(dev)  # fmt: skip

    one = inputs(1)
    report["prompt_tokens"] = int(one["input_ids"].shape[1])
    report["vision_patches"] = int(one["pixel_values_videos"].shape[0])

    @part("preprocess")
    def _():
        cpu_s, cpu = timed(lambda: inputs(1, "cpu"), args.repeats, sync)
        gpu_s, gpu = timed(lambda: inputs(1, dev), args.repeats, sync)
        same = torch.equal(cpu["pixel_values_videos"], gpu["pixel_values_videos"])
        diff = (cpu["pixel_values_videos"] - gpu["pixel_values_videos"]).abs().max().item()
        bf16_same = torch.equal(cpu["pixel_values_videos"].bfloat16(), gpu["pixel_values_videos"].bfloat16())
        return {"cpu_s": cpu_s, "gpu_s": gpu_s, "pixel_values_identical": same, "bf16_identical": bf16_same,
                "max_abs_diff": diff, "ids_identical": torch.equal(cpu["input_ids"], gpu["input_ids"])}  # fmt: skip

    pixels, grid = one["pixel_values_videos"].to(model.dtype), one["video_grid_thw"]

    @part("vision")
    def _():
        out, reference = {}, None
        with torch.inference_mode():
            for mode in ("transformers", "padded", "varlen" if cuda else "padded"):
                patch_vision_attention(model, mode)
                seconds, result = timed(lambda: visual(pixels, grid_thw=grid).pooler_output, args.repeats, sync)
                if reference is None:
                    reference = result
                out[mode] = {"s": seconds, "identical": torch.equal(result, reference),
                             "max_abs_diff": (result.float() - reference.float()).abs().max().item()}  # fmt: skip
        return out

    fast_vision = "varlen" if cuda else "padded"
    patch_vision_attention(model, fast_vision)

    def prefill(batch):
        return lambda: model(**batch, logits_to_keep=1).logits[:, -1]

    @part("prefill")
    def _():
        out = {}
        four = inputs(4)
        with torch.inference_mode():
            out["bs1_sdpa_s"], _ = timed(prefill(one), args.repeats, sync)
            model.set_attn_implementation("sdpa")
            out["bs4_sdpa_s"], ref = timed(prefill(four), args.repeats, sync)
            model.set_attn_implementation(register())
            out["bs4_varlen_s"], got = timed(prefill(four), args.repeats, sync)
            out["bs1_varlen_s"], _ = timed(prefill(one), args.repeats, sync)
        out["bs4_padding_tokens"] = int((four["attention_mask"] == 0).sum())
        out["bs4_max_abs_logit_diff"] = (ref.float() - got.float()).abs().max().item()
        out["bs4_argmax_equal"] = torch.equal(ref.argmax(-1), got.argmax(-1))
        return out

    @part("generate")
    def _():
        out = {}
        with torch.inference_mode():
            for n in (1, 4, 8):
                batch = one if n == 1 else inputs(n)
                for tokens in (1, 8):
                    settings = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
                    seconds, _ = timed(lambda b=batch, g=settings: model.generate(**b, **g), args.repeats, sync)
                    out[f"bs{n}_new{tokens}_s"] = seconds
                out[f"bs{n}_per_sample_s"] = out[f"bs{n}_new8_s"] / n
                out[f"bs{n}_decode_step_ms"] = (out[f"bs{n}_new8_s"] - out[f"bs{n}_new1_s"]) / 7 * 1000
                if cuda:
                    out[f"bs{n}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                    torch.cuda.reset_peak_memory_stats()
        return out

    @part("identity")
    def _():
        """Greedy ids of the naive configuration (CPU preprocessing, transformers' vision attention, SDPA) against
        the harness configuration at batch 1, and the first step's top-2 margin (how close to a tie)."""
        settings = dict(max_new_tokens=8, do_sample=False, output_scores=True, return_dict_in_generate=True)
        results = {}
        with torch.inference_mode():
            for name, vision, attn, device in (("naive", "transformers", "sdpa", "cpu"),
                                               ("harness", fast_vision, register(), dev),
                                               ("harness_cpu_preprocess", fast_vision, register(), "cpu"),
                                               ("harness_transformers_vision", "transformers", register(),
                                                dev)):  # fmt: skip
                patch_vision_attention(model, vision)
                model.set_attn_implementation(attn)
                rows = {}
                for seed in range(4):
                    batch = processor(
                        text=[chat(QUESTIONS[seed])], videos=[frames[seed]], return_tensors="pt",
                        videos_kwargs={"video_metadata": [metadata], "do_sample_frames": False,
                                       "size": {"shortest_edge": 28 * 28, "longest_edge": 768 * 28 * 28},
                                       "cap_pixels_per_frame": True, "device": device},
                    ).to(dev)  # fmt: skip
                    result = model.generate(**batch, **settings)
                    top = torch.topk(result.scores[0][0].float(), 2).values
                    rows[seed] = {"ids": result.sequences[0, batch["input_ids"].shape[1]:].tolist(),
                                  "margin": (top[0] - top[1]).item()}  # fmt: skip
                results[name] = rows
        naive = results["naive"]
        return {name: {"same_ids": sum(rows[s]["ids"] == naive[s]["ids"] for s in rows), "of": len(rows),
                       "margins": [round(rows[s]["margin"], 4) for s in rows]}
                for name, rows in results.items()}  # fmt: skip

    patch_vision_attention(model, fast_vision)
    model.set_attn_implementation(register())

    @part("profile")
    def _():
        from torch.profiler import ProfilerActivity, profile

        batch = inputs(4)
        settings = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
        with torch.inference_mode():
            model.generate(**batch, **settings)
            sync()
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=activities) as prof:
                start = time.perf_counter()
                model.generate(**batch, **settings)
                sync()
                wall = time.perf_counter() - start
        events = prof.key_averages()
        kernels = sorted((e for e in events if e.device_type.name == "CUDA"), key=lambda e: -e.self_device_time_total)
        gpu_total = sum(e.self_device_time_total for e in kernels) / 1e6
        table = events.table(
            sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=40, max_name_column_width=90
        )
        (args.out / "profile_bs4_cuda.txt").write_text(table)
        (args.out / "profile_bs4_cpu.txt").write_text(
            events.table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=90)
        )
        print(table, flush=True)
        return {"wall_s": wall, "gpu_kernel_s": gpu_total, "gpu_fraction": gpu_total / wall,
                "cpu_top": [[e.key[:90], round(e.self_cpu_time_total / 1e6, 4), e.count]
                            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]],
                "top_kernels": [[e.key[:90], round(e.self_device_time_total / 1e6, 4), e.count]
                                for e in kernels[:25]]}  # fmt: skip

    @part("prefill_attention_kernels")
    def _():
        """Which attention kernels one batch-1 prefill runs with the row-wise implementation (cuDNN asked for
        first), from a profiler trace: name, calls and GPU time of every kernel that looks like attention."""
        from torch.profiler import ProfilerActivity, profile

        if not cuda:
            return "skipped (CUDA only)"
        patch_vision_attention(model, fast_vision)
        model.set_attn_implementation(register())
        with torch.inference_mode():
            model(**one, logits_to_keep=1)
            sync()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                model(**one, logits_to_keep=1)
                sync()
        words = ("flash", "cudnn", "fmha", "attention", "sdpa", "softmax")
        return [
            [e.key[:100], e.count, round(e.self_device_time_total / 1e3, 2)]
            for e in prof.key_averages()
            if any(w in e.key.lower() for w in words) and e.self_device_time_total
        ]

    @part("sdpa_backends")
    def _():
        """The language model's prefill attention of one sample (28 heads over 4 KV heads, causal) per SDPA backend."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        text = config.text_config
        dim = text.hidden_size // text.num_attention_heads
        n = report["prompt_tokens"]
        q = torch.randn(1, text.num_attention_heads, n, dim, device=dev, dtype=model.dtype)
        k, v = (torch.randn(1, text.num_key_value_heads, n, dim, device=dev, dtype=model.dtype) for _ in range(2))
        groups = text.num_attention_heads // text.num_key_value_heads
        kr, vr = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        out, reference = {}, None
        for backend in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
            try:
                with sdpa_kernel(getattr(SDPBackend, backend)):
                    seconds, result = timed(
                        lambda: torch.nn.functional.scaled_dot_product_attention(q, kr, vr, is_causal=True),
                        args.repeats, sync)  # fmt: skip
                reference = result if reference is None else reference
                flops = 4 * text.num_attention_heads * dim * n * n / 2
                out[backend] = {"ms": seconds * 1e3, "tflops": flops / seconds / 1e12,
                                "max_abs_diff": (result.float() - reference.float()).abs().max().item()}  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a backend that does not take this shape
                out[backend] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return out

    @part("compiled_model")
    def _():
        """The plugin's ``compile_model`` (vision blocks, language-model MLPs and norms) on the whole model."""
        from vdpm_harness_plugins.models.qwen25vl.speed import compile_model

        compile_model(model)
        out = {}
        with torch.inference_mode():
            start = time.perf_counter()
            model(**one, logits_to_keep=1)
            sync()
            out["first_prefill_s"] = time.perf_counter() - start
            out["bs1_prefill_s"], _ = timed(prefill(one), args.repeats, sync)
            for n in (1, 8):
                batch = one if n == 1 else inputs(n)
                for tokens in (1, 8):
                    settings = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
                    start = time.perf_counter()
                    model.generate(**batch, **settings)
                    sync()
                    out[f"bs{n}_new{tokens}_first_s"] = time.perf_counter() - start
                    run = lambda b=batch, g=settings: model.generate(**b, **g)  # noqa: E731
                    out[f"bs{n}_new{tokens}_s"], _ = timed(run, args.repeats, sync)
                out[f"bs{n}_per_sample_s"] = out[f"bs{n}_new8_s"] / n
                out[f"bs{n}_decode_step_ms"] = (out[f"bs{n}_new8_s"] - out[f"bs{n}_new1_s"]) / 7 * 1000
        return out

    @part("compile_vision")
    def _():
        if not args.compile:
            return "skipped (--compile not given)"
        with torch.inference_mode():
            eager_s, reference = timed(lambda: visual(pixels, grid_thw=grid).pooler_output, args.repeats, sync)
        for block in visual.blocks:
            block.compile(dynamic=False)
        start = time.perf_counter()
        with torch.inference_mode():
            visual(pixels, grid_thw=grid)
            sync()
            compile_s = time.perf_counter() - start
            compiled_s, result = timed(lambda: visual(pixels, grid_thw=grid).pooler_output, args.repeats, sync)
        return {"eager_s": eager_s, "compiled_s": compiled_s, "first_call_s": compile_s,
                "max_abs_diff": (result.float() - reference.float()).abs().max().item()}  # fmt: skip

    save()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
