"""Fused Triton kernels for the pointwise work of a training step (``kernels = "liger"``; CUDA only).

Profiled on an H200 (``docs/PERFORMANCE.md``, the trainer's section), a third of a step's kernel time went to
unfused pointwise kernels: the float32 RMSNorms, the rotary embedding, SwiGLU and their backward passes, once more
in the recomputation. Liger Kernel (``linkedin/Liger-Kernel``, package ``liger-kernel``) fuses each into one Triton
kernel a direction:

* RMSNorm (the decoder layers' two, the final norm, the vision blocks' two): each module replaced by Liger's
  ``LigerRMSNorm`` holding the same weight parameter, in Llama's casting mode (the statistic in float32, the result
  cast back before the weight), which is what transformers' ``Qwen2_5_VLRMSNorm`` computes;
* SwiGLU: each decoder layer's ``Qwen2MLP`` replaced by ``LigerSwiGLUMLP`` holding the same three linear layers;
* the rotary embedding of the language model's attention: transformers 5 recomposes Qwen2.5-VL's three M-RoPE
  sections into one ``cos``/``sin`` of the form ``cat(f, f)`` before the attention
  (``Qwen2_5_VLRotaryEmbedding.recomposition_frequencies``) and calls the plain ``apply_rotary_pos_emb``, which is
  what Liger's ``liger_rotary_pos_emb`` computes, so that function is the one replaced (process-wide; transformers
  is pinned to 5.23.0, whose layout this relies on).

The parameters stay the same objects under the same names, so groups, sharding and checkpoints do not change.
Liger's own ``apply_liger_kernel_to_qwen2_5_vl`` is not used: its 0.8.5 release imports
``Qwen2_5_VLCausalLMOutputWithPast``, which transformers 5.23 no longer has (measured on the H200, 2026-12-01), and
its ``rope=True`` patches ``apply_multimodal_rotary_pos_emb``, which transformers 5 no longer calls.

The cross-entropy is left alone: ``lm_head`` runs on the supervised positions only (:class:`.model.PackedGSM`).
"""

from __future__ import annotations

from typing import Any

#: The package and the command that installs it (named in the error when it is missing).
LIGER_INSTALL = "pip install liger-kernel"


class KernelsError(RuntimeError):
    """The configured kernels cannot run here (the message says why and what to set instead)."""


def check(kernels: str, device) -> None:
    """Fail before the model is loaded when ``kernels`` cannot run on ``device`` or is not installed."""
    if kernels == "torch":
        return
    if device.type != "cuda":
        raise KernelsError(f"kernels = {kernels!r} runs Triton kernels on CUDA only; this run's device is "
                           f"{device.type}: set kernels = 'torch'")  # fmt: skip
    try:
        import liger_kernel.transformers  # noqa: F401
    except ImportError as exc:
        raise KernelsError(f"kernels = 'liger' needs Liger Kernel ({LIGER_INSTALL}): {exc}") from None


def use_liger(model) -> dict[str, Any]:
    """Liger's RMSNorm, SwiGLU and rotary embedding in ``model`` (a Qwen2.5-VL or GSM); returns what was swapped."""
    from importlib.metadata import PackageNotFoundError, version

    import torch
    from liger_kernel.transformers import LigerRMSNorm, LigerSwiGLUMLP, liger_rotary_pos_emb
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    def norm(old):
        with torch.device("meta"):  # the new module's own weight is replaced at once: allocate nothing
            new = LigerRMSNorm(old.weight.shape[0], eps=old.variance_epsilon, casting_mode="llama")
        new.weight = old.weight
        return new

    def mlp(old):
        with torch.device("meta"):
            new = LigerSwiGLUMLP(old.config)
        new.gate_proj, new.up_proj, new.down_proj = old.gate_proj, old.up_proj, old.down_proj
        return new

    text = model.model.language_model
    for layer in text.layers:
        layer.input_layernorm = norm(layer.input_layernorm)
        layer.post_attention_layernorm = norm(layer.post_attention_layernorm)
        layer.mlp = mlp(layer.mlp)
    text.norm = norm(text.norm)
    for block in model.model.visual.blocks:
        block.norm1, block.norm2 = norm(block.norm1), norm(block.norm2)
    modeling_qwen2_5_vl.apply_rotary_pos_emb = liger_rotary_pos_emb
    try:
        release = version("liger-kernel")
    except PackageNotFoundError:  # importable without its metadata (a source checkout)
        release = None
    return {"kernels": "liger", "liger_kernel": release, "swapped": ["rms_norm", "swiglu", "rope"]}
