"""The GSM trainer's configuration: the paper's recipe as defaults, every setting overridable, unknown keys rejected.

The defaults are the DSR Suite recipe (arXiv 2512.20557; ``TencentARC/DSR_Suite``, commit ``1bfe8e3``,
``model/qwen-vl-finetune/train.sh`` and ``qwenvl/train/argument.py``), with its defects fixed:

=====================================  ================================================================================
setting                                the original (``train.sh``)
=====================================  ================================================================================
``schedule.epochs = 1``                ``--num_train_epochs 1``
``schedule.kind = "cosine"``,          ``--lr_scheduler_type cosine --warmup_ratio 0.03``; the shipped
``schedule.warmup_ratio = 0.03``       ``scripts/zero3_offload.json`` replaced it by DeepSpeed's ``WarmupLR`` (warm-up
                                       then constant): here the schedule is the one the flags name
``optimizer.groups``: LLM 2e-7,        ``--learning_rate 2e-7 --mm_projector_lr 1e-6 --vision_tower_lr 1e-6``; the
merger 1e-6, GSM 1e-6                  DeepSpeed config's own ``AdamW`` block made the trainer ignore both per-module
                                       rates (one rate, 2e-7, for everything): here each group gets its own
``optimizer.frozen``: the Qwen ViT     ``--tune_mm_vision False``; ``spatial_encoder`` always frozen
and the Pi3 encoder
``lm_head`` in the LLM group           ``model.lm_head.requires_grad = X`` set a Python attribute, so ``lm_head`` was
                                       always trained whatever ``--tune_mm_llm`` said: here it is trained exactly when
                                       a group names it
``optimizer.weight_decay = 0.01``,     ``--weight_decay 0.01 --max_grad_norm 1``; no decay on biases and norms
``optimizer.max_grad_norm = 1.0``      (transformers' ``Trainer.get_decay_parameter_names`` missed some RMSNorms:
                                       :mod:`.groups`)
``data.frames``: 32 frames,            ``--video_max_frames 32 --video_min_frames 32``, ``--video_max_frame_pixels
``max_pixels = 230400``,               230400 --video_min_frame_pixels 784``; frame indices
``min_pixels = 784``, ``floor``        ``linspace(0, n - 1, 32, dtype=int)`` (``qwenvl/data/data_qwen_packed.py``)
``data.max_seq_length = 8192``         ``--model_max_length 8192`` (never enforced by the packed path: here a longer
                                       sample is left out and counted)
``precision = "bf16"``                 ``--bf16``
``batch_size = 32``                    per device 1 x ``--gradient_accumulation_steps 4`` x the GPUs of one node
                                       (``torchrun --nproc_per_node=$(nvidia-smi --list-gpus | wc -l)``; 32 for eight)
``save_every = 100``,                  ``--save_steps 100 --save_total_limit 3``
``keep_checkpoints = 3``
=====================================  ================================================================================

A configuration file (TOML or YAML, read by the same machinery as ``vdpm-harness run``'s) holds any of these keys;
command-line options and ``--set KEY=VALUE`` (dotted keys, values as JSON) override it. Unknown keys are errors that
name the key. The resolved configuration is written into every checkpoint (``training.json``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from vdpm_harness.config import ConfigError, _describe, load_config_file, parse_value, validate_strictly
from vdpm_harness.records import FramePolicy, Strict, stable_hash

#: Pi3's weights on the Hugging Face hub (the encoder of a GSM built on a plain Qwen2.5-VL).
PI3_HUB_ID = "yyfz233/Pi3"
#: The training frames of the recipe: 32 frames, ``linspace(..., dtype=int)`` indices, 784..230400 pixels a frame,
#: sides multiples of 28 (Qwen2.5-VL's patch 14 x merge 2).
TRAIN_FRAMES = FramePolicy(nframes=32, sampler="floor", min_pixels=784, max_pixels=230_400, size_multiple=28)
#: Parameter names (the transformers model's ``named_parameters()``) that never get weight decay: the patterns of
#: transformers' ``Trainer.get_decay_parameter_names``, which the original's ``create_optimizer`` used; :mod:`.groups`
#: also spares every parameter of a normalisation layer, which these names miss for ``norm1``, ``norm2`` and ``ln_q``.
NO_DECAY_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")


def _split_commas(value: Any) -> Any:
    """``"a,b"`` as ``["a", "b"]`` (a command-line text); a list as it is."""
    return [v for v in value.split(",") if v] if isinstance(value, str) else value


#: A list of names or paths that may also be given as one comma-separated text.
CommaList = Annotated[list[str], BeforeValidator(_split_commas)]


class ModelSection(Strict):
    """The base model and how the GSM is built on it."""

    base: str | None = Field(default=None, description="Qwen2.5-VL or GSM checkpoint: folder or hub id (--base)")
    pi3: str = Field(default=PI3_HUB_ID, description="Pi3 weights (file, folder or hub id) for a plain Qwen base")
    #: The GSM encoder's ``Dinov2WithRegistersConfig`` fields when the base is a plain Qwen2.5-VL (default: Pi3's
    #: ViT-L/14); a GSM base keeps its own.
    encoder: dict[str, Any] | None = None
    num_queries: int = Field(default=32, ge=1)
    revision: str | None = None
    local_files_only: bool = True
    #: Build the base from its config.json with seeded random weights (throughput measurements only).
    random_weights: bool = False


class DataSection(Strict):
    """Training records, frames, prompts and lengths."""

    train: CommaList = Field(default_factory=list, description="folders or files of training records (--train)")
    frames: FramePolicy = TRAIN_FRAMES
    #: How a record's question is put to the model: ``record`` = the human turn as written (the original's training
    #: text, ``<video>\\n{question}\\nOptions:\\nA ...``); ``vlmevalkit`` / ``dsr_fork`` = the question and options in
    #: the DSR-Bench prompt the ``dsr`` benchmark evaluates with.
    prompt: Literal["record", "vlmevalkit", "dsr_fork"] = "record"
    max_seq_length: int = Field(default=8192, ge=16)
    decode_workers: int = Field(default=4, ge=0, description="worker processes preparing samples ahead")
    prefetch: int = Field(default=16, ge=1, description="samples prepared ahead")
    video_backend: str | None = None


class GroupSpec(Strict):
    """One optimizer group: parameters named by prefix, its learning rate and weight decay."""

    params: list[str] = Field(min_length=1)
    lr: float = Field(ge=0)
    weight_decay: float | None = Field(default=None, ge=0, description="else optimizer.weight_decay")


def paper_groups() -> dict[str, GroupSpec]:
    """The recipe's trainable groups: the language model with ``lm_head`` at 2e-7; the vision merger, and the GSM's
    merger, queries and Q-Formers, at 1e-6 (``--mm_projector_lr`` / ``--vision_tower_lr``)."""
    return {
        "llm": GroupSpec(params=["model.language_model.", "lm_head."], lr=2e-7),
        "merger": GroupSpec(params=["model.visual.merger."], lr=1e-6),
        "gsm": GroupSpec(params=["model.gsm."], lr=1e-6),
    }


class OptimizerSection(Strict):
    """AdamW over the configured groups; everything under ``frozen`` is frozen."""

    groups: dict[str, GroupSpec] = Field(default_factory=paper_groups)
    frozen: list[str] = Field(default_factory=lambda: ["model.visual.", "model.gsm.spatial_encoder."])
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    no_decay: list[str] = Field(default_factory=lambda: list(NO_DECAY_PATTERNS))
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    #: dtype of AdamW's two moments: ``auto`` = the master weights' (float32), ``bfloat16`` halves their memory
    #: (the 7B recipe on one GPU).
    state_dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    @model_validator(mode="after")
    def _named(self):
        if not self.groups:
            raise ValueError("optimizer.groups: at least one group of trainable parameters")
        return self


class ScheduleSection(Strict):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="total steps (the schedule's length); else epochs")
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    warmup_steps: int | None = Field(default=None, ge=0, description="else ceil(warmup_ratio x total steps)")


class EvalSection(Strict):
    """Evaluation of the final checkpoint through the harness (``vdpm-harness run``), beside the base model."""

    benches: CommaList = Field(default_factory=list)
    out: str = "results"
    base: bool = Field(default=True, description="also evaluate the base model (stored results are reused)")
    limit: int | None = Field(default=None, ge=1)
    model_options: dict[str, Any] = Field(default_factory=dict)
    bench_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    decode_workers: int = Field(default=2, ge=0)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]*$")


class GuardSection(Strict):
    """The contamination guard: training refuses videos and questions of these benchmarks (and of ``eval.benches``)."""

    benches: list[str] = Field(default_factory=list)
    bench_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allow_contamination: bool = False


class TrainConfig(Strict):
    """Everything ``vdpm-harness train gsm`` does; see the module docstring for the defaults' sources."""

    out: str | None = None
    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    batch_size: int = Field(default=32, ge=1, description="samples per optimizer step, over all processes")
    pack_tokens: int = Field(default=16384, ge=16, description="tokens per packed forward pass (at most)")
    precision: Literal["bf16", "fp32"] = "bf16"
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda)$")
    #: Share of the language model's layers whose activations are recomputed in the backward pass (0: none).
    activation_checkpointing: float = Field(default=1.0, ge=0, le=1)
    compile: bool = Field(default=False, description="torch.compile the decoder layers, the frozen towers' blocks and "
                          "the AdamW update (CUDA)")  # fmt: skip
    kernels: Literal["torch", "liger"] = Field(
        default="torch", description="PyTorch's kernels, or Liger Kernel's fused RMSNorm, SwiGLU and rotary "
        "embedding (CUDA; pip install liger-kernel)")  # fmt: skip
    save_every: int = Field(default=100, ge=0, description="steps between checkpoints (0: only the final one)")
    keep_checkpoints: int = Field(default=3, ge=1, description="step checkpoints kept (the final one always)")
    save_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    log_every: int = Field(default=1, ge=1)
    eval: EvalSection = Field(default_factory=EvalSection)
    guard: GuardSection = Field(default_factory=GuardSection)

    @model_validator(mode="after")
    def _check(self):
        if self.kernels == "liger" and self.compile:
            raise ValueError("kernels = 'liger' and compile = true do not go together: torch.compile (PyTorch 2.11) "
                             "fails to trace Liger 0.8.5's RMSNorm inside the checkpointed decoder layers (measured "
                             "on an H200); compile alone is the faster of the two (docs/PERFORMANCE.md)")  # fmt: skip
        if self.data.max_seq_length > self.pack_tokens:
            raise ValueError(f"pack_tokens ({self.pack_tokens}) must hold one sample of data.max_seq_length "
                             f"({self.data.max_seq_length})")  # fmt: skip
        return self

    # --- identity ----------------------------------------------------------------------------------------------------

    #: Settings that change neither the weights nor the data order (changing them keeps a run resumable).
    NOT_RESULTS: ClassVar[tuple[str, ...]] = (
        "out", "data.decode_workers", "data.prefetch", "data.video_backend", "save_every", "keep_checkpoints",
        "log_every", "eval", "guard", "compile", "kernels", "model.local_files_only",
    )  # fmt: skip

    def results_identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights (everything but :attr:`NOT_RESULTS`)."""
        data = self.model_dump(mode="json")
        for dotted in self.NOT_RESULTS:
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node[key]
            node.pop(last, None)
        return data

    def fingerprint(self) -> str:
        return stable_hash(self.results_identity(), 12)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``dotted = "a.b"``, creating tables on the way."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a table")
        node = child
    node[last] = value


def parse_sets(items: tuple[str, ...] | list[str]) -> list[tuple[str, Any]]:
    """``--set KEY=VALUE`` items as ``(dotted key, value read as JSON, else the text)``."""
    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (a dotted key, e.g. optimizer.groups.llm.lr=1e-6)")
        parsed.append((key.strip(), parse_value(text)))
    return parsed


def build_config(file: str | Path | None = None, sets: tuple[str, ...] | list[str] = (), **options: Any) -> TrainConfig:
    """A config file, then command-line options (``options``: dotted keys, ``None`` = not given) and ``--set`` items
    applied to the resolved result (the command line wins), each validated strictly: an unknown key or a value of the
    wrong type is a :class:`~vdpm_harness.config.ConfigError` naming it. A table the file gives replaces the default
    (``[optimizer.groups.NAME]`` tables define the groups); a dotted command-line key changes one value
    (``--set optimizer.groups.llm.lr=1e-6`` keeps the group's prefixes)."""
    data = load_config_file(file) if file else {}
    try:
        config = validate_strictly(TrainConfig, data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(file), data)) from None
    changes = [(k, v) for k, v in options.items() if v is not None] + parse_sets(sets)
    if not changes:
        return config
    data = resolved(config)
    for dotted, value in changes:
        set_dotted(data, dotted, value)
    try:
        return validate_strictly(TrainConfig, data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "command-line options", data)) from None


def resolved(config: TrainConfig) -> dict[str, Any]:
    """The configuration with every default filled in (what a checkpoint records)."""
    return json.loads(config.model_dump_json())


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configurations (for a refused resume)."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += differences(a, b, name + ".")
        elif a != b:
            keys.append(name)
    return keys


def with_overrides(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with dotted keys replaced, validated again."""
    data = copy.deepcopy(resolved(config))
    for dotted, value in changes.items():
        set_dotted(data, dotted, value)
    return validate_strictly(TrainConfig, data)
