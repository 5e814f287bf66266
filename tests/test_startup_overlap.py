"""Start-up overlap (issue 16, "start fast"): ``Runner.run`` plans a model's first pair and starts decoding its
frames before the model loads, so that start-up costs the longer of loading and the first decodes, not their sum.

The reference for every result is the serial order the harness had before (load, then plan, then decode), run here
by turning the early plan off (``Runner._plan_early`` returning ``None``): the predictions, their keys and the counts
must be identical. Decoding is slowed in the worker processes by a job that waits before the real
``decode_request_job`` (it lives at module level so the forkserver workers can import it) and leaves a marker beside
each video it decodes, with its process id. The first video is ready ``DECODE_SECONDS`` after its worker process
started: a worker's own start-up (importing the decoder) is part of the time to the first decoded videos, as it is
in a real run.
"""

from __future__ import annotations

import io
import json
import os
import time
import types
from pathlib import Path

import pytest
from rich.console import Console

from vdpm_harness import hookimpl
from vdpm_harness.config import build_config
from vdpm_harness.interfaces import Model
from vdpm_harness.pipeline import Runner
from vdpm_harness.prefetch import _process_gone, decode_request_job
from vdpm_harness.records import Response, Strict
from vdpm_harness.store import PredictionStore

LOAD_SECONDS = 1.5
DECODE_SECONDS = 1.5  # to the first decoded video (v0.mp4) from its worker's start; the others at full speed


def process_age() -> float:
    """Seconds since this process started (Linux: its start time in ``/proc/self/stat``, field 22, in clock ticks
    since boot, against ``/proc/uptime``; proc(5))."""
    started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def slow_decode_request_job(job):
    """``decode_request_job`` in a worker, ready no sooner than ``DECODE_SECONDS`` after the worker started for
    ``v0.mp4`` (or after the seconds written in the videos' folder as ``decode_seconds``), marking each video it
    starts as ``<video>.decoding`` with its pid."""
    parts, _ = job
    for path, _policy in parts:
        video = Path(path)
        with open(video.with_suffix(".decoding"), "a") as marker:
            marker.write(f"{os.getpid()}\n")
        if video.name == "v0.mp4":
            custom = video.parent / "decode_seconds"
            seconds = float(custom.read_text()) if custom.exists() else DECODE_SECONDS
            time.sleep(max(0.0, seconds - process_age()))
    return decode_request_job(job)


def decoded_videos(data: Path) -> dict[str, list[int]]:
    """Each video a worker started decoding: the pids that did."""
    return {p.stem: [int(pid) for pid in p.read_text().split()] for p in sorted(data.glob("*.decoding"))}


class SlowLoad(Model):
    """Loads in ``load_seconds``; answers with what it saw of each video (so a wrong frame would show), recording
    when its load began and ended. ``fail``: the load raises (``"interrupt"``: Ctrl-C) once a video is decoding."""

    events: list[tuple[str, float]] = []

    class Options(Strict):
        batch_size: int = 2
        load_seconds: float = LOAD_SECONDS
        fail: str | None = None
        marker: str | None = None  # the file a worker writes its pid into as it starts decoding a video
        revision_after_load: str | None = None

    def __init__(self, options=None):
        super().__init__(options)
        self.loaded = False

    def revision(self):
        return self.options.revision_after_load if self.loaded else None

    def load(self):
        SlowLoad.events.append(("load", time.perf_counter()))
        if self.options.fail:
            deadline = time.time() + 30
            marker = Path(self.options.marker)
            while not (marker.exists() and marker.read_text().strip()):  # the worker wrote its pid
                assert time.time() < deadline, "no video started decoding while the model loaded"
                time.sleep(0.02)
            if self.options.fail == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError("the weights are missing (test)")
        time.sleep(self.options.load_seconds)
        self.loaded = True
        SlowLoad.events.append(("loaded", time.perf_counter()))

    def generate(self, batch):
        assert self.loaded, "generate before load"
        out = []
        for prepared in batch:
            seen = [(v.indices, int(v.frames.mean() * 1000)) for v in prepared.videos]
            out.append(Response(sample_id=prepared.request.sample_id, text=f"The answer is (A). {seen}"))
        return out


@hookimpl
def _register_models(register):
    register("slow-load", SlowLoad, description="test_startup_overlap")


@pytest.fixture
def overlap_host(host, monkeypatch):
    host.register(types.SimpleNamespace(register_models=_register_models), name="test-startup-overlap")
    monkeypatch.setattr("vdpm_harness.prefetch.decode_request_job", slow_decode_request_job)
    SlowLoad.events.clear()
    yield host
    host.unregister("test-startup-overlap")


