"""The ``freeform-qa`` generator: trajectory windows against coordinates computed by hand from the world, the
original's exact prompt, the validation of the written question, re-asks, verification, resumption, the output
layouts (read back by the ``dsr`` benchmark) and the command line, against a scripted server on 127.0.0.1.

The prompt expected is the DSR Suite's own (TencentARC/DSR_Suite ``data/qa_nontemp.py``), written below as the
original's ``str.format`` call. Scenes: 32 frames at 10 fps (frame k shown as k/10 s); the camera looks along world
+y from y = -6 and slides along +x by 0.1 per frame, so its self frame (x forward, y left, z up) at frame k maps a
world point (x, y, z) to (y + 6, -(x - 0.1 k), z - 1.5). The agent "person" stands at (2, 0, 1.5) facing world +y,
so its frame maps (x, y, z) to (y, -(x - 2), z - 1.5).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vdpm_harness.generation import GenerationError
from vdpm_harness.geometry import look_at
from vdpm_harness.plugins import get_host
from vdpm_harness.scene import ObjectTrack, SceneTrack
from vdpm_harness.video import write_video
from vdpm_harness_plugins.generators.llm.freeform.generator import FreeformQA, video_rng
from vdpm_harness_plugins.generators.llm.freeform.trajectories import SampledTrack, TrialDrawer
from vdpm_harness_plugins.generators.llm.freeform.validation import read_letter, read_question
from vdpm_harness_plugins.generators.llm.replies import Unparseable

from .chat_server import ChatServer, Status, all_text
from .conftest import cli_env, run_cli

SECRET = "sk-freeform-0c2e4a6b8d1f3e5a7c9b"
FAST = {"backoff": 0.01, "max_retries": 1, "timeout": 5.0}
T, FPS = 32, 10.0
K = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])


def original_prompt(agent, obj_coords, time_s, time_e, timestamps_tmp) -> str:
    """``data/qa_nontemp.py``: the user message, built as the original builds it."""
    return ("From the perspective of {} in a video, {} are the 3D coordinates (x,y,z) of some objects between {:.1f}s "
            "and {:.1f}s. The positive direction of x, y, z axis are forward, left, up respectively. The coordinates "
            "are collected at {}. According to the change of 3D relationship between objects, please generate one "
            "question, which cannot be answered only with 2D knowledge and without 3D knowledge, and 4 answers where "
            "one of them is the correct answer. The question should not include description of perspective. The "
            "question should not be quantitative and related to accurate 3D coordinates. All objects must be refered "
            "with their bounding box coordinates given at the beginning. In a new line, only output your question. "
            "Then in 4 new lines, only output your 4 answers. Then in a new line, only output the symbol of correct "
            "answer.").format(agent, str(obj_coords), time_s, time_e,
                              ", ".join(str(x) + "s" for x in timestamps_tmp))  # fmt: skip


# --- scenes ---------------------------------------------------------------------------------------------------------


def camera(k: int) -> np.ndarray:
    return look_at([0.1 * k, -6.0, 1.5], [0.1 * k, 0.0, 1.5])


def facing_plus_y() -> np.ndarray:
    forward, up = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    return np.stack([forward, np.cross(up, forward), up], axis=1)


def ball(k: int) -> list[float]:
    return [-2.0 + 0.1 * k, 2.0 - 0.05 * k, 1.0]


def box_of(k: int, shift: int = 0) -> list[float]:
    return [10 + k + shift, 20, 30 + k + shift, 40]


def make_track(ball_lost_from: int | None = None, shift: int = 0) -> SceneTrack:
    """The scene of the module docstring; ``shift`` moves the box's image box right (one scene per clip)."""
    seen = np.array([ball_lost_from is None or k < ball_lost_from for k in range(T)])
    frames = range(T)
    person_boxes = np.array([box_of(k, 50) for k in frames], float)
    ball_boxes = np.array([box_of(k) for k in frames], float)
    box_boxes = np.array([[60 + shift, 10, 70 + shift, 30]] * T, float)
    objects = [
        ObjectTrack("person", True, np.array([[2.0, 0.0, 1.5]] * T), person_boxes, np.ones(T, bool),
                    np.stack([facing_plus_y()] * T), object_id="p"),
        ObjectTrack("ball", False, np.array([ball(k) for k in frames]), ball_boxes, seen, object_id="b"),
        ObjectTrack("box", False, np.array([[0.0, 3.0, 1.5]] * T), box_boxes, np.ones(T, bool), object_id="x"),
    ]  # fmt: skip
    return SceneTrack(timestamps=np.arange(T) / FPS, camera_to_world=np.stack([camera(k) for k in range(T)]),
                      intrinsics=K, image_size=(128, 96), objects=objects, fps=FPS).validate()  # fmt: skip


