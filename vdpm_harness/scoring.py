"""Extract, score and summarize a pair from its stored predictions; ``rescore`` (no model run), ``import_runs``
(someone else's outputs) and the leaderboard they regenerate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .interfaces import Benchmark, Judge
from .planning import WorkItem, error_text
from .plugins import Host
from .records import (
    BenchmarkResult,
    GenerationSettings,
    Prediction,
    RunRecord,
    Sample,
    Score,
    read_record,
    stable_hash,
)  # fmt: skip
from .repro import environment_record, now
from .store import (
    FolderLock,
    PredictionStore,
    clean_stale_temporaries,
    jsonl,
    result_key,
    write_atomic,
    write_atomic_files,
)

log = logging.getLogger(__name__)


def score_predictions(
    benchmark: Benchmark,
    samples: list[Sample],
    predictions: dict[str, Prediction],
    judge: Judge | None = None,
) -> list[Score]:
    """Extract and score the prediction of every sample (by sample id). A sample without one is an error; so is a
    sample whose extraction or scoring raises (the others are scored), and one the judge gave no verdict for
    (``Extraction.error``: an error of the sample, not a wrong answer; ``rescore`` asks the judge again)."""
    scores: dict[str, Score] = {}
    to_judge: list[tuple[Sample, Prediction]] = []
    for sample in samples:
        prediction = predictions.get(sample.sample_id)
        if prediction is None or prediction.status == "error":
            error = prediction.error if prediction else "no prediction recorded"
            scores[sample.sample_id] = Score(
                sample_id=sample.sample_id, video_id=sample.video_id, category=sample.category, status="error",
                correct=None, gold=sample.answer, error=error,
            )  # fmt: skip
        elif judge is not None:
            to_judge.append((sample, prediction))
        else:
            try:
                extraction = benchmark.extract(sample, prediction.response)
            except Exception as exc:  # noqa: BLE001 - one response the rules cannot read is that sample's error
                scores[sample.sample_id] = _score_error(sample, prediction, f"extraction failed: {error_text(exc)}")
                continue
            scores[sample.sample_id] = _score_one(benchmark, sample, prediction, extraction)
    if to_judge:
        extractions = judge.judge(benchmark, to_judge)
        for (sample, prediction), extraction in zip(to_judge, extractions, strict=True):
            scores[sample.sample_id] = _score_one(benchmark, sample, prediction, extraction)
    return [scores[s.sample_id] for s in samples]


def _score_error(sample: Sample, prediction: Prediction, error: str, extraction=None) -> Score:
    """The score of a sample that has a response but could not be scored (the response and extraction are kept)."""
    return Score(
        sample_id=sample.sample_id, video_id=sample.video_id, category=sample.category, status="error",
        correct=None, extraction=extraction, gold=sample.answer, response=prediction.response, error=error,
    )  # fmt: skip


def _score_one(benchmark: Benchmark, sample: Sample, prediction: Prediction, extraction) -> Score:
    if extraction.error is not None:  # the judge gave no verdict
        return _score_error(sample, prediction, f"judge failed: {extraction.error}", extraction)
    try:
        correct, metrics = benchmark.score(sample, extraction)
    except Exception as exc:  # noqa: BLE001 - one sample the benchmark cannot score is that sample's error
        return _score_error(sample, prediction, f"scoring failed: {error_text(exc)}", extraction)
    return Score(
        sample_id=sample.sample_id, video_id=sample.video_id, category=sample.category, status="ok",
        correct=correct, metrics=metrics, extraction=extraction, gold=sample.answer, response=prediction.response,
    )  # fmt: skip


def summarize(benchmark: Benchmark, label: str, scores: list[Score], run: RunRecord) -> BenchmarkResult:
    from .stats import error_reasons, unparsed_rate

    metrics, categories = benchmark.aggregate(scores)
    methods = sorted({s.extraction.method for s in scores if s.extraction is not None})
    order = [c for c in benchmark.categories if c in categories] + [
        c for c in categories if c not in benchmark.categories
    ]
    return BenchmarkResult(
        model=label,
        benchmark=benchmark.id,
        benchmark_version=benchmark.version,
        primary=benchmark.primary_metric,
        metrics=metrics,
        categories=categories,
        category_order=order,
        n_samples=len(scores),
        n_errors=sum(s.status == "error" for s in scores),
        error_reasons=error_reasons(scores),
        unparsed_rate=unparsed_rate(scores),
        scoring=",".join(methods) or "none",
        run=run,
    )


def finish_pair(
    host: Host, benchmark: Benchmark, label: str, folder: Path, samples: list[Sample],
    predictions: dict[str, Prediction], run: RunRecord, judge: Judge | None, n_expected: int | None = None,
) -> BenchmarkResult:  # fmt: skip
    """Score, aggregate and write ``scores.jsonl`` and ``results.json``, both or neither (a failure anywhere leaves
    the previous pair of files as it was); tell subscribers. ``n_expected``: how many samples the run covers, when
    ``samples`` are only part of them (the result is then marked ``complete: false``)."""
    scores = score_predictions(benchmark, samples, predictions, judge)
    result = summarize(benchmark, label, scores, run.model_copy(update={"finished": run.finished or now()}))
    expected = len(samples) if n_expected is None else n_expected
    result = result.model_copy(update={"n_expected": expected, "complete": len(samples) >= expected})
    write_atomic_files(
        {folder / "scores.jsonl": jsonl(scores), folder / "results.json": result.model_dump_json(indent=2)}
    )
    host.pm.hook.benchmark_finished(result=result, run_dir=folder)
    return result


def current_predictions(store: PredictionStore, items: list[WorkItem]) -> dict[str, Prediction]:
    """Sample id -> the stored prediction for the item's key."""
    done = store.load()
    return {item.sample.sample_id: done[item.key] for item in items if item.key in done}


