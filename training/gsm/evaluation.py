"""The trained checkpoint evaluated through the harness, beside its base, on one leaderboard.

After training (or with ``--eval``), the final checkpoint runs as the ``qwen25vl-gsm`` model (``path`` = the
checkpoint folder, label ``eval.label`` or ``gsm-<run id>``) and the base as the model it is (``qwen25vl-gsm`` for a
GSM checkpoint, ``qwen25vl`` for a plain Qwen2.5-VL) on the ``eval.benches``, by the pipeline of ``vdpm-harness run``
(:class:`vdpm_harness.pipeline.Runner`) into ``eval.out``, whose leaderboard then shows both. Stored results are reused
as ``run`` reuses them, so the base is computed once however many runs are trained from it. The checkpoint's
``config.json`` names the training run (``vdpm_training``), which the model's run record reports under
``model.details.training``.
"""

from __future__ import annotations

from typing import Any

from vdpm_harness.config import RunConfig, expand_groups, validate_strictly
from vdpm_harness.pipeline import PairOutcome, Runner

from .config import TrainConfig


def trained_label(config: TrainConfig, run_id: str) -> str:
    return config.eval.label or f"gsm-{run_id}"


def run_config(config: TrainConfig, checkpoint: str, run_id: str, base_kind: str, host) -> RunConfig:
    """The ``run`` configuration of the evaluation: the trained checkpoint (and the base) on the benchmarks."""
    evaluation = config.eval
    options = dict(evaluation.model_options)
    models: list[dict[str, Any]] = [{"name": "qwen25vl-gsm", "label": trained_label(config, run_id),
                                     "options": {**options, "path": checkpoint}}]  # fmt: skip
    if evaluation.base:
        base = {**options, "path": config.model.base}
        if config.model.random_weights:
            base["random_weights"] = True
        models.append({"name": "qwen25vl-gsm" if base_kind == "gsm" else "qwen25vl", "options": base})
    data = {
        "models": models, "benches": [{"name": b, "options": evaluation.bench_options.get(b, {})}
                                      for b in evaluation.benches],
        "out": evaluation.out, "seed": config.seed, "limit": evaluation.limit,
        "decode_workers": evaluation.decode_workers,
    }  # fmt: skip
    run = validate_strictly(RunConfig, data)
    expand_groups(run, host.registry("benchmarks"))
    return run


def evaluate(config: TrainConfig, checkpoint: str, run_id: str, base_kind: str, host, console) -> list[PairOutcome]:
    """Run the evaluation (every process of a ``torchrun`` launch takes part, as in ``run``)."""
    runner = Runner(run_config(config, checkpoint, run_id, base_kind, host), host, console)
    return runner.run()
