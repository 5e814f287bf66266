"""The evaluation pipeline: infer -> extract -> score -> report, each phase resumable on its own.

For every (model, benchmark) pair the results live in ``<out>/<model label>/<benchmark id>/``:

* ``run.json``          what reproduces the pair (versions, git revision, seeds, options with secrets masked, ...)
* ``predictions*.jsonl`` the append-only store of raw responses (:mod:`vdpm_harness.store`), the source of truth
* ``scores.jsonl``      per-sample extraction and score, derived from the predictions (rewritten by ``rescore``)
* ``results.json``      the aggregate :class:`BenchmarkResult`, written as soon as the pair is done

The leaderboard (``<out>/leaderboard.*``) is a view regenerated from every ``results.json`` by the reporters.
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import RunConfig, mask_secrets, redact, secret_values
from .distributed import Distributed, WorkClaims
from .interfaces import Benchmark, Judge, Model, PreparedRequest
from .plugins import Host, PluginError
from .records import (
    BenchmarkResult,
    FramePolicy,
    GenerationSettings,
    Prediction,
    Request,
    Response,
    RunRecord,
    Sample,
    Score,
    TextPart,
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


@dataclass
class WorkItem:
    """One sample planned for inference: its request, result key and frame indices (or why it cannot run)."""

    sample: Sample
    request: Request
    key: str
    frame_indices: list[list[int]] | None
    error: str | None = None
    #: ``Model.prefix_key`` of the request: items with the same key are planned next to each other and batched
    #: together where they fit (:func:`group_by_prefix`, :func:`opens_batch`).
    prefix: str | None = None


@dataclass
class PairOutcome:
    label: str
    benchmark: str
    result: BenchmarkResult | None = None
    error: str | None = None
    counts: Counter = field(default_factory=Counter)
    #: Where this process's inference time went, in seconds (see ``Inference.timings``).
    timings: dict[str, float] = field(default_factory=dict)


# --- helpers ------------------------------------------------------------------------------------------------------


def model_label(model: Model, explicit: str | None = None) -> str:
    """The folder and leaderboard name of a model: its id, plus a hash of its options when they are not defaults,
    plus ``-blind`` for a run with ``blind=true``."""
    if explicit:
        return explicit
    options = model.output_options()
    try:
        defaults = model.output_options(type(model).Options())
    except ValidationError:  # the model has required options: there is no default to compare with
        defaults = None
    label = model.id if options == defaults else f"{model.id}-{stable_hash(options, 6)}"
    return f"{label}-blind" if model.run_blind else label


def with_frames(request: Request, policy: FramePolicy | None) -> Request:
    """The request with every video part's frame policy replaced (an explicit, recorded run override)."""
    if policy is None:
        return request
    request = request.model_copy(deep=True)
    for part in request.video_parts():
        part.frames = policy
    return request


def create_model(host: Host, name: str, options: dict[str, Any] | None = None) -> Model:
    """Create a model plugin by id with its options, of which the harness takes ``blind`` (any model runs blind with
    ``blind=true``: see :class:`~vdpm_harness.interfaces.Model`), unless the model's own ``Options`` declare it."""
    options = options if options is not None else {}
    blind = False
    if "blind" in options:
        declared = getattr(getattr(host.get("models", name).load_class(), "Options", None), "model_fields", {})
        if "blind" not in declared:
            blind = options["blind"]
            if not isinstance(blind, bool):
                raise PluginError(f"model '{name}': blind must be true or false, got {blind!r}")
            options = copy.copy(options)  # a dict, or a dict that also remembers the command line's texts
            del options["blind"]
    model = host.create("models", name, options)
    model.run_blind = blind or getattr(model.options, "blind", False) is True
    return model


def text_only(request: Request) -> Request:
    """The request without its video and image parts (what a blind model gets: the same prompt without the media);
    a message left with no content is dropped."""
    request = request.model_copy(deep=True)
    for message in request.messages:
        message.content = [part for part in message.content if isinstance(part, TextPart)]
    request.messages = [message for message in request.messages if message.content]
    return request


def sample_seed(run_seed: int, key: str) -> int:
    """A per-sample seed that does not depend on batch order, shard or resume."""
    return int(stable_hash([run_seed, key], 8), 16)


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# --- phase 1: plan and infer ----------------------------------------------------------------------------------------


