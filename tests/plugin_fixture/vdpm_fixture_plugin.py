"""Test fixtures: a plugin that implements every vdpm-harness hook.

Put this folder on ``PYTHONPATH`` and the ``vdpm_fixture_plugin-0.1.dist-info`` beside it makes it an installed
distribution with a ``vdpm_harness`` entry point, discovered like any third-party plugin (subprocess tests), or
register the module in-process with ``host.register(module, name="fixture")``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import numpy as np

from vdpm_harness import hookimpl
from vdpm_harness.interfaces import Generator, Judge, MCQBenchmark, Model, Reporter
from vdpm_harness.records import Extraction, FramePolicy, Message, Response, Sample, Strict, TextPart, VideoPart


def _event(kind: str, **data) -> None:
    path = os.environ.get("VDPM_TEST_EVENTS")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"event": kind, **data}) + "\n")


class EchoModel(Model):
    """Answers "A" (or the letter in the ``answers`` option per sample); optionally slow; logs what it computes."""

    class Options(Strict):
        batch_size: int = 2
        delay: float = 0.0
        log: str | None = None
        api_key: str | None = None
        fail_on: list[str] = []
        check_frames: bool = False

    def generate(self, batch):
        out = []
        for prepared in batch:
            sid = prepared.request.sample_id
            if self.options.delay:
                time.sleep(self.options.delay)
            if self.options.log:
                with open(self.options.log, "a") as handle:
                    handle.write(sid + "\n")
            if sid in self.options.fail_on:
                out.append(Response(sample_id=sid, error=f"upstream refused key {self.options.api_key}"))
                continue
            if self.options.check_frames:
                video = prepared.videos[0]
                assert video.frames.shape[0] == len(video.indices) > 0
            out.append(Response(sample_id=sid, text="The answer is (A)."))
        return out


class FixtureVideos(MCQBenchmark):
    """Three questions on each of ``n_videos`` tiny clips; one clip is missing and one is corrupt on purpose."""

    version = "1"
    categories = ["first", "second", "third"]

    class Options(Strict):
        data_dir: str
        n_videos: int = 4
        broken: bool = True

    def samples(self):
        from vdpm_harness.video import write_video

        root = Path(self.options.data_dir)
        if not (root / ".built").exists():  # built once; a test may repair files afterwards
            root.mkdir(parents=True, exist_ok=True)
            for v in range(self.options.n_videos):
                if self.options.broken and v == 1:
                    continue  # missing
                if self.options.broken and v == 2:
                    (root / "v2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")  # corrupt
                    continue
                write_video(root / f"v{v}.mp4", np.full((6, 32, 32, 3), (40 * v) % 256, np.uint8), fps=3)
            (root / ".built").touch()
        for v in range(self.options.n_videos):
            path = root / f"v{v}.mp4"
            for q, category in enumerate(self.categories):
                yield Sample(
                    sample_id=f"{v}-{q}",
                    video_id=f"v{v}",
                    category=category,
                    question=f"q{q}?",
                    options=["A. yes", "B. no", "C. maybe", "D. unsure"],
                    answer="A" if (v + q) % 2 == 0 else "B",
                    media=[str(path)],
                )

    def build_request(self, sample):
        content = [VideoPart(video=sample.media[0], frames=FramePolicy(nframes=4)), TextPart(text=sample.question)]
        return self.mcq_request(sample, [Message(content=content)])


class LastLetterJudge(Judge):
    version = "7"

    def judge(self, benchmark, items):
        out = []
        for _sample, prediction in items:
            letters = [c for c in prediction.response if c in "ABCD"]
            out.append(Extraction(answer=letters[-1] if letters else None, parsed=bool(letters), method=self.tag))
        return out


class CountGenerator(Generator):
    class Options(Strict):
        n_files: int = 2
        prefix: str = "item"

    def run(self, out, seed=0):
        out.mkdir(parents=True, exist_ok=True)
        for i in range(self.options.n_files):
            (out / f"{self.options.prefix}{i}.txt").write_text(str(seed + i))
        return {"written": self.options.n_files, "seed": seed}


class TsvReporter(Reporter):
    def write(self, leaderboard, out_dir):
        path = Path(out_dir) / "leaderboard.tsv"
        lines = ["model\tbenchmark\tvalue"]
        for result in leaderboard.results:
            lines.append(f"{result.model}\t{result.benchmark}\t{result.metrics[result.primary].value:.4f}")
        path.write_text("\n".join(lines) + "\n")
        return [path]


@hookimpl
def register_models(register):
    register("echo", EchoModel, aliases=("echo-a",), description="Answers (A); test fixture.")


@hookimpl
def register_benchmarks(register):
    register("fixture-videos", FixtureVideos, description="Tiny clips, one missing and one corrupt; test fixture.")


@hookimpl
def register_generators(register):
    register("count-gen", CountGenerator, description="Writes numbered files; test fixture.")


@hookimpl
def register_judges(register):
    register("last-letter", LastLetterJudge, description="Last capital letter; test fixture.")


@hookimpl
def register_reporters(register):
    register("tsv", TsvReporter, description="Tab-separated leaderboard; test fixture.")


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("name")
    def hello(name):
        """Say hello (test fixture)."""
        click.echo(f"hello {name}")


@hookimpl
def benchmark_finished(result, run_dir):
    _event("benchmark_finished", model=result.model, benchmark=result.benchmark, run_dir=str(run_dir))


@hookimpl
def run_finished(results, out_dir):
    _event("run_finished", n=len(results), out_dir=str(out_dir))