# --- phase 4: report -------------------------------------------------------------------------------------------------


def write_leaderboard(
    host: Host, out_dir: Path, reporters: list[str] | None = None, max_error_rate: float | None = None
) -> list[Path]:
    """Regenerate every reporter's view of all results under ``out_dir``; a pair with more than ``max_error_rate``
    errors (default :data:`~vdpm_harness.leaderboard.DEFAULT_MAX_ERROR_RATE`) or none successful is marked failed."""
    from .leaderboard import DEFAULT_MAX_ERROR_RATE, collect

    board = collect(out_dir, DEFAULT_MAX_ERROR_RATE if max_error_rate is None else max_error_rate)
    clean_stale_temporaries(out_dir)  # a reporter's temporary file left by a killed process
    written = []
    names = reporters if reporters is not None else [entry.id for entry in host.registry("reporters")]
    for name in names:
        written += host.create("reporters", name).write(board, out_dir)
    return written


# --- the run ---------------------------------------------------------------------------------------------------------


class PairRefused(RuntimeError):
    """A pair that cannot be run or scored as asked: its folder holds results of other data, it holds no prediction
    to score, or another rank could not start it. The message says which and what to do."""


def check_dataset_revision(folder: Path, run: RunRecord) -> None:
    """Refuse to add to, or replace, a pair's stored results computed on another revision of the benchmark's data
    (another data folder, a rebuilt set): the result keys name samples, not their content, so the old responses
    would be reused for new questions and the leaderboard row silently replaced."""
    path = folder / "run.json"
    stored = any(folder.glob("predictions*.jsonl")) or (folder / "results.json").is_file()
    if not (path.is_file() and stored):
        return
    previous = read_record(RunRecord, path.read_bytes(), path)
    old, new = previous.benchmark.get("dataset_revision"), run.benchmark.get("dataset_revision")
    if old and new and old != new:

        def where(record: RunRecord) -> str:
            data = (record.benchmark.get("options") or {}).get("data_dir")
            return f" in {data}" if data else ""

        raise PairRefused(
            f"{folder} holds results of {run.benchmark.get('id')} on dataset revision {old}{where(previous)}, but this "
            f"run reads revision {new}{where(run)}: they would be mixed with or replace those results. Write to "
            f"another results folder (--out), or move {folder} away to start afresh."
        )


# --- rescore ---------------------------------------------------------------------------------------------------------


def pair_folders(path: Path) -> list[Path]:
    """``path`` itself if it holds a pair's ``run.json``, else every pair folder below it."""
    if (path / "run.json").is_file():
        return [path]
    return sorted(p.parent for p in path.rglob("run.json"))


def resolve_judge(host: Host, judge: Judge | str | None) -> Judge | None:
    """A judge object from a judge or a judge name (created with default options)."""
    return host.create("judges", judge) if isinstance(judge, str) else judge


def rescore(host: Host, folder: Path, judge: Judge | str | None = None) -> BenchmarkResult:
    """Re-extract and re-score a finished pair from its stored predictions, without running the model.

    Holds the pair folder's lock throughout (a run still writing the folder makes this stop, naming it). A run that
    did not finish is scored over the samples it has predictions for, with a warning, and the result says so
    (``complete: false``, ``n_expected``); a folder without a prediction of the run's model is refused.
    """
    judge = resolve_judge(host, judge)
    with FolderLock(folder, "rescore"):
        return _rescore(host, folder, judge)


