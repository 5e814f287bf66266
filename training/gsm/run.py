"""``vdpm-harness train gsm`` from start to end: configuration, data, guard, training (or resuming it), evaluation.

The run's id is a hash of the settings that determine the weights and of the training data (:func:`run_id`), so
rerunning the same command finds its own run in ``OUT`` and resumes it; a command with other settings or other data
is refused there (the message names the settings that differ). ``OUT/run.json`` records the run: id, resolved
configuration, data files and digest, the base, parameter groups, processes and device, the environment (package
versions, git revision, command line), the contamination guard's findings.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vdpm_harness.records import stable_hash
from vdpm_harness.repro import environment_record
from vdpm_harness.store import write_atomic

from . import contamination, parallel, state
from .config import TrainConfig, differences, resolved
from .records import data_digest, load_examples, record_files

RUN_FILE = "run.json"


class RunRefused(RuntimeError):
    """``OUT`` holds another training run."""


def run_id(config: TrainConfig, digest: str) -> str:
    return stable_hash({"settings": config.results_identity(), "data": digest}, 12)


def check_out(out: Path, identity: str, config: TrainConfig) -> dict[str, Any] | None:
    """The run record already in ``out`` (``None`` for a new run); :class:`RunRefused` when it is another run's."""
    path = out / RUN_FILE
    if not path.is_file():
        if state.completed(out):
            raise RunRefused(f"{out} holds checkpoints but no {RUN_FILE}: use another --out")
        return None
    record = json.loads(path.read_text())
    if record.get("run_id") != identity:
        changed = differences(record.get("results_identity", {}), config.results_identity())
        detail = f"settings that differ: {', '.join(changed)}" if changed else "the training data differs"
        raise RunRefused(f"{out} holds training run {record.get('run_id')}, not this one ({detail}); use another "
                         "--out, or the first run's command to resume it")  # fmt: skip
    return record


@dataclass
class Outcome:
    run_id: str
    final: Path | None
    steps: int
    resumed_from: int
    evaluated: list


def train_gsm(config: TrainConfig, console, *, progress: bool = True) -> Outcome:
    """Train (or resume) and evaluate, as configured; every process of a launch calls this."""
    from vdpm_harness.plugins import get_host

    from .evaluation import evaluate
    from .trainer import Trainer

    if not config.out:
        raise ValueError("no output folder: pass --out")
    out = Path(config.out)
    world = parallel.join(config.device)
    try:
        examples = load_examples(config.data.train)
        digest = data_digest(examples)
        identity = run_id(config, digest)
        previous = None
        failure = None
        if world.is_main:
            try:
                previous = check_out(out, identity, config)
            except RunRefused as exc:
                failure = str(exc)
        failure = world.broadcast(failure)
        if failure:
            raise RunRefused(failure)
        host = get_host()
        findings = guard(config, examples, host, world)
        record = run_record(config, identity, digest, examples, findings, previous, world)
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_atomic(out / RUN_FILE, json.dumps(record, indent=1, default=str) + "\n")
        trainer = Trainer(config, examples, identity, {"base": config.model.base, "data_digest": digest}, world,
                          console, progress=progress)  # fmt: skip
        result = trainer.run()
        base_kind = getattr(trainer, "base", {}).get("kind") or _base_kind(config)
        del trainer
        gc.collect()
        _empty_cuda_cache()
        evaluated = []
        if config.eval.benches and result.final is not None:
            evaluated = evaluate(config, str(result.final.resolve()), identity, base_kind, host, console)
        return Outcome(identity, result.final, result.steps, result.resumed_from, evaluated)
    finally:
        parallel.leave(world)


def _base_kind(config: TrainConfig) -> str:
    from vdpm_harness_plugins.models.qwen25vl import checkpoints as qwen_checkpoints

    from .model import is_gsm

    hub = {"revision": config.model.revision, "local_files_only": config.model.local_files_only}
    cfg = qwen_checkpoints.load_config(config.model.base, **hub)
    folder = qwen_checkpoints.local_folder(config.model.base)
    return "gsm" if is_gsm(cfg, folder) else "qwen2.5-vl"


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def guard(config: TrainConfig, examples, host, world) -> list[dict[str, Any]]:
    """The contamination guard on rank 0 (its verdict shared), over ``eval.benches`` and ``guard.benches``."""
    benches = {name: config.eval.bench_options.get(name, {}) for name in config.eval.benches}
    benches.update({name: config.guard.bench_options.get(name, {}) for name in config.guard.benches})
    findings, failure = [], None
    if world.is_main:
        try:
            findings = contamination.guard(host, examples, benches, config.guard.allow_contamination)
        except contamination.ContaminationError as exc:
            failure = str(exc)
    findings, failure = world.broadcast((findings, failure))
    if failure:
        raise contamination.ContaminationError(failure)
    return findings


def run_record(config: TrainConfig, identity: str, digest: str, examples, findings, previous, world) -> dict:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    launches = (previous or {}).get("launches", []) + [{"started": now, "processes": world.size,
                                                         "device": world.device.type}]  # fmt: skip
    return {
        "run_id": identity, "started": (previous or {}).get("started", now), "launches": launches,
        "config": resolved(config), "results_identity": config.results_identity(),
        "data": {"files": [str(f) for f in record_files(config.data.train)], "examples": len(examples),
                 "digest": digest},
        "contamination": {"benchmarks": sorted({*config.eval.benches, *config.guard.benches}),
                          "allowed": config.guard.allow_contamination, "findings": findings[:100],
                          "n_findings": len(findings)},
        "environment": environment_record(set()),
    }  # fmt: skip
