"""``vdpm-harness data pull dsr-train`` and ``train gsm --train`` on what it pulled, offline.

The hub is never contacted: ``huggingface_hub.snapshot_download`` is replaced by a copy of a local fixture built in
the layout the release is reported to have (``training/gsm/dsr_train.py`` says what is known and from where:
``train_qa_pairs.parquet`` with ``videoID, type, question, options, answer`` beside DSR-Bench's ``benchmark.parquet``),
plus an archive of videos (whether the release has one is unknown; the pull unpacks any). The one test of the real
library is the offline one: ``HF_HUB_OFFLINE=1`` in a subprocess, where ``snapshot_download`` refuses by itself.

References no one here wrote: the records are compared with the conversations of the original's ``qa_json_gen.py``
as the free-form writer writes them (``plugins/generators/llm/freeform/tables.py``, ``training_record``, whose layout
``tests/test_freeform.py`` checks the trainer reads), the tables are written by pyarrow, and the folder rules are
``store.building``'s (its marker; a folder with foreign files refused before any work).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vdpm_harness import write_video
from vdpm_harness.cli import add_entry_point_commands, cli
from vdpm_harness_plugins.generators.llm.freeform.tables import training_record
from vdpm_harness_training.gsm import dsr_train
from vdpm_harness_training.gsm.records import DataError, load_examples, record_files

from .conftest import cli_env, run_cli

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
huggingface_hub = pytest.importorskip("huggingface_hub")

#: DSR-Train's questions in the release's reported columns: options as DSR-Bench's tables write them ("A. text").
TRAIN_ROWS = [
    {"videoID": "koala_a", "type": "abs_dis", "question": "Is the dog closer to the camera at the end?",
     "options": ["A. Yes", "B. No", "C. It is as close", "D. It left the view"], "answer": "A"},
    {"videoID": "koala_a", "type": "rel_dir", "question": "From the dog's view, where does the ball go?",
     "options": ["A. Left", "B. Right", "C. Forward", "D. Backward"], "answer": "C"},
    {"videoID": "koala_b", "type": "abs_spd", "question": "Which car moves faster?",
     "options": ["A. The red car", "B. The blue car", "C. Both alike", "D. Neither moves"], "answer": "B"},
    {"videoID": "koala_b", "type": "non_temp", "question": "Where is the cyclist when the car stops?",
     "options": ["A. Behind it", "B. Beside it", "C. Ahead of it", "D. Out of view"], "answer": "D"},
]  # fmt: skip
BENCH_ROWS = [
    {"videoID": "bench_v", "question": "A DSR-Bench question never trained on?",
     "options": ["A. a", "B. b", "C. c", "D. d"], "answer": "A"},
]  # fmt: skip


def expected_records() -> list[dict]:
    """The conversations ``qa_json_gen.py`` makes of TRAIN_ROWS (options without their letters, video
    ``<videoID>.mp4``), written by the free-form writer's ``training_record``."""
    records = []
    for row in TRAIN_ROWS:
        qa = {"Question": row["question"], "Correct": row["answer"]}
        qa.update({option[0]: option[3:] for option in row["options"]})
        records.append(training_record(f"{row['videoID']}.mp4", qa))
    return records


def tiny_video(path: Path, seed: int) -> None:
    frames = np.random.default_rng(seed).integers(0, 255, size=(12, 56, 56, 3), dtype=np.uint8)
    write_video(path, frames, fps=6.0, preset="ultrafast")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A hub snapshot in the reported layout: the training and benchmark tables, a dataset card, the videos in a zip
    (``videos/<videoID>.mp4``)."""
    root = tmp_path_factory.mktemp("release")
    pq.write_table(pa.Table.from_pylist(TRAIN_ROWS), root / "train_qa_pairs.parquet")
    pq.write_table(pa.Table.from_pylist(BENCH_ROWS), root / "benchmark.parquet")
    (root / "README.md").write_text("---\nlicense: other\n---\n# DSR Suite data\n")
    videos = tmp_path_factory.mktemp("videos")
    with zipfile.ZipFile(root / "videos.zip", "w") as zf:
        for seed, video_id in enumerate(["koala_a", "koala_b", "bench_v"]):
            tiny_video(videos / f"{video_id}.mp4", seed)
            zf.write(videos / f"{video_id}.mp4", f"videos/{video_id}.mp4")
    return root


def fake_hub(monkeypatch, snapshot: Path) -> list[dict]:
    """``snapshot_download`` copies ``snapshot`` (and the ``.cache/huggingface`` a ``local_dir`` download leaves)
    into ``local_dir``; returns the calls' arguments."""
    calls: list[dict] = []

    def snapshot_download(repo_id, *, repo_type=None, local_dir=None, **kwargs):
        calls.append({"repo_id": repo_id, "repo_type": repo_type, "local_dir": local_dir, **kwargs})
        shutil.copytree(snapshot, local_dir, dirs_exist_ok=True)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        (Path(local_dir) / ".cache" / "huggingface" / ".gitignore").write_text("*\n")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def invoke(*args: str):
    add_entry_point_commands(cli)  # the trainer registers dsr-train through the vdpm_harness.commands entry point
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def pulled(release, tmp_path_factory) -> Path:
    """``data pull dsr-train --to DIR`` from the fixture release, once for the module."""
    folder = tmp_path_factory.mktemp("pulled") / "dsr-train"
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = fake_hub(monkeypatch, release)
        result = invoke("data", "pull", "dsr-train", "--to", str(folder))
    assert result.exit_code == 0, result.output
    assert f"dsr-train: data in {folder}, verified" in result.output
    assert f"train gsm --train {folder}" in result.output
    assert [(c["repo_id"], c["repo_type"]) for c in calls] == [("TencentARC/DSR_Suite-Data", "dataset")]
    return folder


