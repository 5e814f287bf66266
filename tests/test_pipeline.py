"""The run pipeline end to end: infer -> extract -> score -> report, resume after kill -9, rescore, bad videos,
secrets. Models and benchmarks come from the built-ins and the fixture plugin (tests/plugin_fixture)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from vdpm_harness.config import build_config
from vdpm_harness.pipeline import Runner
from vdpm_harness.scoring import rescore
from vdpm_harness.store import PredictionStore

from .conftest import cli_env, run_cli


def run(host, tmp_path, models, benches, **kw):
    config = build_config(models=models, benches=benches, out=str(tmp_path / "res"), **kw)
    return Runner(config, host).run()


def pair_dir(tmp_path: Path, model: str, bench: str) -> Path:
    """The folder of a (model, benchmark) pair; the label of a model with non-default options carries a hash."""
    [folder] = (tmp_path / "res").glob(f"{model}*/{bench}")
    return folder


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_random_on_motion_basics_end_to_end(host, tmp_path):
    [outcome] = run(host, tmp_path, "random", "motion-basics", seed=1)
    result = outcome.result
    assert result.n_samples == 36 and result.n_errors == 0 and result.unparsed_rate == 0
    assert list(result.categories) == ["direction", "speed_comparison", "distance_change"]
    assert all(c["accuracy"].n == 12 for c in result.categories.values())
    acc = result.metrics["accuracy"]
    assert acc.n_clusters == 12 and acc.ci_low <= acc.value <= acc.ci_high
    folder = tmp_path / "res" / "random" / "motion-basics"
    scores = lines(folder / "scores.jsonl")
    assert 100 * sum(s["correct"] for s in scores) / 36 == pytest.approx(acc.value)
    # frame indices are logged per sample, and the run record says what reproduces the run
    preds = lines(folder / "predictions.jsonl")
    assert len(preds) == 36 and all(len(p["frame_indices"][0]) == 16 for p in preds)
    record = json.loads((folder / "run.json").read_text())
    assert record["seed"] == 1 and record["model"]["fingerprint"] and record["benchmark"]["dataset_revision"]
    assert record["environment"]["packages"]["vdpm-harness"] and "git" in record["environment"]
    assert record["decoder"]["backend"] in ("pyav", "decord")


def test_random_is_seeded_and_resume_recomputes_nothing(host, tmp_path):
    first = run(host, tmp_path / "a", "random", "motion-basics", seed=7)[0]
    again = run(host, tmp_path / "a", "random", "motion-basics", seed=7)[0]
    assert first.counts == {"ok": 36} and again.counts == {"reused": 36}
    assert again.result.metrics == first.result.metrics
    run(host, tmp_path / "b", "random", "motion-basics", seed=7)
    run(host, tmp_path / "c", "random", "motion-basics", seed=8)
    answers = {
        name: [p["response"] for p in lines(tmp_path / name / "res" / "random" / "motion-basics" / "predictions.jsonl")]
        for name in "abc"
    }
    assert answers["a"] == answers["b"]  # same seed, fresh folder: the same answers
    assert answers["a"] != answers["c"]  # another seed: other answers (all 36 equal has probability 4**-36)
    assert set(answers["c"]) <= {"A", "B", "C", "D"}


def test_bad_videos_become_error_records_and_the_run_goes_on(host, tmp_path):
    data = tmp_path / "videos"
    [outcome] = run(
        host,
        tmp_path,
        "echo",
        "fixture-videos",
        bench_args=(f"data_dir={data}",),
        decode_workers=1,
        model_args=("check_frames=true",),
    )
    result = outcome.result
    assert result.n_samples == 12 and result.n_errors == 6  # clips 1 (missing) and 2 (corrupt), 3 questions each
    scores = {s["sample_id"]: s for s in lines(pair_dir(tmp_path, "echo", "fixture-videos") / "scores.jsonl")}
    assert str(data / "v1.mp4") in scores["1-0"]["error"] and "video error" in scores["1-0"]["error"]
    assert str(data / "v2.mp4") in scores["2-2"]["error"]
    assert scores["0-0"]["status"] == "ok" and scores["0-0"]["extraction"]["answer"] == "A"
    # errors count as wrong: echo always answers A, gold is A for (v+q) even -> 3 of the 6 good samples
    assert result.metrics["accuracy"].value == pytest.approx(100 * 3 / 12)
    # after the missing clip is restored, a rerun keeps the 6 good answers, answers clip 1 (its frame indices,
    # hence its keys, are new) and retries the still-corrupt clip 2
    (data / "v1.mp4").write_bytes((data / "v0.mp4").read_bytes())
    again = run(host, tmp_path, "echo", "fixture-videos", bench_args=(f"data_dir={data}",),
                model_args=("check_frames=true",))[0]  # fmt: skip
    assert again.counts == {"reused": 6, "ok": 3, "error": 3} and again.result.n_errors == 3


def test_model_failures_are_per_sample_and_secrets_never_land(host, tmp_path):
    secret = "sk-test-SECRET-abcdef123"
    data = tmp_path / "videos"
    [outcome] = run(host, tmp_path, "echo", "fixture-videos",
                    model_args=(f"api_key={secret}", 'fail_on=["0-1"]'),
                    bench_args=(f"data_dir={data}", "broken=false"))  # fmt: skip
    assert outcome.result.n_errors == 1
    folder = tmp_path / "res"
    texts = [p.read_bytes() for p in folder.rglob("*") if p.is_file()]
    assert texts and not any(secret.encode() in t for t in texts)
    [pair] = [p for p in folder.iterdir() if p.is_dir()]
    record = json.loads((pair / "fixture-videos" / "run.json").read_text())
    assert record["model"]["options"]["api_key"] == "***"
    errors = [p for p in lines(pair / "fixture-videos" / "predictions.jsonl") if p["status"] == "error"]
    assert errors[0]["error"] == "upstream refused key ***"


def test_whole_batch_failure_is_retried_one_by_one(host, tmp_path):
    from vdpm_harness.inference import Inference
    from vdpm_harness.interfaces import PreparedRequest
    from vdpm_harness.planning import WorkItem
    from vdpm_harness.records import Message, Request, Response, Sample, TextPart

    class Flaky:
        id, batch_size, calls = "flaky", 4, []

        def fingerprint(self):
            return "f"

        def generate(self, batch):
            self.calls.append(len(batch))
            if len(batch) > 1:
                raise MemoryError("CUDA out of memory")
            return [Response(sample_id=batch[0].request.sample_id, text="A")]

    bench = host.create("benchmarks", "motion-basics")
    inference = Inference(Flaky(), bench, PredictionStore(tmp_path), build_config(models="x", benches="y"), set())
    items = []
    for i in range(3):
        request = Request(sample_id=str(i), messages=[Message(content=[TextPart(text="q")])])
        items.append(
            (
                WorkItem(Sample(sample_id=str(i), video_id="v"), request, f"k{i}", []),
                PreparedRequest(request, f"k{i}", 0),
            )
        )
    predictions = inference.generate(items)
    assert Flaky.calls == [3, 1, 1, 1] and [p.status for p in predictions] == ["ok"] * 3


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    out, log, data = tmp_path / "res", tmp_path / "computed.log", tmp_path / "videos"
    args = [
        "run",
        "--model",
        "echo",
        "--bench",
        "fixture-videos",
        "--out",
        str(out),
        "--decode-workers",
        "1",
        "--model-arg",
        "delay=0.05",
        "--model-arg",
        "batch_size=1",
        "--model-arg",
        f"log={log}",
        "--bench-arg",
        f"data_dir={data}",
        "--bench-arg",
        "broken=false",
        "--bench-arg",
        "n_videos=20",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdpm_harness", *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(out.rglob("predictions.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= 15:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its decode workers, mid-write
    proc.wait()
    [store] = list(out.rglob("predictions.jsonl"))
    stored_before = {p.sample_id for p in PredictionStore(store.parent).load().values()}
    assert 15 <= len(stored_before) < 60
    computed_before = len(log.read_text().splitlines())

    run_cli(*args)
    records = PredictionStore(store.parent).load()
    assert len(records) == 60 and all(p.status == "ok" for p in records.values())
    ok_lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(ok_lines) == 60 and len({p["key"] for p in ok_lines}) == 60  # nothing duplicated
    recomputed = log.read_text().splitlines()[computed_before:]
    assert not set(recomputed) & stored_before  # nothing stored was computed again
    assert len(recomputed) == 60 - len(stored_before)
    result = json.loads((store.parent / "results.json").read_text())
    assert result["n_samples"] == 60 and result["n_errors"] == 0


def test_rescore_with_a_judge_does_not_run_the_model(host, tmp_path):
    log, data = tmp_path / "computed.log", tmp_path / "videos"
    run(
        host,
        tmp_path,
        "echo",
        "fixture-videos",
        model_args=(f"log={log}",),
        bench_args=(f"data_dir={data}", "broken=false"),
    )
    computed = log.read_text()
    [folder] = [p.parent for p in (tmp_path / "res").rglob("run.json")]
    rules = json.loads((folder / "results.json").read_text())
    assert rules["scoring"] == "rules:mcq@1"
    judged = rescore(host, folder, "last-letter")
    assert judged.scoring == "judge:last-letter@7"
    assert judged.run.judge == {"id": "last-letter", "version": "7", "options": {}}
    assert judged.metrics["accuracy"].value == rules["metrics"]["accuracy"]["value"]  # "(A)" -> A either way
    assert json.loads((folder / "results.json").read_text())["scoring"] == "judge:last-letter@7"
    assert all(s["extraction"]["method"] == "judge:last-letter@7" for s in lines(folder / "scores.jsonl"))
    assert log.read_text() == computed


def test_cli_run_rescore_and_leaderboard(tmp_path):
    config = tmp_path / "run.yaml"
    data = tmp_path / "videos"
    config.write_text(f"""
