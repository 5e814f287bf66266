"""The ``vdpm-harness train`` command group, added to the command line through the entry point
``vdpm_harness.commands: train`` (``pyproject.toml``): the core reads that entry-point group without importing this
package by name, as it reads plugins'. Everything heavy is imported when a command runs."""

from __future__ import annotations

import sys

import click


def register_commands(cli: click.Group) -> None:
    """Add ``train`` (and its ``gsm`` command) to the root command group ``cli``, and the released DSR-Train to what
    ``data pull`` downloads (``training/gsm/dsr_train.py``; nothing heavy is imported here)."""
    from vdpm_harness.cli import Dataset, add_dataset

    from .gsm import dsr_train

    add_dataset(Dataset(
        name="dsr-train", default_folder=dsr_train.DEFAULT_FOLDER, pull=dsr_train.pull, verify=dsr_train.verify,
        description=f"DSR-Train, the DSR Suite's training questions (hub dataset {dsr_train.HUB_ID}), for train gsm",
        usage="vdpm-harness train gsm --train {folder} --base ... --out ...",
    ))  # fmt: skip

    @cli.group()
    def train():
        """Train models whose checkpoints a model plugin evaluates (rerunning a command resumes it)."""

    @train.command()
    @click.option("--base", help="Base model: a Qwen2.5-VL or GSM checkpoint folder or hub id.")
    @click.option("--train", "train_dirs",
                  help="Training data: folders, files or glob patterns of records, comma-separated; a folder of "
                  "`data pull dsr-train` is read as it is.")  # fmt: skip
    @click.option("--out", type=click.Path(file_okay=False), help="Output folder (checkpoints, metrics, run.json).")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Configuration (TOML or YAML).")
    @click.option("--max-steps", type=int, help="Optimizer steps in all (the schedule's length); else the epochs.")
    @click.option("--eval", "eval_benches", help="Benchmarks to evaluate the final checkpoint on, comma-separated.")
    @click.option("--pi3", help="Pi3 weights (file, folder or hub id) for a GSM built on a plain Qwen2.5-VL.")
    @click.option("--seed", type=int, help="Seed of the data order (default 0).")
    @click.option("--set", "sets", multiple=True, help="Any setting KEY=VALUE, dotted (repeatable).")
    @click.option("--allow-contamination", is_flag=True, default=None,
                  help="Train even on videos or questions of the evaluation benchmarks.")  # fmt: skip
    @click.option("--no-progress", is_flag=True, help="No progress bar (the metrics log is still written).")
    def gsm(base, train_dirs, out, config_file, max_steps, eval_benches, pi3, seed, sets, allow_contamination,
            no_progress):  # fmt: skip
        """Train DSR Suite's GSM model (Qwen2.5-VL + Geometry Selection Module) with the paper's recipe: 1 epoch,
        32 frames, AdamW with cosine schedule, LLM at 2e-7, mergers and GSM at 1e-6, Qwen ViT and Pi3 encoder frozen.
        Checkpoints load as --model qwen25vl-gsm --model-arg path=OUT/final. Under torchrun the processes share
        the work (FSDP2)."""
        from rich.console import Console

        from vdpm_harness.config import ConfigError
        from vdpm_harness.plugins import PluginError

        from .gsm.config import build_config

        console = Console(stderr=True)
        try:
            config = build_config(
                config_file, sets, **{"model.base": base, "data.train": train_dirs, "out": out,
                                      "schedule.max_steps": max_steps, "eval.benches": eval_benches,
                                      "model.pi3": pi3, "seed": seed,
                                      "guard.allow_contamination": allow_contamination},
            )  # fmt: skip
        except ConfigError as exc:
            _fail(console, str(exc))
        if not config.model.base:
            _fail(console, "no base model: pass --base (or model.base in the config)")
        if not config.data.train:
            _fail(console, "no training data: pass --train (or data.train in the config)")
        if not config.out:
            _fail(console, "no output folder: pass --out (or out in the config)")
        _run(config, console, progress=not no_progress, errors=(ConfigError, PluginError))


def _run(config, console, *, progress: bool, errors: tuple) -> None:
    import os

    from .gsm.contamination import ContaminationError
    from .gsm.model import BaseError
    from .gsm.records import DataError
    from .gsm.run import RunRefused, train_gsm
    from .gsm.summary import print_outcome

    rank = int(os.environ.get("RANK", "0"))
    try:
        outcome = train_gsm(config, console, progress=progress)
    except (*errors, ContaminationError, DataError, BaseError, RunRefused, OSError, ValueError) as exc:
        if rank != 0:
            sys.exit(1)
        _fail(console, str(exc), code=1)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]: rerun the same command to resume from the last checkpoint in "
                      f"{config.out}", highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(130)
    if rank != 0:  # rank 0 reports (and scores) for every rank, as in `run`
        sys.exit(1 if any(o.error for o in outcome.evaluated) else 0)
    print_outcome(outcome, config, console)
    if any(o.error or o.result is None for o in outcome.evaluated):
        sys.exit(1)


def _fail(console, message: str, code: int = 2):
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)
