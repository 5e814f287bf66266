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


def request_job(item: WorkItem, backend: str | None) -> tuple:
    """What a decode worker gets for one request (``prefetch.decode_request_job``): its video parts, each with its
    frame policy, and the video backend."""
    return [(p.video, p.frames.model_dump(mode="json")) for p in item.request.video_parts()], backend


def pending_items(items: list[WorkItem], done: dict[str, Prediction], retry_errors: bool) -> list[WorkItem]:
    """The items that no stored record answers: none stored under their key, or an error with ``retry_errors``."""
    return [
        item for item in items
        if (previous := done.get(item.key)) is None or (previous.status != "ok" and retry_errors)
    ]  # fmt: skip


class EarlyDecoding:
    """The decoding of a pair's pending requests, started before its model loads (``Runner.run``), so that the
    first requests' frames are ready when the model is: start-up costs the longer of the two, not their sum.

    ``items`` are the requests as planned then; :meth:`Inference.media_stream` takes the results over for as long as
    the run asks for the same requests in the same order, and decodes as usual from the first one that differs.
    As a :class:`~vdpm_harness.prefetch.Prefetcher`, its workers stop when it is closed, at once when it is left by
    an exception (Ctrl-C included) or closed with ``abort``.
    """

    def __init__(self, items: list[WorkItem], config: RunConfig):
        from .prefetch import Prefetcher, decode_request_job

        backend = config.video_backend
        # as in media_stream: each run of equal jobs (a video's questions, planned together) is decoded once
        self.jobs = [first for first, _ in itertools.groupby(request_job(item, backend) for item in items)]
        self.taken = 0
        self.prefetcher = Prefetcher(decode_request_job, workers=config.decode_workers, depth=config.prefetch)
        self.results = self.prefetcher.start(self.jobs)

    def expects(self, job: tuple) -> bool:
        """Whether ``job`` is the next one this decoding has (or will have) the result of."""
        return self.taken < len(self.jobs) and self.jobs[self.taken] == job

    def take(self) -> Any:
        """The next job's decoded videos, or the exception that stopped its decoding (waits for it)."""
        _, result = next(self.results)
        self.taken += 1
        return result

    def close(self, abort: bool = False) -> None:
        self.prefetcher.close(abort=abort)

    def __enter__(self) -> EarlyDecoding:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)


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

    def media_stream(
        self, items: Iterator[WorkItem], early: EarlyDecoding | None = None
    ) -> Iterator[tuple[WorkItem, Any]]:
        """(item, decoded videos or the exception that stopped decoding), decoded ahead in worker processes.

        ``early``: the decoding started before the model loaded (:class:`EarlyDecoding`), whose results serve the
        items while they are the requests it decodes; it is closed when this stream ends."""
        if not self.model.needs_frames or self.model.blind:
            if early is not None:
                early.close(abort=True)
            yield from ((item, []) for item in items)
            return
        backend = self.config.video_backend
        items = iter(items)
        if early is not None:
            with early:
                decoded, result = None, None
                for item in items:
                    wanted = request_job(item, backend)
                    if decoded is None or wanted != decoded:
                        if not early.expects(wanted):  # not what was planned before the model loaded
                            early.close(abort=True)
                            items = itertools.chain([item], items)
                            break
                        decoded, result = wanted, early.take()
                    yield item, result
                else:  # decodings the run did not ask for (nothing in flight otherwise) are not waited for
                    early.close(abort=early.taken < len(early.jobs))
                    return
        from .prefetch import Prefetcher, decode_request_job

        ahead, behind = itertools.tee(items)
        # neighbours asking about the same videos (a video's questions, planned together by group_by_prefix) share
        # one decoding: each run of equal jobs is decoded once, and the prefetcher keeps input order
        jobs = (first for first, _ in itertools.groupby(request_job(item, backend) for item in ahead))
        workers, depth = self.config.decode_workers, self.config.prefetch
        with Prefetcher(decode_request_job, workers=workers, depth=depth) as prefetcher:
            results = prefetcher.map(jobs)
            decoded, result = None, None
            for item in behind:
                if decoded is None or request_job(item, backend) != decoded:
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
        done: dict[str, Prediction] | None = None, count_reused: bool = True, early: EarlyDecoding | None = None,
    ) -> None:  # fmt: skip
        """Answer every item not stored yet. With ``claims`` (data parallel), only the chunks this process claims.

        ``done`` is what was stored before this launch began (read now when not given): under ``torchrun`` every rank
        reads it before any rank infers, and only one rank counts it (``count_reused``), so the summed counts of the
        ranks say each sample once (``new`` by the rank that answered it, ``reused`` by rank 0). ``early``: the
        decoding of these items started before the model loaded (:meth:`media_stream`).
        """
        done = self.store.load() if done is None else done
        pending = pending_items(items, done, self.config.retry_errors)
        if len(pending) < len(items):
            self.counts["reused"] += count_reused * (len(items) - len(pending))
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
            closing(self.media_stream(runnable(), early)) as stream,
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
