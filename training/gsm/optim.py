"""AdamW and the learning-rate schedule.

**Schedule** (:func:`lr_factor`): transformers' schedules as the original's ``--lr_scheduler_type cosine
--warmup_ratio 0.03`` selects them (``get_cosine_schedule_with_warmup``, ``get_linear_schedule_with_warmup``,
``get_constant_schedule_with_warmup``): a linear warm-up over ``ceil(warmup_ratio x total)`` steps
(``TrainingArguments.get_warmup_steps``), then cosine decay to 0 at ``total``. The factor multiplies every group's own
learning rate, so each group follows the schedule with its own peak; it is a function of the step alone, so a resumed
run continues the schedule exactly. (The shipped ``zero3_offload.json`` replaced this with DeepSpeed's ``WarmupLR``:
warm-up, then constant.)

**AdamW** (:func:`make_optimizer`): ``torch.optim.AdamW`` (decoupled weight decay, the original's ``adamw_torch``)
when the moments are kept in the parameters' dtype; :class:`AdamW` when they are kept in another (``bfloat16``
moments for float32 master weights: the 7B recipe on one GPU), with the same update computed in float32, step for
step the formula of ``torch.optim.AdamW``'s single-tensor path.
"""

from __future__ import annotations

import math

import torch
from torch.distributed.tensor import DTensor


def warmup_steps(total: int, ratio: float, steps: int | None = None) -> int:
    """Warm-up length: ``steps`` when given, else ``ceil(total x ratio)`` (transformers' ``get_warmup_steps``)."""
    return steps if steps is not None else math.ceil(total * ratio)


def lr_factor(step: int, total: int, warmup: int, kind: str = "cosine") -> float:
    """The multiplier of each group's learning rate for optimizer step ``step`` (0-based), as transformers'
    ``get_{cosine,linear,constant}_schedule_with_warmup`` compute it."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def set_lrs(optimizer: torch.optim.Optimizer, factor: float) -> dict[str, float]:
    """Set every group's learning rate to its ``base_lr`` x ``factor``; returns the rate of each named group."""
    out = {}
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
        out[group["name"]] = group["lr"]
    return out


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def adamw_update(weight: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                 coefficients: torch.Tensor) -> None:  # fmt: skip
    """One AdamW update of one tensor in place, in float32, with ``coefficients`` = (1 - beta1, beta2, 1 - beta2,
    1 - lr x weight_decay, sqrt(1 - beta2^step), eps, -lr / (1 - beta1^step)): the operations of ``torch.optim.AdamW``'s
    single-tensor path in its order (``lerp``, ``mul``/``addcmul``, decay, ``addcdiv``); the moments are stored back
    in their own dtype and the result in the weight's."""
    weight1, beta2, weight2, keep, bias2_sqrt, eps, step_size = coefficients.unbind()
    grad = grad.float()
    m = exp_avg.float().lerp(grad, weight1)
    v = exp_avg_sq.float() * beta2 + grad * grad * weight2
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)
    master = weight.float() * keep
    weight.copy_(master + step_size * (m / (v.sqrt() / bias2_sqrt + eps)))


_compiled_update = None


def compiled_update():
    """:func:`adamw_update` compiled once for every tensor size (``dynamic=True``) and reused."""
    global _compiled_update
    if _compiled_update is None:
        _compiled_update = torch.compile(adamw_update, dynamic=True, fullgraph=True)
    return _compiled_update


class AdamW(torch.optim.Optimizer):
    """AdamW whose two moments are stored in ``state_dtype``; the update is computed in float32 and applied to the
    parameter (a float32 master weight: FSDP2 keeps those and computes in bfloat16). With ``state_dtype`` equal to
    the parameters' dtype and ``compiled=False`` it computes what ``torch.optim.AdamW(foreach=False)`` computes.
    Sharded (``DTensor``) parameters are updated shard by shard."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 state_dtype: torch.dtype = torch.bfloat16, compiled: bool = False):  # fmt: skip
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self.state_dtype = state_dtype
        self.compiled = compiled

    def load_state_dict(self, state_dict) -> None:
        """``torch.optim.Optimizer.load_state_dict``, then the moments back in ``state_dtype`` (the base class casts
        every state tensor to its parameter's dtype, which would keep float32 moments after a resume and so compute
        otherwise than the run that never stopped)."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state and state[key].dtype != self.state_dtype:
                    state[key] = state[key].to(self.state_dtype)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        update = compiled_update() if self.compiled else None
        coefficients: dict[tuple, torch.Tensor] = {}  # one small tensor per (group settings, step, device)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(parameter, dtype=self.state_dtype)
                    state["exp_avg_sq"] = torch.zeros_like(parameter, dtype=self.state_dtype)
                state["step"] += 1
                step = float(state["step"])
                weight = _local(parameter)
                grad = _local(parameter.grad)
                exp_avg, exp_avg_sq = _local(state["exp_avg"]), _local(state["exp_avg_sq"])
                bias1, bias2 = 1 - beta1**step, 1 - beta2**step
                if update is not None and all(t.is_contiguous() for t in (weight, grad, exp_avg, exp_avg_sq)):
                    values = (1 - beta1, beta2, 1 - beta2, 1 - lr * decay, math.sqrt(bias2), eps, -lr / bias1)
                    key = (values, weight.device)
                    if key not in coefficients:
                        coefficients[key] = torch.tensor(values, dtype=torch.float32, device=weight.device)
                    update(weight.view(-1), grad.view(-1), exp_avg.view(-1), exp_avg_sq.view(-1), coefficients[key])
                    continue
                grad = grad.float()
                m = exp_avg.float().lerp_(grad, 1 - beta1)
                v = exp_avg_sq.float().mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.copy_(m)
                exp_avg_sq.copy_(v)
                master = weight.float() if weight.dtype != torch.float32 else weight
                master.mul_(1 - lr * decay)
                denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
                master.addcdiv_(m, denom, value=-lr / bias1)
                if master is not weight:
                    weight.copy_(master)
        return loss


def make_optimizer(param_groups: list[dict], *, betas, eps: float, state_dtype: str, param_dtype: torch.dtype,
                   device_type: str, compiled: bool = False) -> torch.optim.Optimizer:  # fmt: skip
    """``torch.optim.AdamW`` (fused on CUDA) when the moments keep the parameters' dtype, else :class:`AdamW`
    (its update compiled when ``compiled``)."""
    wanted = param_dtype if state_dtype == "auto" else getattr(torch, state_dtype)
    if wanted == param_dtype:
        extra = {"fused": True} if device_type == "cuda" else {"foreach": False}
        return torch.optim.AdamW(param_groups, betas=tuple(betas), eps=eps, **extra)
    return AdamW(param_groups, betas=betas, eps=eps, state_dtype=wanted, compiled=compiled)
