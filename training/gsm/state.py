"""Checkpoints: what ``qwen25vl-gsm`` loads, plus the training state a rerun resumes from.

A checkpoint is ``OUT/checkpoints/step-NNNNNN/``:

* the GSM checkpoint in the released layout, written by the plugin's own
  :func:`vdpm_harness_plugins.models.qwen25vl.gsm.checkpoints.save` (``config.json`` with its ``gsm`` section,
  safetensors, ``generation_config.json``) and the processor's files, so ``--model qwen25vl-gsm --model-arg
  path=OUT/final`` evaluates it; ``config.json`` also records the training run (``vdpm_training``: run id, step,
  base), which the plugin reports in every run record;
* ``training.json``: the run id, the step, the resolved configuration, the data's digest, counters; written last, so
  a folder without it is incomplete;
* ``state/``: the float32 master weights of the trained parameters and the AdamW state, sharded as they are in
  training (``torch.distributed.checkpoint``; it reshards on load, so a run may resume with another process count).
  The frozen parameters (the Qwen ViT, the Pi3 encoder) are not in it: they never change, a rerun loads them from the
  base as the first run did (the base is part of the run's identity), and the safetensors hold them for evaluation.
  For the 7B recipe that leaves 3.7 GB of float32 copies out; for a run that trains only the GSM and the merger, 33 GB.

A checkpoint is written into ``.step-NNNNNN.partial`` and renamed when complete, so ``kill -9`` at any moment leaves
the previous checkpoints intact; a rerun of the same command resumes from the newest complete one at the step after
it, with the same data order (a function of the seed and the step) and learning rates (a function of the step).
``OUT/final`` links to the last step's checkpoint. The ``keep_checkpoints`` newest step checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from vdpm_harness.store import write_atomic
from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints

from .groups import canonical
from .parallel import World

CHECKPOINTS = "checkpoints"
TRAINING_FILE = "training.json"
STATE_FOLDER = "state"
FINAL = "final"
#: The ``config.json`` key of the training record (read by the ``qwen25vl-gsm`` plugin's ``describe``).
CONFIG_KEY = "vdpm_training"


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def completed(out: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under ``out`` (a ``training.json`` in them), oldest first."""
    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if path.name.startswith("step-") and (path / TRAINING_FILE).is_file():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def latest(out: Path) -> tuple[int, Path] | None:
    found = completed(out)
    return found[-1] if found else None


class _Gathered:
    """What the plugin's ``save`` reads of a model (config, GSM settings, generation config, ``state_dict()``), with
    the full state gathered from the shards."""

    def __init__(self, model, state: dict[str, torch.Tensor]):
        self.config, self.gsm, self.generation_config = model.config, model.gsm, model.generation_config
        self._state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def full_weights(wrapper, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's full state dict in ``dtype`` on the CPU, on rank 0 (empty elsewhere); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(wrapper, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k.removeprefix("model."): (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def _trained_only():
    """The state-dict options of ``state/``: the trained parameters only; loading leaves the frozen ones as they are
    (checked by :func:`load`)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=False)


def save(out: Path, step: int, wrapper, optimizer, world: World, processor, record: dict[str, Any], *,
         dtype: torch.dtype, keep: int) -> Path:  # fmt: skip
    """Write the checkpoint of ``step`` (every rank calls this); returns its folder."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    root = Path(out) / CHECKPOINTS
    target = root / step_name(step)
    staging = root / f".{step_name(step)}.partial"
    if world.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    world.barrier()
    model_state, optim_state = get_state_dict(wrapper, optimizer, options=_trained_only())
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(staging / STATE_FOLDER))
    weights = full_weights(wrapper, dtype)
    if world.is_main:
        model = wrapper.model
        model.config.__dict__[CONFIG_KEY] = {k: record[k] for k in ("run_id", "step", "base", "data_digest")}
        gsm_checkpoints.save(_Gathered(model, weights), staging)
        processor.save_pretrained(staging)
        write_atomic(staging / TRAINING_FILE, json.dumps(record, indent=1, default=str) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        prune(Path(out), keep)
    world.barrier()
    return target


def prune(out: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest step checkpoints (and partial ones a crash left), never ``final``'s."""
    final = (out / FINAL).resolve() if (out / FINAL).is_symlink() else None
    for _, path in completed(out)[:-keep]:
        if path.resolve() != final:
            shutil.rmtree(path, ignore_errors=True)
    for path in (out / CHECKPOINTS).glob(".step-*.partial"):  # left by a killed run (none is being written now)
        shutil.rmtree(path, ignore_errors=True)


def mark_final(out: Path, folder: Path) -> Path:
    """``OUT/final`` -> the last checkpoint (a relative symbolic link, replaced atomically)."""
    link = Path(out) / FINAL
    tmp = Path(out) / f".{FINAL}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(os.path.relpath(folder, out)))
    os.replace(tmp, link)
    return link


def load(folder: Path, wrapper, optimizer) -> dict[str, Any]:
    """Restore the master weights and AdamW state of a checkpoint (every rank); returns its ``training.json``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    model_state, optim_state = get_state_dict(wrapper, optimizer, options=_trained_only())
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(Path(folder) / STATE_FOLDER))
    keys = set_state_dict(wrapper, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                          options=_trained_only())  # fmt: skip
    frozen = {canonical(name) for name, p in wrapper.named_parameters() if not p.requires_grad}
    missing = [k for k in map(canonical, keys.missing_keys) if k not in frozen]
    if missing or keys.unexpected_keys:
        raise RuntimeError(f"{folder}: the training state does not fit the model: {len(missing)} trained parameters "
                           f"missing ({missing[:3]}), {len(keys.unexpected_keys)} unexpected "
                           f"({list(keys.unexpected_keys)[:3]})")  # fmt: skip
    # The groups' settings come from the configuration, which is the checkpoint's (the run id says so); what the
    # checkpoint restores is the state. (A checkpoint written by several processes came back into one with some
    # groups' settings missing, with PyTorch 2.14's torch.distributed.checkpoint.)
    for group, configured in zip(optimizer.param_groups, settings):
        group.update(configured)
    if dist.is_initialized():
        dist.barrier()
    return json.loads((Path(folder) / TRAINING_FILE).read_text())
