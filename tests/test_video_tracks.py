"""``video-tracks`` end to end on synthetic videos: with every stage an oracle it reproduces the scenes' exact
SceneTracks (at the sampled frames, where the objects are visible) and the answers of the exact-geometry questions;
with a learned stage swapped in (random tiny weights here) it runs to completion and reports that stage's error; bad
inputs give one record per video naming the stage; ``dsr-templates`` reads its output unchanged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vdpm_harness import SceneTrack, plugins

from .conftest import run_cli

ORACLES = {"detector": "oracle", "tracker": "oracle", "reconstructor": "oracle", "orientation": "oracle"}
CLASSES = {"agents": "person. dog. car", "objects": "ball. box. cone"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two synthetic scenes of 36 frames (128x96) with their exact tracks."""
    out = tmp_path_factory.mktemp("scenes")
    plugins.Host().create("generators", "synth-scenes", {"n_videos": 2, "width": 128, "height": 96, "duration": 2.4,
                                                         "min_objects": 3}).run(out, seed=11)  # fmt: skip
    return out


def generate(out, **options):
    host = plugins.Host()
    return host.create("generators", "video-tracks", {**ORACLES, **CLASSES, **options}).run(out, seed=0)


@pytest.mark.slow
def test_all_oracle_stages_reproduce_the_exact_tracks(scenes, tmp_path):
    out = tmp_path / "tracks"
    proc = run_cli("generate", "video-tracks", "--videos", str(scenes), "--out", str(out), "--detector", "oracle",
                   "--tracker", "oracle", "--reconstructor", "oracle", "--orientation", "oracle", "--agents",
                   CLASSES["agents"], "--objects", CLASSES["objects"], "--detect-every", "1", "--questions", "6",
                   "--stage-arg", "tracker:min_iou=0.6;reconstructor:stride=2")  # fmt: skip
    stats = json.loads(proc.stdout)
    assert stats["tracks"] == 2 and stats["failed"] == 0
    for name in ("scene_0000", "scene_0001"):
        perceived = SceneTrack.load(out / f"{name}.npz")
        truth = SceneTrack.load(scenes / f"{name}.npz")
        frames = np.asarray(perceived.meta["frame_indices"])
        np.testing.assert_array_equal(frames, np.round(np.linspace(0, truth.n_frames - 1, 32)).astype(int))
        np.testing.assert_array_equal(perceived.timestamps, truth.timestamps[frames])
        np.testing.assert_array_equal(perceived.camera_to_world, truth.camera_to_world[frames])
        np.testing.assert_array_equal(perceived.intrinsics, truth.intrinsics)
        seen = [o for o in truth.objects if o.visible[frames].any()]
        assert sorted(o.meta["truth_id"] for o in perceived.objects) == sorted(o.object_id for o in seen)
        for obj in perceived.objects:
            exact = next(o for o in truth.objects if o.object_id == obj.meta["truth_id"])
            assert obj.label == exact.label and obj.is_agent == exact.is_agent
            np.testing.assert_array_equal(obj.visible, exact.visible[frames])
            v = obj.visible
            np.testing.assert_array_equal(obj.boxes[v], exact.boxes[frames][v])
            np.testing.assert_allclose(obj.centroids[v], exact.centroids[frames][v], atol=1e-9)
            if obj.is_agent:
                np.testing.assert_allclose(obj.orientations[v], exact.orientations[frames][v], atol=1e-9)
        assert (out / "perception" / f"{name}.npz").is_file() and (out / "perception" / f"{name}.json").is_file()
    errors = stats["errors"]
    assert errors["detector"] == {"recall": 1.0, "precision": 1.0}
    assert errors["tracker"] == {"box_iou": 1.0, "tracked": 1.0}
    assert errors["reconstructor"]["rotation_deg"] == 0 and errors["reconstructor"]["position_rel"] < 1e-12
    assert errors["orientation"]["facing_deg"] < 1e-6 and errors["orientation"]["accepted"] == 1.0
    answers = stats["answers"]
    assert answers["both"] > 0 and answers["agreement"] == 1.0
    manifest = json.loads((out / "video_tracks.json").read_text())
    assert [v["video"] for v in manifest["videos"]] == ["scene_0000.mp4", "scene_0001.mp4"]
    assert manifest["stages"]["tracker"]["options"]["min_iou"] == 0.6


@pytest.mark.slow
def test_dsr_templates_reads_the_tracks_unchanged(scenes, tmp_path):
    generate(tmp_path / "tracks", videos=str(scenes), intermediates="none")
    stats = (
        plugins.Host()
        .create("generators", "dsr-templates", {"tracks": str(tmp_path / "tracks"), "qa_per_video": 12})
        .run(tmp_path / "qa", seed=1)
    )
    assert stats["videos"] == 2 and stats["questions"] > 0 and not stats["errors"]
    rows = (tmp_path / "qa" / "DSRBench.tsv").read_text().splitlines()
    assert len(rows) == stats["questions"] + 1 and "scene_000" in rows[1]


