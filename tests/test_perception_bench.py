"""Measurements of the perception pipeline, runnable as tests: the oracle ablation on synthetic scenes (each learned
stage swapped in alone, at random tiny weights here) and the throughput of the full-size pipeline on a GPU (random
weights time the same as trained ones).

Each test checks its machinery; with ``VDPM_PERCEPTION_REPORT=FILE`` it also writes its table (markdown) there, which
``docs/perception.md`` quotes. ``VDPM_ABLATION_SCENES`` and ``VDPM_ABLATION_QUESTIONS`` size the ablation (2 and 6 by
default); the GPU test is skipped without CUDA.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vdpm_harness import plugins

from .test_perception_models import TINY_DINOV2, TINY_PI3, save_tiny_grounding_dino, save_tiny_sam2

CLASSES = {"agents": "person. dog. car", "objects": "ball. box. cone"}
ORACLES = {"detector": "oracle", "tracker": "oracle", "reconstructor": "oracle", "orientation": "oracle"}
TEMPLATES = ["rel_dis", "rel_dir", "rel_ori", "abs_dis", "abs_dir", "abs_ori", "rel_spd", "abs_spd", "rel_spd_comp",
             "abs_spd_comp", "rel_dir_pred", "abs_dir_pred"]  # fmt: skip


def report(text: str) -> None:
    """Append ``text`` to the report file, when one is asked for."""
    path = os.environ.get("VDPM_PERCEPTION_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text.rstrip() + "\n\n")


def learned_stages(models: Path, device: str = "cpu") -> dict[str, tuple[str, list[str]]]:
    """stage -> (plugin id, stage arguments) of the four learned plugins at random tiny weights. An untrained Pi3
    marks almost every pixel invalid (low confidence, depth edges everywhere), so its validity filter is opened here
    (``conf_threshold=0``, ``edge_rtol=1e9``) for its points to reach the objects."""
    gd = save_tiny_grounding_dino(models / "grounding-dino", words=("person", "dog", "car", "ball", "box", "cone"))
    sam2 = save_tiny_sam2(models / "sam2")
    return {
        "detector": ("grounding-dino", [f"detector:model={gd}", f"detector:device={device}"]),
        "tracker": ("sam2", [f"tracker:model={sam2}", f"tracker:device={device}"]),
        "reconstructor": ("pi3", ["reconstructor:random_weights=true", f"reconstructor:device={device}",
                                  f"reconstructor:architecture={json.dumps(TINY_PI3)}",
                                  "reconstructor:pixel_limit=20000", "reconstructor:conf_threshold=0",
                                  "reconstructor:edge_rtol=1e9"]),
        "orientation": ("orient-anything", ["orientation:random_weights=true", f"orientation:device={device}",
                                            f"orientation:backbone={json.dumps(TINY_DINOV2)}"]),
    }  # fmt: skip


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@pytest.mark.slow
def test_oracle_ablation_on_synthetic_scenes(tmp_path):
    """All stages exact, then each learned stage alone: the exact run is perfect and agrees on every answer; each
    learned run completes and reports its stage's error."""
    pytest.importorskip("transformers")
    n_scenes = int(os.environ.get("VDPM_ABLATION_SCENES", "2"))
    n_questions = int(os.environ.get("VDPM_ABLATION_QUESTIONS", "6"))
    scenes = tmp_path / "scenes"
    host = plugins.Host()
    host.create("generators", "synth-scenes", {"n_videos": n_scenes, "width": 320, "height": 240, "duration": 4.0,
                                               "min_objects": 3}).run(scenes, seed=2026)  # fmt: skip
    stages = learned_stages(tmp_path / "models")
    runs = {"all oracle": {}, **{f"{plugin} ({stage})": {stage: (plugin, args)}
                                 for stage, (plugin, args) in stages.items()}}  # fmt: skip
    results = {}
    for name, swapped in runs.items():
        options = {**ORACLES, **CLASSES, "videos": str(scenes), "questions": n_questions, "intermediates": "none"}
        options["stage_arg"] = [arg for _, args in swapped.values() for arg in args]
        options.update({stage: plugin for stage, (plugin, _) in swapped.items()})
        if "orientation" in swapped:  # an untrained Orient Anything is never confident: keep its angles anyway
            options["min_orientation_confidence"] = 0.0
        out = tmp_path / name.split()[0]
        results[name] = host.create("generators", "video-tracks", options).run(out, seed=0)
    exact = results["all oracle"]
    assert exact["errors"]["tracker"]["box_iou"] == 1.0 and exact["answers"]["agreement"] == 1.0
    for name, stats in results.items():
        assert stats["tracks"] + stats["failed"] == n_scenes, name
    rows = ["| stages | videos | detector recall / precision | tracker box IoU / tracked | camera rotation (deg) / "
            "position error | facing error (deg) / accepted | answers agreeing (questions on both sides) |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, stats in results.items():
        e, a = stats.get("errors", {}), stats.get("answers", {})
        d, t, r, o = (e.get(k, {}) for k in ("detector", "tracker", "reconstructor", "orientation"))
        rows.append(f"| {name} | {stats['tracks']}/{n_scenes} | {_fmt(d.get('recall'))} / {_fmt(d.get('precision'))} "
                    f"| {_fmt(t.get('box_iou'))} / {_fmt(t.get('tracked'))} | {_fmt(r.get('rotation_deg'), 1)} / "
                    f"{_fmt(r.get('position_rel'))} | {_fmt(o.get('facing_deg'), 1)} / {_fmt(o.get('accepted'))} | "
                    f"{_fmt(a.get('agreement'))} ({a.get('both', 0)}) |")  # fmt: skip
    per_template = ["| template | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for qtype in TEMPLATES:
        cells = []
        for stats in results.values():
            row = stats.get("answers", {}).get("per_template", {}).get(qtype, {})
            cells.append(f"{_fmt(row.get('agreement'))} ({row.get('both', 0)})" if row else "-")
        per_template.append(f"| {qtype} | " + " | ".join(cells) + " |")
    report(f"Ablation: {n_scenes} synthetic scenes (320x240, 4 s), {n_questions} question draws per video and side\n\n"
           + "\n".join(rows) + "\n\nAnswer agreement per template (questions asked on both sides)\n\n"
           + "\n".join(per_template))  # fmt: skip


# --- full-size throughput on a GPU ---------------------------------------------------------------------------------


def save_full_size_models(folder: Path) -> tuple[Path, Path]:
    """Random-weight Grounding DINO (the Swin-T configuration of IDEA-Research/grounding-dino-tiny, 172 M
    parameters; a small BERT vocabulary) and SAM 2.1 Hiera-L (facebook/sam2.1-hiera-large's configuration, 224 M),
    saved for ``from_pretrained``."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    torch.manual_seed(0)
    gd = folder / "grounding-dino"
    GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(gd)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "dog", "ball", "car"]))
    GroundingDinoProcessor(GroundingDinoImageProcessor(), BertTokenizer(str(vocab))).save_pretrained(gd)
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 144,
        "num_attention_heads": 2,
        "blocks_per_stage": [2, 6, 36, 4],
        "embed_dim_per_stage": [144, 288, 576, 1152],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "window_size_per_stage": [8, 4, 16, 8],
        "global_attention_blocks": [23, 33, 43],
        "window_positional_embedding_background_size": [7, 7],
    }
    sam2 = folder / "sam2"
    config = Sam2VideoConfig(
        vision_config={"backbone_config": backbone, "backbone_channel_list": [1152, 576, 288, 144]}
    )
    Sam2VideoModel(config).save_pretrained(sam2)
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(), video_processor=Sam2VideoVideoProcessor()).save_pretrained(
        sam2
    )
    return gd, sam2


def _write_video(args) -> str:
    """A 1280x720 video of ``seconds`` at ``fps``: a colour gradient sliding 3 pixels a frame."""
    from vdpm_harness import write_video

    path, seconds, fps = args
    x = np.arange(1280 + 256)[None, :]
    y = np.arange(720)[:, None]
    base = (x % 256 + (2 * y) % 256) // 2
    wide = np.stack([base, (base + 85) % 256, (base + 170) % 256], -1).astype(np.uint8)
    shifts = (3 * np.arange(int(seconds * fps))) % 256
    write_video(path, (wide[:, shift : shift + 1280] for shift in shifts), fps, preset="ultrafast")
    return str(path)


class GpuBusy:
    """The GPU's utilisation, sampled by ``nvidia-smi`` every 100 ms while the block runs."""

    def __enter__(self):
        self.samples: list[float] = []
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0", "-lms", "100"], stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.samples.append(float(line))

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def orientation_per_call(estimator, video: Path, objects: int = 6) -> dict:
    """Orient Anything on ``objects`` boxes in each of a video's 32 frames: batched, then one crop per call (after
    one warm-up call)."""
    import torch

    from vdpm_harness_plugins.generators.scenes.video_tracks.sampling import sample_clip

    clip = sample_clip(video, 32)
    width, height = clip.size
    masks = []
    for i in range(objects):
        mask = np.zeros((height, width), bool)
        mask[60 + 90 * i : 200 + 90 * i, 100 + 150 * i : 260 + 150 * i] = True
        masks.append(mask)
    requests = [(k, mask) for k in range(len(clip)) for mask in masks]
    estimator.estimate(clip, requests[:2])
    times = {"batch_size": estimator.options.batch_size, "crops": len(requests)}
    for name, size in (("batched", estimator.options.batch_size), ("per_call", 1)):
        estimator.options.batch_size = size
        torch.cuda.synchronize()
        start = time.perf_counter()
        estimator.estimate(clip, requests)
        torch.cuda.synchronize()
        times[name] = time.perf_counter() - start
    estimator.options.batch_size = times["batch_size"]
    return times


#: Video lengths (seconds) of the throughput runs, 1280x720 at 30 fps.
LENGTHS = [int(s) for s in os.environ.get("VDPM_THROUGHPUT_SECONDS", "20,40,60,80,100,120").split(",")]


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    """Videos (each length twice), a warm-up video, the full-size random models and the pipeline's options (DSR's
    settings: 32 frames, detection on the first frame; at most 6 objects, all of them agents, so every stage runs)."""
    from concurrent.futures import ProcessPoolExecutor

    root = tmp_path_factory.mktemp("throughput")
    videos, warm = root / "videos", root / "warm"
    videos.mkdir()
    warm.mkdir()
    jobs = [(videos / f"v{i:02d}_{s}s.mp4", s, 30.0) for i, s in enumerate(LENGTHS + LENGTHS)]
    jobs.append((warm / "warm.mp4", 20, 30.0))
    start = time.perf_counter()
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        list(pool.map(_write_video, jobs))
    encode = time.perf_counter() - start
    gd, sam2 = save_full_size_models(root / "models")
    options = {"agents": "person. dog. ball. car", "max_objects": 6, "intermediates": "none", "compare": False,
               "detector": "grounding-dino", "tracker": "sam2", "reconstructor": "pi3",
               "orientation": "orient-anything",
               # box_threshold 0: an untrained Grounding DINO scores every box near its prior (about 0.01)
               "stage_arg": [f"detector:model={gd}", "detector:box_threshold=0", f"tracker:model={sam2}",
                             "tracker:dtype=bfloat16", "reconstructor:random_weights=true",
                             "orientation:random_weights=true"]}  # fmt: skip
    return {"root": root, "videos": videos, "warm": warm, "options": options, "encode": encode}


@pytest.mark.gpu
@pytest.mark.slow
def test_full_size_throughput(full_size):
    """The four learned stages at full size (random weights) on 1280x720 videos of 20-120 s: seconds per video per
    stage after a warm-up video, and the GPU's mean utilisation; then Orient Anything batched against one crop per
    call, as the original calls it."""
    import torch

    root, options = full_size["root"], full_size["options"]
    host = plugins.Host()
    generator = host.create("generators", "video-tracks", {**options, "videos": str(full_size["warm"])})
    start = time.perf_counter()
    generator.run(root / "out-warm", seed=0)
    load = time.perf_counter() - start
    generator.options.videos = str(full_size["videos"])
    start = time.perf_counter()
    with GpuBusy() as busy:
        stats = generator.run(root / "out", seed=0)
    wall = time.perf_counter() - start
    n = 2 * len(LENGTHS)
    assert stats["tracks"] == n, stats
    records = json.loads((root / "out" / "video_tracks.json").read_text())["videos"]
    orientation = orientation_per_call(generator.stages["orientation"], full_size["warm"] / "warm.mp4")
    lines = [f"One process on one {torch.cuda.get_device_name(0)}: {n} videos 1280x720 at 30 fps, "
             f"{', '.join(map(str, LENGTHS))} s each twice (encoded in {full_size['encode']:.0f} s); the warm-up "
             f"video with model loading took {load:.1f} s",
             "", "| video | objects | agents | decoding | detector | tracker | reconstructor | orientation | total |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for record in records:
        s = record["seconds"]
        lines.append(
            f"| {record['video']} | {len(record['objects'])} | {sum(o['agent'] for o in record['objects'])} "
            f"| {s.get('frames', 0):.2f} | {s.get('detector', 0):.2f} | {s.get('tracker', 0):.2f} | "
            f"{s.get('reconstructor', 0):.2f} | {s.get('orientation', 0):.2f} | {sum(s.values()):.2f} |"
        )
    lines += ["", f"Mean seconds per video: {json.dumps(stats['seconds_per_video'])}; wall {wall:.1f} s for {n} "
              f"videos ({wall / n:.2f} s per video); GPU utilisation mean {_fmt(busy.mean, 0)}% over "
              f"{len(busy.samples)} samples. Orient Anything on {orientation['crops']} crops: "
              f"{orientation['batched']:.2f} s in batches of {orientation['batch_size']}, "
              f"{orientation['per_call']:.2f} s one crop per call (the original's way)."]  # fmt: skip
    report("\n".join(lines))
    print("\n".join(lines))


@pytest.mark.gpu
@pytest.mark.slow
def test_several_processes_per_gpu(full_size):
    """``torchrun`` with ``VDPM_PROCESSES_PER_GPU`` (3; several counts separated by commas) processes per GPU: each
    holds the four models on the GPU of ``LOCAL_RANK mod GPUs`` and takes the next unfinished video, so one's decoding
    and CPU work overlaps the others' GPU work. Wall time includes every process's model loading."""
    import torch

    for per_gpu in os.environ.get("VDPM_PROCESSES_PER_GPU", "3").split(","):
        processes_per_gpu(full_size, int(per_gpu) * torch.cuda.device_count())


def processes_per_gpu(full_size, k: int) -> None:
    import sys

    import torch

    options = full_size["options"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", "-m",
               "vdpm_harness", "generate", "video-tracks", "--videos", str(full_size["videos"]), "--out",
               str(full_size["root"] / f"out-{k}"), "--agents", options["agents"], "--max-objects", "6",
               "--intermediates", "none", "--no-compare", "--detector", "grounding-dino", "--tracker", "sam2",
               "--reconstructor", "pi3", "--orientation", "orient-anything", "--stage-arg",
               ";".join(options["stage_arg"])]  # fmt: skip
    start = time.perf_counter()
    with GpuBusy() as busy:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = 2 * len(LENGTHS)
    assert len(list((full_size["root"] / f"out-{k}").glob("*.npz"))) == n
    stats = json.loads(proc.stdout[proc.stdout.index("{") :])
    text = (f"torchrun, {k} processes on {torch.cuda.device_count()} GPU(s): {n} videos in {wall:.1f} s wall "
            f"({wall / n:.2f} s per video, model loading of every process included); GPU utilisation mean "
            f"{_fmt(busy.mean, 0)}% over {len(busy.samples)} samples; mean seconds per video and stage in each "
            f"process: {json.dumps(stats['seconds_per_video'])}.")  # fmt: skip
    report(text)
    print(text)
