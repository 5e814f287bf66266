"""``qwen25vl-gsm``: the Geometry Selection Module (GSM) of DSR Suite on Qwen2.5-VL (Zhou et al., "Learning to Reason in
4D: Dynamic Spatial Understanding for Vision Language Models", arXiv 2512.20557; code ``TencentARC/DSR_Suite``,
``model/qwen-vl-finetune/qwenvl/train/qwen_vl_spatial.py``).

Why a subpackage of the ``qwen25vl`` plugin and not a plugin of its own: the GSM model *is* a Qwen2.5-VL (same
processor, same chat, same frames and timing, same batched generation and CUDA fast path) with a geometry branch
added, so it reuses :mod:`..inputs`, :mod:`..model`, :mod:`..speed` and :mod:`..checkpoints` rather than copying them;
and a plugin may never import another plugin's package. So the Qwen2.5-VL family is one plugin (entry point
``qwen25vl``) whose hook registers ``qwen25vl``, ``qwen25vl-{3b,7b,32b,72b}`` and ``qwen25vl-gsm``, and the GSM's own
modules live here, one idea each:

* :mod:`.settings`: the GSM's configuration (the ``"gsm"`` section of ``config.json``), with the paper's values for a
  checkpoint that has none (the released one), and the normalisation constants;
* :mod:`.patches`: the frames recovered from the processor's flattened patches (the exact inverse of its
  patchification) and re-normalised for the Pi3 encoder;
* :mod:`.pi3`: the Pi3 encoder's key layout mapped onto transformers' ``Dinov2WithRegistersModel`` and back;
* :mod:`.modules`: the GSM's layers: the Q-Former layer (cross-attention with M-RoPE, SwiGLU MLP) and
  :class:`~.modules.GeometrySelection` (encoder, spatial merger, learned queries, two Q-Formers, norm);
* :mod:`.tokens`: which tokens are what: the 32 extra ``<|video_pad|>`` slots of the geometry tokens, the text the
  first Q-Former reads, the visual runs of a row;
* :mod:`.positions`: the language model's M-RoPE positions as the checkpoint was trained with them;
* :mod:`.model`: the transformers model (:class:`~.model.Qwen25VLGSMForConditionalGeneration`);
* :mod:`.checkpoints`: the released checkpoint's key layout, strict loading, saving, tiny and config-only builders;
* :mod:`.inputs`: the request's inputs with the geometry pads (on top of :mod:`..inputs`);
* :mod:`.sharing`: shared prompt prefixes (on top of :mod:`..prefix`): per video the vision tower, Pi3 and the
  prefix's prefill, per question the Q-Formers;
* :mod:`.plugin`: the ``qwen25vl-gsm`` plugin class.

The architecture, the key layout, what differs from the original and the switch that reproduces its numerics are in
``docs/gsm.md``.
"""
