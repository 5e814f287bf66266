"""Tests of vdpm_harness.prefetch: order, bounded lazy input, exception isolation, worker crashes, decode_job.

The functions run in workers live at module level so the forkserver workers can import them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vdpm_harness.prefetch import Prefetcher, WorkerCrashed, decode_job
from vdpm_harness.records import FramePolicy
from vdpm_harness.video import VideoError, decode, write_video


def slow_square(item: tuple[int, float]) -> int:
    value, delay = item
    time.sleep(delay)
    return value * value


def fail_on_three(value: int) -> int:
    if value == 3:
        raise ValueError(f"bad item {value}")
    return value + 100


def die_on_three(value: int) -> int:
    if value == 3:
        os._exit(1)
    time.sleep(0.01)
    return value + 100


def worker_pid(_item) -> int:
    time.sleep(0.05)
    return os.getpid()


@pytest.fixture(params=[0, 2], ids=["inline", "2-workers"])
def workers(request) -> int:
    return request.param


def test_results_come_in_input_order(workers):
    items = [(i, 0.1 if i == 0 else 0.0) for i in range(6)]  # the first item finishes last
    with Prefetcher(slow_square, workers=workers, depth=3) as prefetcher:
        assert list(prefetcher.map(items)) == [(item, item[0] ** 2) for item in items]


def test_input_is_read_lazily_and_bounded(workers):
    consumed = []

    def source():
        for i in range(20):
            consumed.append(i)
            yield (i, 0.0)

    depth = 3
    with Prefetcher(slow_square, workers=workers, depth=depth) as prefetcher:
        for received, (item, result) in enumerate(prefetcher.map(source()), start=1):
            assert result == item[0] ** 2
            assert len(consumed) <= received - 1 + depth  # at most `depth` items ahead of the caller
            if received == 5:
                break
    assert len(consumed) <= 5 + depth


def test_exceptions_are_results(workers):
    with Prefetcher(fail_on_three, workers=workers, depth=2) as prefetcher:
        results = dict(prefetcher.map(range(6)))
    assert isinstance(results[3], ValueError) and "bad item 3" in str(results[3])
    assert {k: v for k, v in results.items() if k != 3} == {k: k + 100 for k in (0, 1, 2, 4, 5)}


def test_worker_crash_is_isolated_and_the_pool_recovers():
    with Prefetcher(die_on_three, workers=2, depth=4) as prefetcher:
        results = list(prefetcher.map(range(10)))
        assert [item for item, _ in results] == list(range(10))
        assert isinstance(results[3][1], WorkerCrashed)
        assert [r for item, r in results if item != 3] == [i + 100 for i in range(10) if i != 3]
        # the recreated pool keeps working, and a second crash is handled the same way
        again = dict(prefetcher.map([7, 3, 8]))
        assert again[7] == 107 and again[8] == 108 and isinstance(again[3], WorkerCrashed)


def test_pool_is_started_once_per_prefetcher():
    with Prefetcher(worker_pid, workers=2, depth=2) as prefetcher:
        first = {pid for _, pid in prefetcher.map(range(6))}
        second = {pid for _, pid in prefetcher.map(range(6))}
    assert first == second and os.getpid() not in first


def test_decode_job_in_workers(tmp_path):
    path = tmp_path / "ramp.mp4"
    write_video(path, (np.full((32, 64, 3), 10 * i, np.uint8) for i in range(20)), 10)
    policy = FramePolicy(nframes=4)
    jobs = [
        (str(path), policy, "pyav"),
        (str(path), policy.model_dump(), None),
        (str(tmp_path / "missing.mp4"), policy, "pyav"),
    ]
    with Prefetcher(decode_job, workers=2) as prefetcher:
        results = [result for _, result in prefetcher.map(jobs)]
    expected = decode(path, policy, "pyav").frames
    assert np.array_equal(results[0].frames, expected) and np.array_equal(results[1].frames, expected)
    assert isinstance(results[2], VideoError) and results[2].path == str(tmp_path / "missing.mp4")


def record_pid_and_sleep(item: tuple[str, float]) -> int:
    folder, seconds = item
    with open(os.path.join(folder, f"worker-{os.getpid()}"), "w") as handle:
        handle.write("started")
    time.sleep(seconds)
    return os.getpid()


OWNER = """
import sys
from tests.test_prefetch import record_pid_and_sleep
from vdpm_harness.prefetch import Prefetcher

folder, seconds, depth = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with Prefetcher(record_pid_and_sleep, workers=2, depth=depth) as prefetcher:
    for _ in prefetcher.map([(folder, seconds)] * 100):
        pass
"""


def start_owner(tmp_path, seconds: float, depth: int = 4):
    """A process that decodes (sleeps) in 2 workers; returns it and the pids of both workers once they work."""
    root = Path(__file__).resolve().parents[1]
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path), str(seconds), str(depth)], cwd=root,
                             start_new_session=True, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob("worker-*"))) < 2:
        assert owner.poll() is None, owner.stderr.read()
        time.sleep(0.05)
    return owner, {int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")}


def alive(pid: int) -> bool:
    from vdpm_harness.prefetch import _process_gone

    return not _process_gone(pid)


def wait_until(condition, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_workers_do_not_outlive_their_owner(tmp_path, how):
    """Workers busy with a long item die with the process that started them, killed by ``kill -9`` or SIGTERM
    (issue 17: decode workers outlived the run; before the fix they finished their 60 s item first)."""
    owner, workers = start_owner(tmp_path, seconds=60)
    try:
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        owner.send_signal(getattr(signal, how))
        owner.wait(timeout=30)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10), workers
    finally:
        owner.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, 9)


@pytest.mark.slow
def test_ctrl_c_stops_the_owner_and_its_workers_at_once(tmp_path):
    """Ctrl-C in a terminal (SIGINT to the whole process group) while workers are busy with long items and more wait
    in the pool: the owner exits within a few seconds and no worker is left (issue 17: Ctrl-C hung in 5 of 17 trials,
    an ``InvalidStateError`` in the pool's shutdown, python/cpython#107219; before the fix the owner waited for the
    10 s items, or hung)."""
    for trial in range(2):
        folder = tmp_path / str(trial)
        folder.mkdir()
        owner, workers = start_owner(folder, seconds=10, depth=16)
        try:
            start = time.time()
            os.killpg(owner.pid, signal.SIGINT)
            owner.wait(timeout=20)
            assert time.time() - start < 5, f"trial {trial}: exited after {time.time() - start:.1f} s"
            assert wait_until(lambda pids=workers: not any(alive(pid) for pid in pids), timeout=5), workers
        finally:
            if owner.poll() is None:
                os.killpg(owner.pid, signal.SIGKILL)
                owner.wait()
            for pid in workers:
                if alive(pid):
                    os.kill(pid, 9)