def run(host, out: Path, data: Path, serial: bool = False, model_args: dict | None = None, benches=None):
    """One ``Runner.run`` of ``slow-load`` on ``fixture-videos`` (two clips, three questions each): its outcomes,
    wall seconds and console text. ``serial``: the order before issue 16 (no early plan)."""
    bench_args = (f"fixture-videos:data_dir={data}", "fixture-videos:broken=false", "fixture-videos:n_videos=2")
    config = build_config(models="slow-load", benches=benches or "fixture-videos", out=str(out), host=host,
                          model_args=tuple(f"{k}={v}" for k, v in (model_args or {}).items()), bench_args=bench_args,
                          decode_workers=2)  # fmt: skip
    console = io.StringIO()
    runner = Runner(config, host, Console(file=console, width=200))
    if serial:
        runner._plan_early = lambda *args: None
    start = time.perf_counter()
    outcomes = runner.run()
    return outcomes, time.perf_counter() - start, console.getvalue()


def predictions(out: Path) -> dict[str, dict]:
    """Every stored prediction by key, without what differs between two runs (creation time, seconds)."""
    found = {}
    for folder in sorted(p.parent for p in out.rglob("predictions.jsonl")):
        for key, record in PredictionStore(folder).load().items():
            found[key] = record.model_dump(mode="json", exclude={"created", "seconds"})
    return found


def warm_up(host, tmp_path: Path) -> None:
    """A first run, so that the timed ones find the forkserver started (it is started once per process)."""
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "decode_seconds").write_text("0")
    run(host, tmp_path / "warm-out", tmp_path / "warm", model_args={"load_seconds": 0})


def test_decoding_overlaps_loading_and_predicts_as_the_serial_order(overlap_host, tmp_path):
    warm_up(overlap_host, tmp_path)
    [serial], serial_seconds, _ = run(overlap_host, tmp_path / "serial", tmp_path / "a", serial=True)
    SlowLoad.events.clear()
    [early], seconds, _ = run(overlap_host, tmp_path / "early", tmp_path / "b")
    # the serial order pays both: 1.5 s of loading, then 1.5 s decoding the first video
    assert serial_seconds >= LOAD_SECONDS + DECODE_SECONDS
    # overlapped: well below that serial sum of 3.0 s (the longer of the two is 1.5 s)
    assert seconds < 2.6, f"{seconds:.2f} s (serial: {serial_seconds:.2f} s)"
    [(_, load_started), (_, loaded)] = SlowLoad.events
    assert serial.error is None and early.error is None
    assert serial.counts == early.counts == {"ok": 6}
    assert serial.result.metrics == early.result.metrics
    reference, overlapped = predictions(tmp_path / "serial"), predictions(tmp_path / "early")
    assert len(reference) == 6 and overlapped == reference
    # each video decoded once (a video's three questions share one decoding), by a worker process
    assert {name: len(pids) for name, pids in decoded_videos(tmp_path / "b").items()} == {"v0": 1, "v1": 1}
    assert loaded - load_started >= LOAD_SECONDS


def test_decoding_starts_before_the_load_ends(overlap_host, tmp_path):
    """The first video is decoding while the model loads: its marker exists before ``load`` returns (the load is
    made to wait for it, then to succeed). Timing-independent evidence of the overlap."""
    data = tmp_path / "v"
    data.mkdir()
    (data / "decode_seconds").write_text("0.2")
    seen_during_load = []
    original = SlowLoad.load

    def load(self):
        deadline = time.time() + 60
        while not (data / "v0.decoding").exists() and time.time() < deadline:
            time.sleep(0.02)
        seen_during_load.append((data / "v0.decoding").exists())
        original(self)

    SlowLoad.load = load
    try:
        [outcome], _, _ = run(overlap_host, tmp_path / "out", data, model_args={"load_seconds": 0})
    finally:
        SlowLoad.load = original
    assert seen_during_load == [True] and outcome.counts == {"ok": 6}


@pytest.mark.parametrize("failure", ["error", "interrupt"])
def test_a_failing_load_reports_and_stops_the_decode_workers(overlap_host, tmp_path, failure):
    """A load that raises once a video is decoding (its worker sleeping 60 s): the same error as before (the pair
    fails with "model ... failed to load", printed), or Ctrl-C out of the run; either way the decode worker is gone
    when the run returns, long before its 60 s, and nothing was written for the pair."""
    data = tmp_path / "v"
    data.mkdir()
    (data / "decode_seconds").write_text("60")
    args = {"fail": failure, "marker": str(data / "v0.decoding")}
    start = time.perf_counter()
    if failure == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            run(overlap_host, tmp_path / "out", data, model_args=args)
    else:
        [outcome], _, console = run(overlap_host, tmp_path / "out", data, model_args=args)
        assert outcome.label.startswith("slow-load-")  # its options are not the defaults
        error = f"model '{outcome.label}' failed to load: RuntimeError: the weights are missing (test)"
        assert outcome.error == error and outcome.result is None
        assert error in console
    assert time.perf_counter() - start < 30
    [pid] = decoded_videos(data)["v0"]
    assert _process_gone(pid), f"decode worker {pid} outlived the failed load"
    assert list((tmp_path / "out").rglob("*")) == []


