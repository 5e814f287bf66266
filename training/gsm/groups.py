"""Parameter groups and the frozen set, exactly as the configuration names them.

Every parameter of the model (its ``named_parameters()`` names, e.g.
``model.language_model.layers.0.mlp.up_proj.weight``, ``lm_head.weight``, ``model.visual.merger.mlp.0.weight``,
``model.gsm.q_former_1.attn.q_proj.weight``) belongs to the group or the frozen entry whose prefix is the longest one
it starts with: ``model.visual.merger.`` (a group) wins
over ``model.visual.`` (frozen), ``model.gsm.spatial_encoder.`` (frozen) over ``model.gsm.`` (a group). A parameter
that no prefix names, a prefix listed twice or a group that names no parameter is an error: nothing is trained or
frozen by accident (the original's ``model.lm_head.requires_grad = False`` set a Python attribute and left
``lm_head`` trainable, ``TencentARC/DSR_Suite``, ``qwenvl/train/train_qwen.py`` ``set_model``).

Each group splits into the parameters that get weight decay and those that do not: biases and the parameters of
normalisation layers. The original's ``create_optimizer`` (``qwenvl/train/trainer.py``) used transformers'
``Trainer.get_decay_parameter_names`` (``nn.LayerNorm`` modules, and names matching ``bias``, ``layernorm``,
``rmsnorm``, ``.norm.``, ``_norm.``), which misses the RMSNorms named ``norm1``/``norm2`` (the Q-Formers) and
``ln_q`` (both mergers), so those were decayed towards zero; here every module whose class is a norm (``LayerNorm``,
``RMSNorm``) is spared as well as the name patterns. The optimizer's param groups are named ``<group>`` and
``<group>/no_decay``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from .config import OptimizerSection

#: What activation checkpointing inserts into parameter names (``torch.distributed.algorithms._checkpoint``).
_WRAPPED = "_checkpoint_wrapped_module."


class GroupError(ValueError):
    """The configuration's groups do not name every parameter exactly once."""


def canonical(name: str) -> str:
    """A parameter's name without the wrappers training adds around modules."""
    return name.replace(_WRAPPED, "")


def assign(names: list[str], optimizer: OptimizerSection) -> dict[str, str | None]:
    """Parameter name -> its group (``None`` = frozen), by longest prefix; :class:`GroupError` naming what is wrong."""
    prefixes: dict[str, str | None] = {}
    for group, spec in optimizer.groups.items():
        for prefix in spec.params:
            if prefix in prefixes:
                raise GroupError(f"optimizer: the prefix {prefix!r} is listed twice")
            prefixes[prefix] = group
    for prefix in optimizer.frozen:
        if prefix in prefixes:
            raise GroupError(f"optimizer: the prefix {prefix!r} is both in a group and frozen")
        prefixes[prefix] = None
    out: dict[str, str | None] = {}
    unnamed = []
    for name in names:
        matches = [p for p in prefixes if name.startswith(p)]
        if not matches:
            unnamed.append(name)
            continue
        out[name] = prefixes[max(matches, key=len)]
    if unnamed:
        modules = sorted({".".join(n.split(".")[:3]) for n in unnamed})
        raise GroupError(f"{len(unnamed)} parameters are in no optimizer group and not frozen: "
                         f"{', '.join(unnamed[:5])} (modules: {', '.join(modules[:10])}); name them in "
                         "optimizer.groups or optimizer.frozen")  # fmt: skip
    empty = sorted(set(optimizer.groups) - {g for g in out.values() if g is not None})
    if empty:
        raise GroupError(f"optimizer.groups {', '.join(empty)}: no parameter starts with their prefixes")
    return out


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: ``nn.LayerNorm`` or a class named ``...Norm`` (transformers' RMSNorms)."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("Norm")


def decays(name: str, layer_norm_params: set[str], patterns: list[str]) -> bool:
    """Whether a parameter gets weight decay (not a bias, not a norm)."""
    return name not in layer_norm_params and not any(re.search(p, name) for p in patterns)


@dataclass
class Groups:
    """The resolved groups: per parameter name its group (``None`` frozen), and the optimizer's param groups."""

    assignment: dict[str, str | None]
    param_groups: list[dict] = field(default_factory=list)

    def trainable(self) -> list[str]:
        return [name for name, group in self.assignment.items() if group is not None]

    def frozen(self) -> list[str]:
        return [name for name, group in self.assignment.items() if group is None]

    def summary(self) -> dict[str, dict]:
        """Per optimizer group: its learning rate, weight decay and parameter count; and the frozen count."""
        out = {g["name"]: {"lr": g["lr"], "weight_decay": g["weight_decay"],
                           "parameters": sum(p.numel() for p in g["params"]), "tensors": len(g["params"])}
               for g in self.param_groups}  # fmt: skip
        out["frozen"] = {"tensors": len(self.frozen())}
        return out


def build_groups(model: nn.Module, optimizer: OptimizerSection, *, set_requires_grad: bool = True) -> Groups:
    """Assign every parameter of ``model`` (names canonicalised) and build the optimizer's param groups; with
    ``set_requires_grad`` the frozen parameters stop requiring gradients and the others require them."""
    named = [(canonical(n), p) for n, p in model.named_parameters()]
    assignment = assign([n for n, _ in named], optimizer)
    layer_norm = {canonical(f"{m}.{n}" if m else n) for m, module in model.named_modules() if is_norm(module)
                  for n, _ in module.named_parameters(recurse=False)}  # fmt: skip
    buckets: dict[tuple[str, bool], list] = {}
    for name, parameter in named:
        group = assignment[name]
        if set_requires_grad:
            parameter.requires_grad_(group is not None)
        if group is None:
            continue
        buckets.setdefault((group, decays(name, layer_norm, optimizer.no_decay)), []).append(parameter)
    param_groups = []
    for group, spec in optimizer.groups.items():
        decay = optimizer.weight_decay if spec.weight_decay is None else spec.weight_decay
        for with_decay in (True, False):
            params = buckets.get((group, with_decay))
            if params:
                param_groups.append({"params": params, "name": group if with_decay else f"{group}/no_decay",
                                     "lr": spec.lr, "base_lr": spec.lr,
                                     "weight_decay": decay if with_decay else 0.0})  # fmt: skip
    return Groups(assignment, param_groups)
