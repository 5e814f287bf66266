"""The ``curate`` generator and the LLM machinery it shares with ``freeform-qa``, against a real HTTP server on
127.0.0.1 (tests/chat_server.py) that replies from a script.

Expected prompts are the DSR Suite's own strings (TencentARC/DSR_Suite ``data/deepseek_motion.py``,
``data/deepseek_agent.py``, ``data/gemini_motion.py``), written below as the original's f-strings with the original's
substitutions; expected readings of each reply follow from the prompt's instructions (stated per case). Every request
loop is bounded: few retries, 10 ms backoff, sub-second timeouts.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vdpm_harness.generation import WORK_ROOT, GenerationError
from vdpm_harness.video import write_video
from vdpm_harness_plugins.generators.llm.curation.generator import Curate
from vdpm_harness_plugins.generators.llm.curation.parsing import classes_reply, motion_verdict, video_verdict
from vdpm_harness_plugins.generators.llm.prompts import video_categories
from vdpm_harness_plugins.generators.llm.replies import Unparseable

from .chat_server import ChatServer, Content, Hang, Raw, Status, all_text, count_images
from .conftest import cli_env, run_cli

SECRET = "sk-curate-5b7d1e3f9a2c4e6f8a0b"
FAST = {"backoff": 0.01, "max_retries": 1, "timeout": 5.0}
CATEGORIES = ["Sports & Recreation", "Transportation & Vehicle Operation", "Art Performance",
              "Manual Labor & Craftsmanship", "Daily Activities & Hobbies", "Nature & Wildlife"]  # fmt: skip
CAPTIONS = {
    "v1": "A man throws a frisbee, a dog catches it, and a child runs across the park.",
    "v2": "A calm lake at dawn.",
    "v3": "Three cars race around a track while a marshal waves a flag.",
    "v4": 'A chef says "bon appétit" and plates food, {braces} included.',
    "v5": "Cyclists pass pedestrians on a busy bridge.",
}


# --- the original's strings, as its scripts build them --------------------------------------------------------------


def original_motion(caption: str) -> str:
    """``data/deepseek_motion.py``: the user message."""
    return (f'"{caption}" is the caption of a video. Think about whether the video satisfies the following condition: '
            "Regardless of camera movement and articulated motion, the world coordinates of at least 3 main subjects "
            "in the video change substantially. Only consider the objects that can be regarded as a whole and not "
            'part of other objects. \n If the condition is satisfied, output "yes" in a new line. If the condition is '
            'not satisfied, output "no" in a new line.')  # fmt: skip


def original_classes(caption: str) -> str:
    """``data/deepseek_agent.py``: the user message."""
    return (f'"{caption}" is the caption of a video. In one line, list all classes of agents in the video and use dot '
            'to separate them. If there is no agent, output "None" in this line. Then, in a new line, list the classes '
            "of remaining foreground objects in the video and use dot to separate them. An object should be a "
            "discrete, countable item (e.g., a bottle, a rock). The object must not be a part of other objects. If "
            'there is no object, output "None" in this line.')  # fmt: skip


def original_video_prompt(agent_line: str, obj_line: str | None) -> str:
    """``data/gemini_motion.py``: ``agent.lower().replace(".", ", ")``, the same for obj (``[]`` when NaN)."""
    video_classes = CATEGORIES
    agent = agent_line.lower().replace(".", ", ")
    obj = [] if obj_line is None else obj_line.lower().replace(".", ", ")
    return (f"The video belongs to one of following categories: {','.join(video_classes)}. The agent in the video is "
            f"{agent}. The object in the video is {obj}. Think about whether the video satisfies the following "
            "conditions: (1) The camera is not mainly filming the inside of one moving object; (2) Regardless of "
            "camera movement, articulated motion and shape variation, the world coordinates of at least 3 agent "
            "(exclude hands) or object change substantially; (3) Every agent or object cannot occupy less than 1% of "
            "the screen; (4) Every agent or object cannot occupy more than 50% of the screen. Only consider the "
            "objects that can be regarded as a whole and not part of or containing other objects. Only consider "
            "objects that are discrete, countable items (e.g., a bottle, a rock). Only consider objects that are not "
            "in contact with each other. Only consider agents and objects belonging to classes given at the "
            'beginning. \n If all conditions are satisfied, output "yes" in a new line. If any condition is not '
            'satisfied, output "no" in a new line. Then in a new line, output the category of the video.')  # fmt: skip


def original_payload(model: str, prompt) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                         {"role": "user", "content": prompt}]}  # fmt: skip


def original_reads_yes(content: str) -> bool:
    """``data/deepseek_motion.py``'s test on the last line, for comparison."""
    last = content.split("\n")[-1]
    return "no" not in last and "yes" in last


