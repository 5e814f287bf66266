"""Processes, devices and sharding: one process, or one per GPU under ``torchrun``, through PyTorch's FSDP2.

Every run, one process or several, goes through the same code: a process group (``gloo`` on the CPU, ``nccl`` on
GPUs; a group of one without ``torchrun``) and ``torch.distributed.fsdp.fully_shard`` (FSDP2) over the model:

* units: each language-model decoder layer, each vision block, each Pi3 encoder block, the vision merger, the
  spatial merger and each Q-Former; the rest (embeddings, ``lm_head``, norms, queries, patch embeddings) in the root,
  the :class:`~.model.PackedGSM` wrapper;
* the sharded parameters are the float32 master weights; under ``precision = "bf16"`` each unit is gathered in
  bfloat16 for its forward and backward and its gradients are reduced in float32 into float32 shards
  (``MixedPrecisionPolicy(param_dtype=bfloat16, reduce_dtype=float32)``): the usual mixed-precision recipe, the
  gradients of a step's packs accumulating in float32; the inputs are not cast (pixels stay float32, as the model
  reads them at evaluation);
* activation checkpointing (``activation_checkpointing``: the share of decoder layers, spread evenly) recomputes a
  layer's activations in the backward pass; the frozen towers keep none (no input of theirs requires a gradient);
* with ``compile``, each decoder layer, vision block and Pi3 encoder block is ``torch.compile``-d on its own (dynamic
  shapes: one graph for every pack length), before ``fully_shard``, as FSDP2's per-block compilation expects.

With several processes the parameters, gradients and AdamW states are sharded over them; with one, FSDP2 keeps the
float32 masters and the bfloat16 compute copies of one unit at a time. Gradients are sums over the processes
(:func:`loss_scale`): the loss of a pack is divided by the step's supervised tokens over all processes and
multiplied by the process count, which FSDP2's averaging divides out again, so a step computes the same update
whatever the number of processes, up to the order of the reductions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    """This process's place: rank, process count, device."""

    rank: int
    size: int
    device: torch.device
    launched: bool  # under torchrun (else a group of one made here)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the processes (float64)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def all_max_float(self, value: float) -> float:
        tensor = torch.tensor([value], dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def all_max(self, value: int) -> int:
        tensor = torch.tensor([value], dtype=torch.int64, device=self.collective_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def broadcast(self, value):
        """Rank 0's picklable ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    @property
    def collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def join(device: str = "auto", timeout_minutes: float = 60) -> World:
    """Join (or make) the process group and pick the device: ``cuda:LOCAL_RANK`` when CUDA is there (``auto``)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device = 'cuda' but CUDA is not available")
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    local = int(os.environ.get("LOCAL_RANK", "0"))
    where = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(where)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        timeout = timedelta(minutes=timeout_minutes)
        if launched:
            dist.init_process_group(backend, timeout=timeout)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    return World(dist.get_rank(), dist.get_world_size(), where, launched)


def leave(world: World) -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def loss_scale(world: World, supervised_tokens: float) -> float:
    """What a pack's summed loss is multiplied by before ``backward``: 1 / (the step's supervised tokens over all
    processes), times the process count that FSDP2's gradient averaging divides by."""
    return world.size / max(supervised_tokens, 1.0)


def checkpointed_layers(count: int, share: float) -> list[int]:
    """Which of ``count`` layers recompute their activations: ``round(share x count)`` of them, spread evenly."""
    chosen = round(share * count)
    if chosen <= 0:
        return []
    return sorted({int(i * count / chosen) for i in range(chosen)})


def apply_checkpointing(model, share: float) -> list[int]:
    """Wrap the chosen decoder layers of the language model for activation checkpointing (non-reentrant)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    layers = model.model.language_model.layers
    chosen = checkpointed_layers(len(layers), share)
    for i in chosen:
        layers[i] = checkpoint_wrapper(layers[i], checkpoint_impl=CheckpointImpl.NO_REENTRANT)
    return chosen


def units(model) -> list[nn.Module]:
    """The modules sharded as units (the module docstring's list), innermost first."""
    inner = model.model
    out = list(inner.language_model.layers) + list(inner.visual.blocks)
    out += list(inner.gsm.spatial_encoder.encoder.layer)
    out += [inner.visual.merger, inner.gsm.spatial_merger, inner.gsm.q_former_1, inner.gsm.q_former_2]
    return out


def shard(wrapper: nn.Module, world: World, precision: str, *, compile_layers: bool = False) -> None:
    """``fully_shard`` every unit and the root (:func:`units`), with the mixed-precision policy of ``precision``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(world.device.type, (world.size,))
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                      cast_forward_inputs=False)  # fmt: skip
    else:
        policy = MixedPrecisionPolicy(cast_forward_inputs=False)
    if compile_layers:  # the decoder layers and the frozen towers' blocks, each one graph for every length
        inner = wrapper.model.model
        for block in (*inner.language_model.layers, *inner.visual.blocks, *inner.gsm.spatial_encoder.encoder.layer):
            block.compile(dynamic=True)
    for unit in units(wrapper.model):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(wrapper, mesh=mesh, mp_policy=policy)
