"""The training loop: steps of ``batch_size`` samples in a seeded order, packed, sharded, checkpointed, resumable.

One optimizer step (:meth:`Trainer.step`):

1. **Data.** The step's samples are the next ``batch_size`` of the epoch's order, a permutation drawn from
   ``(seed, epoch)`` (:func:`order`), so the order depends on nothing but the seed and the step: a resumed run, or a
   run with another number of processes, sees the same samples in each step. Process ``r`` of ``W`` takes samples
   ``r, r + W, ...`` of the step. Samples are prepared ahead in the core's worker processes
   (:class:`vdpm_harness.prefetch.Prefetcher` running :func:`.samples.prepare`). (The original shuffled with an
   unseeded ``random.shuffle`` before the trainer seeded anything, differently on every rank, ``TencentARC/
   DSR_Suite``, ``qwenvl/data/data_qwen_packed.py``.)
2. **Packs.** Each process packs its samples (:mod:`.packing`) and the processes agree on the step's supervised
   token count and on the number of passes (a process with fewer packs runs weight-0 passes).
3. **Gradients.** Each pack's summed loss, scaled by :func:`.parallel.loss_scale`, is back-propagated; FSDP2
   accumulates the gradients in float32 shards. The step's loss is the mean over its supervised tokens.
4. **Update.** Gradients are clipped to ``max_grad_norm`` (the norm over all processes), each group's learning rate
   is set from the schedule for this step (:mod:`.optim`), AdamW steps.
5. **Record.** A line of ``metrics.jsonl``, the progress bar; a checkpoint every ``save_every`` steps and at the end
   (:mod:`.state`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vdpm_harness.prefetch import Prefetcher

from . import kernels, parallel, state
from .attention import register as register_attention
from .config import TrainConfig, resolved
from .groups import build_groups
from .metrics import MetricsLog, ProgressBar
from .model import PackedGSM, load_base, token_layout
from .optim import lr_factor, make_optimizer, set_lrs, warmup_steps
from .packing import pack, padding
from .records import DataError, Example
from .samples import Layout, Sample, Skipped, prepare


def order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The epoch's permutation of the ``count`` examples, drawn from ``(seed, epoch)`` alone."""
    return np.random.default_rng([seed, epoch]).permutation(count)


@dataclass
class Plan:
    """How many steps, and which examples each takes."""

    examples: int
    batch_size: int
    seed: int
    steps_per_epoch: int
    total: int
    warmup: int

    @classmethod
    def of(cls, config: TrainConfig, examples: int) -> Plan:
        per_epoch = math.ceil(examples / config.batch_size)
        total = config.schedule.max_steps or math.ceil(config.schedule.epochs * per_epoch)
        warmup = warmup_steps(total, config.schedule.warmup_ratio, config.schedule.warmup_steps)
        return cls(examples, config.batch_size, config.seed, per_epoch, total, warmup)

    def step_examples(self, step: int) -> list[int]:
        """The example indices of optimizer step ``step`` (0-based), in order."""
        epoch, within = divmod(step, self.steps_per_epoch)
        indices = order(self.seed, epoch, self.examples)
        return indices[within * self.batch_size : (within + 1) * self.batch_size].tolist()

    def epoch(self, step: int) -> float:
        """Epochs done after ``step`` (0-based) steps completed, fractional."""
        return round(step / self.steps_per_epoch, 4)


@dataclass
class TrainResult:
    run_id: str
    final: Path
    steps: int
    resumed_from: int
    skipped: Counter = field(default_factory=Counter)


