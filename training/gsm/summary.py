"""What ``vdpm-harness train gsm`` prints when it ends: the checkpoint, how to evaluate it, and the evaluation."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from vdpm_harness.summary import score_text

from .config import TrainConfig
from .evaluation import trained_label


def print_outcome(outcome, config: TrainConfig, console) -> None:
    resumed = f", resumed at step {outcome.resumed_from}" if outcome.resumed_from else ""
    console.print(f"training run {outcome.run_id}: {outcome.steps} steps{resumed}; final checkpoint {outcome.final}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    if not outcome.evaluated:
        console.print(f"evaluate it: vdpm-harness run --model qwen25vl-gsm --model-arg path={config.out}/final "
                      f"--label {trained_label(config, outcome.run_id)} --bench BENCH", highlight=False,
                      soft_wrap=True)  # fmt: skip
        return
    table = Table("model", "benchmark", "score", "n", "errors", title=f"evaluation ({config.eval.out})")
    for o in outcome.evaluated:
        if o.result is None:
            table.add_row(o.label, o.benchmark, "[red]failed[/red]", "", "")
        else:
            table.add_row(o.label, o.benchmark, score_text(o.result), str(o.result.n_samples),
                          str(o.result.n_errors))  # fmt: skip
    Console().print(table)
    click.echo(f"leaderboard in {config.eval.out}", err=True)