# --- a scripted endpoint ---------------------------------------------------------------------------------------------


def step_of(body: dict) -> str:
    text = all_text(body)
    if "list all classes of agents" in text:
        return "classes"
    if "The video belongs to one of following categories" in text:
        return "video"
    return "motion"


def caption_of(body: dict) -> str:
    text = all_text(body)
    return text[text.index('"') + 1 : text.index('" is the caption')]


def scripted(body: dict):
    """A well-behaved endpoint: v2 is static, v3's classes are people and cars, everyone else is people and dogs."""
    step = step_of(body)
    if step == "motion":
        return "Thinking about it: I don't know of any static subject.\nno" if "lake" in caption_of(body) else "yes"
    if step == "classes":
        return "Person. Car. \nFlag" if "cars" in caption_of(body) else "person. dog.\nfrisbee. None"
    return "yes\nSports & Recreation"


def write_captions(path: Path, ids=CAPTIONS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["videoID", "url", "caption"])
        writer.writerows([video_id, f"https://example.invalid/{video_id}", CAPTIONS[video_id]] for video_id in ids)
    return path


def write_clip(path: Path, frames: int = 12) -> Path:
    rng = np.random.default_rng(0)
    write_video(path, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), 12.0, preset="ultrafast")
    return path


def curate(server: ChatServer, out: Path, **options):
    generator = Curate({"base_url": server.url, "api_key": SECRET, **FAST, **options})
    generator.id = "curate"
    return generator.run(out)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def server():
    with ChatServer(responder=scripted) as chat:
        yield chat


# --- exact prompts ---------------------------------------------------------------------------------------------------


def test_caption_requests_are_the_originals_character_for_character(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v1", "v4"])
    curate(server, tmp_path / "out", captions=str(captions), concurrency=1)
    bodies = [r.body for r in server.requests]
    for video_id in ("v1", "v4"):  # v4's quotes and braces pass through unchanged
        caption = CAPTIONS[video_id]
        assert original_payload("deepseek-r1", original_motion(caption)) in bodies
        assert original_payload("deepseek-r1", original_classes(caption)) in bodies
    assert len(bodies) == 4
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)


def test_the_video_request_attaches_the_frames_before_the_original_prompt(tmp_path, server):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "v1.mp4")
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    stats = curate(server, tmp_path / "out", captions=str(captions), videos=str(videos), frames=4,
                   class_text="original")  # fmt: skip
    [video] = [r.body for r in server.requests if step_of(r.body) == "video"]
    content = video["messages"][1]["content"]
    assert video["model"] == "gemini-2.5-pro" and video["messages"][0]["content"] == "You are a helpful assistant."
    assert [part["type"] for part in content] == ["image_url"] * 4 + ["text"] and count_images(video) == 4
    assert all(part["image_url"]["url"].startswith("data:image/jpeg;base64,") for part in content[:4])
    # the classes the LLM wrote ("person. dog." and "frisbee. None"), shown as the original shows them
    assert content[4]["text"] == original_video_prompt("person. dog.", "frisbee. None")
    assert stats["kept"] == 1 and stats["categories"] == {"Sports & Recreation": 1}
    record = lines(tmp_path / "out" / "curation.jsonl")[0]
    assert record["steps"]["video_filter"]["frame_indices"] == [0, 4, 7, 11]  # round(linspace(0, 11, 4))


