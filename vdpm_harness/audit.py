"""``vdpm-harness audit BENCH``: how much of a multiple-choice benchmark can be answered without its videos.

The audit runs the blind baselines (``blind-shortest`` and ``blind-longest`` by items and by characters,
``blind-prior`` by category and by question template) and, when given, real models in their text-only mode
(``blind=true``) through the ordinary pipeline (so the runs are stored, resumable and on the leaderboard), then
reports per category:

* each baseline's accuracy with its 95% interval (:func:`vdpm_harness.stats.clustered_mean`: Wilson on the effective
  sample size of the clustering by video), the chance level (the mean of ``1 / number of options``) and a one-sided
  exact binomial test of "better than chance" on the effective sample size (:func:`binomial_tail`, with the design
  effect of :func:`vdpm_harness.stats.design_effect`);
* the p-values adjusted for the number of tests of the audit (every baseline on every category and overall) by
  Holm's step-down method (Holm, S. 1979, "A simple sequentially rejective multiple test procedure", Scandinavian
  Journal of Statistics 6(2):65-70), and a **flag** wherever the adjusted p-value is below ``alpha``: a blind
  baseline beats chance significantly there;
* the simultaneous interval of each accuracy (Wilson at level ``1 - alpha / tests``, Bonferroni), and whether chance
  lies inside it;
* the distribution of the correct letters and of the correct answer texts (case and spacing folded, as the prior
  compares them).

Without a training split the prior learns from the audited benchmark itself, each question answered from the other
videos' questions only (``holdout="video"``); with ``train_bench`` it learns from that benchmark instead.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from .config import ModelSpec, RunConfig, build_config
from .extract import option_text
from .records import MetricValue, Sample, Score
from .stats import UNCATEGORIZED, clustered_mean, design_effect, wilson_interval
from .store import write_atomic

#: Every category and the whole benchmark: the row of all questions.
OVERALL = "(all)"

#: The baselines of every audit: (label, model id, options); the prior's training options are added by the audit.
LENGTH_BASELINES = [
    ("blind-shortest-items", "blind-shortest", {"unit": "items"}),
    ("blind-shortest-characters", "blind-shortest", {"unit": "characters"}),
    ("blind-longest-items", "blind-longest", {"unit": "items"}),
    ("blind-longest-characters", "blind-longest", {"unit": "characters"}),
]
PRIOR_BASELINES = [
    ("blind-prior-category", {"group_by": "category"}),
    ("blind-prior-template", {"group_by": "template"}),
]


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``: the one-sided exact p-value of ``k`` successes in ``n`` against
    ``p`` (summed in log space, so thousands of trials neither overflow nor underflow)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    logs = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def better_than_chance(accuracy: MetricValue, chance: float) -> tuple[float, float, float]:
    """``(p-value, design effect, effective n)`` of the one-sided test "accuracy above chance": the exact binomial
    tail at ``round(n / deff)`` trials with the observed proportion of them correct. ``deff`` is the design effect of
    the clustering by video (1 without a clustered standard error)."""
    p, n = accuracy.value / 100, accuracy.n
    deff = 1.0 if accuracy.se is None else design_effect(p, n, (accuracy.se / 100) ** 2)
    n_eff = max(1, round(n / deff))
    return binomial_tail(round(p * n_eff), n_eff, chance), deff, n / deff


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Cell:
    """One baseline on one category."""

    baseline: str
    category: str
    accuracy: MetricValue
    chance: float  # percent
    p_value: float
    p_adjusted: float = 1.0
    deff: float = 1.0
    n_eff: float = 0.0
    simultaneous: tuple[float, float] = (0.0, 100.0)  # percent
    flag: bool = False

    @property
    def chance_inside(self) -> bool:
        """Whether chance lies within the simultaneous interval of the accuracy."""
        return self.simultaneous[0] <= self.chance <= self.simultaneous[1]


@dataclass
class Distribution:
    """The correct letters and answer texts of one category."""

    n: int
    letters: dict[str, int]
    answers: list[tuple[str, int]]  # most common first
    distinct_answers: int


@dataclass
class AuditReport:
    benchmark: str
    alpha: float
    baselines: list[str]
    categories: list[str]
    cells: list[Cell] = field(default_factory=list)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def flags(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.flag]

    def cell(self, baseline: str, category: str) -> Cell | None:
        return next((c for c in self.cells if c.baseline == baseline and c.category == category), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark, "alpha": self.alpha, "baselines": self.baselines,
            "categories": self.categories, "tests": len(self.cells), "flags": len(self.flags),
            "cells": [{**asdict(c), "accuracy": c.accuracy.model_dump(mode="json"), "chance_inside": c.chance_inside}
                      for c in self.cells],
            "distributions": {k: asdict(v) for k, v in self.distributions.items()}, "details": self.details,
        }  # fmt: skip


def _category(sample_or_score) -> str:
    return sample_or_score.category if sample_or_score.category is not None else UNCATEGORIZED


def audit(scores: dict[str, list[Score]], samples: list[Sample], categories: list[str] | None = None,
          alpha: float = 0.05, benchmark: str = "") -> AuditReport:  # fmt: skip
    """The audit table from the scores of each baseline (by label) on ``samples``.

    Categories are the samples' own, in the order of ``categories`` first; an error or an unparsed answer counts as
    wrong. Samples of several builds can be pooled: give them distinct sample and video ids.
    """
    by_id = {s.sample_id: s for s in samples}
    order = list(dict.fromkeys([*(categories or []), *(_category(s) for s in samples)]))
    present = {_category(s) for s in samples}
    order = [c for c in order if c in present]
    report = AuditReport(benchmark, alpha, list(scores), [*order, OVERALL])
    for label, rows in scores.items():
        for category in report.categories:
            chosen = [r for r in rows if r.sample_id in by_id and category in (OVERALL, _category(by_id[r.sample_id]))]
            if not chosen:
                continue
            values = [float(r.status == "ok" and (r.correct or 0.0) >= 1.0) for r in chosen]
            accuracy = clustered_mean(values, [r.video_id for r in chosen])
            chance = sum(1 / len(by_id[r.sample_id].options) for r in chosen) / len(chosen)
            p_value, deff, n_eff = better_than_chance(accuracy, chance)
            report.cells.append(Cell(label, category, accuracy, 100 * chance, p_value, deff=deff, n_eff=n_eff))
    m = len(report.cells)
    z = NormalDist().inv_cdf(1 - alpha / (2 * max(m, 1)))
    for cell, adjusted in zip(report.cells, holm([c.p_value for c in report.cells])):
        cell.p_adjusted = adjusted
        cell.flag = adjusted < alpha
        low, high = wilson_interval(cell.accuracy.value / 100, cell.n_eff, z)
        cell.simultaneous = (100 * low, 100 * high)
    for category in report.categories:
        chosen = [s for s in samples if category in (OVERALL, _category(s))]
        letters = Counter(str(s.answer) for s in chosen)
        texts = [_answer_text(s) for s in chosen]
        answers = Counter(text.casefold() for text in texts)
        shown = {}  # each answer as first written
        for text in texts:
            shown.setdefault(text.casefold(), text)
        report.distributions[category] = Distribution(len(chosen), dict(sorted(letters.items())),
                                                      [(shown[k], n) for k, n in answers.most_common()],
                                                      len(answers))  # fmt: skip
    return report


def _answer_text(sample: Sample) -> str:
    letters = [chr(ord("A") + i) for i in range(len(sample.options))]
    if sample.answer in letters:
        return " ".join(option_text(sample.options[letters.index(sample.answer)]).split())
    return str(sample.answer)


# --- running the baselines -------------------------------------------------------------------------------------------


def audit_config(host, bench: str, bench_args: tuple[str, ...] = (), *, out: str | Path, seed: int = 0,
                 limit: int | None = None, train_bench: str | None = None, train_args: tuple[str, ...] = (),
                 models: tuple[str, ...] = (), model_args: tuple[str, ...] = ()) -> RunConfig:  # fmt: skip
    """The run configuration of an audit: the blind baselines (the prior trained on ``train_bench``, else on the
    audited benchmark with a video holdout) and ``models`` run with ``blind=true``."""
    config = build_config(models="blind-shortest", benches=bench, bench_args=bench_args, out=str(out), seed=seed,
                          limit=limit, decode_workers=0, host=host)  # fmt: skip
    if len(config.benches) != 1:
        raise ValueError(f"audit one benchmark at a time ('{bench}' stands for {len(config.benches)})")
    spec = config.benches[0]
    if train_bench:
        train_spec = build_config(models="blind-shortest", benches=train_bench, bench_args=train_args, host=host)
        trainer = host.create("benchmarks", train_bench, train_spec.benches[0].options)
        train = {"train_bench": train_bench, "train_options": trainer.options.model_dump(mode="json")}
    else:
        audited = host.create("benchmarks", spec.name, spec.options)
        train = {"train_bench": spec.name, "train_options": audited.options.model_dump(mode="json"),
                 "holdout": "video"}  # fmt: skip
    specs = [ModelSpec(name=name, label=label, options=options) for label, name, options in LENGTH_BASELINES]
    specs += [ModelSpec(name="blind-prior", label=label, options={**train, **options})
              for label, options in PRIOR_BASELINES]  # fmt: skip
    if models:
        chosen = build_config(models=",".join(models), benches=bench, model_args=model_args, host=host).models
        for model in chosen:
            model.options["blind"] = True
        specs += chosen
    config.models = specs
    return config


def run_models(host, config: RunConfig, console=None) -> tuple[dict[str, list[Score]], list[Sample], Any]:
    """Run an audit's models on its benchmark (resuming stored runs): the scores by label, the samples and the
    benchmark."""
    from .pipeline import Runner

    runner = Runner(config, host, console)
    outcomes = runner.run()
    failed = [o for o in outcomes if o.result is None]
    if failed:
        raise RuntimeError("; ".join(f"{o.label}: {o.error}" for o in failed))
    spec = config.benches[0]
    benchmark = host.create("benchmarks", spec.name, spec.options)
    scores = {}
    for outcome in outcomes:
        path = Path(config.out) / outcome.label / outcome.benchmark / "scores.jsonl"
        scores[outcome.label] = [Score.model_validate_json(line) for line in path.read_text().splitlines() if line]
    return scores, runner.samples(benchmark), benchmark


def run_audit(host, config: RunConfig, alpha: float = 0.05, console=None) -> AuditReport:
    """Run the audit's models on its benchmark (resuming stored runs) and build the report."""
    scores, samples, benchmark = run_models(host, config, console)
    report = audit(scores, samples, list(benchmark.categories), alpha, benchmark.id)
    report.details = {"benchmark_version": benchmark.version, "options": benchmark.options.model_dump(mode="json"),
                      "dataset_revision": benchmark.dataset_revision(), "seed": config.seed,
                      "models": [spec.model_dump(mode="json") for spec in config.models]}  # fmt: skip
    return report


