"""Decoding ahead of the model: a bounded, order-preserving map over worker processes.

The harness decodes the videos of upcoming requests while the model works on the current batch::

    with Prefetcher(decode_job, workers=2, depth=4) as prefetcher:
        for job, result in prefetcher.map(jobs):   # jobs may be a lazy generator
            if isinstance(result, Exception):
                ...  # record the error for this sample and go on
            else:
                ...  # result is a DecodedVideo

Workers are started with ``forkserver`` (``spawn`` where it is missing), never ``fork``, so a Prefetcher is safe
in a process that already runs torch/CUDA threads.

Stopping: Ctrl-C is the calling process's to handle. A terminal sends SIGINT to the whole process group, and a worker
dying of it would break the pool while the caller stops it, which in CPython before 3.12 can crash the pool's
manager thread and hang the exit (``InvalidStateError`` in ``terminate_broken``: python/cpython#107219, fixed by
python/cpython#108974), so workers ignore SIGINT. A Prefetcher left by an exception (Ctrl-C included) kills its
workers instead of waiting for the items they are on, and workers never outlive the process that started them, however
it ends (``kill -9``, SIGTERM): each watches, twice a second, that this process still runs, and on Linux also asks
the kernel to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG)``, prctl(2); the parent is this process under
``spawn``, the forkserver process under ``forkserver``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import reprlib
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .records import FramePolicy
from .video import DecodedVideo, decode

_END = object()  # marks the end of the input
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs: it does not exist, or it is a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _watch(owner: int, interval: float) -> None:
    while not _process_gone(owner):
        time.sleep(interval)
    os._exit(1)


def _worker_init(owner: int, interval: float = 0.5) -> None:
    """First thing in every worker process: ignore Ctrl-C (the owner stops the workers), die with the parent process
    (``PR_SET_PDEATHSIG``), and watch the owner, the process that created the Prefetcher (under ``forkserver`` the
    parent is the server process, which outlives the owner as long as workers hold its pipe)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if _process_gone(owner):  # it died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(owner, interval), name="vdpm-owner-watch", daemon=True).start()


class WorkerCrashed(RuntimeError):
    """The worker process running an item died (killed, segfault in a decoder, ``os._exit``)."""


def decode_job(job: tuple) -> DecodedVideo:
    """Decode one video in a worker: ``job = (path, policy, backend)``, the policy a FramePolicy or its dict."""
    path, policy, backend = job
    if not isinstance(policy, FramePolicy):
        policy = FramePolicy.model_validate(policy)
    return decode(path, policy, backend)


def decode_request_job(job: tuple[list[tuple[str, dict]], str | None]) -> list[DecodedVideo]:
    """Decode every video part of one request: ``job = ([(path, policy dict), ...], backend)``.

    A blind (text-only) request returns ``[]`` without touching its files.
    """
    parts, backend = job
    policies = [FramePolicy.model_validate(policy) for _, policy in parts]
    if all(policy.blind for policy in policies):
        return []
    return [decode_job((path, policy, backend)) for (path, _), policy in zip(parts, policies)]


class Prefetcher:
    """Runs ``fn`` on items in ``workers`` processes, at most ``depth`` items in flight, results in input order.

    ``fn`` must be a picklable top-level callable. An exception raised by ``fn`` is returned as that item's result
    and never stops the stream. ``workers=0`` runs ``fn`` inline in the calling process (debugging, the naive
    baseline). The process pool is created once per Prefetcher and reused by every ``map`` call.

    When a worker process dies, the pool is recreated and the items that were in flight are run again one at a
    time, so only the item that kills its worker gets a :class:`WorkerCrashed` result (an innocent item may thus
    run twice, which is harmless for decoding).
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int = 2, depth: int | None = None):
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.fn = fn
        self.workers = workers
        self.depth = max(1, depth if depth is not None else 2 * workers)
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0  # bumped whenever the pool is recreated after a crash

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)

    def close(self, abort: bool = False) -> None:
        """Shut the worker processes down: after the items in flight (``abort=False``) or at once (``abort=True``,
        used when an exception such as Ctrl-C leaves the Prefetcher: the results are no longer wanted)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:
            # The manager thread sees the dead workers and fails the pending futures (none is cancelled: see map).
            # ``ProcessPoolExecutor.kill_workers`` does this from Python 3.14 (python/cpython#128041).
            kill = getattr(pool, "kill_workers", None)
            if kill is not None:
                kill()
            else:
                for process in list((pool._processes or {}).values()):
                    process.kill()
        pool.shutdown(wait=True)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=self._context, initializer=_worker_init, initargs=(os.getpid(),)
            )
        return self._pool

    def _restart(self) -> None:
        self.close()
        self._generation += 1

    def _submit(self, item) -> Future:
        try:
            return self._executor().submit(self.fn, item)
        except BrokenProcessPool as exc:  # the pool broke before we noticed: let the caller handle it as a crash
            future: Future = Future()
            future.set_exception(exc)
            return future

    def _run_alone(self, item) -> Any:
        """Run ``item`` with nothing else in flight, so a crash can only be its own."""
        try:
            return self._executor().submit(self.fn, item).result()
        except BrokenProcessPool as exc:
            self._restart()
            return WorkerCrashed(f"a worker process died while running {reprlib.repr(item)} ({exc})")
        except Exception as exc:
            return exc

    def map(self, items: Iterable) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result or exception)`` for each item, in input order, reading ``items`` lazily (nothing is
        read or submitted before the first result is asked for)."""
        if self.workers == 0:
            for item in items:
                try:
                    yield item, self.fn(item)
                except Exception as exc:
                    yield item, exc
            return
        yield from self._results(iter(items), deque())

    def start(self, items: Iterable) -> Iterator[tuple[Any, Any]]:
        """:meth:`map`, with the first ``depth`` items submitted now rather than at the first ``next``: the workers
        run them while the caller does something else (the harness loads its model). Inline (``workers=0``) nothing
        can run ahead, and this is :meth:`map`."""
        if self.workers == 0:
            return self.map(items)
        source: Iterator = iter(items)
        pending: deque[tuple[Any, Future, int]] = deque()
        self._fill(source, pending)
        return self._results(source, pending)

    def _fill(self, source: Iterator, pending: deque) -> None:
        """Submit items of ``source`` until ``depth`` are in flight. No new work while items of a crashed pool wait
        to be rerun alone."""
        if any(generation != self._generation for _, _, generation in pending):
            return
        while len(pending) < self.depth:
            item = next(source, _END)
            if item is _END:
                return
            pending.append((item, self._submit(item), self._generation))

    def _results(self, source: Iterator, pending: deque) -> Iterator[tuple[Any, Any]]:
        """The results of ``pending`` (``(item, future, pool generation)`` in input order), then of the rest of
        ``source``, submitted as results are taken."""
        try:
            self._fill(source, pending)
            while pending:
                item, future, generation = pending.popleft()
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if generation == self._generation:
                        self._restart()
                    result = self._run_alone(item)
                except Exception as exc:
                    result = exc
                yield item, result
                self._fill(source, pending)
        finally:
            # The futures still pending are dropped, never cancelled: a cancelled future that the pool's manager later
            # fails (a worker died) crashes that thread before 3.12 (python/cpython#107219). Their work is at most
            # ``depth`` items, done by a normal close or cut short by an aborting one.
            pending.clear()