def test_the_clean_class_text_and_the_video_file_form(tmp_path, server):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "v3.mp4")
    captions = write_captions(tmp_path / "koala.csv", ["v3"])
    curate(server, tmp_path / "out", captions=str(captions), videos=str(videos), video_input="video")
    [video] = [r.body for r in server.requests if step_of(r.body) == "video"]
    media, text = video["messages"][1]["content"]
    assert media["type"] == "video_url" and media["video_url"]["url"].startswith("data:video/mp4;base64,")
    # "Person. Car. " parsed and joined; the object line "Flag"
    assert "The agent in the video is person, car. The object in the video is flag." in text["text"]


# --- reading replies ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("yes", True),
        ("no", False),
        ("**Yes.**", True),
        ("The subjects do not move.\nNo", False),
        ("<think>no, no, no... wait</think>\nyes", True),
        ("yes\n", True),  # the original reads the empty last line: not a yes
        ("I know the answer:\nI know, yes", True),  # the original reads "know" as a no
        ("Final answer: yes, not static", True),  # and "not" as a no
        ("none of them stay still: yes", True),
    ],
)
def test_yes_and_no_are_whole_words_of_the_last_line(reply, expected):
    assert motion_verdict(reply) is expected


def test_the_original_misreads_what_is_read_here():
    for reply in ("yes\n", "I know, yes", "Final answer: yes, not static", "none of them stay still: yes"):
        assert not original_reads_yes(reply) and motion_verdict(reply) is True
    assert original_reads_yes("the eyes move") and pytest.raises(Unparseable, motion_verdict, "the eyes move")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("yes or no", "ambiguous_yes_no"), ("Maybe.", "no_yes_no"), ("   \n", "empty"), ("<think>yes</think>", "empty")],
)
def test_a_verdict_that_cannot_be_read_is_unparseable(reply, reason):
    with pytest.raises(Unparseable) as error:
        motion_verdict(reply)
    assert error.value.reason == reason


@pytest.mark.parametrize(
    ("reply", "agents", "objects"),
    [
        ("person. dog.\nball. rock", ["person", "dog"], ["ball", "rock"]),
        ("Person. Dog. person.\n\nNone", ["person", "dog"], []),  # repeats, blank lines and "None"
        ("Agents: man, woman\nObjects: kite.", ["man", "woman"], ["kite"]),
        ("None\nNone.", [], []),
    ],
)
def test_class_lines_are_split_stripped_and_deduplicated(reply, agents, objects):
    parsed = classes_reply(reply)
    assert (parsed["agents"], parsed["objects"]) == (agents, objects)


@pytest.mark.parametrize("reply", ["person. dog", "person\ndog\nball", ""])
def test_class_replies_need_exactly_two_lines(reply):
    with pytest.raises(Unparseable, match="line_count"):
        classes_reply(reply)


@pytest.mark.parametrize(
    ("reply", "keep", "category"),
    [
        ("yes\nSports & Recreation", True, "Sports & Recreation"),
        ("Yes.\n**Nature and Wildlife**", True, "Nature & Wildlife"),
        ("All four conditions hold.\nyes\nCategory: transportation & vehicle operation.", True,
         "Transportation & Vehicle Operation"),
        ("no\nArt Performance", False, "Art Performance"),
        ("no", False, None),
        ("no\nThe camera is inside a car.", False, None),
    ],
)  # fmt: skip
def test_video_verdicts_and_categories(reply, keep, category):
    assert video_verdict(reply, CATEGORIES) == {"keep": keep, "category": category}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("yes", "no_category"), ("yes\nCooking", "unknown_category"), ("maybe\nArt Performance", "no_yes_no"),
     ("Sports & Recreation", "no_yes_no")],
)  # fmt: skip
def test_a_kept_video_needs_one_of_the_six_categories(reply, reason):
    with pytest.raises(Unparseable) as error:
        video_verdict(reply, CATEGORIES)
    assert error.value.reason == reason