class Trainer:
    """``vdpm-harness train gsm``'s training (the module docstring); :meth:`run` trains or resumes to the end."""

    def __init__(self, config: TrainConfig, examples: list[Example], run_id: str, record: dict[str, Any],
                 world: parallel.World, console, *, progress: bool = True):  # fmt: skip
        self.config = config
        self.examples = examples
        self.run_id = run_id
        self.record = record
        self.world = world
        self.console = console
        self.out = Path(config.out)
        self.show_progress = progress and world.is_main
        self.plan = Plan.of(config, len(examples))
        self.skipped: Counter = Counter()
        self._fallback: Sample | None = None

    # --- building -------------------------------------------------------------------------------------------------

    def build(self) -> None:
        """Load the base, freeze and group its parameters, shard it, make the optimizer."""
        from vdpm_harness_plugins.models.qwen25vl import speed
        from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_processor

        config = self.config
        kernels.check(config.kernels, self.world.device)  # before minutes of loading
        model, self.base = load_base(config.model, self.world.device)
        model.config.text_config._attn_implementation = register_attention()
        speed.patch_vision(model, "auto")
        self.kernels = kernels.use_liger(model) if config.kernels == "liger" else {"kernels": "torch"}
        model.train()
        build_groups(model, config.optimizer)  # requires_grad exactly as configured, before sharding
        self.checkpointed = parallel.apply_checkpointing(model, config.activation_checkpointing)
        self.wrapper = PackedGSM(model)
        parallel.shard(self.wrapper, self.world, config.precision, compile_layers=config.compile)
        self.groups = build_groups(self.wrapper.model, config.optimizer, set_requires_grad=False)
        self.optimizer = make_optimizer(
            self.groups.param_groups, betas=config.optimizer.betas, eps=config.optimizer.eps,
            state_dtype=config.optimizer.state_dtype, param_dtype=torch.float32, device_type=self.world.device.type,
            compiled=config.compile and self.world.device.type == "cuda",
        )  # fmt: skip
        self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        hub = {"revision": config.model.revision, "local_files_only": config.model.local_files_only}
        self.processor = load_processor(config.model.base, **hub)
        self.layout = Layout(
            processor=config.model.base, frames=config.data.frames.model_dump(mode="json"), prompt=config.data.prompt,
            max_seq_length=config.data.max_seq_length, backend=config.data.video_backend, **hub,
            **token_layout(model),
        )  # fmt: skip
        self.pad_token_id = self.processor.tokenizer.pad_token_id
        if config.save_dtype == "auto":
            self.save_dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
        else:
            self.save_dtype = getattr(torch, config.save_dtype)

    # --- data -------------------------------------------------------------------------------------------------------

    def my_examples(self, step: int) -> list[int]:
        """This process's share of the step's examples."""
        return self.plan.step_examples(step)[self.world.rank :: self.world.size]

    def jobs(self, start: int) -> Iterator[tuple[Example, Layout]]:
        for step in range(start, self.plan.total):
            for index in self.my_examples(step):
                yield self.examples[index], self.layout

    def take(self, stream, step: int) -> list[Sample]:
        """This process's prepared samples of ``step`` from the prefetched stream (skipped ones counted)."""
        samples = []
        for index in self.my_examples(step):
            job, result = next(stream)
            if job[0].index != index:
                raise RuntimeError(f"data stream out of order: example {job[0].index} where {index} was due")
            if isinstance(result, Exception):
                result = Skipped(index, type(result).__name__, str(result))
            if isinstance(result, Skipped):
                self.skipped[result.reason] += 1
                self.last_skip = f"{self.examples[index].source}: {result.reason} {result.detail}".strip()
                self.step_skipped += 1
                continue
            samples.append(result)
        return samples

    # --- one step ---------------------------------------------------------------------------------------------------

    def step(self, step: int, samples: list[Sample]) -> dict[str, Any]:
        config, world = self.config, self.world
        started = time.perf_counter()
        packs = pack(samples, config.pack_tokens)
        if samples:
            self._fallback = samples[-1]
        mine = [sum(s.supervised for s in samples), sum(s.length for s in samples), len(samples), self.step_skipped]
        supervised, tokens, count, skipped = world.all_sum([float(v) for v in mine])
        if count == 0:  # a systematic failure (every video unreadable, every sample too long) must not pass silently
            reasons = ", ".join(f"{reason} ({n})" for reason, n in self.skipped.most_common(3)) or "unknown"
            raise DataError(f"no sample of step {step + 1} could be prepared; reasons so far: {reasons}; the last: "
                            f"{getattr(self, 'last_skip', '-')}")  # fmt: skip
        passes = world.all_max(len(packs))
        if not packs and self._fallback is None:
            self._fallback = self.fallback_sample()
        packs = padding(packs, passes, self._fallback)
        scale = parallel.loss_scale(world, supervised)
        loss_sum = torch.zeros((), dtype=torch.float64, device=world.device)
        for p in packs:
            loss = self.wrapper(**p.tensors(self.pad_token_id, world.device))
            (loss * (scale * p.weight)).backward()
            loss_sum += loss.detach().double() * p.weight
        total_loss = world.all_sum([float(loss_sum)])[0]
        norm = self.clip()
        lrs = set_lrs(self.optimizer, lr_factor(step, self.plan.total, self.plan.warmup, config.schedule.kind))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if world.device.type == "cuda":
            torch.cuda.synchronize(world.device)
        seconds = time.perf_counter() - started
        record = {
            "step": step + 1, "epoch": self.plan.epoch(step + 1), "loss": total_loss / max(supervised, 1.0),
            "lr": lrs, "grad_norm": norm, "samples": int(count), "tokens": int(tokens),
            "supervised_tokens": int(supervised), "packs": passes, "skipped": int(skipped),
            "seconds": round(seconds, 4), "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
        }  # fmt: skip
        if world.device.type == "cuda":
            record["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(world.device) / 1e9, 2)
        return record

    def fallback_sample(self) -> Sample:
        """A sample for a process that has none yet in a step (its passes have weight 0)."""
        for example in self.examples:
            result = prepare((example, self.layout))
            if isinstance(result, Sample):
                return result
        raise RuntimeError("no training example fits max_seq_length")

    def clip(self) -> float:
        """Clip the gradients to ``max_grad_norm`` (the norm over all processes); returns the norm before."""
        limit = self.config.optimizer.max_grad_norm
        with_grad = [p for p in self.trainable if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(with_grad, limit if limit is not None else float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    # --- the run ----------------------------------------------------------------------------------------------------

    def checkpoint(self, step: int) -> Path:
        record = {**self.record, "run_id": self.run_id, "step": step, "total_steps": self.plan.total,
                  "epoch": self.plan.epoch(step), "config": resolved(self.config),
                  "skipped": dict(self.skipped)}  # fmt: skip
        return state.save(self.out, step, self.wrapper, self.optimizer, self.world, self.processor, record,
                          dtype=self.save_dtype, keep=self.config.keep_checkpoints)  # fmt: skip

    def run(self) -> TrainResult:
        config, world = self.config, self.world
        start = 0
        found = state.latest(self.out)
        if found is not None and found[0] >= self.plan.total:  # trained already: nothing to load
            if world.is_main:
                state.mark_final(self.out, found[1])
                self.console.print(f"trained already: {found[1]} (step {found[0]})", highlight=False)
            world.barrier()
            return TrainResult(self.run_id, found[1], self.plan.total, found[0], self.skipped)
        self.build()
        if found is not None:
            saved = state.load(found[1], self.wrapper, self.optimizer)
            start = int(saved["step"])
            self.skipped.update(saved.get("skipped", {}))
            if world.is_main:
                self.console.print(f"resuming from {found[1]} (step {start} of {self.plan.total})", highlight=False)
        log = MetricsLog(self.out, start, enabled=world.is_main)
        final = None
        with Prefetcher(prepare, workers=config.data.decode_workers, depth=config.data.prefetch) as prefetcher:
            stream = prefetcher.map(self.jobs(start))
            with ProgressBar(self.console, self.plan.total, start, enabled=self.show_progress) as bar:
                for step in range(start, self.plan.total):
                    self.step_skipped = 0
                    waiting = time.perf_counter()
                    samples = self.take(stream, step)
                    waited = time.perf_counter() - waiting
                    record = self.step(step, samples)
                    record["data_wait_seconds"] = round(world.all_max_float(waited), 4)
                    if world.is_main:
                        log.write(record)
                        bar.update(record)
                    done = step + 1
                    if done == self.plan.total or (config.save_every and done % config.save_every == 0):
                        final = self.checkpoint(done)
        log.close()
        if world.is_main and final is not None:
            state.mark_final(self.out, final)
        world.barrier()
        return TrainResult(self.run_id, final, self.plan.total, start, self.skipped)