WORLD = {"person": lambda k: [2.0, 0.0, 1.5], "ball": ball, "box": lambda k: [0.0, 3.0, 1.5]}


def self_frame(point, k: int) -> list[float]:
    x, y, z = point
    return [y + 6.0, -(x - 0.1 * k), z - 1.5]


def person_frame(point) -> list[float]:
    x, y, z = point
    return [y, -(x - 2.0), z - 1.5]


def write_tracks(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        make_track(shift=i).save(folder / f"clip_{i}.npz")
        write_video(folder / f"clip_{i}.mp4", rng.integers(0, 255, (T, 48, 64, 3), dtype=np.uint8), FPS,
                    preset="ultrafast")  # fmt: skip
    return folder


# --- trajectories ---------------------------------------------------------------------------------------------------


def trials(n_seeds: int = 12, **track):
    scene = SampledTrack(make_track(**track))
    drawn = []
    for seed in range(n_seeds):
        drawer = TrialDrawer(scene, video_rng(seed, "clip"))
        drawn += [drawer.draw()[0] for _ in range(4)]
    return scene, [t for t in drawn if t is not None]


def test_coordinates_are_the_observers_view_of_the_world():
    scene, drawn = trials()
    assert scene.times == [k / 10 for k in range(T)] and scene.agent_labels == ["person"]
    kinds = set()
    for trial in drawn:
        observer = trial.observer_entity.get("label", "camera")
        kinds.add((trial.qa_type, observer))
        for target in trial.targets:
            label = target["label"]
            for i, k in enumerate(range(trial.start, trial.end + 1)):
                world = WORLD[label](k)
                if observer == "person":
                    expected = person_frame(world)  # it does not move: frozen (abs) and moving (rel) agree
                elif trial.qa_type == "abs":
                    expected = self_frame(world, trial.t_obs)  # the camera frozen at t_obs
                else:
                    expected = self_frame(world, k)  # the camera of each frame
                assert np.allclose(trial.coordinates[target["name"]][i], expected, atol=1e-9), (trial, label, k)
    assert kinds == {("abs", "camera"), ("abs", "person"), ("rel", "camera"), ("rel", "person")}


def test_names_windows_and_the_observer_follow_the_original():
    scene, drawn = trials()
    for trial in drawn:
        assert 3 <= trial.end - trial.start and trial.end <= 29  # frames 30 and 31 are never in a window
        for target in trial.targets:
            box = target["box"]
            assert target["name"] == f"{target['label']} with initial bounding box coordinates " + (
                f"[{box[0]},{box[1]},{box[2]},{box[3]}]") and target["box_frame"] == trial.start  # fmt: skip
        assert trial.observer_entity.get("entity") not in [t["entity"] for t in trial.targets]
        time = f"{scene.times[trial.t_obs]:.1f}s" if trial.qa_type == "abs" else None
        if trial.observer_entity["entity"] == "camera":
            assert trial.observer == (f"camera at {time}" if time else "camera")
        elif time:
            assert trial.observer == f"person with bounding box coordinates {scene.box_text(0, trial.t_obs)} at {time}"
        else:
            assert trial.observer == f"person with initial bounding box coordinates {scene.box_text(0, trial.start)}"


def test_a_window_ends_before_a_target_is_lost():
    _, drawn = trials(ball_lost_from=12)
    with_ball = [t for t in drawn if any(target["label"] == "ball" for target in t.targets)]
    assert with_ball and all(t.end <= 11 and t.start <= 8 for t in with_ball)
    later = [t for t in drawn if t.start >= 12]  # windows after the loss go on without the ball
    assert later and all("ball" not in str(t.coordinates) for t in later)


def test_the_draws_repeat_for_a_seed_and_a_short_track_is_refused():
    scene = SampledTrack(make_track())
    first = [TrialDrawer(scene, video_rng(5, "clip")).draw()[0] for _ in range(2)]
    again = [TrialDrawer(scene, video_rng(5, "clip")).draw()[0] for _ in range(2)]
    assert first == again
    short = make_track()
    short.timestamps, short.camera_to_world = short.timestamps[:20], short.camera_to_world[:20]
    for obj in short.objects:
        obj.centroids, obj.boxes, obj.visible = obj.centroids[:20], obj.boxes[:20], obj.visible[:20]
        obj.orientations = None if obj.orientations is None else obj.orientations[:20]
    with pytest.raises(ValueError, match="20 frames, at least 32"):
        SampledTrack(short)


# --- validation -----------------------------------------------------------------------------------------------------

BOXES = {"10,20,30,40", "60,10,70,30"}
LABELS = {"ball", "box"}
QUESTION = ("Does the ball with initial bounding box coordinates [10,20,30,40] get closer to the box with initial "
            "bounding box coordinates [60,10,70,30] between 1.0s and 2.0s?")  # fmt: skip
OPTIONS = ["Yes, it approaches the box", "No, it moves away from the box", "It keeps the same distance",
           "It first approaches, then moves away"]  # fmt: skip


def reply(question=QUESTION, options=("A. ", "B. ", "C. ", "D. "), texts=OPTIONS, last="A") -> str:
    return "\n".join([question, *(p + t for p, t in zip(options, texts)), last])


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        (reply(), "A"),
        (reply(options=("",) * 4, last="Answer: (C)"), "C"),
        (reply(question="**Question:** " + QUESTION, options=("(A) ", "(B) ", "(C) ", "(D) "), last="**B**"), "B"),
        ("<think>Let me see.\nThe ball moves.</think>\n\n" + reply(options=("A) ", "B) ", "C) ", "D) ")), "A"),
        (reply(last="D. It first approaches, then moves away"), "D"),
        (reply(question=QUESTION.replace("[10,20,30,40]", "[10, 20, 30, 40]")), "A"),
    ],
)
def test_well_formed_questions_are_read(text, correct):
    question = read_question(text, BOXES, LABELS)
    assert question.correct == correct and list(question.options.values()) == OPTIONS
    assert question.question.startswith("Does the ball")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n".join(reply().split("\n")[:5]), "line_count"),
        (reply() + "\nBecause the distance shrinks.", "line_count"),
        (reply(texts=[OPTIONS[0], OPTIONS[1], OPTIONS[0].upper(), OPTIONS[3]]), "repeated_option"),
        (reply(options=("B. ", "A. ", "C. ", "D. ")), "option_order"),
        (reply(texts=["", *OPTIONS[1:]]), "empty_option"),
        (reply(last="E"), "bad_letter"),
        (reply(last="A or B"), "bad_letter"),
        (reply(last="A. It stays"), "bad_letter"),
        (reply(question=QUESTION.replace("[60,10,70,30]", "[1,2,3,4]")), "unknown_box"),
        (reply(question="Does the first object get closer to the second one?"), "no_box"),
        (
            reply(question=QUESTION.replace(" with initial bounding box coordinates [60,10,70,30]", "")),
            "unnamed_object",
        ),
        (reply(texts=[*OPTIONS[:3], "It moves 2 meters closer"]), "quantitative"),
        (reply(question=QUESTION.replace("get closer to", "move along the x-axis towards")), "quantitative"),
        (reply(texts=[*OPTIONS[:3], "It ends near (1.2, 3.4)"]), "quantitative"),
        (reply(question="From the camera's perspective, " + QUESTION.lower()), "perspective"),
    ],
)
def test_malformed_questions_are_rejected_with_a_reason(text, reason):
    with pytest.raises(Unparseable) as error:
        read_question(text, BOXES, LABELS)
    assert error.value.reason == reason