def _rescore(host: Host, folder: Path, judge: Judge | None) -> BenchmarkResult:
    path = folder / "run.json"
    run = read_record(RunRecord, path.read_bytes(), path)
    bench_info = run.benchmark
    benchmark = host.create("benchmarks", bench_info["name"], bench_info["options"])
    if benchmark.version != bench_info["version"]:
        log.warning(
            "%s: stored predictions are from %s version %s; scoring with version %s",
            folder, benchmark.id, bench_info["version"], benchmark.version,
        )  # fmt: skip
    fingerprint = run.model["fingerprint"]
    predictions: dict[str, Prediction] = {}
    for record in PredictionStore(folder).load().values():
        if record.model_fingerprint != fingerprint or record.benchmark != benchmark.id:
            continue
        kept = predictions.get(record.sample_id)
        if kept is None or (record.status == "ok") >= (kept.status == "ok"):
            predictions[record.sample_id] = record
    if not predictions:
        raise PairRefused(f"{folder}: no stored prediction of the model {run.model.get('label')} on {benchmark.id}")
    every = list(benchmark.samples())
    samples = [s for s in every if s.sample_id in predictions]
    # the samples the run covers: its limit's first ones (an import covers what its file held)
    covered = samples if run.model.get("name") == "imported" else every[: run.limit] if run.limit else every
    n_expected = len({s.sample_id for s in covered} | {s.sample_id for s in samples})
    if len(samples) < n_expected:
        log.warning(
            "%s: predictions for only %d of the %d samples of this run (it did not finish); the result covers those "
            "%d and is marked incomplete (complete: false in results.json). Rerun the run's command to finish it.",
            folder, len(samples), n_expected, len(samples),
        )  # fmt: skip
    run = run.model_copy(update={"judge": judge.info() if judge else None, "rescored": now()})
    return finish_pair(host, benchmark, run.model["label"], folder, samples, predictions, run, judge, n_expected)


# --- import -----------------------------------------------------------------------------------------------------------


def import_runs(
    host: Host, benchmark: Benchmark, path: Path, out: Path, judge: Judge | str | None = None,
    progress: Callable[[str], Any] | None = None,
) -> list[BenchmarkResult]:  # fmt: skip
    """Turn external output files into harness runs (one pair folder per imported model), then score them.

    Importing the same file twice adds nothing: each response is keyed by the file's label and the sample id.
    Only the samples present in the file are scored. Each pair folder is locked while it is written. ``progress`` is
    told each step in words (the console's display of ``vdpm-harness import``).
    """
    with ExitStack() as held:
        return _import_runs(held, host, benchmark, path, out, judge, progress or (lambda step: None))


def _import_runs(held: ExitStack, host: Host, benchmark: Benchmark, path: Path, out: Path, judge, progress) -> list:
    judge = resolve_judge(host, judge)
    progress(f"reading the samples of {benchmark.id}")
    known = {s.sample_id: s for s in benchmark.samples()}
    results = []
    progress(f"reading {path}")
    for imported in benchmark.import_predictions(path):
        progress(f"run {len(results) + 1}, {imported.label}: storing {len(imported.responses)} responses")
        unknown = [r.sample_id for r in imported.responses if r.sample_id not in known]
        if unknown:
            raise ValueError(
                f"{imported.source}: {len(unknown)} sample ids are not in {benchmark.id}, e.g. {unknown[:3]}"
            )
        folder = out / imported.label / benchmark.id
        fingerprint = stable_hash({"imported": imported.label})
        run = RunRecord(
            started=now(), seed=0,
            model={"name": "imported", "id": "imported", "label": imported.label, "options": {},
                   "fingerprint": fingerprint, "revision": None,
                   "details": {"source": imported.source, **imported.details}},
            benchmark={"name": benchmark.id, "id": benchmark.id, "version": benchmark.version,
                       "options": {**benchmark.options.model_dump(mode="json"), **imported.benchmark_options},
                       "frames_override": None,
                       "dataset_revision": benchmark.dataset_revision()},
            judge=judge.info() if judge else None,
            environment=environment_record(set()),
        )  # fmt: skip
        held.enter_context(FolderLock(folder, "import"))
        check_dataset_revision(folder, run)
        write_atomic(folder / "run.json", run.model_dump_json(indent=2))
        store = PredictionStore(folder)
        stored = store.load()
        new = []
        for response in imported.responses:
            sample = known[response.sample_id]
            generation = GenerationSettings()
            key = result_key(
                fingerprint, benchmark.id, benchmark.version, sample.sample_id, "imported", None, generation
            )
            if key in stored:
                continue
            ok = response.response is not None
            new.append(Prediction(
                key=key, sample_id=sample.sample_id, video_id=sample.video_id, category=sample.category,
                benchmark=benchmark.id, benchmark_version=benchmark.version, model=imported.label,
                model_fingerprint=fingerprint, prompt_hash="imported", generation=generation,
                status="ok" if ok else "error", response=response.response,
                error=None if ok else "no response in the imported file", created=now(), meta=response.meta,
            ))  # fmt: skip
        store.append(new)
        predictions = {p.sample_id: p for p in store.load().values()}
        samples = [known[r.sample_id] for r in imported.responses]
        progress(f"run {len(results) + 1}, {imported.label}: scoring {len(samples)} samples"
                 + (f" with {judge.id}" if judge else ""))  # fmt: skip
        results.append(finish_pair(host, benchmark, imported.label, folder, samples, predictions, run, judge))
    progress(f"{len(results)} runs imported")
    return results
