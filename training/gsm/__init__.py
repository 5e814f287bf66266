"""The GSM trainer, ``vdpm-harness train gsm``: DSR Suite's Geometry Selection Module on Qwen2.5-VL trained with the
paper's recipe (Zhou et al., "Learning to Reason in 4D: Dynamic Spatial Understanding for Vision Language Models",
arXiv 2512.20557; code ``TencentARC/DSR_Suite``, ``model/qwen-vl-finetune/``), its defects fixed, into checkpoints the
``qwen25vl-gsm`` model plugin evaluates.

Modules, one idea each (``docs/training.md`` describes the whole):

* :mod:`.config`: the configuration, the recipe as its defaults, strict validation, the run's identity;
* :mod:`.records`: the training records (``train_qas.json`` of ``dsr-templates``, the released DSR-Train);
* :mod:`.samples`: a record as model inputs, built by the ``qwen25vl`` input code the evaluation uses;
* :mod:`.packing` and :mod:`.attention`: samples packed into one row, attention within each sample only;
* :mod:`.model`: the base (a GSM checkpoint, or a GSM built on a plain Qwen2.5-VL with Pi3's encoder) and the packed
  loss;
* :mod:`.groups` and :mod:`.optim`: parameter groups and frozen set as configured, AdamW, the schedule;
* :mod:`.parallel`: process group, devices, FSDP2 sharding, activation checkpointing;
* :mod:`.state`: checkpoints in the released layout plus the training state, resuming;
* :mod:`.metrics`: the metrics log and the progress bar;
* :mod:`.trainer`: the loop;
* :mod:`.contamination`: the guard against training on an evaluation benchmark's videos, questions or scenes;
* :mod:`.evaluation`: the final checkpoint through the harness, beside its base;
* :mod:`.run` and :mod:`.summary`: the command from start to end, and what it prints.
"""