# --- the pull ---------------------------------------------------------------------------------------------------------


def test_the_pull_unpacks_the_videos_and_the_trainer_reads_the_folder(pulled):
    marker = json.loads((pulled / ".vdpm-harness-built.json").read_text())  # store.building's: the harness made it
    assert "train_qa_pairs.parquet" in marker["files"] and "videos/koala_a.mp4" in marker["files"]
    manifest = json.loads((pulled / dsr_train.MANIFEST).read_text())
    assert manifest["dataset"] == "TencentARC/DSR_Suite-Data"
    assert manifest["unpacked"] == ["videos.zip"] and manifest["annotations"] == ["train_qa_pairs.parquet"]
    assert not (pulled / "videos.zip").exists() and (pulled / "videos" / "koala_b.mp4").is_file()

    examples = load_examples([str(pulled)])
    records = [
        {"video": Path(e.video).name, "conversations": [{"from": "human", "value": e.prompt_text},
                                                        {"from": "gpt", "value": e.answer}]}
        for e in examples
    ]  # fmt: skip
    assert records == expected_records()  # DSR-Bench's rows are not among them
    assert all(Path(e.video) == pulled / "videos" / Path(e.video).name for e in examples)
    assert [e.question_and_options()[1] for e in examples] == [row["options"] for row in TRAIN_ROWS]
    assert record_files([str(pulled)]) == [pulled / "train_qa_pairs.parquet"]
    # the file named, or a pattern: the same records, the videos found in the pulled folder
    for given in (pulled / "train_qa_pairs.parquet", pulled / "*train*.parquet"):
        assert [(e.video, e.prompt_text, e.answer) for e in load_examples([str(given)])] == [
            (e.video, e.prompt_text, e.answer) for e in examples
        ]
    result = invoke("data", "verify", "dsr-train", "--data-dir", str(pulled))
    assert result.exit_code == 0 and "verified" in result.output, result.output


def test_a_folder_pulled_before_is_replaced_and_a_foreign_one_refused(release, monkeypatch, tmp_path):
    calls = fake_hub(monkeypatch, release)
    again = tmp_path / "again"
    for _ in range(2):  # a folder the harness built (its marker lists everything in it) may be pulled into again
        result = invoke("data", "pull", "dsr-train", "--to", str(again))
        assert result.exit_code == 0, result.output
    assert len(calls) == 2 and [p.name for p in tmp_path.iterdir()] == ["again"]  # no staging folder left

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "IMPORTANT.txt").write_text("x\n")
    result = invoke("data", "pull", "dsr-train", "--to", str(foreign))
    assert result.exit_code != 0
    assert "holds files that vdpm-harness did not create (IMPORTANT.txt)" in result.output
    assert len(calls) == 2  # refused before any download
    assert [p.name for p in foreign.iterdir()] == ["IMPORTANT.txt"] and (foreign / "IMPORTANT.txt").read_text() == "x\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]


def test_missing_videos_are_reported_with_what_to_do_and_the_data_kept(release, monkeypatch, tmp_path):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(release, snapshot, ignore=shutil.ignore_patterns("*.zip"))
    fake_hub(monkeypatch, snapshot)
    folder = tmp_path / "dsr-train"
    result = invoke("data", "pull", "dsr-train", "--to", str(folder))
    assert result.exit_code == 1
    assert "2 training videos are missing" in result.output and "Koala-36M" in result.output
    assert str(folder / "videos") in result.output.replace("\n", "")
    assert (folder / "train_qa_pairs.parquet").is_file()  # kept: only the videos are wanting
    with pytest.raises(DataError, match="2 training videos are missing: .*koala_a.mp4"):
        load_examples([str(folder)])


def test_without_the_hub_the_error_names_the_dataset_and_writes_nothing(tmp_path):
    """The real ``huggingface_hub`` with ``HF_HUB_OFFLINE=1`` and an empty cache, as on a machine without access."""
    target = tmp_path / "dl" / "dsr-train"
    env = cli_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    proc = run_cli("data", "pull", "dsr-train", "--to", str(target), env=env, check=False)
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and "Traceback" not in output
    assert "could not download the dataset TencentARC/DSR_Suite-Data" in output
    assert "hf download TencentARC/DSR_Suite-Data --repo-type dataset --local-dir DIR" in output
    assert not target.exists() and list((tmp_path / "dl").iterdir()) == []


