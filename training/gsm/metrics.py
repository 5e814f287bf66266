"""What a training run reports: a metrics log (JSON lines, and TensorBoard when it is installed) and a progress bar.

``OUT/metrics.jsonl`` holds one line per optimizer step: ``step`` (1-based: steps done), ``epoch``, ``loss`` (the mean
cross-entropy of the step's supervised tokens over all processes), ``lr`` (each optimizer group's learning rate for
the step), ``grad_norm`` (before clipping), ``samples``, ``tokens``, ``supervised_tokens``, ``packs`` (forward passes
per process), ``skipped`` (samples left out), ``seconds`` (the step's computation), ``tokens_per_second`` (over those
seconds), ``data_wait_seconds`` (how long the step waited for its samples, the longest over the processes: more than
zero means too few workers prepare samples), ``peak_memory_gb`` (CUDA). A resumed run first cuts the log back to the
checkpoint's step, so the log is the curve of one uninterrupted run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vdpm_harness.store import write_atomic

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends step records to ``metrics.jsonl`` (and TensorBoard scalars when ``torch.utils.tensorboard`` works)."""

    def __init__(self, out: Path, resume_step: int, enabled: bool = True):
        self.path = Path(out) / METRICS_FILE
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        if self.path.is_file():  # keep the curve up to the checkpoint the run resumes from
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]  # fmt: skip
            write_atomic(self.path, "".join(line + "\n" for line in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=resume_step + 1)
        except Exception:  # noqa: BLE001 - TensorBoard is optional (not installed, or broken)
            self.writer = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")
        if self.writer is not None:
            step = record["step"]
            for key in ("loss", "grad_norm", "tokens_per_second"):
                if record.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", record[key], step)
            for name, lr in record.get("lr", {}).items():
                self.writer.add_scalar(f"lr/{name}", lr, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


class ProgressBar:
    """``step N/M``, a bar, loss, learning rate (of the first group), tokens/s, elapsed time and ETA, on stderr."""

    def __init__(self, console: Console, total: int, done: int, enabled: bool = True):
        self.enabled = enabled
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]train gsm"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[speed]} tok/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, disable=not enabled,
        )  # fmt: skip
        self.task = self.progress.add_task("train", total=total, completed=done, loss="-", lr="-", speed="-")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, record: dict[str, Any]) -> None:
        lrs = list(record["lr"].values())
        self.progress.update(self.task, completed=record["step"], loss=f"{record['loss']:.4f}",
                             lr=f"{lrs[0]:.2e}" if lrs else "-",
                             speed=f"{record['tokens_per_second']:,.0f}")  # fmt: skip