def plan(benchmark: Benchmark, model: Model, samples: list[Sample], frames: FramePolicy | None) -> list[WorkItem]:
    """Build each request and its result key. A video that cannot be probed makes the sample an error item. A blind
    model's requests lose their media (:func:`text_only`): nothing is probed or decoded."""
    from .video import VideoError, frame_indices, probe

    fingerprint = model.fingerprint()
    infos: dict[str, Any] = {}
    items = []
    for sample in samples:
        try:
            request = with_frames(benchmark.build_request(sample), frames)
        except Exception as exc:  # noqa: BLE001 - one sample the benchmark cannot ask is that sample's error
            request = Request(sample_id=sample.sample_id, messages=[])
            key = result_key(fingerprint, benchmark.id, benchmark.version, sample.sample_id, "unbuilt", None,
                             request.generation)  # fmt: skip
            error = f"the benchmark could not build the request: {_named(exc)}"
            items.append(WorkItem(sample, request, key, None, error))
            continue
        if model.blind:
            request = text_only(request)
        indices: list[list[int]] | None = []
        error = choice_problem(sample, request)
        for part in request.video_parts():
            if part.frames.blind:
                indices.append([])
                continue
            if error is not None:
                indices = None
                break
            try:
                if part.video not in infos:
                    infos[part.video] = probe(part.video)
                indices.append(frame_indices(part.frames, infos[part.video]))
            except VideoError as exc:
                error, indices = f"video error: {exc}", None
                break
        key = result_key(
            fingerprint, benchmark.id, benchmark.version, sample.sample_id, request.prompt_hash(), indices,
            request.generation,
        )  # fmt: skip
        items.append(WorkItem(sample, request, key, indices, error))
    return group_by_prefix(model, items)


def group_by_prefix(model: Model, items: list[WorkItem]) -> list[WorkItem]:
    """The items with each one's ``prefix`` set to ``model.prefix_key`` of its request, those sharing a key moved
    next to the first of them (a stable order: groups by their first item, items in order within a group), so that
    a model that encodes a shared prompt prefix once (several questions about one video) finds them in one batch.
    Without keys (the default of ``Model.prefix_key``) the order is unchanged. Result keys do not depend on it."""
    groups: dict[Any, list[WorkItem]] = {}
    for item in items:
        if item.error is None:
            item.prefix = model.prefix_key(item.request)
        groups.setdefault(object() if item.prefix is None else item.prefix, []).append(item)
    return [item for group in groups.values() for item in group]


def opens_batch(batch: list[WorkItem], item: WorkItem, group_sizes: Counter, batch_size: int) -> bool:
    """Whether ``item`` should start a new batch rather than join ``batch``: it begins another prefix group
    (:func:`group_by_prefix`) of ``group_sizes[item.prefix]`` pending items that would not fit in the room left but
    fits in a batch of its own. A group larger than a batch fills the current one and goes on in the next."""
    if not batch or item.prefix is None or item.prefix == batch[-1].prefix:
        return False
    size = group_sizes[item.prefix]
    return len(batch) + size > batch_size and size <= batch_size


def choice_problem(sample: Sample, request: Request) -> str | None:
    """Why a multiple-choice request cannot be asked, naming the sample, or ``None``: answer choices must be distinct,
    and single-character ones letters or digits, so a question with more than 26 options (lettered past Z as
    ``[ \\ ] ^``) is refused."""
    odd = [choice for choice in request.choices if len(choice) == 1 and not choice.isalnum()]
    if odd:
        return (f"sample {sample.sample_id} has {len(request.choices)} options, but answer letters run from A to Z: "
                f"at most 26 options can be asked (the letters past Z would be {' '.join(odd)})")  # fmt: skip
    repeated = sorted({choice for choice in request.choices if request.choices.count(choice) > 1})
    if repeated:
        return f"sample {sample.sample_id} repeats the answer choices {', '.join(repeated)}"
    return None