def test_an_unknown_name_and_the_help_list_what_can_be_pulled():
    result = invoke("data", "pull", "--help")
    assert result.exit_code == 0
    listing = result.output.split("Can be pulled:")[1].split()
    assert "dsr-train" in listing and "dsr" in listing and "dsr-synth" in listing
    assert "motion-basics" not in listing  # a benchmark without a download
    result = invoke("data", "pull", "dsr-trian")
    assert result.exit_code == 2
    assert "nothing called 'dsr-trian' can be pulled; did you mean 'dsr-train'" in result.output
    assert "what can be pulled: dsr-train," in result.output and ", dsr," in result.output
    result = invoke("data", "pull", "dsr-train", "--bench-arg", "x=1")
    assert result.exit_code == 2 and "takes no --bench-arg" in result.output


# --- layouts the release may have instead --------------------------------------------------------------------------


def test_the_originals_qa_pairs_and_train_qas_files_are_read_where_they_lie(tmp_path):
    """The generator's ``qa_pairs.json`` (``{videoID: [{"Type", "Question", "A".."D", "Correct"}]}``) in a sub-folder,
    videos in another; then a ``train_qas.json`` beside it wins (it is what ``qa_json_gen.py`` makes of them)."""
    folder = tmp_path / "copy"
    (folder / "DSR-Train").mkdir(parents=True)
    (folder / "clips").mkdir()
    qa_pairs: dict[str, list] = {}
    for row in TRAIN_ROWS:
        qa = {"Type": row["type"], "Question": row["question"], "Correct": row["answer"]}
        qa.update({option[0]: option[3:] for option in row["options"]})
        qa_pairs.setdefault(row["videoID"], []).append(qa)
    (folder / "DSR-Train" / "qa_pairs.json").write_text(json.dumps(qa_pairs))
    for seed, video_id in enumerate(qa_pairs):
        tiny_video(folder / "clips" / f"{video_id}.mp4", seed)
    examples = load_examples([str(folder)])
    records = [training_record(Path(e.video).name, {"Question": e.question_and_options()[0], "Correct": e.answer,
                                                    **{o[0]: o[3:] for o in e.question_and_options()[1]}})
               for e in examples]  # fmt: skip
    assert records == expected_records()
    assert all(Path(e.video).parent == folder / "clips" for e in examples)

    (folder / "DSR-Train" / "train_qas.json").write_text(json.dumps(expected_records()[:2]))
    assert record_files([str(folder)]) == [folder / "DSR-Train" / "train_qas.json"]
    assert len(load_examples([str(folder)])) == 2


def test_bad_tables_and_unknown_layouts_are_named(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    rows = [dict(TRAIN_ROWS[0]), {**TRAIN_ROWS[1], "answer": "E"}]
    pq.write_table(pa.Table.from_pylist(rows), bad / "train_qa_pairs.parquet")
    with pytest.raises(DataError, match=r"train_qa_pairs.parquet row 1: answer 'E' is not one of the option letters"):
        load_examples([str(bad)])
    pq.write_table(pa.Table.from_pylist([{"clip": "x", "q": "y"}]), bad / "train_qa_pairs.parquet")
    with pytest.raises(DataError, match=r"no column videoID or video, question or Question, answer or Correct"):
        load_examples([str(bad)])
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.Table.from_pylist(BENCH_ROWS), other / "benchmark.parquet")  # never taken as training data
    (other / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no DSR-Train annotations \(expected train_qas.json.*found: benchmark"):
        load_examples([str(other)])
    with pytest.raises(DataError, match="no file matches"):
        load_examples([str(other / "*.jsonl")])


# --- training on it -----------------------------------------------------------------------------------------------

TINY_TOML = """\
precision = "fp32"
batch_size = 2
pack_tokens = 2048
activation_checkpointing = 0.0
save_dtype = "float32"
[data]
max_seq_length = 2048
decode_workers = 0
frames = { nframes = 4, sampler = "floor", min_pixels = 784, max_pixels = 3136, size_multiple = 28 }
[optimizer.groups.llm]
params = ["model.language_model.", "lm_head."]
lr = 1e-3
[optimizer.groups.merger]
params = ["model.visual.merger."]
lr = 1e-3
[optimizer.groups.gsm]
params = ["model.gsm."]
lr = 1e-3
"""


def test_train_gsm_trains_two_steps_on_the_pulled_folder(pulled, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints
    from vdpm_harness_training.gsm.metrics import read_metrics

    gsm_checkpoints.make_tiny(tmp_path / "tiny")
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    out = tmp_path / "run"
    result = invoke("train", "gsm", "--base", str(tmp_path / "tiny"), "--train", str(pulled), "--out", str(out),
                    "--config", str(tmp_path / "tiny.toml"), "--max-steps", "2", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2] and sum(m["samples"] for m in metrics) == 4
    record = json.loads((out / "run.json").read_text())
    assert record["data"]["files"] == [str(pulled / "train_qa_pairs.parquet")] and record["data"]["examples"] == 4