def test_the_categories_are_the_originals():
    assert video_categories() == CATEGORIES


# --- retries, outcomes, failures ------------------------------------------------------------------------------------


def test_unreadable_replies_are_asked_again_a_bounded_number_of_times_then_recorded(tmp_path, server):
    server.responder = lambda body: "It depends on the camera."
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    stats = curate(server, tmp_path / "out", captions=str(captions), parse_retries=2)
    assert len(server.requests) == 3  # one ask and two re-asks, then no guess
    [record] = lines(tmp_path / "out" / "curation.jsonl")
    assert not record["kept"] and record["reason"] == "caption_motion_unparseable"
    assert record["detail"].startswith("no_yes_no")
    step = record["steps"]["caption_motion"]
    assert step["status"] == "unparseable" and step["value"] is None
    assert [a["reply"] for a in step["attempts"]] == ["It depends on the camera."] * 3
    assert stats["rejected"] == {"caption_motion_unparseable": 1}
    assert stats["steps"]["caption_motion"]["re_asks"] == 2


def test_transport_errors_garbage_and_refusals(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    # a 429 and a 503 are retried by the transport; a garbage body and an empty reply are asked again
    server.enqueue(Status(429, headers={"Retry-After": "0"}), Raw(b"<html>bad gateway</html>"), Status(503),
                   Content(None), Content("yes"))  # fmt: skip
    curate(server, tmp_path / "a", captions=str(captions), max_retries=1)
    [record] = lines(tmp_path / "a" / "curation.jsonl")
    step = record["steps"]["caption_motion"]
    assert step["status"] == "ok" and len(step["attempts"]) == 3 and record["kept"]
    assert [a["problem"].split(":")[0] if a["problem"] else None for a in step["attempts"]] == [
        "garbage", "garbage", None]  # fmt: skip
    # a final refusal is recorded, not retried
    server.requests.clear()
    server.enqueue(Status(400, {"error": {"message": "maximum context length exceeded"}}))
    curate(server, tmp_path / "b", captions=str(captions), cache=False)
    [record] = lines(tmp_path / "b" / "curation.jsonl")
    assert record["reason"] == "caption_motion_refused" and "context length" in record["detail"]
    assert len(server.requests) == 1


def test_a_persisting_outage_fails_the_batch_and_the_rerun_finishes_it(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    server.responder = lambda body: Status(500)
    with pytest.raises(GenerationError, match=r"all 1 items failed.*v1: Transient: .*HTTP 500"):
        curate(server, tmp_path / "out", captions=str(captions), max_retries=1)
    assert len(server.requests) == 2  # the first try and one transport retry, then the batch fails
    server.responder = scripted
    stats = curate(server, tmp_path / "out", captions=str(captions))
    assert stats["kept"] == 1 and stats["failed_batches"] == 0


def test_credentials_in_the_endpoint_url_are_never_written(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    server.enqueue(Status(400, {"error": {"message": "bad request"}}))
    url = server.url.replace("http://", "http://user:pw-9f8e7d6c@")
    generator = Curate({"base_url": url, "api_key": SECRET, "captions": str(captions), **FAST})
    generator.run(tmp_path / "out")
    [record] = lines(tmp_path / "out" / "curation.jsonl")
    assert record["reason"] == "caption_motion_refused" and "http://***@127.0.0.1" in record["detail"]
    assert not [p for p in (tmp_path / "out").iterdir() if b"pw-9f8e7d6c" in p.read_bytes()]


def test_a_timeout_is_a_transient_failure(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    server.enqueue(Hang(2.0, "yes"))
    with pytest.raises(GenerationError, match="timed out"):
        curate(server, tmp_path / "out", captions=str(captions), max_retries=0, timeout=0.3)


def test_re_asks_never_read_the_cache(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv", ["v2"])
    server.enqueue(Content("perhaps"), Content("no"))
    curate(server, tmp_path / "a", captions=str(captions))
    assert len(server.requests) == 2
    # a rerun elsewhere: the first ask comes from the reply cache (the unreadable reply), the re-ask goes out
    curate(server, tmp_path / "b", captions=str(captions))
    assert len(server.requests) == 3
    [record] = lines(tmp_path / "b" / "curation.jsonl")
    assert [a["reply"] for a in record["steps"]["caption_motion"]["attempts"]] == ["perhaps", scripted(
        server.requests[-1].body)]  # fmt: skip


def test_every_input_is_processed_with_bounded_concurrency(tmp_path, server):
    server.responder = lambda body: Hang(0.05, scripted(body))
    captions = write_captions(tmp_path / "koala.csv")
    stats = curate(server, tmp_path / "out", captions=str(captions), batch_size=2, concurrency=2)
    records = lines(tmp_path / "out" / "curation.jsonl")
    assert [r["video_id"] for r in records] == list(CAPTIONS)  # 5 inputs in batches of 2: the last one included
    assert stats["videos"] == 5 and stats["kept"] == 4 and stats["rejected"] == {"caption_static": 1}
    assert 1 < server.max_in_flight <= 2


def test_outputs_manifest_classes_and_the_originals_list(tmp_path, server):
    videos = tmp_path / "videos"
    videos.mkdir()
    for video_id in ("v1", "v2"):
        write_clip(videos / f"{video_id}.mp4")
    server.responder = lambda body: "no\nArt Performance" if step_of(body) == "video" else scripted(body)
    captions = write_captions(tmp_path / "koala.csv", ["v1", "v2", "v3"])
    curate(server, tmp_path / "out", captions=str(captions), videos=str(videos), frames=2)
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept"] == []
    assert manifest["rejected"] == [{"video_id": "v1", "reason": "video_static", "detail": None},
                                    {"video_id": "v2", "reason": "caption_static", "detail": None},
                                    {"video_id": "v3", "reason": "video_missing",
                                     "detail": f"no <videoID>.* in {videos}"}]  # fmt: skip
    assert json.loads((out / "dynamic_videos.json").read_text()) == []
    rows = list(csv.reader((out / "agent_object.csv").open()))
    assert rows == [
        ["videoID", "agent", "obj"],
        ["v1", "person. dog.", "frisbee. None"],
        ["v3", "Person. Car.", "Flag"],
    ]
    assert set(manifest["prompts"]) == {"caption_motion", "caption_classes", "video_filter"}

    # the classes of that run feed a run over the videos alone (the original's gemini_motion.py step)
    server.responder = scripted
    server.requests.clear()
    stats = curate(
        server, tmp_path / "again", videos=str(videos), classes=str(out / "agent_object.csv"), frames=2, cache=False
    )  # the same request as above: the cache would give the same "no"
    kept = json.loads((tmp_path / "again" / "manifest.json").read_text())["kept"]
    assert [(k["video_id"], k["agents"], k["objects"], k["category"]) for k in kept] == [
        ("v1", ["person", "dog"], ["frisbee"], "Sports & Recreation")]  # fmt: skip
    assert stats["rejected"] == {"no_classes": 1} and len(server.requests) == 1


def test_dry_run_sends_nothing_and_writes_nothing(tmp_path, server, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    captions = write_captions(tmp_path / "koala.csv")
    generator = Curate({"base_url": server.url, "captions": str(captions), "dry_run": True, "show_prompts": 1,
                        "price_per_1k_prompt": 1.0, "price_per_1k_completion": 2.0,
                        "expected_completion_tokens": 100})  # fmt: skip
    stats = generator.run(tmp_path / "out")
    assert server.requests == [] and not (tmp_path / "out").exists()
    assert stats["requests_at_most"] == {"caption_motion": 5, "caption_classes": 5}
    chars = sum(len(original_motion(c)) + len(original_classes(c)) for c in CAPTIONS.values())
    assert stats["prompt_tokens_estimate"] == chars // 4
    assert stats["cost_usd_estimate"] == round((chars // 4 * 1.0 + 10 * 100 * 2.0) / 1000, 4)
    assert original_motion(CAPTIONS["v1"]) in capsys.readouterr().err


def test_a_missing_key_or_input_is_a_clear_error(tmp_path, server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    captions = write_captions(tmp_path / "koala.csv", ["v1"])
    with pytest.raises(Exception, match="no API key: set the environment variable OPENAI_API_KEY"):
        Curate({"base_url": server.url, "captions": str(captions)}).run(tmp_path / "out")
    with pytest.raises(ValueError, match="nothing to curate"):
        Curate({"base_url": server.url, "api_key": SECRET}).run(tmp_path / "out")
    with pytest.raises(ValueError, match="needs their classes"):
        Curate({"base_url": server.url, "api_key": SECRET, "videos": str(tmp_path)}).run(tmp_path / "out")
    assert server.requests == []


# --- the command line -----------------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def command(server: ChatServer, captions: Path, out: Path) -> list[str]:
    return ["generate", "curate", "--captions", str(captions), "--out", str(out), "--base-url", server.url,
            "--api-key-env", "CURATE_TEST_KEY", "--batch-size", "2", "--backoff", "0.01",
            "--max-retries", "1"]  # fmt: skip


@pytest.mark.slow
def test_end_to_end_on_the_command_line_and_no_secret_is_written(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv")
    out = tmp_path / "out"
    env = cli_env(CURATE_TEST_KEY=SECRET, VDPM_CACHE=str(tmp_path / "cache"))
    proc = run_cli(*command(server, captions, out), env=env)
    stats = json.loads(proc.stdout)
    assert stats["kept"] == 4 and stats["generator"]["options"]["api_key_env"] == "CURATE_TEST_KEY"
    assert "5/5 videos this run, 9 requests (0 from the cache)" in " ".join(proc.stderr.split())  # progress
    assert sorted(p.name for p in out.iterdir()) == ["agent_object.csv", "curation.jsonl", "dynamic_videos.json",
                                                     "manifest.json", "stats.json"]  # fmt: skip
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    written = [*snapshot(out).values(), *snapshot(tmp_path / "cache").values(), proc.stdout.encode(),
               proc.stderr.encode()]  # fmt: skip
    assert not [blob for blob in written if SECRET.encode() in blob]


@pytest.mark.slow
def test_kill_9_then_rerun_is_byte_identical_and_sends_no_finished_request_again(tmp_path, server):
    captions = write_captions(tmp_path / "koala.csv")
    run_cli(*command(server, captions, tmp_path / "clean"), env=cli_env(CURATE_TEST_KEY=SECRET,
                                                                        VDPM_CACHE=str(tmp_path / "c1")))  # fmt: skip
    hang = {"on": True}
    # v5, alone in the third batch, hangs: the first two batches are recorded, then the process is killed
    server.responder = lambda body: Hang(60) if hang["on"] and "Cyclists" in all_text(body) else scripted(body)
    server.requests.clear()
    out = tmp_path / "killed"
    env = cli_env(CURATE_TEST_KEY=SECRET, VDPM_CACHE=str(tmp_path / "c2"))
    proc = subprocess.Popen([sys.executable, "-m", "vdpm_harness", *command(server, captions, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not any("Cyclists" in all_text(r.body) for r in server.requests):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert len(list(out.glob(f"{WORK_ROOT}/*/items/*.json"))) == 2 and not (out / "manifest.json").exists()
    before = len(server.requests)
    hang["on"] = False
    rerun = run_cli(*command(server, captions, out), env=env)
    after = [r.body["messages"][-1]["content"] for r in server.requests[before:]]
    assert "3 items: 1 produced by this run, 2 by an earlier one" in " ".join(rerun.stderr.split())
    assert after == [original_motion(CAPTIONS["v5"]), original_classes(CAPTIONS["v5"])]  # v1-v4 never again
    assert snapshot(out) == snapshot(tmp_path / "clean")