@pytest.mark.parametrize(("text", "letter"), [("C", "C"), ("The answer is (B).", "B"), ("Thinking...\n**D**", "D")])
def test_verification_letters(text, letter):
    assert read_letter(text) == letter


@pytest.mark.parametrize("text", ["", "A and B", "the first one"])
def test_verification_needs_one_letter(text):
    with pytest.raises(Unparseable):
        read_letter(text)


# --- the generator against a scripted endpoint -----------------------------------------------------------------------

NAME = re.compile(r"'([a-z]+) with initial bounding box coordinates (\[[0-9,]+\])'")


def writer_reply(body: dict, correct: str = "A") -> str:
    """A valid question about the first object of the prompt."""
    label, box = NAME.search(all_text(body)).groups()
    return (
        f"Is the {label} with initial bounding box coordinates {box} moving away from the observer?\n"
        f"A. Yes, steadily\nB. No, it comes closer\nC. It stays where it is\nD. It circles the observer\n{correct}"
    )


def run_freeform(server: ChatServer, tracks: Path, out: Path, seed: int = 0, **options):
    generator = FreeformQA({"tracks": str(tracks), "base_url": server.url, "api_key": SECRET, **FAST, **options})
    generator.id = "freeform-qa"
    return generator.run(out, seed=seed)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def server():
    with ChatServer(responder=writer_reply) as chat:
        yield chat