def test_nothing_is_decoded_when_nothing_needs_it(overlap_host, tmp_path):
    """A resumed run whose every item is stored, and a blind run, decode nothing (no worker starts a video)."""
    data = tmp_path / "v"
    data.mkdir()
    (data / "decode_seconds").write_text("0")
    args = {"load_seconds": 0}
    [first], _, _ = run(overlap_host, tmp_path / "out", data, model_args=args)
    assert first.counts == {"ok": 6} and set(decoded_videos(data)) == {"v0", "v1"}
    for marker in data.glob("*.decoding"):
        marker.unlink()
    [again], _, _ = run(overlap_host, tmp_path / "out", data, model_args=args)
    assert again.counts == {"reused": 6} and decoded_videos(data) == {}
    [blind], _, _ = run(overlap_host, tmp_path / "blind", data, model_args={**args, "blind": "true"})
    assert blind.counts == {"ok": 6} and decoded_videos(data) == {}
    answers = {p["response"] for p in predictions(tmp_path / "blind").values()}
    assert answers == {"The answer is (A). []"}  # no video reached the model


def test_a_model_that_changes_on_load_is_planned_again(overlap_host, tmp_path):
    """A model whose fingerprint is only known once loaded (a hub checkpoint resolved by downloading it): the early
    plan is dropped, the pair is planned with the loaded model's keys and decoded as before, identical to the serial
    order's run."""
    args = {"load_seconds": 0, "revision_after_load": "abc123"}
    for name, serial in (("serial", True), ("early", False)):
        data = tmp_path / f"v-{name}"
        data.mkdir()
        (data / "decode_seconds").write_text("0")
        [outcome], _, _ = run(overlap_host, tmp_path / name, data, serial=serial, model_args=args)
        assert outcome.counts == {"ok": 6}
    reference = predictions(tmp_path / "serial")
    assert predictions(tmp_path / "early") == reference and len(reference) == 6
    run_json = json.loads(next((tmp_path / "early").rglob("run.json")).read_text())
    assert run_json["model"]["revision"] == "abc123"
    assert {record["model_fingerprint"] for record in reference.values()} == {run_json["model"]["fingerprint"]}


def test_several_benchmarks_load_the_model_once(overlap_host, tmp_path):
    """Two benchmarks for one model: one load, the first pair planned early, the second as before; both pairs
    predict what the serial order predicts."""
    for name, serial in (("serial", True), ("early", False)):
        data = tmp_path / f"v-{name}"
        data.mkdir()
        (data / "decode_seconds").write_text("0")
        SlowLoad.events.clear()
        outcomes, _, _ = run(overlap_host, tmp_path / name, data, serial=serial, model_args={"load_seconds": 0},
                             benches="fixture-videos,motion-basics")  # fmt: skip
        assert [e for e, _ in SlowLoad.events] == ["load", "loaded"]
        assert [o.error for o in outcomes] == [None, None] and outcomes[0].counts == {"ok": 6}
    reference = predictions(tmp_path / "serial")
    assert predictions(tmp_path / "early") == reference
    assert len({record["benchmark"] for record in reference.values()}) == 2


def test_a_run_that_asks_for_other_requests_than_planned_decodes_them_as_usual(overlap_host, tmp_path):
    """``media_stream`` takes the early decoding's results while the run asks for the requests it decodes, and from
    the first other one stops its workers and decodes as before. Every item gets the frames that
    ``vdpm_harness.video.decode`` returns for its video and frame policy (the reference, in this process)."""
    from vdpm_harness.inference import EarlyDecoding, Inference
    from vdpm_harness.planning import plan
    from vdpm_harness.video import decode

    data = tmp_path / "v"
    data.mkdir()
    (data / "decode_seconds").write_text("0")
    bench = overlap_host.create("benchmarks", "fixture-videos", {"data_dir": str(data), "broken": False, "n_videos": 3})
    model = overlap_host.create("models", "echo")
    items = plan(bench, model, list(bench.samples()), None)
    by_video = {v: [item for item in items if item.sample.video_id == v] for v in ("v0", "v1", "v2")}
    config = build_config(models="echo", benches="fixture-videos", decode_workers=2, host=overlap_host)
    inference = Inference(model, bench, PredictionStore(tmp_path / "out"), config, set())
    early = EarlyDecoding(by_video["v0"] + by_video["v2"], config)  # planned without v1
    wait_for = time.time() + 30
    while not all(decoded_videos(data).get(v) for v in ("v0", "v2")) and time.time() < wait_for:  # both started
        time.sleep(0.02)
    early_pids = set(decoded_videos(data)["v0"] + decoded_videos(data)["v2"])
    asked = by_video["v0"] + by_video["v1"] + by_video["v2"]
    stream = inference.media_stream(iter(asked), early)
    got = list(stream)
    assert [item for item, _ in got] == asked
    for item, videos in got:
        [part] = item.request.video_parts()
        [video] = videos
        reference = decode(part.video, part.frames)
        assert video.indices == reference.indices and (video.frames == reference.frames).all()
    assert all(_process_gone(pid) for pid in early_pids)  # the early workers stopped at v1
    pids = decoded_videos(data)
    assert len(pids["v0"]) == 1 and len(pids["v1"]) == 1  # v0 from the early decoding only; v1 by a new worker
    assert set(pids["v1"]).isdisjoint(early_pids) and len(pids["v2"]) == 2  # v2 decoded again after the switch
