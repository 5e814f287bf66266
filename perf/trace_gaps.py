"""Where a pipeline leaves the GPU idle: a torch profiler trace of a harness run, read back as time lines.

:func:`annotate` wraps the Qwen2.5-VL forward passes and the plugin's ``stage``/``generate_staged`` in
``torch.profiler.record_function`` ranges named by what they do (``vdpm.vision``, ``vdpm.prefill_long`` for prompts
of at least 1,000 tokens, ``vdpm.prefill_short`` for a question's own tokens after a shared prefix,
``vdpm.decode_step`` for one new token, ``vdpm.generate_staged`` around a batch's generation on the main thread,
``vdpm.stage`` around the next batch's staging on the helper thread). :func:`analyse` reads the Chrome trace the
profiler exports and answers, on a 0.1 ms grid over the span from the first to the last GPU kernel:

* ``gpu_busy``: the share of the span in which at least one kernel ran (the union of kernel intervals);
* ``idle_s_by_main_thread``: the idle GPU time split by what the main thread was doing meanwhile (the innermost of
  the ranges above, ``outside_generate`` when it was in none: waiting for decoded frames, for the staged batch, or
  storing results), and how much of each coincided with the helper thread staging (``with_staging``: both threads
  want the interpreter's lock, so staging can delay the main thread's kernel launches);
* ``kernel_s_by_launch``: kernel time by the thread that launched the kernel (matched through the profiler's
  correlation ids) and, for the main thread, by its innermost range at the launch;
* the kernels that took the most GPU time.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Innermost first: an instant inside several ranges of the main thread counts for the first one listed.
MAIN_PHASES = ("vdpm.vision", "vdpm.decode_step", "vdpm.prefill_short", "vdpm.prefill_long", "vdpm.generate_staged")
LONG_PROMPT = 1000
GRID_US = 100.0


def _wrap(owner, name: str, label):
    import torch

    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        with torch.profiler.record_function(label(*args, **kwargs) if callable(label) else label):
            return original(*args, **kwargs)

    setattr(owner, name, wrapped)
    return owner, name, original


def _length_label(self, input_ids=None, inputs_embeds=None, **kwargs) -> str:
    tokens = input_ids if input_ids is not None else inputs_embeds
    length = 0 if tokens is None else int(tokens.shape[1])
    if length <= 1:
        return "vdpm.decode_step"
    return "vdpm.prefill_long" if length >= LONG_PROMPT else "vdpm.prefill_short"


@contextmanager
def annotate():
    """Name the forward passes and the plugin's staging and generation in the profiler's trace (class-level
    wrappers, removed on exit)."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling

    from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL

    wrapped = [
        _wrap(modeling.Qwen2_5_VLModel, "forward", _length_label),
        _wrap(modeling.Qwen2_5_VLModel, "get_video_features", "vdpm.vision"),
        _wrap(Qwen25VL, "stage", "vdpm.stage"),
        _wrap(Qwen25VL, "generate_staged", "vdpm.generate_staged"),
    ]
    try:
        yield
    finally:
        for owner, name, original in reversed(wrapped):
            setattr(owner, name, original)