out: {tmp_path / "res"}
models: [random, echo]
benches:
  - name: motion-basics
  - name: fixture-videos
    options: {{data_dir: {data}, broken: false}}
""")
    proc = run_cli("run", "--config", str(config))
    assert "leaderboard.xlsx" in proc.stderr
    proc = run_cli("rescore", str(tmp_path / "res"))
    assert len(proc.stdout.strip().splitlines()) == 4
    run_cli("leaderboard", "--results", str(tmp_path / "res"))
    md = (tmp_path / "res" / "leaderboard.md").read_text()
    assert "| random" in md and "| echo" in md and "fixture-videos" in md
    book = openpyxl.load_workbook(tmp_path / "res" / "leaderboard.xlsx")
    assert book.sheetnames[0] == "Overall" and {"motion-basics", "fixture-videos"} <= set(book.sheetnames)
    results = {
        (r["model"], r["benchmark"]): r
        for r in (json.loads(p.read_text()) for p in (tmp_path / "res").rglob("results.json"))
    }
    sheet = book["fixture-videos"]
    header = [c.value for c in sheet[1]]
    rows = {row[0]: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    for model in ("random", "echo"):
        expected = results[(model, "fixture-videos")]["metrics"]["accuracy"]
        values = [v for k, v in rows[model].items() if k and k.lower().startswith("accuracy")]
        assert values[0] == pytest.approx(expected["value"])


def test_unknown_plugin_and_bad_config_fail_before_any_work(tmp_path):
    proc = run_cli("run", "--model", "randon", "--bench", "motion-basics", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "did you mean 'random'" in proc.stderr
    proc = run_cli(
        "run",
        "--model",
        "random",
        "--bench",
        "motion-basics",
        "--model-arg",
        "bach_size=2",
        "--out",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode == 2 and "bach_size" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_next_batch_is_staged_while_the_current_one_generates(host, tmp_path):
    """``Model.stage`` of batch n+1 runs on the helper thread while batch n generates; a failing stage falls back
    to generating that batch's samples one at a time, and every sample is answered once, in order."""
    import threading

    from vdpm_harness.inference import Inference
    from vdpm_harness.interfaces import Model
    from vdpm_harness.records import Response

    events = []
    release = threading.Event()

    class Staged(Model):
        id, needs_frames = "staged", False

        @property
        def batch_size(self):
            return 4

        def stage(self, batch):
            ids = [p.request.sample_id for p in batch]
            events.append(("stage", ids[0], threading.current_thread().name))
            if ids[0] == "1":  # the second batch: stage it only once the first batch is generating
                assert release.wait(5)
            if ids[0] == "8":
                raise RuntimeError("tokenizer exploded")
            return ids

        def generate_staged(self, ids):
            events.append(("generate", ids[0], threading.current_thread().name))
            if ids[0] == "0":
                release.set()
                time.sleep(0.05)
            return [Response(sample_id=i, text="A") for i in ids]

        def generate(self, batch):
            events.append(("alone", batch[0].request.sample_id, threading.current_thread().name))
            return [Response(sample_id=p.request.sample_id, text="B") for p in batch]

    from vdpm_harness.planning import plan

    bench = host.create("benchmarks", "motion-basics")
    samples = sorted(bench.samples(), key=lambda s: s.sample_id)[:10]
    for index, sample in enumerate(samples):
        sample.sample_id = str(index)
    model = Staged()
    items = plan(bench, model, samples, None)
    store = PredictionStore(tmp_path)
    inference = Inference(model, bench, store, build_config(models="x", benches="y"), set())
    inference.run(items)
    # where the main thread's time went; the first batch's 50 ms of generation (the helper stages meanwhile)
    assert set(inference.timings) == {"media", "stage", "staged", "generate", "store"}
    assert inference.timings["generate"] >= 0.05 and all(v >= 0 for v in inference.timings.values())
    stored = store.load()
    assert len(stored) == 10 and all(p.status == "ok" for p in stored.values())
    texts = {p.sample_id: p.response for p in stored.values()}
    assert [texts[str(i)] for i in range(10)] == ["A"] * 8 + ["B"] * 2  # batch "8, 9" failed staging: alone
    stages = [e for e in events if e[0] == "stage"]
    assert [e[1] for e in stages] == ["0", "4", "8"] and all(e[2].startswith("vdpm-stage") for e in stages)
    order = [(kind, first) for kind, first, _ in events]
    # the second batch is staged while the first generates (it waits for the first's generation to start)
    assert order.index(("generate", "0")) < order.index(("generate", "4"))
    assert [e for e in events if e[0] != "stage" and e[2].startswith("vdpm-stage")] == []