class Inference:
    """Runs the pending items of one pair through a model, writing each batch to the store as it completes."""

    def __init__(self, model: Model, benchmark: Benchmark, store: PredictionStore, config: RunConfig, secrets: set):
        self.model = model
        self.benchmark = benchmark
        self.store = store
        self.config = config
        self.secrets = secrets
        self.fingerprint = model.fingerprint()
        self.counts: Counter = Counter()
        #: Seconds of this process's main thread: ``media`` waiting for decoded frames, ``staged`` waiting for the
        #: helper thread's ``Model.stage``, ``generate`` in the model, ``store`` writing predictions; ``stage`` is
        #: the helper thread's own time (overlapped with the rest). Tells a GPU run where the GPU waited.
        self.timings: Counter = Counter()

    def record(self, item: WorkItem, response: Response) -> Prediction:
        status = "ok" if response.error is None and response.text is not None else "error"
        error = response.error if status == "error" else None
        if status == "error" and error is None:
            error = "the model returned no text"
        self.counts[status] += 1
        return Prediction(
            key=item.key,
            sample_id=item.sample.sample_id,
            video_id=item.sample.video_id,
            category=item.sample.category,
            benchmark=self.benchmark.id,
            benchmark_version=self.benchmark.version,
            model=self.model.id,
            model_fingerprint=self.fingerprint,
            prompt_hash=item.request.prompt_hash(),
            frame_indices=item.frame_indices,
            generation=item.request.generation,
            status=status,
            response=response.text if status == "ok" else None,
            error=redact(error, self.secrets) if error else None,
            usage=response.usage,
            seconds=response.seconds,
            created=now(),
        )

    def media_stream(self, items: Iterator[WorkItem]) -> Iterator[tuple[WorkItem, Any]]:
        """(item, decoded videos or the exception that stopped decoding), decoded ahead in worker processes."""
        if not self.model.needs_frames or self.model.blind:
            yield from ((item, []) for item in items)
            return
        from .prefetch import Prefetcher, decode_request_job

        ahead, behind = itertools.tee(items)
        backend = self.config.video_backend

        def job(item: WorkItem) -> tuple:
            return [(p.video, p.frames.model_dump(mode="json")) for p in item.request.video_parts()], backend

        # neighbours asking about the same videos (a video's questions, planned together by group_by_prefix) share
        # one decoding: each run of equal jobs is decoded once, and the prefetcher keeps input order
        jobs = (first for first, _ in itertools.groupby(map(job, ahead)))
        workers, depth = self.config.decode_workers, self.config.prefetch
        with Prefetcher(decode_request_job, workers=workers, depth=depth) as prefetcher:
            results = prefetcher.map(jobs)
            decoded, result = None, None
            for item in behind:
                if decoded is None or job(item) != decoded:
                    decoded, result = next(results)
                yield item, result

    def generate(self, batch: list[tuple[WorkItem, PreparedRequest]], staged: Future | None = None) -> list[Prediction]:
        """Run one batch (``staged``: the model's ``stage`` of it, running on the helper thread); if the whole batch
        fails (e.g. out of memory), retry its samples one at a time."""
        start = time.perf_counter()
        try:
            if staged is not None:
                ready = staged.result()
                waited = time.perf_counter()
                self.timings["staged"] += waited - start
                responses = self.model.generate_staged(ready)
                self.timings["generate"] += time.perf_counter() - waited
            else:
                responses = self.model.generate([prepared for _, prepared in batch])
            if len(responses) != len(batch):
                raise RuntimeError(f"model returned {len(responses)} responses for a batch of {len(batch)}")
        except Exception as exc:  # noqa: BLE001 - a failing model call becomes per-sample error records
            if len(batch) > 1:
                log.warning("batch of %d failed (%s); retrying its samples one at a time", len(batch), exc)
                return [p for one in batch for p in self.generate([one])]
            responses = [Response(sample_id=batch[0][0].sample.sample_id, error=f"{type(exc).__name__}: {exc}")]
        elapsed = (time.perf_counter() - start) / len(batch)
        for response in responses:
            if response.seconds is None:
                response.seconds = round(elapsed, 4)
        return [self.record(item, response) for (item, _), response in zip(batch, responses)]

    def run(
        self, items: list[WorkItem], progress: Progress | None = None, claims: WorkClaims | None = None,
        done: dict[str, Prediction] | None = None, count_reused: bool = True,
    ) -> None:  # fmt: skip
        """Answer every item not stored yet. With ``claims`` (data parallel), only the chunks this process claims.

        ``done`` is what was stored before this launch began (read now when not given): under ``torchrun`` every rank
        reads it before any rank infers, and only one rank counts it (``count_reused``), so the summed counts of the
        ranks say each sample once (``new`` by the rank that answered it, ``reused`` by rank 0).
        """
        done = self.store.load() if done is None else done
        pending = []
        for item in items:
            previous = done.get(item.key)
            if previous is not None and (previous.status == "ok" or not self.config.retry_errors):
                self.counts["reused"] += count_reused
            else:
                pending.append(item)
        group_sizes = Counter(item.prefix for item in pending if item.prefix is not None)  # see opens_batch
        task = None
        if progress is not None:
            title = f"{self.model.id} · {self.benchmark.id}" + (" (this rank)" if claims is not None else "")
            task = progress.add_task(title, total=len(items), rate="")
            progress.update(task, completed=len(items) - len(pending))
        started, finished = time.perf_counter(), 0

        def advance(n: int) -> None:
            nonlocal finished
            finished += n
            if task is not None:
                rate = finished / max(time.perf_counter() - started, 1e-9)
                progress.update(task, advance=n, rate=f"{rate:.2f} samples/s")

        def mine() -> Iterator[WorkItem]:
            if claims is None:
                yield from pending
                return
            wanted = {item.key for item in pending}
            for index in range(0, len(items), claims.chunk_size):
                todo = [item for item in items[index : index + claims.chunk_size] if item.key in wanted]
                if todo and claims.claim(index // claims.chunk_size):
                    yield from todo

        def runnable() -> Iterator[WorkItem]:
            for item in mine():
                if item.error:  # the video could not even be probed
                    self.store.append([self.record(item, Response(sample_id=item.sample.sample_id, error=item.error))])
                    advance(1)
                else:
                    yield item

        batch: list[tuple[WorkItem, PreparedRequest]] = []
        # One batch is staged ahead: the model's CPU-side preparation of batch n+1 (``Model.stage``) runs on a helper
        # thread while batch n generates on this one.
        ahead: list = []  # [(items, future of model.stage(items))], at most one

        def finish_ahead():
            if ahead:
                items, future = ahead.pop()
                predictions = self.generate(items, future)
                start = time.perf_counter()
                self.store.append(predictions)
                self.timings["store"] += time.perf_counter() - start
                advance(len(items))

        def stage(prepared: list[PreparedRequest]):
            start = time.perf_counter()
            try:
                return self.model.stage(prepared)
            finally:
                self.timings["stage"] += time.perf_counter() - start

        def flush():
            if batch:
                items = batch.copy()
                batch.clear()
                future = stager.submit(stage, [prepared for _, prepared in items])
                finish_ahead()
                ahead.append((items, future))

        def timed(stream):  # the time this thread waits for the next decoded request
            while True:
                start = time.perf_counter()
                try:
                    item = next(stream)
                except StopIteration:
                    return
                finally:
                    self.timings["media"] += time.perf_counter() - start
                yield item

        # ``closing``: however the loop ends (Ctrl-C included), the stream and its decode workers stop right here,
        # not when the garbage collector gets to the generator
        with (
            ThreadPoolExecutor(1, thread_name_prefix="vdpm-stage") as stager,
            closing(self.media_stream(runnable())) as stream,
        ):
            for item, media in timed(stream):
                if isinstance(media, Exception):
                    reason = f"video error: {media}"
                    self.store.append([self.record(item, Response(sample_id=item.sample.sample_id, error=reason))])
                    advance(1)
                    continue
                if opens_batch([queued for queued, _ in batch], item, group_sizes, self.model.batch_size):
                    flush()
                seed = sample_seed(self.config.seed, item.key)
                batch.append((item, PreparedRequest(item.request, item.key, seed, media, item.sample.category)))
                if len(batch) >= self.model.batch_size:
                    flush()
            flush()
            finish_ahead()


# --- phases 2 and 3: extract and score -------------------------------------------------------------------------------


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
                scores[sample.sample_id] = _score_error(sample, prediction, f"extraction failed: {_named(exc)}")
                continue
            scores[sample.sample_id] = _score_one(benchmark, sample, prediction, extraction)
    if to_judge:
        extractions = judge.judge(benchmark, to_judge)
        for (sample, prediction), extraction in zip(to_judge, extractions, strict=True):
            scores[sample.sample_id] = _score_one(benchmark, sample, prediction, extraction)
    return [scores[s.sample_id] for s in samples]


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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
        return _score_error(sample, prediction, f"scoring failed: {_named(exc)}", extraction)
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


class Runner:
    """Evaluates every selected model on every selected benchmark (``vdpm-harness run``)."""

    def __init__(self, config: RunConfig, host: Host, console: Console | None = None):
        self.config = config
        self.host = host
        self.console = console or Console(stderr=True)
        self.out = Path(config.out)
        self.secrets = secret_values(config.model_dump(mode="json"))
        self._samples: dict[str, list[Sample]] = {}
        self.dist = Distributed.from_env()

    def _build(self):
        """Create every plugin first, so a typo in any name or option fails before any model loads."""
        models = [(spec, create_model(self.host, spec.name, spec.options)) for spec in self.config.models]
        benches = [(spec, self.host.create("benchmarks", spec.name, spec.options)) for spec in self.config.benches]
        judge = self.host.create("judges", self.config.judge, self.config.judge_options) if self.config.judge else None
        return models, benches, judge

    def samples(self, benchmark: Benchmark) -> list[Sample]:
        """The benchmark's samples (cut to ``limit``), read once per run. Under ``torchrun`` rank 0 reads them first
        and the other ranks after a barrier: a benchmark that builds its data on first use (``dsr-synth``) must not
        be built by several processes at once, one of them reading files another is still writing."""
        if benchmark.id not in self._samples:
            failure = None
            if self.dist.is_main:
                try:
                    self._samples[benchmark.id] = self._read_samples(benchmark)
                except Exception as exc:  # noqa: BLE001 - raised after the barrier, which every rank must reach
                    failure = exc
            self.dist.barrier()
            if failure is not None:
                raise failure
            if benchmark.id not in self._samples:
                self._samples[benchmark.id] = self._read_samples(benchmark)
        return self._samples[benchmark.id]

    def _read_samples(self, benchmark: Benchmark) -> list[Sample]:
        samples = list(benchmark.samples())
        return samples[: self.config.limit] if self.config.limit else samples

    def run_record(self, model_spec, model: Model, label: str, bench_spec, benchmark: Benchmark, judge) -> RunRecord:
        record = mask_secrets(
            {
                "started": now(),
                "seed": self.config.seed,
                "limit": self.config.limit,
                "model": {
                    "name": model_spec.name, "id": model.id, "label": label,
                    "options": model.options.model_dump(mode="json"), "fingerprint": model.fingerprint(),
                    "revision": model.revision(), "details": model.describe(), "blind": model.blind,
                    "components": model.provenance()["components"],
                },
                "benchmark": {
                    "name": bench_spec.name, "id": benchmark.id, "version": benchmark.version,
                    "options": benchmark.options.model_dump(mode="json"),
                    "frames_override": bench_spec.frames.model_dump(mode="json") if bench_spec.frames else None,
                    "dataset_revision": benchmark.dataset_revision(),
                    "components": benchmark.provenance()["components"],
                },
                "judge": judge.info() if judge else None,
                "decoder": self._decoder(),
                "config": self.config.model_dump(mode="json"),
                "environment": environment_record(self.secrets),
            }
        )  # fmt: skip
        return RunRecord.model_validate(record)

    def _decoder(self) -> dict[str, Any]:
        from .video import backend_version, default_backend

        backend = self.config.video_backend or default_backend()
        return {"backend": backend, "version": backend_version(backend)}

    def run(self) -> list[PairOutcome]:
        models, benches, judge = self._build()
        outcomes: list[PairOutcome] = []
        with make_progress(self.console) as progress:
            progress = progress if self.dist.is_main else None
            for model_spec, model in models:
                label = model_label(model, model_spec.label)
                try:
                    model.load()
                except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its pairs, not the run
                    error = redact(f"model '{label}' failed to load: {type(exc).__name__}: {exc}", self.secrets)
                    self.console.print(f"[red]{escape(error)}[/red]", soft_wrap=True, highlight=False)
                    for _, benchmark in benches:
                        self.dist.barrier()  # keep step with the other ranks, which run this pair
                        outcomes.append(PairOutcome(label, benchmark.id, error=error))
                    continue
                try:
                    for bench_spec, benchmark in benches:
                        outcomes.append(self.run_pair(model_spec, model, label, bench_spec, benchmark, judge, progress))
                finally:
                    model.close()
        results = [o.result for o in outcomes if o.result is not None]
        if self.dist.is_main:
            if results:
                for path in write_leaderboard(self.host, self.out, max_error_rate=self.config.max_error_rate):
                    self.console.print(f"wrote {path}", soft_wrap=True, highlight=False)
            self.host.pm.hook.run_finished(results=results, out_dir=self.out)
        self.dist.close()
        return outcomes

    def run_pair(self, model_spec, model, label, bench_spec, benchmark, judge, progress) -> PairOutcome:
        """Infer on every rank, then (after one barrier) score and report on rank 0.

        Rank 0 holds the pair folder's :class:`~vdpm_harness.store.FolderLock` from before inference until the
        results are written: another run on the same folder stops with a message naming this one, instead of
        computing every sample again beside it.
        """
        with ExitStack() as held:  # the folder lock, released on every way out
            return self._run_pair(held, model_spec, model, label, bench_spec, benchmark, judge, progress)

    def _run_pair(self, held: ExitStack, model_spec, model, label, bench_spec, benchmark, judge, progress):
        folder = self.out / label / benchmark.id
        outcome = PairOutcome(label, benchmark.id)
        try:
            refusal = None
            try:
                samples = self.samples(benchmark)  # first: every rank reaches its barrier
                run = self.run_record(model_spec, model, label, bench_spec, benchmark, judge)
                if self.dist.is_main:
                    held.enter_context(FolderLock(folder, "run"))
                    check_dataset_revision(folder, run)
                    write_atomic(folder / "run.json", run.model_dump_json(indent=2))
                store = PredictionStore(folder, shard=self.dist.shard())
                done = store.load()  # what this launch finds stored
            except PluginError:
                raise
            except Exception as exc:  # noqa: BLE001 - told to the other ranks first
                refusal = exc
            # Every rank learns whether every rank can go on. The exchange is also a barrier: no rank infers before
            # every rank has read ``done``, so no sample counts as both new and reused.
            verdicts = [v for v in self.dist.gather(None if refusal is None else str(refusal)) if v]
            if refusal is not None:
                raise refusal
            if verdicts:
                raise PairRefused(verdicts[0])
            items = plan(benchmark, model, samples, bench_spec.frames)
            claims = None
            if self.dist.active:
                claims = WorkClaims(folder, self.dist.launch_id, chunk_size=max(2 * model.batch_size, 4))
            inference = Inference(model, benchmark, store, self.config, self.secrets)
            inference.run(items, progress, claims, done=done, count_reused=self.dist.is_main)
            outcome.counts = inference.counts
            outcome.timings = {k: round(v, 3) for k, v in sorted(inference.timings.items())}
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not lose the others
            self._fail(outcome, exc)
        self.dist.barrier()  # every rank's shard is complete past this point
        outcome.counts = self.dist.sum_counts(outcome.counts)
        if outcome.error or not self.dist.is_main:
            return outcome
        try:
            if claims is not None:
                claims.clear()
            # an API model learns its served revision only from its replies: record what is known now
            run.model.update(mask_secrets({"revision": model.revision(), "details": model.describe()}))
            write_atomic(folder / "run.json", run.model_dump_json(indent=2))
            predictions = current_predictions(store, items)
            outcome.result = finish_pair(self.host, benchmark, label, folder, samples, predictions, run, judge)
        except Exception as exc:  # noqa: BLE001
            self._fail(outcome, exc)
        return outcome

    def _fail(self, outcome: PairOutcome, exc: Exception) -> None:
        outcome.error = redact(f"{outcome.label} on {outcome.benchmark}: {type(exc).__name__}: {exc}", self.secrets)
        log.debug("%s", traceback.format_exc())
        self.console.print(f"[red]{escape(outcome.error)}[/red]", soft_wrap=True, highlight=False)


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
