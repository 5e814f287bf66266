"""Inference of a planned pair: skip stored keys, decode frames ahead in worker processes, batch, stage the next
batch while the current one generates, append every batch's predictions to the store as it completes."""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any

from rich.progress import Progress

from .config import RunConfig, redact
from .distributed import WorkClaims
from .interfaces import Benchmark, Model, PreparedRequest
from .planning import WorkItem, opens_batch, sample_seed
from .records import (
    Prediction,
    Response,
)  # fmt: skip
from .repro import now
from .store import (
    PredictionStore,
)

log = logging.getLogger(__name__)


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
