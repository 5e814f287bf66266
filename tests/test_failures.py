"""Failures that look like failures (issue 17): a pair without a successful sample exits non-zero and names its most
frequent error reasons; a benchmark that raises for one sample fails only that sample; more than 26 options are
refused; labels and list options on the command line; progress of ``data pull`` and ``import``; the tiny Qwen
generates within its context instead of failing every sample."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from rich.console import Console

from vdpm_harness import hookimpl
from vdpm_harness.config import build_config
from vdpm_harness.interfaces import Benchmark, MCQBenchmark
from vdpm_harness.pipeline import Runner
from vdpm_harness.progress import stepping, watching_folder
from vdpm_harness.records import Extraction, Message, Request, Sample, Strict, TextPart
from vdpm_harness.summary import error_lines, report_errors

from .conftest import run_cli


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- benchmarks held in memory -----------------------------------------------------------------------------------


class Captions(Benchmark):
    """Four free-text questions: no answer choices, so the random baseline can answer none (as on 4dbench-caption)."""

    version = "1"

    class Options(Strict):
        pass

    def samples(self):
        for i in range(4):
            yield Sample(sample_id=f"c{i}", video_id=f"v{i}", question="Describe the object.", answer="a cube")

    def build_request(self, sample):
        return Request(sample_id=sample.sample_id, messages=[Message(content=[TextPart(text=sample.question)])])

    def extract(self, sample, response):
        return Extraction(answer=response, parsed=True, method="rules:text")

    def score(self, sample, extraction):
        return float(extraction.answer == sample.answer), {}


class Fragile(MCQBenchmark):
    """Six questions (gold A, which the fixture ``echo`` model answers); building the request of q1, extracting the
    answer of q2 and scoring q3 raise; q4 has 27 options (letters would run past Z)."""

    version = "1"

    class Options(Strict):
        pass

    def samples(self):
        for i in range(6):
            options = [f"option {k}" for k in range(27 if i == 4 else 4)]
            yield Sample(sample_id=f"q{i}", video_id=f"v{i // 2}", category="c", question=f"Question {i}?",
                         options=options, answer="A")  # fmt: skip

    def build_request(self, sample):
        if sample.sample_id == "q1":
            raise KeyError("template 'distance' is missing")
        return self.mcq_request(sample, [Message(content=[TextPart(text=sample.question)])])

    def extract(self, sample, response):
        if sample.sample_id == "q2":
            raise ValueError("no rule for this wording")
        return super().extract(sample, response)

    def score(self, sample, extraction):
        if sample.sample_id == "q3":
            raise ZeroDivisionError("division by zero")
        return super().score(sample, extraction)


class MemoryPlugin:
    @hookimpl
    def register_benchmarks(self, register):
        register("captions", Captions, description="Free-text questions; test fixture.")
        register("fragile", Fragile, description="Raises for some samples; test fixture.")


@pytest.fixture
def memory_host(host):
    host.register(MemoryPlugin(), name="issue17-memory")
    yield host
    host.unregister("issue17-memory")


def run(host, out: Path, models: str, benches: str, **kw):
    return Runner(build_config(models=models, benches=benches, out=str(out), host=host, **kw), host).run()


# --- a pair without a successful sample ------------------------------------------------------------------------------


def test_every_sample_failing_exits_non_zero_with_its_reasons(tmp_path):
    """Issue 17 repro: VLM4D without its videos (every sample an error) exited 0 with a 0.0 row on the leaderboard,
    and the console gave a count of errors without their reason."""
    (tmp_path / "empty").mkdir()
    proc = run_cli("run", "--model", "random", "--bench", "vlm4d", "--bench-arg", f"data_dir={tmp_path / 'empty'}",
                   "--limit", "6", "--out", str(tmp_path / "res"), check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "random on vlm4d: 6 of 6 samples are errors (no sample succeeded)" in proc.stderr
    assert "error: random on vlm4d: no sample succeeded" in proc.stderr
    reasons = [line.strip() for line in proc.stderr.splitlines() if " × " in line]
    assert reasons and reasons[0] == "6 × video error: <path>: file not found"  # one reason, not one per file
    result = json.loads((tmp_path / "res" / "random" / "vlm4d" / "results.json").read_text())
    assert result["error_reasons"] == {"video error: <path>: file not found": 6}
    board = (tmp_path / "res" / "leaderboard.md").read_text()
    assert "| random | failed: 6/6 errors |" in board


@pytest.mark.slow
def test_errors_under_the_threshold_are_reported_and_the_run_succeeds(tmp_path):
    """Half of the samples fail (a missing and a corrupt clip, three questions each): the console names both reasons
    with their counts, the pair is scored (50% errors is not over the default 50%), the exit status is 0."""
    proc = run_cli("run", "--model", "echo", "--bench", "fixture-videos", "--bench-arg",
                   f"data_dir={tmp_path / 'videos'}", "--out", str(tmp_path / "res"))  # fmt: skip
    assert "echo on fixture-videos: 6 of 12 samples are errors; the most frequent reasons:" in proc.stderr
    reasons = sorted(line.strip() for line in proc.stderr.splitlines() if " × " in line)
    assert len(reasons) == 2 and all(r.startswith("3 × video error: ") for r in reasons)
    proc = run_cli("leaderboard", "--results", str(tmp_path / "res"), "--max-error-rate", "0.4")
    assert "| echo | failed: 6/12 errors (over 40%) |" in (tmp_path / "res" / "leaderboard.md").read_text()


def test_random_on_a_benchmark_without_choices_is_a_failed_pair(memory_host, tmp_path):
    """Issue 17 repro: ``random`` on captioning (no answer choices) gave a 0.0 row. Every sample is an error, the
    summary says why and names the pair, and the leaderboard marks it failed."""
    [outcome] = run(memory_host, tmp_path / "res", "random", "captions")
    result = outcome.result
    assert (result.n_samples, result.n_errors) == (4, 4)
    assert result.error_reasons == {"the random baseline needs answer choices": 4}
    out = io.StringIO()
    assert report_errors(Console(file=out, width=200), [result]) == ["random on captions"]
    text = out.getvalue()
    assert "4 × the random baseline needs answer choices" in text and "error: random on captions" in text
    assert "| random | failed: 4/4 errors |" in (tmp_path / "res" / "leaderboard.md").read_text()


def test_error_lines_show_three_reasons_and_redact_secrets(memory_host, tmp_path):
    """The console shows the three most frequent reasons with their counts, and never a secret."""
    [outcome] = run(memory_host, tmp_path / "res", "echo", "fragile")
    result = outcome.result.model_copy(update={"error_reasons": {"a sk-live-0123456789": 5, "b": 3, "c": 2, "d": 1}})
    text = "\n".join(error_lines(result, {"sk-live-0123456789"}))
    assert text.splitlines()[1:] == ["  5 × a ***", "  3 × b", "  2 × c"]


# --- a benchmark that raises for one sample; options past Z -------------------------------------------------------


def test_a_benchmark_that_raises_for_one_sample_fails_only_that_sample(memory_host, tmp_path):
    """Issue 17: a benchmark that raised for one sample failed the whole pair. Building the request (q1), reading the
    answer (q2) and scoring (q3) each raise for one sample: those are errors with their reason, the rest is scored."""
    [outcome] = run(memory_host, tmp_path / "res", "echo", "fragile")
    assert outcome.error is None
    result = outcome.result
    scores = {s["sample_id"]: s for s in lines(next((tmp_path / "res").glob("echo*/fragile")) / "scores.jsonl")}
    assert {sid for sid, s in scores.items() if s["status"] == "error"} == {"q1", "q2", "q3", "q4"}
    assert scores["q1"]["error"] == (
        "the benchmark could not build the request: KeyError: \"template 'distance' is missing\""
    )
    assert scores["q2"]["error"] == "extraction failed: ValueError: no rule for this wording"
    assert scores["q3"]["error"] == "scoring failed: ZeroDivisionError: division by zero"
    assert scores["q3"]["extraction"]["answer"] == "A"  # read, then the scoring failed
    assert scores["q0"]["correct"] == 1.0 and scores["q5"]["correct"] == 1.0
    assert (result.n_samples, result.n_errors) == (6, 4)


def test_more_than_26_options_are_refused_naming_the_sample(memory_host, tmp_path):
    """Issue 17 repro: a question with more than 26 options was asked with answer letters ``[ \\ ] ^`` past Z. It is
    an error of that sample, naming it; no model sees it."""
    [outcome] = run(memory_host, tmp_path / "res", "echo", "fragile")
    folder = next((tmp_path / "res").glob("echo*/fragile"))
    [q4] = [s for s in lines(folder / "scores.jsonl") if s["sample_id"] == "q4"]
    assert q4["error"] == (
        "sample q4 has 27 options, but answer letters run from A to Z: at most 26 options can be asked (the letters "
        "past Z would be [)"
    )
    assert [p for p in lines(folder / "predictions.jsonl") if p["sample_id"] == "q4"][0]["status"] == "error"


# --- the command line: labels and list options -------------------------------------------------------------------


@pytest.mark.slow
def test_label_and_list_options_on_the_command_line(tmp_path):
    """Issue 17: a model's label could be set only in a config file, and list options needed JSON (``ids=a,b`` gave a
    raw pydantic message)."""
    data = tmp_path / "videos"
    run_cli("run", "--model", "echo", "--bench", "fixture-videos", "--bench-arg", f"data_dir={data}", "--bench-arg",
            "broken=false", "--model-arg", "fail_on=0-0,1-1", "--label", "parrot", "--out",
            str(tmp_path / "res"))  # fmt: skip
    result = json.loads((tmp_path / "res" / "parrot" / "fixture-videos" / "results.json").read_text())
    assert result["model"] == "parrot" and result["n_errors"] == 2
    proc = run_cli("run", "--model", "echo", "--bench", "fixture-videos", "--model-arg", "check_frames=yes",
                   "--out", str(tmp_path / "res2"), check=False)  # fmt: skip
    assert proc.returncode == 2 and "option 'check_frames' from the command line: cannot read 'yes' as bool" in (
        proc.stderr
    )


# --- progress -------------------------------------------------------------------------------------------------------


def test_a_download_shows_the_folder_growing(tmp_path):
    """Issue 17: ``data pull`` showed no progress. While a download writes into the folder, the display shows its
    size and file count (here at the end: three files of 2,000 bytes)."""
    out = io.StringIO()
    folder = tmp_path / "data"

    def download():
        folder.mkdir()
        for i in range(3):
            (folder / f"part{i}.bin").write_bytes(b"x" * 2000)

    with watching_folder(Console(file=out, width=120), "vlm4d: downloading into data", folder, every=0.01):
        worker = threading.Thread(target=download)
        worker.start()
        worker.join()
    assert "vlm4d: downloading into data" in out.getvalue() and "6.0 kB in 3 files" in out.getvalue()


def test_an_import_shows_each_step(host, tmp_path):
    """Issue 17: ``import`` showed no progress: it now says which run it stores and scores."""
    from vdpm_harness.scoring import import_runs
    from vdpm_harness_plugins.benchmarks.vlm4d.questions import load_questions

    raw = [dict(record, response="A") for record in load_questions("synthetic")[:3]]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my-model_8frame.json").write_text(json.dumps(raw))
    out = io.StringIO()
    steps = []
    with stepping(Console(file=out, width=200), "import mine") as step:
        import_runs(host, host.create("benchmarks", "vlm4d"), tmp_path / "mine", tmp_path / "res",
                    progress=lambda s: (steps.append(s), step(s)))  # fmt: skip
    assert steps[-3:] == ["run 1, my-model_8frame: storing 3 responses", "run 1, my-model_8frame: scoring 3 samples",
                          "1 runs imported"]  # fmt: skip
    assert "import mine" in out.getvalue() and "1 runs imported" in out.getvalue()


# --- the tiny Qwen within its context ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_qwen_caps_new_tokens_to_its_context(tmp_path, monkeypatch):
    """Issue 17 repro: the README's tiny-Qwen example (4096 positions) failed every dsr-synth sample with "context
    overflow: 2589 prompt tokens + 2048 new tokens exceed the model's 4096 positions". The plugin now caps the new
    tokens to the positions the prompt leaves: here the context is shrunk to a few tokens past the longer prompt, so
    that one generates at most that many, the shorter one what it asked for, and a prompt that fills the context by
    itself is still an error."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from vdpm_harness.interfaces import PreparedRequest
    from vdpm_harness.records import GenerationSettings
    from vdpm_harness_plugins.models.qwen25vl.checkpoints import make_tiny
    from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL

    make_tiny(tmp_path / "tiny", seed=0)
    model = Qwen25VL({"path": str(tmp_path / "tiny")})
    model.load()

    def ask(sample_id, text, max_new_tokens):
        request = Request(sample_id=sample_id, messages=[Message(content=[TextPart(text=text)])],
                          generation=GenerationSettings(max_new_tokens=max_new_tokens))  # fmt: skip
        return PreparedRequest(request, f"key-{sample_id}", 0)

    try:
        short, long = ask("short", "Which way?", 6), ask("long", "Which way does the red cube move? " * 8, 6)
        lengths = {r.sample_id: r.usage["prompt_tokens"] for r in model.generate([short, long])}
        assert lengths["long"] > lengths["short"] + 6
        monkeypatch.setattr(model._model.config.text_config, "max_position_embeddings", lengths["long"] + 3)
        model.options.batch_size = 2
        answered = {r.sample_id: r for r in model.generate([short, long])}
        assert answered["long"].error is None and answered["long"].usage["max_new_tokens"] == 3
        assert 1 <= answered["long"].usage["completion_tokens"] <= 3
        assert answered["short"].error is None and "max_new_tokens" not in answered["short"].usage
        monkeypatch.setattr(model._model.config.text_config, "max_position_embeddings", lengths["long"])
        [full] = model.generate([long])
        assert full.error == f"context overflow: {lengths['long']} prompt tokens + 1 new tokens exceed the model's " \
            f"{lengths['long']} positions"  # fmt: skip
    finally:
        model.close()
