"""What the console says about finished pairs (``run``, ``rescore``, ``import``): the score or why the pair failed,
and for every pair with errors its most frequent error reasons, so that a run in which everything failed reads as a
failure, with its cause, and ends with a non-zero exit status.

A pair *failed* when it has no successful sample; the leaderboard also marks a pair whose share of errors exceeds
``max_error_rate`` (:meth:`vdpm_harness.leaderboard.Leaderboard.failure`). Error reasons are recorded with secrets
redacted; they are redacted once more here with the run's secrets.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from .config import redact
from .leaderboard import DEFAULT_MAX_ERROR_RATE, Leaderboard
from .records import BenchmarkResult

#: How many error reasons the console shows per pair.
TOP_REASONS = 3


def no_success(result: BenchmarkResult) -> bool:
    """Whether a pair has no successful sample (every sample an error, or no sample at all)."""
    return result.n_errors >= result.n_samples


def score_text(result: BenchmarkResult, max_error_rate: float = DEFAULT_MAX_ERROR_RATE) -> str:
    """The console's score cell (rich markup): the primary value, or why the pair counts as failed."""
    reason = Leaderboard(max_error_rate=max_error_rate).failure(result)
    if reason is not None:
        return f"[red]{escape(reason)}[/red]"
    return f"{result.metrics[result.primary].value:.1f} {result.primary}"


def error_lines(result: BenchmarkResult, secrets: set[str] = frozenset(), top: int = TOP_REASONS) -> list[str]:
    """Plain-text lines on a pair's errors: how many of its samples failed, then its ``top`` most frequent reasons
    with their counts; no lines for a pair without errors."""
    if not result.n_errors:
        return []
    head = f"{result.model} on {result.benchmark}: {result.n_errors} of {result.n_samples} samples are errors"
    if no_success(result):
        head += " (no sample succeeded)"
    reasons = list(result.error_reasons.items())[:top]
    lines = [head + (f"; the most frequent reason{'s' if len(reasons) > 1 else ''}:" if reasons else "")]
    lines += [f"  {count} × {redact(reason, secrets)}" for reason, count in reasons]
    return lines


def report_errors(console: Console, results: list[BenchmarkResult], secrets: set[str] = frozenset()) -> list[str]:
    """Print every pair's error lines; then, for each pair without a successful sample, an error naming it.
    Returns those pairs as ``"model on benchmark"`` (the caller exits non-zero when there are any)."""
    failed = []
    for result in results:
        lines = error_lines(result, secrets)
        if not lines:
            continue
        color = "red" if no_success(result) else "yellow"
        console.print(f"[{color}]{escape(lines[0])}[/{color}]", highlight=False, soft_wrap=True)
        for line in lines[1:]:
            console.print(escape(line), highlight=False, soft_wrap=True)
        if no_success(result):
            failed.append(f"{result.model} on {result.benchmark}")
    for pair in failed:
        console.print(f"[red]error:[/red] {escape(pair)}: no sample succeeded; the leaderboard marks it failed",
                      highlight=False, soft_wrap=True)  # fmt: skip
    return failed
