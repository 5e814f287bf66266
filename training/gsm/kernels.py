"""Fused Triton kernels for the pointwise work of a training step (``kernels = "liger"``; CUDA only).

Profiled on an H200 (``docs/PERFORMANCE.md``, the trainer's section), a third of a step's kernel time went to
unfused pointwise kernels: the float32 RMSNorms, the rotary embedding, SwiGLU and their backward passes, once more
in the recomputation. Liger Kernel (``linkedin/Liger-Kernel``, package ``liger-kernel``) fuses each into one Triton
kernel a direction:

* RMSNorm (the decoder layers' two, the final norm, the vision blocks' two) and SwiGLU (each decoder layer's MLP):
  Liger's own ``apply_liger_kernel_to_qwen2_5_vl(model=...)``, which rebinds the ``forward`` of the built modules
  (their parameters and state dict stay as they are) and replaces the module's ``Qwen2_5_VLRMSNorm`` and ``Qwen2MLP``
  classes for models built later in the process; RMSNorm in Llama's casting mode (the statistic in float32, the
  result cast back before the weight), which is what transformers' ``Qwen2_5_VLRMSNorm`` computes;
* the rotary embedding of the language model's attention: transformers 5 recomposes Qwen2.5-VL's three M-RoPE
  sections into one ``cos``/``sin`` of the form ``cat(f, f)`` before the attention
  (``Qwen2_5_VLRotaryEmbedding.recomposition_frequencies``) and calls the plain ``apply_rotary_pos_emb``, which is
  what Liger's ``liger_rotary_pos_emb`` computes; Liger's own ``rope=True`` patches ``apply_multimodal_rotary_pos_emb``,
  which transformers 5 no longer calls, so the plain function is the one replaced here (process-wide; transformers is
  pinned to 5.23.0, whose layout this relies on).

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
    """Liger's RMSNorm, SwiGLU and rotary embedding in ``model`` (a Qwen2.5-VL or GSM); returns what was patched."""
    from importlib.metadata import version

    from liger_kernel.transformers import apply_liger_kernel_to_qwen2_5_vl, liger_rotary_pos_emb
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    apply_liger_kernel_to_qwen2_5_vl(rope=False, cross_entropy=False, fused_linear_cross_entropy=False,
                                     rms_norm=True, swiglu=True, model=model)  # fmt: skip
    modeling_qwen2_5_vl.apply_rotary_pos_emb = liger_rotary_pos_emb
    return {"kernels": "liger", "liger_kernel": version("liger-kernel"), "patched": ["rms_norm", "swiglu", "rope"]}