def test_the_prompt_is_the_originals_and_the_records_are_its_records(tmp_path, server):
    tracks = write_tracks(tmp_path / "tracks", n=2)
    stats = run_freeform(server, tracks, tmp_path / "out", qa_per_video=2)
    out = tmp_path / "out"
    provenance = lines(out / "provenance.jsonl")
    assert stats["questions"] == len(provenance) == len(server.requests) == 4
    times = [k / 10 for k in range(T)]
    bodies = [request.body for request in server.requests]  # two tracks at once: in any order
    for record in provenance:
        start, end = record["window"]["frames"]
        expected = original_prompt(record["observer"], record["coordinates"], times[start], times[end],
                                   times[start : end + 1])  # fmt: skip
        assert {"model": "deepseek-r1", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                                     {"role": "user", "content": expected}]} in bodies  # fmt: skip
    pairs = json.loads((out / "qa_pairs_nontemp.json").read_text())
    first = pairs["clip_0"][0]
    record = provenance[0]
    label = "Following" if record["qa_type"] == "rel" else "From"
    assert first["Question"].startswith(f"{label} the perspective of {record['observer']}, between ")
    assert first["Question"].endswith(", " + record["reply"].split("\n")[0].lower())
    assert (first["A"], first["Correct"]) == ("Yes, steadily", "A")  # the letters are stripped
    rows = (out / "DSRBench.tsv").read_text().splitlines()
    assert rows[0] == "index\tvideo\tquestion\toptions\tanswer\ttask_type" and rows[1].endswith("\tA\tnon_temp")
    training = json.loads((out / "train_qas.json").read_text())
    assert training[0]["conversations"][0]["value"] == (
        f"<video>\n{first['Question']}\nOptions:\nA Yes, steadily\nB No, it comes closer\nC It stays where it is\n"
        "D It circles the observer")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["DSRBench.tsv", "clip_0.mp4", "clip_1.mp4",
                                                     "provenance.jsonl", "qa_pairs_nontemp.json", "rejected.jsonl",
                                                     "stats.json", "train_qas.json"]  # fmt: skip


def test_the_dsr_benchmark_reads_the_questions(tmp_path, server):
    tracks = write_tracks(tmp_path / "tracks", n=1)
    run_freeform(server, tracks, tmp_path / "out")
    benchmark = get_host().create("benchmarks", "dsr", {"data_dir": str(tmp_path / "out"), "layout": "vlmevalkit"})
    samples = list(benchmark.samples())
    assert len(samples) == 2 and {s.category for s in samples} == {"non_temp"}
    assert [s.answer for s in samples] == ["A", "A"] and samples[0].options[1] == "B. No, it comes closer"


def test_malformed_questions_are_asked_again_then_recorded_as_unparseable(tmp_path, server):
    tracks = write_tracks(tmp_path / "tracks", n=1)
    replies = iter(["Is the ball moving?\nA. yes\nB. no\nC. maybe\nD. unknown\nA"])  # no box: asked again
    server.responder = lambda body: next(replies, None) or writer_reply(body)
    stats = run_freeform(server, tracks, tmp_path / "a", qa_per_video=1)
    assert stats["questions"] == 1 and stats["writer"]["re_asks"] == 1
    assert stats["reply_problems"] == {"writer:no_box": 1}
    server.responder = lambda body: "I cannot write such a question."
    with pytest.raises(GenerationError, match="no question could be written"):
        run_freeform(server, tracks, tmp_path / "b", qa_per_video=1, parse_retries=1, cache=False)
    [rejected] = lines(tmp_path / "b" / "rejected.jsonl")
    assert rejected["status"] == "writer_unparseable" and rejected["problem"].startswith("line_count")
    assert rejected["replies"] == ["I cannot write such a question."] * 2


