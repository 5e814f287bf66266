"""The CUDA fast path of Qwen2.5-VL: what makes it fast without changing what is computed.

On CUDA, by default (each can be switched off to get transformers' own computation, which is what the naive loop of
``perf/bench_dsr_gpu.py`` runs):

* the vision tower's windows in one varlen flash call (:func:`patch_vision`, :mod:`.vision_attention`);
* each row's prefill in its own causal SDPA call with cuDNN preferred (:func:`attn_implementation` resolves
  ``"auto"`` / ``"rowwise"`` and registers :mod:`.attention` with transformers);
* the vision blocks and the language model's MLPs and norms compiled for prefill-sized inputs (:func:`compile_model`,
  with an eager fallback when compilation fails).

The remaining piece of the fast path, the processor's resizing and normalisation on the GPU, is the ``device`` that
:func:`.inputs.encode` hands to the video processor. Measurements: ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)

#: Below this many tokens a compiled module runs eagerly: decoding steps (one token a row) are launch-bound, and
#: measured on an H100 the compiled modules made a batch-8 decoding step 78 ms instead of 29 ms.
COMPILE_MIN_TOKENS = 1024


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def attn_implementation(wanted: str, device) -> str:
    """The transformers ``attn_implementation`` that ``wanted`` resolves to on ``device`` (a ``torch.device``):
    ``auto`` is ``flash_attention_2`` on CUDA when flash-attn is installed, else ``rowwise`` on CUDA, else ``sdpa``;
    ``rowwise`` registers :mod:`.attention` and returns the name it is registered under."""
    from .attention import register

    if wanted == "auto":
        if device.type == "cuda" and flash_attn_installed():
            return "flash_attention_2"
        wanted = "rowwise" if device.type == "cuda" else "sdpa"
    return register() if wanted == "rowwise" else wanted


def compile_wanted(option: str, device) -> bool:
    """Whether the ``compile`` option (``auto``, ``on``, ``off``) compiles on ``device``: ``auto`` = CUDA only."""
    return option == "on" or (option == "auto" and device.type == "cuda")


def patch_vision(model, mode: str) -> str:
    """Swap the vision tower's windowed attention (:mod:`.vision_attention`) unless ``mode`` keeps transformers'
    own; return the mode used."""
    if mode == "transformers":
        return mode
    from .vision_attention import patch_vision_attention

    return patch_vision_attention(model, mode)


def compile_for_prefill(module) -> None:
    """Make ``module.forward`` a ``torch.compile``-d graph (dynamic shapes: no recompilation when the next batch has
    another length) for inputs of at least :data:`COMPILE_MIN_TOKENS` tokens, eager below; if compilation fails
    (no C compiler, no Triton) this and every later call run eagerly. Only for pure modules (no state)."""
    import torch

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


def compile_model(model) -> list[str]:
    """``torch.compile`` the parts of a Qwen2.5-VL whose time goes to pointwise kernels: every vision block (RMSNorm in
    float32, rotary embedding, SiLU, residuals over 46k patches a video) and each language-model layer's MLP and
    norms, for inputs of at least :data:`COMPILE_MIN_TOKENS` tokens (prefills; :func:`compile_for_prefill`).
    Attention and the KV cache stay eager. Measured on an H100 (``perf/profile_qwen_gpu.py``): the prefill of a
    32-frame 560x1008 video from 0.72 to 0.48 s. The modules compile on first use; returns what was compiled."""
    for block in model.model.visual.blocks:
        compile_for_prefill(block)
    for layer in model.model.language_model.layers:
        for module in (layer.mlp, layer.input_layernorm, layer.post_attention_layernorm):
            compile_for_prefill(module)
    return ["vision blocks", "language-model MLPs and RMSNorms"]