def _load(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        trace = json.load(handle)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def _mask(intervals, start: float, size: int) -> np.ndarray:
    """Boolean grid (``GRID_US`` cells from ``start``) of the cells that the (begin, end) intervals touch."""
    mask = np.zeros(size + 1, dtype=np.int32)
    for begin, end in intervals:
        if end <= start or begin >= start + size * GRID_US:
            continue  # wholly outside the span (e.g. a range that ends after the last kernel)
        a = int(max(0, (begin - start) // GRID_US))
        b = int(min(size, max(a + 1, -(-(end - start) // GRID_US))))
        mask[a] += 1
        mask[b] -= 1
    return np.cumsum(mask)[:size] > 0


def _seconds(cells: np.ndarray, staging: np.ndarray) -> dict[str, float]:
    seconds = GRID_US / 1e6
    return {"idle_s": float(cells.sum() * seconds), "with_staging_s": float((cells & staging).sum() * seconds)}


def analyse(trace_path: Path, top: int = 15) -> dict:
    """The summary described in the module docstring, from an exported Chrome trace (``.json`` or ``.json.gz``), over
    the steady state: from the start of the first batch's generation (``vdpm.generate_staged``) to the last kernel,
    so that loading the model and decoding the first videos (``startup_s``) do not count."""
    events = [e for e in _load(trace_path) if e.get("ph") == "X" and "dur" in e]
    kernels = [(float(e["ts"]), float(e["ts"]) + float(e["dur"]), e["name"], e.get("args", {}).get("correlation"))
               for e in events if e.get("cat") == "kernel"]  # fmt: skip
    if not kernels:
        return {"error": "no GPU kernel in the trace (was it a CUDA run?)"}
    ranges = defaultdict(list)  # (name, thread) -> intervals
    for e in events:
        if e.get("cat") == "user_annotation" and str(e.get("name", "")).startswith("vdpm."):
            ranges[(e["name"], e.get("tid"))].append((float(e["ts"]), float(e["ts"]) + float(e["dur"])))
    # the main thread generates; the helper thread stages (a batch staged on the main thread is not counted as such)
    main = max((tid for name, tid in ranges if name == "vdpm.generate_staged"),
               key=lambda tid: len(ranges[("vdpm.generate_staged", tid)]), default=None)  # fmt: skip
    helper = next((tid for name, tid in ranges if name == "vdpm.stage" and tid != main), None)
    first_kernel = min(k[0] for k in kernels)
    generating = ranges.get(("vdpm.generate_staged", main), [])
    start = max(first_kernel, min((a for a, _ in generating), default=first_kernel))
    end = max(k[1] for k in kernels)
    size = max(1, int(-(-(end - start) // GRID_US)))
    busy = _mask([(a, b) for a, b, _, _ in kernels], start, size)
    idle = ~busy
    staging = _mask(ranges.get(("vdpm.stage", helper), []), start, size)
    left = idle.copy()
    idle_by_phase = {}
    for phase in MAIN_PHASES:
        inside = _mask(ranges.get((phase, main), []), start, size) & left
        left &= ~inside
        idle_by_phase[phase.removeprefix("vdpm.")] = _seconds(inside, staging)
    idle_by_phase["outside_generate"] = _seconds(left, staging)
    # each kernel by the thread that launched it (the runtime call of the same correlation id) and, for the main
    # thread, by the innermost of its ranges at the launch
    launches = {e["args"]["correlation"]: (e.get("tid"), float(e["ts"])) for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}  # fmt: skip
    phase_ranges = [(phase.removeprefix("vdpm."), sorted(ranges.get((phase, main), []))) for phase in MAIN_PHASES]

    def phase_at(ts: float) -> str:
        for phase, intervals in phase_ranges:
            if any(a <= ts <= b for a, b in intervals):
                return phase
        return "other"

    kernel_by_launcher = defaultdict(float)
    by_kernel = defaultdict(lambda: [0.0, 0])
    for a, b, name, correlation in kernels:
        if b <= start:
            continue
        tid, launched = launches.get(correlation, (None, a))
        role = "main" if tid == main else "staging_thread" if tid == helper else "other_thread"
        key = f"main:{phase_at(launched)}" if role == "main" else role
        kernel_by_launcher[key] += (b - max(a, start)) / 1e6
        by_kernel[name][0] += (b - a) / 1e6
        by_kernel[name][1] += 1
    heaviest = sorted(by_kernel.items(), key=lambda item: -item[1][0])[:top]
    counts = {phase: len(intervals) for phase, intervals in phase_ranges}
    counts["stage"] = len(ranges.get(("vdpm.stage", helper), []))
    return {
        "startup_s": (start - first_kernel) / 1e6, "span_s": (end - start) / 1e6, "gpu_busy": float(busy.mean()),
        "gpu_idle_s": float(idle.sum() * GRID_US / 1e6), "idle_s_by_main_thread": idle_by_phase,
        "kernel_s_by_launch": dict(sorted(kernel_by_launcher.items(), key=lambda item: -item[1])),
        "ranges": counts, "kernels": len(kernels),
        "top_kernels": [{"name": name[:120], "seconds": round(s, 4), "calls": n} for name, (s, n) in heaviest],
    }  # fmt: skip


#: Kernel families by name, first match wins: attention before matrix products (flash kernels are CUTLASS too).
FAMILIES = (
    ("attention", re.compile(r"flash|fmha|sdpa|attention", re.I)),
    ("matmul", re.compile(r"gemm|nvjet|wgmma|xmma|cublas|cutlass", re.I)),
    ("fused (triton)", re.compile(r"^triton_")),
    ("communication", re.compile(r"nccl", re.I)),
)


def kernel_families(trace_path: Path, top: int = 10) -> dict:
    """GPU time of a trace by kernel family (attention, matrix products, Triton-fused, communication, the rest:
    unfused pointwise, copies, reductions), with its share of the summed kernel time and the span's busy share."""
    events = [e for e in _load(trace_path) if e.get("ph") == "X" and e.get("cat") == "kernel" and "dur" in e]
    if not events:
        return {"error": "no GPU kernel in the trace (was it a CUDA run?)"}
    seconds = defaultdict(float)
    by_kernel = defaultdict(float)
    for e in events:
        family = next((name for name, pattern in FAMILIES if pattern.search(e["name"])), "other (pointwise, copies)")
        seconds[family] += float(e["dur"]) / 1e6
        by_kernel[e["name"][:100]] += float(e["dur"]) / 1e6
    total = sum(seconds.values())
    start = min(float(e["ts"]) for e in events)
    end = max(float(e["ts"]) + float(e["dur"]) for e in events)
    size = max(1, int(-(-(end - start) // GRID_US)))
    busy = _mask([(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in events], start, size)
    return {
        "span_s": (end - start) / 1e6, "gpu_busy": float(busy.mean()), "kernel_s": total,
        "families": {name: {"seconds": round(s, 4), "share": round(s / total, 4)}
                     for name, s in sorted(seconds.items(), key=lambda item: -item[1])},
        "top_kernels": [{"name": name, "seconds": round(s, 4)}
                        for name, s in sorted(by_kernel.items(), key=lambda item: -item[1])[:top]],
    }  # fmt: skip
