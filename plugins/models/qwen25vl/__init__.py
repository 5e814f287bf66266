"""``qwen25vl``: Qwen2.5-VL through transformers, fed with the harness's decoded frames and their true timing; and
``qwen25vl-gsm``, DSR Suite's Geometry Selection Module on it.

Registered ids: ``qwen25vl`` (any hub id or local folder in the ``path`` option) and ``qwen25vl-3b``, ``-7b``,
``-32b``, ``-72b``, whose default ``path`` is ``Qwen/Qwen2.5-VL-{3B,7B,32B,72B}-Instruct``; ``qwen25vl-gsm``, whose
default ``path`` is the released GSM ``TencentARC/DSR_Suite-Model`` (subpackage :mod:`.gsm`, which says why it lives
here). Commands: ``vdpm-harness models make-tiny DIR [--gsm]`` and ``vdpm-harness models make-random DIR --config 7b
[--gsm]`` build offline checkpoints.

Modules, one idea each:

* :mod:`.model`: the plugin class :class:`~.model.Qwen25VL` (options, loading, staging, generation) and its sizes;
* :mod:`.inputs`: how a request becomes model inputs (chat, frames with their timing, the processor call, pixel
  limits, the context-length check), as functions of the processor that a trainer can reuse;
* :mod:`.speed`: the CUDA fast path (compilation, attention choice, vision patch), which does not change what is
  computed; :mod:`.attention` (row-wise prefill, varlen) and :mod:`.vision_attention` (the vision tower's windows in
  one call) are its kernels;
* :mod:`.checkpoints`: building tiny and config-only checkpoints, resolving and loading any checkpoint;
* :mod:`.commands`: the ``models`` command-line group;
* :mod:`.gsm`: the GSM model, its checkpoints and the ``qwen25vl-gsm`` plugin class.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_models(register):
    register(
        "qwen25vl", f"{__name__}.model:Qwen25VL", aliases=("qwen2.5-vl",),
        description="Qwen2.5-VL on transformers (option path: hub id or folder); harness frames with true fps.",
    )  # fmt: skip
    for size in ("3b", "7b", "32b", "72b"):
        register(f"qwen25vl-{size}", f"{__name__}.model:Qwen25VL{size.upper()}",
                 description=f"Qwen/Qwen2.5-VL-{size.upper()}-Instruct (qwen25vl).")  # fmt: skip
    register(
        "qwen25vl-gsm", f"{__name__}.gsm.plugin:Qwen25VLGSM",
        description="DSR Suite's GSM on Qwen2.5-VL (Pi3 encoder, 2 Q-Formers, 32 geometry tokens; default path "
        "TencentARC/DSR_Suite-Model, gated); same pipeline as qwen25vl.",
    )  # fmt: skip


@hookimpl
def register_commands(cli):
    from .commands import add_models_commands

    add_models_commands(cli)
