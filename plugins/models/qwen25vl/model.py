"""The ``qwen25vl`` model plugin: Qwen2.5-VL through transformers, fed with the harness's decoded frames and their true
timing, in left-padded batches.

What the plugin puts together: the checkpoint (:mod:`.checkpoints`: hub id or folder, revision, loading), the
request's inputs (:mod:`.inputs`, the one place that turns a request into model inputs) and, on CUDA, the fast path
(:mod:`.speed`). :meth:`Qwen25VL.stage` does the CPU-side work of a batch (chats, processor calls, the context-length
check), which the harness runs on a helper thread while the previous batch generates; :meth:`Qwen25VL.generate_staged`
runs the model.

Shared prefixes (:mod:`.prefix`, option ``share_prefix``, on by default): greedy requests of one batch that ask about
the same video encode it and prefill their common prompt prefix once (:meth:`Qwen25VL.prefix_key` tells the harness
which requests to plan into one batch); ``share_prefix=false`` runs every prompt whole. It changes nothing but
rounding, so it is a runtime option (results are reused across it).

Decoding: greedy unless the request's temperature is above 0 (then sampled one request at a time, seeded with the
request's seed). Only the checkpoint's token ids are taken from its ``generation_config``; its sampling defaults (the
released Qwen2.5-VL ship ``repetition_penalty=1.05``, ``top_k=1``, ...) are recorded in ``describe()`` but not applied,
so what runs is what the request's ``GenerationSettings`` say (``extra`` holds further ``generate`` arguments).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from vdpm_harness import FramePolicy, Model, PreparedRequest, Request, Response, Strict, local_rank

from . import checkpoints, inputs, prefix, speed

#: Default batch size on a GPU (CPU: 1). A batch that runs out of memory is retried one request at a time.
GPU_BATCH_SIZE = 8
HUB_IDS = {size: f"Qwen/Qwen2.5-VL-{size.upper()}-Instruct" for size in ("3b", "7b", "32b", "72b")}


class QwenOptions(Strict):
    """Options of the ``qwen25vl`` models (:mod:`.inputs` says how pixels are chosen, :mod:`.speed` what the fast
    path does)."""

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
        description="vision-tower attention (vision_attention.py): auto = one varlen flash call on CUDA, one "
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
    share_prefix: bool = Field(
        default=True,
        description="greedy requests of a batch that ask about the same video encode it and prefill their common "
        "prompt prefix once (prefix.py); false: every prompt runs whole",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        if self.attn_implementation == "flash_attention_2" and not speed.flash_attn_installed():
            raise ValueError("attn_implementation 'flash_attention_2' needs the flash-attn package, which is not "
                             "installed; use 'sdpa'")  # fmt: skip
        return self


@dataclass
class _Staged:
    """A batch after :meth:`Qwen25VL.stage`: a response slot per request (errors already filled in) and the runs
    to generate, each ``(prompts, inputs on the device, prompt lengths)`` or a :class:`.prefix.SharedRun`."""

    responses: list[Response | None]
    runs: list[tuple | prefix.SharedRun] = field(default_factory=list)


class Qwen25VL(Model):
    """Qwen2.5-VL on transformers: batched, left-padded generation over harness-decoded frames."""

    needs_frames = True
    runtime_options = Model.runtime_options | {"local_files_only", "preprocess_device", "share_prefix"}
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
        return speed.attn_implementation(self.options.attn_implementation, self.device)

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

    # --- the checkpoint ---------------------------------------------------------------------------------------------

    @property
    def local_dir(self) -> Path | None:
        return checkpoints.local_folder(self.options.path)

    def revision(self) -> str | None:
        """What identifies the weights (:func:`.checkpoints.revision_of`): ``local:<hash>`` for a folder (small
        files' contents, weight files' names, sizes and modification times), ``<hub id>@<commit>`` for a hub
        checkpoint, ``random:<config hash>`` for random weights. Copying a folder without keeping modification times
        changes it (results are recomputed rather than wrongly reused)."""
        if self._revision is not None:
            return self._revision
        options = self.options
        return checkpoints.revision_of(options.path, revision=options.revision, random_weights=options.random_weights)

    def load(self) -> None:
        from transformers import GenerationConfig

        options = self.options
        hub = {"revision": options.revision, "local_files_only": options.local_files_only}
        config = self._load_config(hub)
        processor = checkpoints.load_processor(options.path, **hub)
        model, checkpoint_generation = self._load_model(hub)
        self._vision_attention = speed.patch_vision(model, options.vision_attention)
        if speed.compile_wanted(options.compile, self.device):
            self._compiled = self._compile(model)
        self._checkpoint_generation = checkpoint_generation.to_diff_dict()
        tokenizer = processor.tokenizer
        # only the token ids: the checkpoint's sampling defaults must not leak into greedy decoding
        model.generation_config = GenerationConfig(
            bos_token_id=checkpoint_generation.bos_token_id,
            eos_token_id=checkpoint_generation.eos_token_id or tokenizer.eos_token_id,
            pad_token_id=checkpoint_generation.pad_token_id or tokenizer.pad_token_id,
        )
        self._model, self._processor = model, processor
        self._revision = checkpoints.revision_of(options.path, revision=options.revision,
                                                 random_weights=options.random_weights, config=config)  # fmt: skip

    def _load_config(self, hub: dict[str, Any]):
        """The checkpoint's configuration (:func:`.checkpoints.load_config`)."""
        return checkpoints.load_config(self.options.path, **hub)

    def _load_model(self, hub: dict[str, Any]):
        """``(model, the checkpoint's GenerationConfig)`` in this plugin's dtype, device and attention."""
        return checkpoints.load_model(
            self.options.path, random_weights=self.options.random_weights, dtype=self.dtype_name, device=self.device,
            attn_implementation=self.attn_implementation, **hub,
        )  # fmt: skip

    def _compile(self, model) -> list[str]:
        """Compile the model's prefill-sized modules (:func:`.speed.compile_model`); returns what was compiled."""
        return speed.compile_model(model)

    def describe(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "path": self.options.path, "random_weights": self.options.random_weights,
            "video_pixels_default": [inputs.VIDEO_MIN_PIXELS, inputs.VIDEO_MAX_PIXELS],
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
            "share_prefix": self.options.share_prefix,
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

    # --- requests -> inputs (all of it in .inputs, with this plugin's options) --------------------------------------

    def video_pixels(self, policy: FramePolicy) -> tuple[int, int]:
        """Per-frame (min, max) pixels for ``policy`` under this plugin's options (:func:`.inputs.video_pixels`)."""
        return inputs.video_pixels(policy, min_pixels=self.options.min_pixels, max_pixels=self.options.max_pixels)

    def _prompt(self, index: int, prepared: PreparedRequest) -> inputs.Prompt:
        """The request's chat with its media (:func:`.inputs.build_prompt`); call under ``self._lock``."""
        return inputs.build_prompt(self._processor, prepared, index, min_pixels=self.options.min_pixels,
                                   max_pixels=self.options.max_pixels)  # fmt: skip

    def prepare(self, prompts: list[inputs.Prompt]):
        """One processor call for prompts that share pixel limits (:meth:`encode`), preprocessing on
        :attr:`preprocess_device`: the ``BatchFeature`` for ``generate``."""
        return self.encode(self._processor, prompts, device=str(self.preprocess_device))

    def encode(self, processor, prompts: list[inputs.Prompt], *, device: str | None = None):
        """The model inputs of prompts sharing pixel limits: :func:`.inputs.encode` (a model with other inputs,
        such as the GSM's geometry pads, adds them here)."""
        return inputs.encode(processor, prompts, device=device)

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
        groups: dict[str, list[inputs.Prompt]] = {}
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
            if self._shares_prefix(prompts):
                shared = self._stage_shared(prompts, staged.responses)
                if shared is not None:
                    staged.runs.append(shared)
                continue
            chunks = [[p] for p in prompts] if prompts[0].sampled else [prompts]
            for chunk in chunks:
                run = self._stage_chunk(chunk, staged.responses)
                if run is not None:
                    staged.runs.append(run)
        return staged

    def _stage_chunk(self, prompts: list[inputs.Prompt], responses: list) -> tuple | None:
        """(prompts, inputs on the device, prompt lengths) for prompts sharing decoding settings; a prompt that fills
        the context by itself gets its error response instead (:func:`.inputs.encode_within_context`); the others
        generate at most the new tokens the context leaves them (:meth:`_run`)."""
        with self._lock:
            encoded = inputs.encode_within_context(
                self._processor, prompts, max_new_tokens=self._generation(prompts[0].prepared)["max_new_tokens"],
                max_positions=self._model.config.text_config.max_position_embeddings,
                device=str(self.preprocess_device), encoder=self.encode, cap_new_tokens=True,
            )  # fmt: skip
        for prompt, error in encoded.overflow:
            responses[prompt.index] = Response(sample_id=prompt.prepared.request.sample_id, error=error)
        if not encoded.prompts:
            return None
        return encoded.prompts, encoded.inputs.to(self.device), encoded.lengths

    def generate_staged(self, staged: _Staged) -> list[Response]:
        import torch

        try:
            for run in staged.runs:
                if isinstance(run, prefix.SharedRun):
                    prompts, responses = run.prompts, self._run_shared(run)
                else:
                    prompts, responses = run[0], self._run(*run)
                for prompt, response in zip(prompts, responses):
                    staged.responses[prompt.index] = response
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise
        return staged.responses

    def _run(self, prompts: list[inputs.Prompt], batch_inputs, lengths: list[int]) -> list[Response]:
        """Generate for staged prompts sharing decoding settings."""
        import torch

        model = self._model
        generation, budgets, requested = self._budgets(prompts, lengths)
        if prompts[0].sampled:
            torch.manual_seed(prompts[0].prepared.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**batch_inputs, **generation)
        seconds = (time.perf_counter() - start) / len(prompts)
        rows = output[:, batch_inputs["input_ids"].shape[1] :].tolist()
        return self._responses(prompts, rows, lengths, budgets, requested, seconds)

    def _budgets(self, prompts: list[inputs.Prompt], lengths: list[int]) -> tuple[dict[str, Any], list[int], int]:
        """``(generate arguments, each prompt's new-token budget, the requested new tokens)``: each prompt generates
        at most the new tokens the context leaves it; the batch generates for the largest budget and each row is cut
        at its own (greedy decoding: the cut row is what it would have generated alone)."""
        generation = self._generation(prompts[0].prepared)
        positions = self._model.config.text_config.max_position_embeddings
        requested = generation["max_new_tokens"]
        budgets = [inputs.new_token_budget(int(n), requested, positions) for n in lengths]
        return {**generation, "max_new_tokens": max(budgets)}, budgets, requested

    def _responses(self, prompts: list[inputs.Prompt], rows: list[list[int]], lengths: list[int], budgets: list[int],
                   requested: int, seconds: float, usage: list[dict] | None = None) -> list[Response]:  # fmt: skip
        """Responses from each prompt's new token ids (cut at its budget; rows that ended early are padded)."""
        new_tokens = [row[:budget] for row, budget in zip(rows, budgets)]
        with self._lock:  # the staging thread may be tokenising with the same tokenizer
            texts = self._processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        pad = self._model.generation_config.pad_token_id
        responses = []
        for i, (prompt, text, row) in enumerate(zip(prompts, texts, new_tokens)):
            ids = [t for t in row if t != pad]
            details = {"prompt_tokens": int(lengths[i]), "completion_tokens": len(ids), "output_ids": ids}
            if budgets[i] < requested:  # the context left fewer new tokens than asked for
                details["max_new_tokens"] = budgets[i]
            details.update(usage[i] if usage else {})
            responses.append(Response(sample_id=prompt.prepared.request.sample_id, text=text.strip(),
                                      usage=details, seconds=round(seconds, 4)))  # fmt: skip
        return responses

    # --- shared prompt prefixes (:mod:`.prefix`) --------------------------------------------------------------------

    def prefix_key(self, request: Request) -> str | None:
        """Requests asking about the same video with the same chat before it (:func:`.prefix.request_key`), when
        ``share_prefix`` is on: the harness plans them into one batch, where :meth:`stage` shares their prefix."""
        return prefix.request_key(request) if self.options.share_prefix else None

    def _shares_prefix(self, prompts: list[inputs.Prompt]) -> bool:
        """Whether prompts sharing decoding settings run with shared prefixes: ``share_prefix`` is on, decoding is
        plain greedy (no sampling, no further ``generate`` arguments) and two of them ask about the same video."""
        settings = prompts[0].prepared.request.generation
        return (self.options.share_prefix and not prompts[0].sampled and not settings.extra
                and prefix.has_shared_prefix(prompts))  # fmt: skip

    def _sharing(self) -> prefix.Sharing:
        """What this model changes in prefix sharing (:class:`.prefix.Sharing`): nothing for the plain model; the GSM
        adds its geometry pads and tokens (``gsm/sharing.py``)."""
        return prefix.PLAIN

    def _stage_shared(self, prompts: list[inputs.Prompt], responses: list) -> prefix.SharedRun | None:
        """:func:`.prefix.stage_shared` for prompts sharing decoding settings and pixel limits, moved to the device;
        a prompt that fills the context by itself gets its error response instead."""
        run, overflow = prefix.stage_shared(
            self._processor, prompts, encoder=self.encode, rope_index=self._model.model.get_rope_index,
            max_positions=self._model.config.text_config.max_position_embeddings,
            device=str(self.preprocess_device), lock=self._lock, sharing=self._sharing(),
        )  # fmt: skip
        for prompt, error in overflow:
            responses[prompt.index] = Response(sample_id=prompt.prepared.request.sample_id, error=error)
        return None if run is None else run.to(self.device)

    def _run_shared(self, run: prefix.SharedRun) -> list[Response]:
        """Generate for a staged :class:`.prefix.SharedRun` (:func:`.prefix.generate_shared`); each response's usage
        also says how many of its prompt tokens it shared with the other questions of its video."""
        generation, budgets, requested = self._budgets(run.prompts, run.lengths)
        config = self._model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        eos = [token for token in eos if token is not None]
        start = time.perf_counter()
        rows, _ = prefix.generate_shared(self._model, run, max_new_tokens=generation["max_new_tokens"],
                                         eos_token_ids=eos, pad_token_id=config.pad_token_id,
                                         sharing=self._sharing())  # fmt: skip
        seconds = (time.perf_counter() - start) / len(run.prompts)
        usage = [{"shared_prefix_tokens": n} if size > 1 else {} for n, size in zip(run.prefix_lengths,
                                                                                     run.group_sizes)]  # fmt: skip
        return self._responses(run.prompts, rows, run.lengths, budgets, requested, seconds, usage)


def _sized(size: str) -> type[Qwen25VL]:
    """A ``Qwen25VL`` whose ``path`` defaults to the released Instruct checkpoint of ``size``."""

    class SizedOptions(QwenOptions):
        path: str = Field(default=HUB_IDS[size], min_length=1)

    return type(f"Qwen25VL{size.upper()}", (Qwen25VL,), {"Options": SizedOptions, "__module__": __name__})


Qwen25VL3B, Qwen25VL7B, Qwen25VL32B, Qwen25VL72B = (_sized(s) for s in HUB_IDS)