@pytest.mark.slow
def test_a_learned_stage_runs_and_reports_its_error(scenes, tmp_path):
    """Pi3 at random tiny weights in place of the exact reconstruction: the tracks are written and valid, and the
    reconstruction's error shows in the statistics while the other stages stay exact."""
    pytest.importorskip("transformers")
    architecture = json.dumps({"encoder": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
                               "decoder_dim": 32, "decoder_depth": 2, "decoder_heads": 2, "head_dim": 32,
                               "head_depth": 1, "head_heads": 2, "camera_dim": 16})  # fmt: skip
    stats = generate(tmp_path / "tracks", videos=str(scenes / "scene_0001.mp4"), reconstructor="pi3",
                     stage_arg=["reconstructor:random_weights=true", f"reconstructor:architecture={architecture}",
                                "reconstructor:pixel_limit=3000", "reconstructor:device=cpu",
                                "reconstructor:conf_threshold=0", "reconstructor:edge_rtol=1e9"])  # fmt: skip
    assert stats["tracks"] == 1 and stats["stages"]["reconstructor"] == "pi3"
    track = SceneTrack.load(tmp_path / "tracks" / "scene_0001.npz")
    assert track.meta["stages"]["reconstructor"] == "pi3" and track.meta["scale"] == "normalized"
    errors = stats["errors"]
    assert errors["detector"]["recall"] == 1.0 and errors["tracker"]["box_iou"] == 1.0
    assert errors["reconstructor"]["rotation_deg"] > 0.01 and errors["reconstructor"]["position_rel"] > 0.01
    assert stats["seconds_per_video"]["reconstructor"] > 0


def test_bad_inputs_give_a_record_per_video_naming_the_stage(scenes, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(scenes / "scene_0000.mp4", videos / "good.mp4")
    shutil.copy(scenes / "scene_0000.npz", videos / "good.npz")
    shutil.copy(scenes / "scene_0001.mp4", videos / "nothing.mp4")  # its classes match nothing in it
    shutil.copy(scenes / "scene_0001.npz", videos / "nothing.npz")
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")  # listed, but its file is missing
    from vdpm_harness import write_video

    write_video(videos / "short.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10.0)
    classes = tmp_path / "agent_object.csv"
    classes.write_text("videoID,agent,obj\nnothing,zebra,None\n")
    out = tmp_path / "tracks"
    stats = generate(out, videos=str(videos), classes=str(classes))
    assert stats["tracks"] == 1 and stats["failed"] == 5
    failures = {f["video"]: f for f in json.loads((out / "failures.json").read_text())}
    assert {video: f["stage"] for video, f in failures.items()} == {
        "corrupt.mp4": "frames",
        "gone.mp4": "frames",
        "empty.mp4": "frames",
        "short.mp4": "frames",
        "nothing.mp4": "detector",
    }
    assert "10 frames, fewer than the 32" in failures["short.mp4"]["error"]
    assert "no object detected for the phrases ['zebra']" in failures["nothing.mp4"]["error"]
    assert all(video in f["error"] for video, f in failures.items())
    assert SceneTrack.load(out / "good.npz").objects
    # a rerun keeps the finished video and retries only the failed ones
    again = generate(out, videos=str(videos), classes=str(classes))
    assert again["tracks"] == 1 and again["failed"] == 5 and again["seconds_per_video"] == {}
    with pytest.raises(ValueError, match="does not exist"):
        generate(out, videos=str(tmp_path / "missing.mp4"))


def test_stage_arg_repeats_on_the_command_line(scenes, tmp_path):
    """``--stage-arg`` repeats as ``run``'s ``--model-arg`` does (click's ``multiple=True``), one argument per
    occurrence, so a value holding commas stays whole (here the truth folder 'truth,copy'); the single-text form
    ``A;B`` still works. Reference: the exact identity of the stages' options from both command lines with those the
    Python API gets from the same arguments as a list."""
    videos, truth = tmp_path / "videos", tmp_path / "truth,copy"
    videos.mkdir()
    truth.mkdir()
    shutil.copy(scenes / "scene_0000.mp4", videos / "clip.mp4")
    shutil.copy(scenes / "scene_0000.npz", truth / "clip.npz")
    args = [f"{stage}:truth={truth}" for stage in ORACLES] + ["tracker:min_iou=0.6", "reconstructor:stride=2"]
    common = ["generate", "video-tracks", "--videos", str(videos), "--detector", "oracle", "--tracker", "oracle",
              "--reconstructor", "oracle", "--orientation", "oracle", "--agents", CLASSES["agents"], "--objects",
              CLASSES["objects"], "--intermediates", "none"]  # fmt: skip
    repeated = [part for arg in args for part in ("--stage-arg", arg)]
    run_cli(*common, "--out", str(tmp_path / "repeated"), *repeated)
    run_cli(*common, "--out", str(tmp_path / "joined"), "--stage-arg", ";".join(args[:3]), "--stage-arg",
            ";".join(args[3:]))  # fmt: skip
    generate(tmp_path / "api", videos=str(videos), intermediates="none", stage_arg=args)
    stages = {name: json.loads((tmp_path / name / "video_tracks.json").read_text())["stages"]
              for name in ("repeated", "joined", "api")}  # fmt: skip
    assert stages["repeated"] == stages["joined"] == stages["api"]
    options = {stage: stages["repeated"][stage]["options"] for stage in ORACLES}
    assert all(o["truth"] == str(truth) for o in options.values())
    assert options["tracker"]["min_iou"] == 0.6 and options["reconstructor"]["stride"] == 2
    for name in ("repeated", "joined", "api"):
        assert (tmp_path / name / "clip.npz").read_bytes() == (tmp_path / "api" / "clip.npz").read_bytes()
    bad = run_cli(*common, "--out", str(tmp_path / "bad"), "--stage-arg", "tracker:min_iou=0.6", "--stage-arg",
                  "min_iou=0.6", check=False)  # fmt: skip
    assert bad.returncode != 0 and "stage argument 'min_iou=0.6' is not STAGE:key=value" in bad.stderr
