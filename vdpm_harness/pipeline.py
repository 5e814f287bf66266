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
import logging
import traceback
from collections import Counter
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import RunConfig, mask_secrets, redact, secret_values
from .distributed import Distributed, WorkClaims
from .inference import EarlyDecoding, Inference, pending_items
from .interfaces import Benchmark, Model
from .planning import WorkItem, plan
from .plugins import Host, PluginError
from .records import (
    BenchmarkResult,
    RunRecord,
    Sample,
    stable_hash,
)  # fmt: skip
from .repro import environment_record, now
from .scoring import PairRefused, check_dataset_revision, current_predictions, finish_pair, write_leaderboard
from .store import (
    FolderLock,
    PredictionStore,
    write_atomic,
)

log = logging.getLogger(__name__)


@dataclass
class PairOutcome:
    label: str
    benchmark: str
    result: BenchmarkResult | None = None
    error: str | None = None
    counts: Counter = field(default_factory=Counter)
    #: Where this process's inference time went, in seconds (see ``Inference.timings``).
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class EarlyPlan:
    """A model's first pair planned before the model loads, with the decoding of its pending requests' frames
    started (:class:`~vdpm_harness.inference.EarlyDecoding`), so that a run's start-up costs the longer of loading
    and the first decodes rather than their sum. Nothing of it is stored: the pair itself (folder lock, run record,
    stored keys, claims) runs after loading as before, and takes the items over only if the loaded model plans them
    alike (:meth:`items_for`). Closing it stops its decode workers at once."""

    benchmark: Benchmark
    items: list[WorkItem]
    fingerprint: str
    blind: bool
    decoding: EarlyDecoding | None = None

    def items_for(self, benchmark: Benchmark, model: Model) -> list[WorkItem] | None:
        """The items, if ``plan`` would make the same ones for ``benchmark`` now that ``model`` has loaded: what it
        takes from the model is unchanged (the fingerprint in every result key, ``blind``, which strips the media,
        and ``prefix_key``, which groups the items); else ``None``."""
        if benchmark is not self.benchmark or model.fingerprint() != self.fingerprint or model.blind != self.blind:
            return None
        if any(item.prefix != model.prefix_key(item.request) for item in self.items if item.error is None):
            return None
        return self.items

    def close(self) -> None:
        if self.decoding is not None:
            self.decoding.close(abort=True)

    def __enter__(self) -> EarlyPlan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
                # the first pair planned and its frames decoding while the model loads; on every way out of this
                # block (a failed load, Ctrl-C) its decode workers stop
                with self._plan_early(model, label, benches) or nullcontext() as early:
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
                        for index, (bench_spec, benchmark) in enumerate(benches):
                            first = early if index == 0 else None
                            outcomes.append(
                                self.run_pair(model_spec, model, label, bench_spec, benchmark, judge, progress, first)
                            )
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

    def _plan_early(self, model: Model, label: str, benches) -> EarlyPlan | None:
        """The model's first pair planned before the model loads, with the decoding of its pending requests started
        (:class:`EarlyPlan`). ``None`` under torchrun (which requests a rank decodes depends on the chunks it claims
        as it goes) and where planning fails (the pair meets the failure again after loading and reports it)."""
        if self.dist.active or not benches:
            return None
        bench_spec, benchmark = benches[0]
        try:
            items = plan(benchmark, model, self.samples(benchmark), bench_spec.frames)
            early = EarlyPlan(benchmark, items, model.fingerprint(), model.blind)
            if model.needs_frames and not model.blind and self.config.decode_workers > 0:
                done = PredictionStore(self.out / label / benchmark.id, shard=self.dist.shard()).load()
                pending = pending_items(early.items, done, self.config.retry_errors)
                todo = [item for item in pending if item.error is None]  # a resumed run may have nothing to decode
                if todo:
                    early.decoding = EarlyDecoding(todo, self.config)
        except Exception:  # noqa: BLE001 - see the docstring
            log.debug("planning %s before the model loads failed", benchmark.id, exc_info=True)
            return None
        return early

    def run_pair(self, model_spec, model, label, bench_spec, benchmark, judge, progress, early=None) -> PairOutcome:
        """Infer on every rank, then (after one barrier) score and report on rank 0.

        Rank 0 holds the pair folder's :class:`~vdpm_harness.store.FolderLock` from before inference until the
        results are written: another run on the same folder stops with a message naming this one, instead of
        computing every sample again beside it. ``early``: the pair as planned before the model loaded
        (:class:`EarlyPlan`), its decode workers stopped when the pair ends.
        """
        with ExitStack() as held:  # the folder lock and the early decoding, released on every way out
            if early is not None:
                held.callback(early.close)
            return self._run_pair(held, model_spec, model, label, bench_spec, benchmark, judge, progress, early)

    def _run_pair(self, held: ExitStack, model_spec, model, label, bench_spec, benchmark, judge, progress, early):
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
            items = early.items_for(benchmark, model) if early is not None else None
            if items is None:
                if early is not None:  # loading changed what the model plans: what was decoded early is not wanted
                    early.close()
                items, early = plan(benchmark, model, samples, bench_spec.frames), None
            claims = None
            if self.dist.active:
                claims = WorkClaims(folder, self.dist.launch_id, chunk_size=max(2 * model.batch_size, 4))
            inference = Inference(model, benchmark, store, self.config, self.secrets)
            inference.run(items, progress, claims, done=done, count_reused=self.dist.is_main,
                          early=early.decoding if early is not None else None)  # fmt: skip
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
