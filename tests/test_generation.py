"""Resumable generation (``ItemGenerator`` and its driver, ``vdpm_harness.generation``): a rerun produces only the
missing items and writes the bytes of an uninterrupted run, failures are named and retried, a run that produces
nothing fails, files the generator did not write are left alone; and, for both built-in generators, ``kill -9`` then
rerun and ``torchrun`` with two processes give output byte-identical to one clean run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdpm_harness import GenerationError, Generator, ItemFiles, ItemGenerator, Strict, write_atomic
from vdpm_harness.generation import WORK_ROOT
from vdpm_harness_plugins.generators.questions.dsr_templates.generator import DSRTemplates
from vdpm_harness_plugins.generators.scenes.synth.generator import SynthScenes
from vdpm_harness_plugins.generators.scenes.synth.rendering import GENERATOR_VERSION

from .conftest import cli_env, run_cli
from .test_dsr_templates import write_tracks

TORCHRUN = Path(sys.executable).with_name("torchrun")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Squares(ItemGenerator):
    """Item ``itemK`` writes ``itemK.txt`` holding ``(seed + K)**2``; ``all.txt`` joins the values in item order.
    ``broken`` items raise; ``stop_at`` interrupts the run (as a signal would) when that item starts."""

    id = "squares"

    class Options(Strict):
        n: int = 4

    def __init__(self, options=None, broken=(), stop_at=None):
        super().__init__(options)
        self.broken, self.stop_at, self.calls = set(broken), stop_at, []

    def items(self, seed):
        return [f"item{k}" for k in range(self.options.n)]

    def produce(self, item, seed, files):
        if item == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append(item)
        if item in self.broken:
            raise RuntimeError(f"cannot square {item}")
        value = (seed + int(item.removeprefix("item"))) ** 2
        with files.writing(f"{item}.txt") as path:
            path.write_text(str(value))
        return {"value": value}

    def combine(self, out, seed, results):
        values = [record["value"] for record in results.records.values()]
        write_atomic(out / "all.txt", " ".join(map(str, values)))
        return {"values": values, "failed": list(results.failures), "fresh": sorted(results.fresh)}


def test_a_rerun_produces_only_the_missing_items_and_writes_the_same_bytes(tmp_path):
    clean = Squares().run(tmp_path / "clean", seed=2)
    assert clean == {"values": [4, 9, 16, 25], "failed": [], "fresh": ["item0", "item1", "item2", "item3"]}
    interrupted = Squares(stop_at="item2")
    with pytest.raises(KeyboardInterrupt):
        interrupted.run(tmp_path / "out", seed=2)
    assert interrupted.calls == ["item0", "item1"] and not (tmp_path / "out" / "all.txt").exists()
    rerun = Squares()
    stats = rerun.run(tmp_path / "out", seed=2)
    assert rerun.calls == ["item2", "item3"] and stats["fresh"] == ["item2", "item3"]
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "clean")  # the work folder is gone: every item is done
    assert not (tmp_path / "out" / WORK_ROOT).exists()


def test_records_belong_to_one_seed_and_set_of_options(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        Squares(stop_at="item3").run(tmp_path, seed=1)
    other = Squares()
    assert other.run(tmp_path, seed=5)["values"] == [25, 36, 49, 64] and len(other.calls) == 4
    more = Squares({"n": 5})
    more.run(tmp_path, seed=1)
    assert len(more.calls) == 5  # n is an option: the interrupted seed-1 run of n=4 is not reused
    assert (tmp_path / "all.txt").read_text() == "1 4 9 16 25"


def test_a_failing_item_is_named_the_others_are_finished_and_the_rerun_retries_it(tmp_path, capsys):
    first = Squares(broken={"item1"})
    stats = first.run(tmp_path, seed=0)
    assert (
        stats["values"] == [0, 4, 9] and stats["failed"] == ["item1"] and first.calls == [f"item{k}" for k in range(4)]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "item item1 failed" in err and "RuntimeError: cannot square item1" in err and "1 failed" in err
    assert (tmp_path / WORK_ROOT).is_dir()  # kept: it holds the finished items the rerun reuses
    second = Squares()
    assert second.run(tmp_path, seed=0)["values"] == [0, 1, 4, 9] and second.calls == ["item1"]
    assert not (tmp_path / WORK_ROOT).exists()


def test_nothing_produced_is_an_error_naming_the_items(tmp_path):
    with pytest.raises(GenerationError, match=r"nothing was produced: all 4 items failed: item0: RuntimeError: "
                       r"cannot square item0;.*; and 1 more"):  # fmt: skip
        Squares(broken={f"item{k}" for k in range(4)}).run(tmp_path, seed=0)
    assert not (tmp_path / "all.txt").exists() and not (tmp_path / WORK_ROOT).exists()


def test_files_the_generator_did_not_write_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x").write_text("also mine")
    Squares().run(tmp_path, seed=0)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / ".cache" / "x").read_text() == "also mine"


def test_item_files_are_renamed_into_place_only_when_complete(tmp_path):
    files = ItemFiles(tmp_path / "out", tmp_path / "tmp")
    with files.writing("clip.mp4") as path:
        assert path.parent == tmp_path / "tmp" and path.name.endswith("-clip.mp4")  # the writer sees the extension
        path.write_bytes(b"complete")
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == b"complete"
    with pytest.raises(OSError), files.writing("clip.mp4") as path:
        path.write_bytes(b"half")
        raise OSError("disk full")
    assert (tmp_path / "out" / "clip.mp4").read_bytes() == b"complete" and not list((tmp_path / "tmp").iterdir())
    source = tmp_path / "source.bin"
    source.write_bytes(b"complete")
    before = (tmp_path / "out" / "clip.mp4").stat().st_ino
    files.copy(source, "clip.mp4")  # same content: nothing is rewritten
    assert (tmp_path / "out" / "clip.mp4").stat().st_ino == before


def test_required_methods_are_abstract_and_versions_are_declared():
    class NoProduce(ItemGenerator):
        def items(self, seed):
            return []

        def combine(self, out, seed, results):
            return {}

    with pytest.raises(TypeError, match="produce"):
        NoProduce()
    # dsr-templates 2: matched distractors and speeds per second by default (issue 15)
    assert Generator.version == "1" and SynthScenes.version == GENERATOR_VERSION == "2" and DSRTemplates.version == "2"


def test_every_video_missing_fails_with_a_message(tmp_path):
    tracks = write_tracks(tmp_path / "tracks", [1, 2])
    for video in tracks.glob("*.mp4"):
        video.unlink()
    proc = run_cli("generate", "dsr-templates", "--tracks", str(tracks), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert "dsr-templates: nothing was produced: all 2 items failed: scene_0001.npz: FileNotFoundError:" in message
    assert "scene_0001.mp4: video missing" in message and "scene_0002.mp4: video missing" in message
    assert proc.stdout == "" and not (tmp_path / "out" / "DSRBench.tsv").exists()


def test_no_question_at_all_is_an_error(tmp_path):
    tracks = write_tracks(tmp_path / "tracks", [1, 2], n_frames=20)  # too short for the 32 sampled frames
    with pytest.raises(GenerationError, match=r"no question could be written from 2 videos .*fewer than 32 frames"):
        DSRTemplates({"tracks": str(tracks)}).run(tmp_path / "out", seed=0)


# --- the built-in generators under kill -9 and torchrun ------------------------------------------------------------

ITEMS = {"synth-scenes": 10, "dsr-templates": 12}
SCENE_ARGS = ["--width", "128", "--height", "96", "--fps", "8", "--duration", "4", "--preset", "ultrafast"]


@pytest.fixture(scope="module")
def scene_tracks(tmp_path_factory):
    """12 rendered scenes of 32 frames (the input of dsr-templates)."""
    folder = tmp_path_factory.mktemp("scenes")
    SynthScenes({"n_videos": 12, "width": 128, "height": 96, "fps": 8.0, "duration": 4.0,
                 "preset": "ultrafast"}).run(folder, seed=7)  # fmt: skip
    return folder


def commands(tracks: Path) -> dict[str, list[str]]:
    return {
        "synth-scenes": ["generate", "synth-scenes", "--n-videos", "10", "--seed", "3", *SCENE_ARGS],
        "dsr-templates": ["generate", "dsr-templates", "--tracks", str(tracks), "--qa-per-video", "80",
                          "--trim-future", "--seed", "3"],
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["synth-scenes", "dsr-templates"])
def test_kill_9_then_rerun_is_byte_identical_to_one_clean_run(tmp_path, scene_tracks, generator):
    args = commands(scene_tracks)[generator]
    run_cli(*args, "--out", str(tmp_path / "clean"))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vdpm_harness", *args, "--out", str(out)], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(f"{WORK_ROOT}/*/items/*.json")):
        time.sleep(0.005)
    proc.kill()  # SIGKILL, mid-way: some items are finished, the one in progress is not
    proc.wait()
    finished = len(list(out.glob(f"{WORK_ROOT}/*/items/*.json")))
    total = ITEMS[generator]
    assert 1 <= finished < total and not (out / "manifest.json").exists() and not (out / "stats.json").exists()
    rerun = run_cli(*args, "--out", str(out))
    assert f"{total} items: {total - finished} produced by this run, {finished} by an earlier one" in " ".join(
        rerun.stderr.split()
    )
    assert snapshot(out) == snapshot(tmp_path / "clean")


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["synth-scenes", "dsr-templates"])
def test_two_processes_under_torchrun_equal_one(tmp_path, scene_tracks, generator):
    pytest.importorskip("torch")
    args = commands(scene_tracks)[generator]
    one = run_cli(*args, "--out", str(tmp_path / "one"))
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "vdpm_harness", *args,
               "--out", str(tmp_path / "two")]  # fmt: skip
    two = subprocess.run(command, env=cli_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    assert snapshot(tmp_path / "two") == snapshot(tmp_path / "one")
    stats_one, stats_two = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints the statistics
    drop = {"out", "seconds", "render_seconds", "frames_per_second", "render_frames_per_second"}
    assert {k: v for k, v in stats_two.items() if k not in drop} == {
        k: v for k, v in stats_one.items() if k not in drop
    }
    by_rank = [int(n) for n in two.stderr.split("(by rank: ")[1].split(")")[0].split(", ")]
    assert len(by_rank) == 2 and sum(by_rank) == ITEMS[generator] and min(by_rank) > 0