def run_pooled(host, configs: list[RunConfig], alpha: float = 0.05, console=None) -> AuditReport:
    """One report over several audits of the same benchmark (e.g. builds from different seeds): the samples and
    scores of audit ``i`` get the id prefix ``i/`` (their videos are distinct clusters)."""
    pooled: dict[str, list[Score]] = {}
    samples: list[Sample] = []
    details = []
    for i, config in enumerate(configs):
        scores, own, benchmark = run_models(host, config, console)
        for label, rows in scores.items():
            pooled.setdefault(label, []).extend(
                r.model_copy(update={"sample_id": f"{i}/{r.sample_id}", "video_id": f"{i}/{r.video_id}"}) for r in rows
            )
        samples += [s.model_copy(update={"sample_id": f"{i}/{s.sample_id}", "video_id": f"{i}/{s.video_id}"})
                    for s in own]  # fmt: skip
        details.append({"options": benchmark.options.model_dump(mode="json"),
                        "dataset_revision": benchmark.dataset_revision()})  # fmt: skip
    report = audit(pooled, samples, list(benchmark.categories), alpha, benchmark.id)
    report.details = {"benchmark_version": benchmark.version, "pooled": details}
    return report


# --- the report ------------------------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{value:.1f}"


def to_markdown(report: AuditReport, top_answers: int = 3) -> str:
    """The audit as markdown: the flags, one accuracy table (baselines x categories), the test details and the
    distributions of the correct letters and answer texts."""
    lines = [f"# Blind audit of {report.benchmark}", ""]
    tests = len(report.cells)
    if report.flags:
        lines.append(f"**{len(report.flags)} of {tests} tests flag a blind advantage** (Holm-adjusted one-sided "
                     f"p < {report.alpha:g}):")  # fmt: skip
        lines += [
            f"- {c.baseline} on {c.category}: {_percent(c.accuracy.value)}% against chance "
            f"{_percent(c.chance)}% (n={c.accuracy.n}, adjusted p={c.p_adjusted:.2g})"
            for c in report.flags
        ]
    else:
        lines.append(f"No blind baseline beats chance significantly ({tests} tests, Holm-adjusted one-sided "
                     f"p < {report.alpha:g}).")  # fmt: skip
    lines += ["", "Accuracy (%) ± half-width of its 95% interval; **bold**: flagged; n and chance per category.", ""]
    header = ["category", "n", "chance", *report.baselines]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for category in report.categories:
        row = [category]
        cells = [report.cell(b, category) for b in report.baselines]
        first = next((c for c in cells if c is not None), None)
        row += [str(first.accuracy.n) if first else "", _percent(first.chance) if first else ""]
        for cell in cells:
            if cell is None:
                row.append("")
                continue
            a = cell.accuracy
            text = _percent(a.value)
            if a.ci_low is not None and a.ci_high is not None:
                text += f" ± {max(a.value - a.ci_low, a.ci_high - a.value):.1f}"
            row.append(f"**{text}**" if cell.flag else text)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Tests", "", "One-sided exact binomial test of accuracy > chance on the effective sample size "
              "n/deff (design effect of the clustering by video); p adjusted by Holm over all tests; simultaneous "
              f"interval: Wilson at level 1 - {report.alpha:g}/{tests} (Bonferroni).", "",
              "| baseline | category | accuracy | chance | deff | p | adjusted p | simultaneous interval | flag |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in report.cells:
        lines.append(f"| {c.baseline} | {c.category} | {_percent(c.accuracy.value)} | {_percent(c.chance)} | "
                     f"{c.deff:.2f} | {c.p_value:.3g} | {c.p_adjusted:.3g} | [{_percent(c.simultaneous[0])}, "
                     f"{_percent(c.simultaneous[1])}] | {'yes' if c.flag else ''} |")  # fmt: skip
    lines += [
        "",
        "## Correct letters and answers",
        "",
        "| category | n | letters | distinct answers | most common answers (share) |",
        "|---|---|---|---|---|",
    ]
    for category, d in report.distributions.items():
        letters = " ".join(f"{k}:{v}" for k, v in d.letters.items())
        common = "; ".join(f"{_cut(text)} ({100 * k / d.n:.0f}%)" for text, k in d.answers[:top_answers])
        lines.append(f"| {category} | {d.n} | {letters} | {d.distinct_answers} | {common} |")
    return "\n".join(lines) + "\n"


def _cut(text: str, width: int = 60) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= width else text[: width - 1] + "…"


def write_report(report: AuditReport, folder: Path) -> list[Path]:
    """``<folder>/audit-<benchmark>.md`` and ``.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"audit-{report.benchmark}.md", folder / f"audit-{report.benchmark}.json"
    write_atomic(md, to_markdown(report))
    write_atomic(js, json.dumps(report.as_dict(), indent=1) + "\n")
    return [md, js]