def test_verification_keeps_only_confirmed_questions(tmp_path, server):
    tracks = write_tracks(tmp_path / "tracks", n=2)

    def respond(body):
        text = all_text(body)
        if "only output the letter of the correct answer" in text:
            return "A"  # the verifier always answers A
        return writer_reply(body, "A" if "From the perspective of camera" in text else "B")

    server.responder = respond
    stats = run_freeform(server, tracks, tmp_path / "out", qa_per_video=3, verify=True)
    provenance = lines(tmp_path / "out" / "provenance.jsonl")
    rejected = lines(tmp_path / "out" / "rejected.jsonl")
    confirmed, disagreed = stats["outcomes"].get("question", 0), stats["outcomes"].get("verify_disagrees", 0)
    assert confirmed + disagreed == 6 and confirmed == len(provenance) and disagreed == len(rejected)
    assert all(r["verification"]["value"] == "A" for r in provenance)
    assert all(r["verified_letter"] == "A" and r["question"]["Correct"] == "B" for r in rejected)
    assert stats["agreement"] == {"answered": 6, "confirmed": confirmed, "rate": round(confirmed / 6, 4)}
    verify = [r.body for r in server.requests if "only output the letter" in all_text(r.body)]
    assert len(verify) == 6 and "\nA. Yes, steadily\nB. No, it comes closer\n" in verify[0]["messages"][1]["content"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_skipped_tracks_and_a_resumed_run_are_byte_identical_to_a_clean_one(tmp_path, server):
    tracks = write_tracks(tmp_path / "tracks", n=3)
    (tracks / "clip_2.mp4").unlink()  # its video is missing: skipped, named
    # every prompt of clip_1 names its box object by the box [61,10,71,30]: the server fails them
    server.responder = lambda body: Status(500) if "[61,10,71,30]" in all_text(body) else writer_reply(body)
    stats = run_freeform(server, tracks, tmp_path / "resumed", seed=4, batch_size=1)
    assert stats["failed_batches"] == 1 and stats["questions"] == 2 and stats["videos_skipped"] == {"video_missing": 1}
    sent = len(server.requests)
    server.responder = writer_reply
    stats = run_freeform(server, tracks, tmp_path / "resumed", seed=4, batch_size=1)
    resent = [all_text(r.body) for r in server.requests[sent:]]
    assert stats["failed_batches"] == 0 and stats["questions"] == 4
    assert len(resent) == 2 and all("[61,10,71,30]" in text for text in resent)  # clip_1's two attempts only
    clean = run_freeform(server, tracks, tmp_path / "clean", seed=4, batch_size=1)
    assert snapshot(tmp_path / "resumed") == snapshot(tmp_path / "clean") and clean["questions"] == 4


# --- the command line -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_end_to_end_from_synth_scenes_on_the_command_line(tmp_path, server):
    scenes = tmp_path / "scenes"
    run_cli("generate", "synth-scenes", "--n-videos", "2", "--width", "128", "--height", "96", "--fps", "8",
            "--duration", "4", "--preset", "ultrafast", "--seed", "1", "--out", str(scenes))  # fmt: skip
    out = tmp_path / "out"
    env = cli_env(FREEFORM_TEST_KEY=SECRET, VDPM_CACHE=str(tmp_path / "cache"))
    dry = run_cli("generate", "freeform-qa", "--tracks", str(scenes), "--out", str(out), "--dry-run",
                  "--base-url", server.url, env=env)  # fmt: skip
    assert json.loads(dry.stdout)["requests_at_most"] == {"freeform": 4} and not out.exists() and not server.requests
    proc = run_cli("generate", "freeform-qa", "--tracks", str(scenes), "--out", str(out), "--base-url", server.url,
                   "--api-key-env", "FREEFORM_TEST_KEY", "--verify", "--batch-size", "1", env=env)  # fmt: skip
    stats = json.loads(proc.stdout)
    assert stats["questions"] == 4 and stats["agreement"]["rate"] is not None
    rows = (out / "DSRBench.tsv").read_text().splitlines()
    assert len(rows) == 5 and all(row.endswith("non_temp") for row in rows[1:])
    written = [p.read_bytes() for p in out.rglob("*") if p.is_file()] + [proc.stdout.encode(), proc.stderr.encode()]
    assert not [blob for blob in written if SECRET.encode() in blob]
    # evaluated through `run` as DSR-Bench's free-form category
    run_cli("run", "--model", "random", "--bench", "dsr", "--bench-arg", f"data_dir={out}", "--out",
            str(tmp_path / "results"), env=env)  # fmt: skip
    results = json.loads((tmp_path / "results" / "random" / "dsr" / "results.json").read_text())
    assert results["n_samples"] == 4 and list(results["categories"]) == ["non_temp"]
    # and read by `train gsm` as training data: the trainer's own reader takes the folder as it is
    from vdpm_harness_training.gsm.records import load_examples

    examples = load_examples([str(out)])
    assert len(examples) == 4 and all(Path(e.video).is_file() and e.answer in "ABCD" for e in examples)
    assert all(e.after.startswith("\n") and "Options:\nA " in e.after for e in examples)
