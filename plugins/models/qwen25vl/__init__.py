"""``qwen25vl``: Qwen2.5-VL through transformers, fed with the harness's decoded frames and their true timing.

Registered ids: ``qwen25vl`` (any hub id or local folder in the ``path`` option) and ``qwen25vl-3b``, ``-7b``,
``-32b``, ``-72b``, whose default ``path`` is ``Qwen/Qwen2.5-VL-{3B,7B,32B,72B}-Instruct``. Commands:
``vdpm-harness models make-tiny DIR`` and ``vdpm-harness models make-random DIR --config 7b`` build offline
checkpoints (:mod:`vdpm_harness_plugins.models.qwen25vl.checkpoints`).

How a request becomes model inputs (:meth:`Qwen25VL.prepare`):

1. The request's messages are rebuilt in order as a chat: text parts as text, each video part as a ``video``
   placeholder paired with its :class:`~vdpm_harness.video.DecodedVideo` (``PreparedRequest.videos``, in order),
   image parts as ``image`` placeholders paired with the image file read by Pillow (RGB). A blind video part
   (``nframes = 0``, or decoded to zero frames) is left out, so a blind run is a text-only prompt.
2. The checkpoint's own chat template renders the text (the default system turn is added by the template).
3. One processor call per group of requests that share pixel limits and decoding settings: ``text`` (left padded),
   ``videos`` (uint8 ``(T, H, W, 3)`` frames exactly as decoded), and for videos ``video_metadata`` from
   ``DecodedVideo.metadata()`` (native fps, sampled indices, total frames: ``second_per_grid_ts`` becomes
   ``temporal_patch_size / (len(indices) / total_frames * native_fps)``, not the 24 fps default),
   ``do_sample_frames=False`` (the harness already sampled), ``cap_pixels_per_frame=True`` (qwen-vl-utils'
   total-pixel budget) and ``size = {shortest_edge: min_pixels, longest_edge: max_pixels}``.
4. Pixel limits per frame (:meth:`Qwen25VL.video_pixels`): a frame policy that sets pixel limits is the single
   source of truth, since the decoder already resized the frames under it: the processor gets the policy's
   ``max_pixels`` (else 768·28·28) and its ``min_pixels`` (else 28·28, so that frames the decoder kept small are not
   scaled up a second time). A policy without limits hands over native frames, and the processor applies
   qwen-vl-utils' video defaults, 128·28·28 and 768·28·28 = 602112 (the official DSR cap). The ``min_pixels`` /
   ``max_pixels`` options override either (a second resize, on request). The processor resizes with
   ``smart_resize`` (sides multiples of 28, area within the limits); frames the decoder sized under the same limits
   with ``size_multiple = 28`` come out of it at their own size, and torchvision skips a resize to the same size, so
   their pixels are not touched twice.

On CUDA, by default (each can be switched off to get transformers' own computation, which is what the naive loop of
``perf/bench_dsr_gpu.py`` runs): the vision tower's windows in one varlen flash call (``vision_attention``), each
row's prefill in its own causal SDPA call with cuDNN preferred (``attn_implementation="rowwise"``), the vision blocks
and the language model's MLPs and norms compiled for prefill-sized inputs (``compile``), and the processor's
resizing and normalisation on the GPU (``preprocess_device``). :meth:`Qwen25VL.stage` does the CPU-side work of a
batch, which the harness runs on a helper thread while the previous batch generates.

Decoding: greedy unless the request's temperature is above 0 (then sampled one request at a time, seeded with the
request's seed). Only the checkpoint's token ids are taken from its ``generation_config``; its sampling defaults (the
released Qwen2.5-VL ship ``repetition_penalty=1.05``, ``top_k=1``, ...) are recorded in ``describe()`` but not applied,
so what runs is what the request's ``GenerationSettings`` say (``extra`` holds further ``generate`` arguments).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import Field, model_validator

from vdpm_harness import (
    FramePolicy,
    ImagePart,
    Model,
    PreparedRequest,
    Response,
    Strict,
    TextPart,
    VideoPart,
    hookimpl,
    local_rank,
)

log = logging.getLogger(__name__)

#: qwen-vl-utils' per-frame pixel limits for videos (VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS).
VIDEO_MIN_PIXELS = 128 * 28 * 28
VIDEO_MAX_PIXELS = 768 * 28 * 28
#: The smallest frame the model takes (one 2x2 group of 14-pixel patches): the floor under a policy's max_pixels.
MIN_FRAME_PIXELS = 28 * 28
#: Default batch size on a GPU (CPU: 1). A batch that runs out of memory is retried one request at a time.
GPU_BATCH_SIZE = 8
HUB_IDS = {size: f"Qwen/Qwen2.5-VL-{size.upper()}-Instruct" for size in ("3b", "7b", "32b", "72b")}
DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class QwenOptions(Strict):
    """Options of the ``qwen25vl`` models (see the module docstring for how pixels and decoding are chosen)."""

    path: str = Field(min_length=1, description="hub id or local checkpoint folder")
    revision: str | None = Field(default=None, description="hub revision (branch, tag or commit)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    attn_implementation: Literal["auto", "sdpa", "rowwise", "flash_attention_2", "eager"] = Field(
        default="auto",
        description="language-model attention: auto = flash_attention_2 when flash-attn is installed, else rowwise "
        "on CUDA (each row's real tokens in one causal SDPA call, cuDNN first; attention.py), else sdpa",
    )
    batch_size: int | None = Field(default=None, ge=1, description=f"default 1 on CPU, {GPU_BATCH_SIZE} on GPU")
    max_new_tokens: int | None = Field(default=None, ge=1, description="else the request's max_new_tokens")
    min_pixels: int | None = Field(default=None, ge=1, description="per video frame; else the frame policy's")
    max_pixels: int | None = Field(default=None, ge=1, description="per video frame; else the frame policy's")
    random_weights: bool = Field(default=False, description="build from the config with random weights")
    local_files_only: bool = Field(default=True, description="never touch the network unless false")
    vision_attention: Literal["transformers", "auto", "varlen", "padded"] = Field(
        default="auto",
        description="vision-tower attention (qwen_vision_attention): auto = one varlen flash call on CUDA, one "
        "padded SDPA call elsewhere; transformers = its own window-by-window loop",
    )
    compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="torch.compile the vision blocks and the language model's MLPs and norms (fuses their pointwise "
        "work; the first batch pays the compilation); auto = on for CUDA, off on the CPU",
    )
    preprocess_device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="where the video processor resizes and normalizes; auto: the model's",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        if self.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise ValueError("attn_implementation 'flash_attention_2' needs the flash-attn package, which is not "
                             "installed; use 'sdpa'")  # fmt: skip
        return self


@dataclass
class _Prompt:
    """One request turned into processor inputs (before batching)."""

    index: int
    prepared: PreparedRequest
    text: str
    videos: list = field(default_factory=list)
    metadata: list[dict] = field(default_factory=list)
    images: list = field(default_factory=list)
    pixels: tuple[int, int] | None = None  # (min, max) per video frame

    @property
    def sampled(self) -> bool:
        return self.prepared.request.generation.temperature > 0


@dataclass
class _Staged:
    """A batch after :meth:`Qwen25VL.stage`: a response slot per request (errors already filled in) and the runs
    to generate, each ``(prompts, inputs on the device, prompt lengths)``."""

    responses: list[Response | None]
    runs: list[tuple] = field(default_factory=list)


class Qwen25VL(Model):
    """Qwen2.5-VL on transformers: batched, left-padded generation over harness-decoded frames."""

    needs_frames = True
    runtime_options = Model.runtime_options | {"local_files_only", "preprocess_device"}
    Options = QwenOptions

    def __init__(self, options=None):
        super().__init__(options)
        self._model = None
        self._processor = None
        self._revision: str | None = None
        self._checkpoint_generation: dict[str, Any] = {}
        self._vision_attention = "transformers"
        self._compiled: list[str] = []
        self._lock = threading.Lock()  # the processor's tokenizer is not safe to share between threads

    # --- resolved settings ------------------------------------------------------------------------------------------

    @property
    def device(self):
        import torch

        if self.options.device in ("auto", "cuda"):
            if torch.cuda.is_available():  # under torchrun each process takes its own GPU
                return torch.device(f"cuda:{local_rank()}")
            if self.options.device == "auto":
                return torch.device("cpu")
        return torch.device(self.options.device)

    @property
    def preprocess_device(self):
        import torch

        return self.device if self.options.preprocess_device == "auto" else torch.device(self.options.preprocess_device)

    @property
    def attn_implementation(self) -> str:
        """The transformers ``attn_implementation`` that ``auto`` (or ``rowwise``) resolves to on this device."""
        from .attention import register

        wanted = self.options.attn_implementation
        if wanted == "auto":
            if self.device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
                return "flash_attention_2"
            wanted = "rowwise" if self.device.type == "cuda" else "sdpa"
        return register() if wanted == "rowwise" else wanted

    @property
    def dtype_name(self) -> str:
        """The dtype weights are loaded in: ``auto`` is bfloat16 on CUDA, float32 on CPU."""
        if self.options.dtype != "auto":
            return self.options.dtype
        return "bfloat16" if self.device.type == "cuda" else "float32"

    @property
    def batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return GPU_BATCH_SIZE if self.device.type == "cuda" else 1

    def fingerprint_data(self) -> dict[str, Any]:
        """Also the resolved dtype (``dtype="auto"`` means different weights on CPU and GPU). A local folder is
        identified by its revision (a hash of its files), not its path, so moving a checkpoint keeps stored results."""
        data = super().fingerprint_data()
        if self.local_dir is not None:
            data["options"] = {k: v for k, v in data["options"].items() if k != "path"}
        return {**data, "dtype": self.dtype_name}

    # --- revision -------------------------------------------------------------------------------------------------

    @property
    def local_dir(self) -> Path | None:
        path = Path(os.path.expanduser(self.options.path))
        return path if path.is_dir() else None

    def revision(self) -> str | None:
        """What identifies the weights: ``local:<hash>`` for a folder (small files' contents, weight files' names,
        sizes and modification times), ``<hub id>@<commit>`` for a hub checkpoint, ``random:<config hash>`` for
        random weights. Copying a folder without keeping modification times changes it (results are recomputed
        rather than wrongly reused)."""
        if self._revision is not None:
            return self._revision
        return self._resolve_revision()

    def _resolve_revision(self) -> str:
        if self.options.random_weights:
            config = self._config_file()
            digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config else self.options.path
            return f"random:{digest}"
        folder = self.local_dir
        if folder is not None:
            return f"local:{_folder_digest(folder)}"
        commit = self._cached_commit()
        return f"{self.options.path}@{commit or self.options.revision or 'unresolved'}"

    def _config_file(self) -> Path | None:
        if self.local_dir is not None:
            path = self.local_dir / "config.json"
            return path if path.is_file() else None
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.options.path, "config.json", revision=self.options.revision)
        return Path(found) if isinstance(found, str) else None

    def _cached_commit(self) -> str | None:
        """The commit of the hub snapshot in the local cache (``.../snapshots/<commit>/config.json``)."""
        config = self._config_file()
        return config.parent.name if config is not None else None

    # --- loading ----------------------------------------------------------------------------------------------------

    def load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration

        options = self.options
        source = str(self.local_dir or options.path)
        hub = {"revision": options.revision, "local_files_only": options.local_files_only}
        try:
            config = AutoConfig.from_pretrained(source, **hub)
        except OSError as exc:
            if self.local_dir is None and options.local_files_only:
                raise OSError(
                    f"{source} is not in the local Hugging Face cache and local_files_only is true: "
                    f"download it first (hf download {source}) or pass local_files_only=false"
                ) from exc
            raise
        if config.model_type != "qwen2_5_vl":
            raise ValueError(f"{source}: model_type is {config.model_type!r}, not a Qwen2.5-VL checkpoint")
        processor = AutoProcessor.from_pretrained(source, **hub)
        processor.tokenizer.padding_side = "left"  # batched generation continues every row from its last token
        if options.random_weights:
            model, _ = load_random_model(source, dtype=self.dtype_name, device=self.device,
                                         attn_implementation=self.attn_implementation, **hub)  # fmt: skip
            try:
                checkpoint_generation = GenerationConfig.from_pretrained(source, **hub)
            except OSError:
                checkpoint_generation = GenerationConfig.from_model_config(config)
        else:
            if self.local_dir is not None and not any(p.suffix in WEIGHT_SUFFIXES for p in self.local_dir.iterdir()):
                raise FileNotFoundError(f"{self.local_dir}: no weight files; a config-only checkpoint (vdpm-harness "
                                        "models make-random) needs the option random_weights=true")  # fmt: skip
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                source, dtype=getattr(torch, self.dtype_name), device_map=str(self.device),
                attn_implementation=self.attn_implementation, **hub,
            ).eval()  # fmt: skip
            checkpoint_generation = model.generation_config
        self._vision_attention = _patch_vision(model, options.vision_attention)
        if options.compile == "on" or (options.compile == "auto" and self.device.type == "cuda"):
            self._compiled = compile_model(model)
        self._checkpoint_generation = checkpoint_generation.to_diff_dict()
        tokenizer = processor.tokenizer
        # only the token ids: the checkpoint's sampling defaults must not leak into greedy decoding
        model.generation_config = GenerationConfig(
            bos_token_id=checkpoint_generation.bos_token_id,
            eos_token_id=checkpoint_generation.eos_token_id or tokenizer.eos_token_id,
            pad_token_id=checkpoint_generation.pad_token_id or tokenizer.pad_token_id,
        )
        self._model, self._processor = model, processor
        self._revision = self._resolve_revision()
        if not options.random_weights and self.local_dir is None and getattr(config, "_commit_hash", None):
            self._revision = f"{options.path}@{config._commit_hash}"

    def describe(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "path": self.options.path, "random_weights": self.options.random_weights,
            "video_pixels_default": [VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS],
        }  # fmt: skip
        if self._model is None:
            return details
        import torch
        import transformers

        model = self._model
        return {
            **details,
            "dtype": str(model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "attn_implementation": model.config._attn_implementation,
            "vision_attention": self._vision_attention,
            "compiled": self._compiled,
            "batch_size": self.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "max_positions": model.config.text_config.max_position_embeddings,
            "processor": type(self._processor).__name__,
            "checkpoint_generation_config": self._checkpoint_generation,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    def close(self) -> None:
        self._model = self._processor = None
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- requests -> inputs -----------------------------------------------------------------------------------------

    def video_pixels(self, policy: FramePolicy) -> tuple[int, int]:
        """Per-frame (min, max) pixels for the processor: the options, else the frame policy's limits (it sized the
        frames), else qwen-vl-utils' video defaults for native frames. The max wins over the min."""
        if policy.min_pixels or policy.max_pixels:
            low, high = policy.min_pixels or MIN_FRAME_PIXELS, policy.max_pixels or VIDEO_MAX_PIXELS
        else:
            low, high = VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS
        high = self.options.max_pixels or high
        return min(self.options.min_pixels or low, high), high

    def _prompt(self, index: int, prepared: PreparedRequest) -> _Prompt:
        """Rebuild the request's chat with its media (raises ValueError/OSError naming the problem)."""
        from PIL import Image

        prompt = _Prompt(index, prepared, "")
        conversation = []
        limits = set()
        video_index = 0
        for message in prepared.request.messages:
            content = []
            for part in message.content:
                if isinstance(part, TextPart):
                    content.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart):
                    with Image.open(part.image) as image:
                        prompt.images.append(image.convert("RGB"))
                    content.append({"type": "image"})
                elif isinstance(part, VideoPart):
                    position, video_index = video_index, video_index + 1
                    if part.frames.blind:
                        continue
                    if position >= len(prepared.videos):
                        raise ValueError(f"no decoded frames for video part {position} ({part.video})")
                    video = prepared.videos[position]
                    if len(video.frames) == 0:
                        continue
                    prompt.videos.append(video.frames)
                    prompt.metadata.append(video.metadata())
                    limits.add(self.video_pixels(part.frames))
                    content.append({"type": "video"})
            conversation.append({"role": message.role, "content": content})
        if len(limits) > 1:
            raise ValueError(f"the videos of one request have different pixel limits {sorted(limits)}")
        prompt.pixels = limits.pop() if limits else None
        prompt.text = self._processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return prompt

    def prepare(self, prompts: list[_Prompt]):
        """One processor call for prompts that share pixel limits: returns the ``BatchFeature`` for ``generate``."""
        videos = [v for p in prompts for v in p.videos]
        images = [i for p in prompts for i in p.images]
        kwargs: dict[str, Any] = {}
        if videos:
            low, high = prompts[0].pixels
            kwargs["videos_kwargs"] = {
                "video_metadata": [m for p in prompts for m in p.metadata],
                "do_sample_frames": False,
                "size": {"shortest_edge": low, "longest_edge": high},
                "cap_pixels_per_frame": True,
                "device": str(self.preprocess_device),
            }
        return self._processor(
            text=[p.text for p in prompts], videos=videos or None, images=images or None, padding=True,
            return_tensors="pt", **kwargs,
        )  # fmt: skip

    # --- generation ---------------------------------------------------------------------------------------------------

    def _generation(self, prepared: PreparedRequest) -> dict[str, Any]:
        settings = prepared.request.generation
        kwargs: dict[str, Any] = {"max_new_tokens": self.options.max_new_tokens or settings.max_new_tokens}
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        else:
            kwargs["do_sample"] = False
        kwargs.update(settings.extra)
        return kwargs

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        import torch

        try:
            return self.generate_staged(self.stage(batch))
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            if len(batch) > 1:
                raise  # the harness retries each request alone
            return [Response(sample_id=batch[0].request.sample_id, error=f"CUDA out of memory: {exc}")]

    def stage(self, batch: list[PreparedRequest]) -> _Staged:
        """Everything before the GPU runs the model (on the harness's helper thread, while the previous batch
        generates): chats, processor calls (tokenising, the frames' copy to and normalisation on the GPU) and the
        context-length check. Requests that fail here already carry their error response."""
        staged = _Staged([None] * len(batch))
        groups: dict[str, list[_Prompt]] = {}
        for index, prepared in enumerate(batch):
            try:
                with self._lock:
                    prompt = self._prompt(index, prepared)
            except (ValueError, OSError) as exc:
                staged.responses[index] = Response(sample_id=prepared.request.sample_id,
                                                   error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                continue
            key = json.dumps([self._generation(prepared), prompt.pixels], sort_keys=True, default=str)
            groups.setdefault(key, []).append(prompt)
        for prompts in groups.values():
            chunks = [[p] for p in prompts] if prompts[0].sampled else [prompts]
            for chunk in chunks:
                run = self._stage_chunk(chunk, staged.responses)
                if run is not None:
                    staged.runs.append(run)
        return staged

    def _stage_chunk(self, prompts: list[_Prompt], responses: list) -> tuple | None:
        """(prompts, inputs on the device, prompt lengths) for prompts sharing decoding settings; a prompt over the
        context length gets its error response instead."""
        generation = self._generation(prompts[0].prepared)
        limit = self._model.config.text_config.max_position_embeddings
        with self._lock:
            inputs = self.prepare(prompts)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        too_long = {i for i, n in enumerate(lengths) if n + generation["max_new_tokens"] > limit}
        for i in too_long:
            responses[prompts[i].index] = Response(
                sample_id=prompts[i].prepared.request.sample_id,
                error=f"context overflow: {lengths[i]} prompt tokens + {generation['max_new_tokens']} new tokens "
                f"exceed the model's {limit} positions",
            )
        if too_long:
            prompts = [p for i, p in enumerate(prompts) if i not in too_long]
            if not prompts:
                return None
            with self._lock:
                inputs = self.prepare(prompts)
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return prompts, inputs.to(self.device), lengths

    def generate_staged(self, staged: _Staged) -> list[Response]:
        import torch

        try:
            for prompts, inputs, lengths in staged.runs:
                for prompt, response in zip(prompts, self._run(prompts, inputs, lengths)):
                    staged.responses[prompt.index] = response
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise
        return staged.responses

    def _run(self, prompts: list[_Prompt], inputs, lengths: list[int]) -> list[Response]:
        """Generate for staged prompts sharing decoding settings."""
        import torch

        model, tokenizer = self._model, self._processor.tokenizer
        generation = self._generation(prompts[0].prepared)
        if prompts[0].sampled:
            torch.manual_seed(prompts[0].prepared.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, **generation)
        seconds = (time.perf_counter() - start) / len(prompts)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        with self._lock:  # the staging thread may be tokenising with the same tokenizer
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        pad = model.generation_config.pad_token_id
        responses = []
        for i, (prompt, text, row) in enumerate(zip(prompts, texts, new_tokens.tolist())):
            ids = [t for t in row if t != pad]  # rows that ended early are padded
            usage = {"prompt_tokens": int(lengths[i]), "completion_tokens": len(ids), "output_ids": ids}
            responses.append(Response(sample_id=prompt.prepared.request.sample_id, text=text.strip(), usage=usage,
                                      seconds=round(seconds, 4)))  # fmt: skip
        return responses


def load_random_model(path: str | os.PathLike, *, dtype: str = "bfloat16", device="cuda",
                      attn_implementation: str = "sdpa", vision_attention: str = "transformers",
                      revision: str | None = None, local_files_only: bool = True):  # fmt: skip
    """The Qwen2.5-VL of the configuration in ``path`` with seeded random weights, built directly on ``device`` in
    one ``dtype`` (no fp32/bf16 mix, environment.md §2.2); returns ``(model, config)``. A random model of the real
    size costs the same time as a trained one, so this measures throughput without downloading weights."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    if attn_implementation == "rowwise":
        from .attention import register

        attn_implementation = register()
    config = AutoConfig.from_pretrained(path, revision=revision, local_files_only=local_files_only)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=getattr(torch, dtype), attn_implementation=attn_implementation
        )
    model = model.to(getattr(torch, dtype)).eval()
    _patch_vision(model, vision_attention)
    return model, config


#: Below this many tokens a compiled module runs eagerly: decoding steps (one token a row) are launch-bound, and
#: measured on an H100 the compiled modules made a batch-8 decoding step 78 ms instead of 29 ms.
COMPILE_MIN_TOKENS = 1024


def compile_model(model) -> list[str]:
    """``torch.compile`` the parts of a Qwen2.5-VL whose time goes to pointwise kernels: every vision block (RMSNorm in
    float32, rotary embedding, SiLU, residuals over 46k patches a video) and each language-model layer's MLP and
    norms, for inputs of at least :data:`COMPILE_MIN_TOKENS` tokens (prefills). Attention and the KV cache stay
    eager. Measured on an H100 (``perf/profile_qwen_gpu.py``): the prefill of a 32-frame 560x1008 video from 0.72
    to 0.48 s. The modules compile on first use, with dynamic shapes (no recompilation when the next batch has
    another length); returns what was compiled."""
    import torch

    def compile_large(module):
        eager = module.forward
        compiled = [torch.compile(eager, dynamic=True)]  # one graph for every batch and video size

        def forward(hidden_states, *args, **kwargs):
            if compiled and hidden_states.numel() // hidden_states.shape[-1] >= COMPILE_MIN_TOKENS:
                try:
                    return compiled[0](hidden_states, *args, **kwargs)
                except torch.cuda.OutOfMemoryError:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. no C compiler or Triton: these modules are pure, so
                    # the same call runs eagerly, and so does every later one
                    log.warning("torch.compile failed for %s (%s: %s); running it eagerly", type(module).__name__,
                                type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
                    compiled.clear()
            return eager(hidden_states, *args, **kwargs)

        module.forward = forward

    for block in model.model.visual.blocks:
        compile_large(block)
    for layer in model.model.language_model.layers:
        for module in (layer.mlp, layer.input_layernorm, layer.post_attention_layernorm):
            compile_large(module)
    return ["vision blocks", "language-model MLPs and RMSNorms"]


def write_random_checkpoint(out: str | os.PathLike, size: str) -> dict[str, Any]:
    """A config-only checkpoint of a real size (``vdpm-harness models make-random``) for :func:`load_random_model`."""
    from .checkpoints import make_random

    return make_random(out, size)


def _patch_vision(model, mode: str) -> str:
    """Swap the vision tower's windowed attention (:mod:`.qwen_vision_attention`) unless ``mode`` keeps
    transformers' own; return the mode used."""
    if mode == "transformers":
        return mode
    from .vision_attention import patch_vision_attention

    return patch_vision_attention(model, mode)


def _folder_digest(folder: Path) -> str:
    """Hash of a checkpoint folder: contents of its small files, names/sizes/mtimes of its weight files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(path.name.encode() + b"\0")
        if path.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _sized(size: str) -> type[Qwen25VL]:
    """A ``Qwen25VL`` whose ``path`` defaults to the released Instruct checkpoint of ``size``."""

    class SizedOptions(QwenOptions):
        path: str = Field(default=HUB_IDS[size], min_length=1)

    return type(f"Qwen25VL{size.upper()}", (Qwen25VL,), {"Options": SizedOptions, "__module__": __name__})


Qwen25VL3B, Qwen25VL7B, Qwen25VL32B, Qwen25VL72B = (_sized(s) for s in HUB_IDS)


@hookimpl
def register_models(register):
    register(
        "qwen25vl", f"{__name__}:Qwen25VL", aliases=("qwen2.5-vl",),
        description="Qwen2.5-VL on transformers (option path: hub id or folder); harness frames with true fps.",
    )  # fmt: skip
    for size, hub_id in HUB_IDS.items():
        register(f"qwen25vl-{size}", f"{__name__}:Qwen25VL{size.upper()}", description=f"{hub_id} (qwen25vl).")


@hookimpl
def register_commands(cli):
    group = cli.commands.get("models")
    if group is None:

        @cli.group(name="models")
        def group():
            """Build offline model checkpoints (tiny test models, config-only real sizes)."""

    @group.command("make-tiny")
    @click.argument("out", type=click.Path(file_okay=False))
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of the tokenizer corpus and weights.")
    def make_tiny(out, seed):
        """Build a tiny random-weight Qwen2.5-VL in OUT, fully offline (tests, smoke runs)."""
        from .checkpoints import make_tiny as build

        click.echo(json.dumps(build(out, seed), indent=2))

    @group.command("make-random")
    @click.argument("out", type=click.Path(file_okay=False))
    @click.option("--config", "size", required=True, help="Real configuration to write, e.g. 7b.")
    def make_random(out, size):
        """Write a config-only Qwen2.5-VL checkpoint of a real size to OUT; run it with random_weights=true."""
        from .checkpoints import REAL_CONFIGS

        if size.lower() not in REAL_CONFIGS:
            raise click.BadParameter(f"unknown configuration {size!r}; known: {', '.join(REAL_CONFIGS)}",
                                     param_hint="--config")  # fmt: skip
        click.echo(json.dumps(write_random_checkpoint(out, size), indent=2))
