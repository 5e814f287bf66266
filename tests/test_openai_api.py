"""The OpenAI-compatible layer: the ``openai-chat`` model, the ``openai-judge`` judge and their shared transport,
driven against a real HTTP server on 127.0.0.1 (tests/chat_server.py) that speaks the chat-completions protocol.

Expected token counts come from that server's deterministic usage formula (``10 + 100 * images + text chars // 4``
prompt tokens, one completion token per word); expected accuracies from the answers the server or the fixture model
give (stated at each assertion). Every request loop is bounded: few retries, backoff of 10 ms, timeouts under 1 s.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vdpm_harness import hookimpl
from vdpm_harness.config import build_config
from vdpm_harness.interfaces import JudgePrompt, MCQBenchmark, PreparedRequest
from vdpm_harness.llm import ApiOptions, ChatClient
from vdpm_harness.pipeline import Runner
from vdpm_harness.plugins import PluginError
from vdpm_harness.records import (
    Extraction,
    FramePolicy,
    GenerationSettings,
    ImagePart,
    Message,
    Request,
    Sample,
    Strict,
    TextPart,
    VideoPart,
)
from vdpm_harness.scoring import rescore
from vdpm_harness.store import PredictionStore
from vdpm_harness.video import DecodedVideo

from .chat_server import ChatServer, Content, Hang, Raw, Status, all_text, count_images
from .conftest import cli_env, run_cli

SECRET = "sk-test-7f3c9a1b5d2e8f4a6c0b"
FAST = {"backoff": 0.01, "max_retries": 2, "timeout": 5.0}


@pytest.fixture
def server():
    with ChatServer() as chat:
        yield chat


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_containing(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def client(server: ChatServer, name: str = "test-client", **options) -> ChatClient:
    return ChatClient(name, ApiOptions(base_url=server.url, api_key=SECRET, **{**FAST, **options}))


def chat(text: str, **extra) -> dict:
    return {"model": "test", "messages": [{"role": "user", "content": text}], **extra}


# --- a tiny multiple-choice benchmark with a judge prompt (text only, registered in-process) -----------------------

GOLDS = ["A", "B", "A", "C", "A", "D"]
#: VLM4D's structured judge output, EvaluationOutput{extracted_answer: str, correct: bool} (VLM4D's judge).
EVALUATION_OUTPUT = {
    "title": "EvaluationOutput",
    "type": "object",
    "properties": {"extracted_answer": {"type": "string"}, "correct": {"type": "boolean"}},
    "required": ["extracted_answer", "correct"],
    "additionalProperties": False,
}


class JudgeQuiz(MCQBenchmark):
    """Six text-only questions (gold letters ``GOLDS``, two per "video") whose judge prompt names the sample."""

    version = "1"
    categories = ["quiz"]

    class Options(Strict):
        pass

    def samples(self):
        for i, gold in enumerate(GOLDS):
            yield Sample(sample_id=f"q{i}", video_id=f"v{i // 2}", category="quiz", question=f"Question {i}?",
                         options=["A. one", "B. two", "C. three", "D. four"], answer=gold)  # fmt: skip

    def build_request(self, sample):
        text = f"{sample.question}\n" + "\n".join(sample.options)
        return self.mcq_request(sample, [Message(content=[TextPart(text=text)])])

    def judge_prompt(self, sample, response):
        user = f"Sample: {sample.sample_id}\nGround Truth Answer: {sample.answer}\nModel Response: {response}"
        messages = [{"role": "system", "content": "Judge the answer."}, {"role": "user", "content": user}]
        return JudgePrompt(messages=messages, response_schema=EVALUATION_OUTPUT)

    def parse_judgement(self, sample, reply):
        data = json.loads(reply)
        if not isinstance(data.get("extracted_answer"), str) or not isinstance(data.get("correct"), bool):
            return Extraction(parsed=False, method="judge", detail={"why": "fields missing"})
        letter = data["extracted_answer"][:1]
        return Extraction(answer=letter, parsed=letter in self.letters(sample), method="judge",
                          detail={"correct": data["correct"]})  # fmt: skip


class QuizPlugin:
    @hookimpl
    def register_benchmarks(self, register):
        register("judge-quiz", JudgeQuiz, description="Six text questions with a judge prompt; test fixture.")


@pytest.fixture
def quiz_host(host):
    host.register(QuizPlugin(), name="judge-quiz-plugin")
    yield host
    host.unregister("judge-quiz-plugin")


def run_quiz(host, out: Path, model: str, model_args=()):
    config = build_config(models=model, benches="judge-quiz", out=str(out), model_args=tuple(model_args))
    [outcome] = Runner(config, host).run()
    return outcome


# --- registration ---------------------------------------------------------------------------------------------------


def test_plugins_are_registered_and_listing_them_imports_no_openai(host):
    assert host.get("models", "openai-chat").id == "openai-chat"
    assert host.get("judges", "openai-judge").id == "openai-judge"
    code = (
        "import sys, vdpm_harness_plugins.models.openai_chat, vdpm_harness_plugins.judges.openai_judge;"
        "assert 'openai' not in sys.modules, 'openai imported at plugin import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the model end to end through the CLI ---------------------------------------------------------------------------


def test_cli_run_on_motion_basics_against_a_loopback_server(host, server, tmp_path):
    """``vdpm-harness run --model openai-chat`` on 6 motion-basics questions: frames go as base64 JPEGs before the
    text, the key only in the Authorization header, usage and cost are accounted, a rerun into a fresh results folder
    is served by the reply cache."""
    bench = host.create("benchmarks", "motion-basics")
    assert bench.manifest  # build the rendered clips once, in the session cache
    server.responder = lambda body: f"I counted {count_images(body)} frames. The answer is (A)."
    out, cache = tmp_path / "res", tmp_path / "cache"
    args = ["run", "--model", "openai-chat", "--bench", "motion-basics", "--limit", "6", "--out", str(out),
            "--bench-arg", f"data_dir={bench.folder}", "--model-arg", f"base_url={server.url}",
            "--model-arg", "model=test", "--model-arg", "price_per_1k_prompt=0.5",
            "--model-arg", "price_per_1k_completion=2.0", "--model-arg", "backoff=0.01"]  # fmt: skip
    env = cli_env(OPENAI_API_KEY=SECRET, VDPM_CACHE=str(cache))
    run_cli(*args, env=env)
    [results_file] = out.glob("openai-chat*/motion-basics/results.json")
    result = json.loads(results_file.read_text())
    assert result["n_samples"] == 6 and result["n_errors"] == 0 and result["unparsed_rate"] == 0
    assert result["scoring"] == "rules:mcq@1"
    # accuracy: the server always answers (A), so it is the share of the 6 gold letters that are A
    golds = [s.answer for s in list(bench.samples())[:6]]
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(100 * golds.count("A") / 6)

    # what was sent: one user message, motion-basics' 16 frames as JPEG data URIs, then the question text
    assert len(server.requests) == 6
    for request in server.requests:
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        body = request.body
        assert body["model"] == "test" and body["temperature"] == 0.0 and body["max_tokens"] == 16
        [message] = body["messages"]
        parts = message["content"]
        assert [p["type"] for p in parts] == ["image_url"] * 16 + ["text"]
        assert "Respond with only the letter" in parts[-1]["text"]
        url = parts[0]["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,") and "detail" not in parts[0]["image_url"]
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and image.size == (192, 144)  # motion-basics renders 192x144 clips

    # usage: each prediction carries the server's own token counts, and cost = tokens x price per 1k
    predictions = lines(results_file.parent / "predictions.jsonl")
    served = sorted((c["usage"]["prompt_tokens"], c["usage"]["completion_tokens"]) for c in server.calls)
    recorded = sorted((p["usage"]["prompt_tokens"], p["usage"]["completion_tokens"]) for p in predictions)
    assert recorded == served and all(pt > 1600 for pt, _ in recorded)  # 10 + 100 per frame x 16 + text
    for p in predictions:
        usage = p["usage"]
        assert usage["cached"] is False and usage["model"] == server.model
        expected_cost = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 2.0) / 1000
        assert usage["cost_usd"] == pytest.approx(expected_cost)
        assert p["response"] == "I counted 16 frames. The answer is (A)."
    record = json.loads((results_file.parent / "run.json").read_text())
    assert record["model"]["details"]["base_url"] == server.url and record["model"]["details"]["concurrency"] == 8

    # a rerun into a fresh results folder costs nothing: every reply comes from the cache
    run_cli(*[a if a != str(out) else str(tmp_path / "res2") for a in args], env=env)
    assert len(server.requests) == 6
    [again] = (tmp_path / "res2").glob("openai-chat*/motion-basics/predictions.jsonl")
    assert all(p["usage"]["cached"] is True and p["usage"]["cost_usd"] == 0.0 for p in lines(again))
    assert (cache / "api" / "openai-chat.sqlite").is_file()

    # the key is in no file of either results folder nor of the cache
    for folder in (out, tmp_path / "res2", cache):
        assert files_containing(folder, SECRET) == []


# --- retries ----------------------------------------------------------------------------------------------------------


def test_retries_on_429_500_and_timeout_then_success(server, caplog):
    """A 429 with Retry-After: 1, a 500 and a reply slower than the timeout are retried; the fourth attempt wins."""
    caplog.set_level(logging.DEBUG)
    server.enqueue(Status(429, headers={"Retry-After": "1"}), Status(500), Hang(2.0))
    with client(server, max_retries=3, timeout=0.3) as api:
        reply = api.complete(chat("hello"))
    assert reply.error is None and reply.text == "The answer is (A)." and reply.model == server.model
    assert len(server.requests) == 4
    gap = server.requests[1].arrived - server.requests[0].arrived
    assert gap >= 0.95  # the Retry-After of 1 s was honoured (the backoff alone would be ~10 ms)
    assert api.totals["live_calls"] == 1 and api.totals["errors"] == 0
    assert "chat/completions" in caplog.text and SECRET not in caplog.text  # debug logs of openai/httpx hold no key


def test_concurrency_is_bounded_and_replies_keep_their_order(server):
    """9 requests of 0.2 s each with concurrency 3: never more than 3 at once, so about 3 rounds (0.6 s)."""
    server.responder = lambda body: Hang(0.2, text=f"reply to {all_text(body)}")
    start = time.perf_counter()
    with client(server, concurrency=3, cache=False) as api:
        replies = api.complete_many([chat(f"q{i}") for i in range(9)])
    elapsed = time.perf_counter() - start
    assert [r.text for r in replies] == [f"reply to q{i}" for i in range(9)]
    assert server.max_in_flight == 3 and 0.55 < elapsed < 1.8


def test_exhausted_retries_and_malformed_replies_are_per_sample_errors_and_the_run_completes(
    quiz_host, server, tmp_path
):
    """q1 always gets 503, q3 a body that is not JSON: two error records; the other four are answered."""

    def responder(body):
        text = all_text(body)
        if text.startswith("Question 1?"):
            return Status(503)
        if text.startswith("Question 3?"):
            return Raw(b"<html>bad gateway</html>")
        return "The answer is (A)."

    server.responder = responder
    args = [
        f"base_url={server.url}",
        "model=test",
        "max_retries=2",
        "backoff=0.01",
        "concurrency=3",
        "api_key=" + SECRET,
    ]
    outcome = run_quiz(quiz_host, tmp_path / "res", "openai-chat", args)
    assert outcome.result is not None and outcome.result.n_samples == 6 and outcome.result.n_errors == 2
    [folder] = (tmp_path / "res").glob("openai-chat*/judge-quiz")
    predictions = {p["sample_id"]: p for p in lines(folder / "predictions.jsonl")}
    assert predictions["q1"]["status"] == "error" and "HTTP 503" in predictions["q1"]["error"]
    assert "after 3 attempts" in predictions["q1"]["error"]
    assert (
        predictions["q3"]["status"] == "error" and "malformed reply: the body is not JSON" in predictions["q3"]["error"]
    )
    asked = [all_text(r.body).split("\n")[0] for r in server.requests]
    assert asked.count("Question 1?") == 3 and asked.count("Question 3?") == 1  # 503 retried, malformed not
    # the four answered questions all say (A); of those, gold A are q0, q2, q4 -> 3 of 6 correct
    assert outcome.result.metrics["accuracy"].value == pytest.approx(100 * 3 / 6)
    assert json.loads((folder / "results.json").read_text())["n_errors"] == 2


def test_timeouts_until_the_retries_run_out(server):
    server.enqueue(Hang(2.0), Hang(2.0))
    with client(server, max_retries=1, timeout=0.2) as api:
        reply = api.complete(chat("slow"))
    assert reply.text is None and "timed out after 2 attempts" in reply.error and len(server.requests) == 2


# --- replies that are not usable ----------------------------------------------------------------------------------


def test_malformed_replies_become_errors_without_retry(server):
    structured = {"response_format": {"type": "json_object"}}
    cases = [
        (Raw(b"{not json"), {}, "the body is not JSON"),
        (Raw(b'{"id": "x", "object": "chat.completion"}'), {}, "no choices"),
        (Content(None), {}, "empty reply content"),
        (Content("   "), {}, "empty reply content"),
        (Content("The answer is A"), structured, "structured output was requested but the reply is not JSON"),
    ]
    with client(server) as api:
        for i, (action, extra, message) in enumerate(cases):
            server.enqueue(action)
            reply = api.complete(chat(f"case {i}", **extra))
            assert reply.text is None and message in reply.error, (i, reply)
    assert len(server.requests) == len(cases)  # none was retried
    assert api.totals["errors"] == len(cases)


def test_client_errors_are_final_and_context_overflow_is_named(server):
    overflow = {
        "error": {"message": "This model's maximum context length is 128 tokens.", "code": "context_length_exceeded"}
    }
    server.enqueue(Status(400, overflow), Status(401, {"error": {"message": f"Incorrect API key provided: {SECRET}"}}))
    with client(server) as api:
        first, second = api.complete(chat("long")), api.complete(chat("auth"))
    assert "context length exceeded" in first.error and "maximum context length is 128" in first.error
    assert "HTTP 401" in second.error and SECRET not in second.error and "***" in second.error
    assert len(server.requests) == 2  # 4xx other than 408/429 is never retried


# --- the reply cache ---------------------------------------------------------------------------------------------


def test_reply_cache_serves_reruns_without_calls_and_holds_no_key(server, tmp_path, monkeypatch):
    monkeypatch.setenv("VDPM_CACHE", str(tmp_path / "cache"))
    payloads = [chat(f"question {i}") for i in range(4)]
    with client(server, concurrency=4) as api:
        first = api.complete_many(payloads)
    assert len(server.requests) == 4 and all(not r.usage["cached"] for r in first)
    with client(server) as api:  # a new client, as in a new process: the cache file is read back
        again = api.complete_many(payloads)
        assert api.totals["cache_hits"] == 4 and api.totals["live_calls"] == 0
    assert len(server.requests) == 4
    assert [r.text for r in again] == [r.text for r in first] and all(r.usage["cached"] for r in again)
    assert [r.usage["prompt_tokens"] for r in again] == [r.usage["prompt_tokens"] for r in first]
    with client(server, cache=False) as api:  # the cache can be switched off
        api.complete(payloads[0])
    assert len(server.requests) == 5
    server.enqueue(Content(None))
    with client(server) as api:  # failures are not cached: the next run asks again
        assert api.complete(chat("empty")).error and api.complete(chat("empty")).text
    assert len(server.requests) == 7
    assert (tmp_path / "cache" / "api" / "test-client.sqlite").is_file()
    assert files_containing(tmp_path / "cache", SECRET) == []


# --- the model's request layout -------------------------------------------------------------------------------------


def decoded(n: int) -> DecodedVideo:
    frames = np.full((n, 8, 12, 3), 200, np.uint8)
    return DecodedVideo(frames, list(range(n)), [i / 4 for i in range(n)], 4.0, 8, 12, 8, "test")


def test_payload_maps_parts_in_order_with_options(host, tmp_path):
    """Videos become their frames in place, images their file, blind videos nothing; options shape the body."""
    image = tmp_path / "still.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    policy, blind = FramePolicy(nframes=2), FramePolicy(nframes=0)
    request = Request(
        sample_id="s",
        messages=[Message(content=[VideoPart(video="a.mp4", frames=policy), TextPart(text="between"),
                                   ImagePart(image=str(image)), VideoPart(video="b.mp4", frames=blind),
                                   TextPart(text="end")])],
        generation=GenerationSettings(max_new_tokens=64, temperature=0.7, top_p=0.9, extra={"seed": 3}),
    )  # fmt: skip
    model = host.create("models", "openai-chat", {"model": "m", "system_prompt": "Be brief.", "image_detail": "low"})
    body = model.payload(PreparedRequest(request, "k", 0, [decoded(2), decoded(0)]))
    system, user = body["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["image_url", "image_url", "text", "image_url", "text"]
    assert user["content"][3]["image_url"]["url"].startswith("data:image/png;base64,")
    assert all(p["image_url"]["detail"] == "low" for p in user["content"] if p["type"] == "image_url")
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"]) == (0.7, 64, 0.9, 3)
    assert "top_k" not in body

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    as_video = host.create("models", "openai-chat", {"model": "m", "send_video": True})
    assert as_video.needs_frames is False and model.needs_frames is True
    request = Request(sample_id="s", messages=[Message(content=[VideoPart(video=str(video), frames=policy),
                                                                TextPart(text="q")])])  # fmt: skip
    [message] = as_video.payload(PreparedRequest(request, "k", 0, []))["messages"]
    assert message["content"][0]["type"] == "video_url"
    assert message["content"][0]["video_url"]["url"] == "data:video/mp4;base64," + base64.b64encode(
        video.read_bytes()
    ).decode("ascii")
    text_only = Request(sample_id="s", messages=[Message(content=[TextPart(text="just text")])])
    assert as_video.payload(PreparedRequest(text_only, "k", 0))["messages"] == [
        {"role": "user", "content": "just text"}
    ]


def test_generate_answers_a_batch_and_records_the_served_model(host, server, tmp_path):
    """``generate`` on a batch: a missing image file is that sample's error; the others are answered, and the model
    id the server reports becomes ``revision()`` and each response's ``usage["model"]``."""
    model = host.create("models", "openai-chat", {"model": "test", "base_url": server.url, "api_key": SECRET, **FAST})
    model.load()
    assert model.revision() is None  # nothing has been served yet
    ok = Request(sample_id="ok", messages=[Message(content=[TextPart(text="What moves?")])])
    missing = Request(sample_id="bad", messages=[Message(content=[ImagePart(image=str(tmp_path / "gone.png"))])])
    try:
        good, bad = model.generate([PreparedRequest(ok, "k1", 0), PreparedRequest(missing, "k2", 0)])
    finally:
        model.close()
    assert good.text == "The answer is (A)." and good.usage["model"] == server.model
    assert good.usage["prompt_tokens"] == 10 + len("What moves?") // 4  # the server's formula, no image
    assert bad.error == f"FileNotFoundError: media file not found: {tmp_path / 'gone.png'}"
    assert model.revision() == server.model and len(server.requests) == 1


def test_transport_options_keep_the_result_key(host):
    base = {"model": "m", "api_key": SECRET}
    one = host.create("models", "openai-chat", base)
    other = host.create("models", "openai-chat", {**base, "concurrency": 2, "timeout": 5, "cache": False,
                                                  "api_key": "sk-other-key-000", "price_per_1k_prompt": 1})  # fmt: skip
    assert one.fingerprint() == other.fingerprint()
    assert one.fingerprint() != host.create("models", "openai-chat", {**base, "jpeg_quality": 80}).fingerprint()
    assert SECRET not in json.dumps(one.fingerprint_data())


def test_missing_api_key_fails_the_model_at_load_with_a_clear_error(quiz_host, server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    outcome = run_quiz(quiz_host, tmp_path / "res", "openai-chat", [f"base_url={server.url}", "model=test"])
    assert outcome.result is None and "failed to load" in outcome.error
    assert "no API key: set the environment variable OPENAI_API_KEY" in outcome.error
    # a variable named with api_key_env is named in the error (the name of a variable is not a secret)
    monkeypatch.delenv("VDPM_TEST_NO_KEY", raising=False)
    outcome = run_quiz(quiz_host, tmp_path / "res2", "openai-chat",
                       [f"base_url={server.url}", "model=test", "api_key_env=VDPM_TEST_NO_KEY"])  # fmt: skip
    assert outcome.result is None and "set the environment variable VDPM_TEST_NO_KEY" in outcome.error
    with pytest.raises(PluginError, match="environment variable VDPM_TEST_NO_KEY"):
        quiz_host.create("models", "openai-chat", {"model": "test", "api_key_env": "VDPM_TEST_NO_KEY"}).load()
    assert server.requests == []


# --- the judge -----------------------------------------------------------------------------------------------------


def judge_responder(body):
    """The judge's side: q2 gets prose instead of JSON, q4 JSON without the schema's fields; the others get the last
    letter in "(X)" of the model response, and whether it equals the ground truth."""
    user = body["messages"][-1]["content"]
    sample = re.search(r"Sample: (\w+)", user).group(1)
    if sample == "q2":
        return "The model answered A, which is correct."
    if sample == "q4":
        return json.dumps({"verdict": "A"})
    gold = re.search(r"Ground Truth Answer: (\w)", user).group(1)
    letters = re.findall(r"\(([A-D])\)", user.split("Model Response:", 1)[1])
    answer = letters[-1] if letters else "No Valid Answer"
    return json.dumps({"extracted_answer": answer, "correct": answer == gold})


@pytest.fixture
def judged_run(quiz_host, tmp_path):
    """A finished run of the fixture ``echo`` model (always "The answer is (A).") on judge-quiz, scored by rules."""
    outcome = run_quiz(quiz_host, tmp_path / "res", "echo")
    [folder] = (tmp_path / "res").glob("echo*/judge-quiz")
    return outcome.result, folder


def test_rescore_with_openai_judge_uses_structured_output(quiz_host, judged_run, server, monkeypatch):
    rules, folder = judged_run
    assert rules.scoring == "rules:mcq@1" and rules.metrics["accuracy"].value == pytest.approx(50.0)  # q0, q2, q4
    server.responder = judge_responder
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    judge = quiz_host.create("judges", "openai-judge", {"base_url": server.url, "model": "judge-test"})
    judged = rescore(quiz_host, folder, judge)
    assert judged.scoring == "judge:openai-judge@1"
    assert judged.run.judge["id"] == "openai-judge" and judged.run.judge["version"] == "1"
    assert judged.run.judge["model"] == "judge-test" and judged.run.judge["base_url"] == server.url
    # only q0 is judged correct: q2 and q4 (gold A) got unusable judge replies and count as wrong, with no
    # fallback to the rules (which would have scored them correct: 50%)
    assert judged.metrics["accuracy"].value == pytest.approx(100 / 6) and judged.unparsed_rate == pytest.approx(2 / 6)

    assert len(server.requests) == 6
    for request in server.requests:
        body = request.body
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert body["model"] == "judge-test" and body["temperature"] == 1.0 and body["max_completion_tokens"] == 1024
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "EvaluationOutput", "schema": EVALUATION_OUTPUT, "strict": True},
        }
        assert body["messages"][0] == {"role": "system", "content": "Judge the answer."}

    scores = {s["sample_id"]: s for s in lines(folder / "scores.jsonl")}
    for score in scores.values():
        extraction = score["extraction"]
        assert extraction["method"] == "judge:openai-judge@1"
        assert (
            extraction["detail"]["judge_model"] == "judge-test" and extraction["detail"]["served_model"] == server.model
        )
    assert scores["q0"]["extraction"]["answer"] == "A" and scores["q0"]["correct"] == 1.0
    assert scores["q1"]["extraction"]["detail"]["correct"] is False and scores["q1"]["correct"] == 0.0
    q2 = scores["q2"]["extraction"]
    assert (
        q2["parsed"] is False and "structured output was requested but the reply is not JSON" in q2["detail"]["error"]
    )
    q4 = scores["q4"]["extraction"]
    assert (
        q4["parsed"] is False
        and q4["detail"]["why"] == "fields missing"
        and q4["detail"]["reply"] == '{"verdict": "A"}'
    )
    assert files_containing(folder, SECRET) == []

    # a second rescore is served by the judge's cache, except q2 whose failed reply was not cached
    again = rescore(quiz_host, folder, judge)
    assert len(server.requests) == 7 and again.metrics == judged.metrics


def test_judge_failure_after_retries_is_unparsed_with_the_error(quiz_host, judged_run, server, monkeypatch):
    _, folder = judged_run
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.responder = lambda body: (
        Status(500) if "Sample: q0" in body["messages"][-1]["content"] else judge_responder(body)
    )
    judge = quiz_host.create("judges", "openai-judge", {"base_url": server.url, "model": "judge-test", "max_retries": 1,
                                                         "backoff": 0.01, "cache": False})  # fmt: skip
    benchmark = quiz_host.create("benchmarks", "judge-quiz")
    predictions = {p.sample_id: p for p in PredictionStore(folder).load().values()}
    items = [(s, predictions[s.sample_id]) for s in benchmark.samples() if s.sample_id in ("q0", "q1")]
    first, second = judge.judge(benchmark, items)
    assert first.parsed is False and first.method == "judge:openai-judge@1" and first.answer is None
    assert "HTTP 500" in first.detail["error"] and "after 2 attempts" in first.detail["error"]
    assert first.detail["judge_model"] == "judge-test"
    assert second.parsed is True and second.answer == "A"
    assert len(server.requests) == 3


def test_judge_without_api_key_refuses_and_scores_nothing(quiz_host, judged_run, server, monkeypatch):
    _, folder = judged_run
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    before = {name: (folder / name).read_bytes() for name in ("scores.jsonl", "results.json")}
    with pytest.raises(PluginError, match="no API key: set the environment variable OPENAI_API_KEY"):
        rescore(quiz_host, folder, quiz_host.create("judges", "openai-judge", {"base_url": server.url}))
    assert {name: (folder / name).read_bytes() for name in before} == before  # still the rules' scores
    assert server.requests == []


def test_judge_needs_a_benchmark_with_a_judge_prompt(host, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    judge = host.create("judges", "openai-judge", {"base_url": server.url})
    benchmark = host.create("benchmarks", "motion-basics")
    sample = next(iter(benchmark.samples()))
    with pytest.raises(PluginError, match="defines no judge prompt"):
        judge.judge(benchmark, [(sample, SimpleNamespace(response="The answer is (A)."))])
    assert server.requests == []


def test_judge_failures_are_errors_of_their_samples_and_rescore_retries_them(quiz_host, judged_run, server,
                                                                             monkeypatch):  # fmt: skip
    """Issue 17 repro: when the judge failed (HTTP 500 after retries, timeout, non-JSON or empty reply) the answer was
    scored as wrong with ``n_errors 0``. A judge failure is an error of that sample (status ``error``, counted in
    ``n_errors``, its reason in ``error_reasons``; like every error it still counts as wrong in the accuracy), a
    verdict without a valid answer (q4) stays a wrong answer, and ``rescore`` asks the judge again."""
    _, folder = judged_run
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    failing = {"q0": Status(500), "q1": Hang(3.0), "q3": Content(""), "q5": Raw(b"<html>bad gateway</html>")}

    def responder(body):
        sample = re.search(r"Sample: (\w+)", body["messages"][-1]["content"]).group(1)
        return failing.get(sample) or judge_responder(body)

    server.responder = responder
    options = {"base_url": server.url, "model": "judge-failures", "max_retries": 1, "backoff": 0.01, "timeout": 0.5}
    judge = quiz_host.create("judges", "openai-judge", options)
    first = rescore(quiz_host, folder, judge)
    scores = {s["sample_id"]: s for s in lines(folder / "scores.jsonl")}
    errors = {sid for sid, s in scores.items() if s["status"] == "error"}
    assert errors == {"q0", "q1", "q2", "q3", "q5"} and first.n_errors == 5  # q2: prose where JSON was asked for
    assert scores["q4"]["status"] == "ok" and scores["q4"]["correct"] == 0.0  # a verdict without a valid answer
    assert all(scores[sid]["error"].startswith("judge failed: ") for sid in errors)
    assert "HTTP 500" in scores["q0"]["error"] and scores["q0"]["extraction"]["error"]
    assert sum(first.error_reasons.values()) == 5 and all(r.startswith("judge failed: ") for r in first.error_reasons)
    assert first.metrics["accuracy"].value == 0.0  # q0 (gold A, "(A)") would be correct: an error counts as wrong
    assert files_containing(folder, SECRET) == []

    failing.clear()  # the judge works again: a rescore asks it for the failed samples only (good replies are cached)
    asked_before = len(server.requests)
    second = rescore(quiz_host, folder, judge)
    asked = {re.search(r"Sample: (\w+)", r.body["messages"][-1]["content"]).group(1)
             for r in server.requests[asked_before:]}  # fmt: skip
    assert asked == {"q0", "q1", "q2", "q3", "q5"}
    assert second.n_errors == 1 and list(second.error_reasons) == [
        "judge failed: openai-judge: structured output was requested but the reply is not JSON: 'The model "
        "answered A, which is correct.'"
    ]  # fmt: skip
    assert second.metrics["accuracy"].value == pytest.approx(100 / 6)  # q0 judged correct now


def test_a_key_inside_the_base_url_is_never_written(quiz_host, server, tmp_path, monkeypatch):
    """Issue 17 repro: a key inside ``base_url`` (``http://user:KEY@host``) was written unmasked to ``run.json``. The
    run record keeps the URL with ``***`` for the key, and no file of the run holds the key, not even a judge's error
    naming the endpoint."""
    url_key = "sk-in-the-url-5551234"
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    base_url = server.url.replace("http://", f"http://user:{url_key}@")
    outcome = run_quiz(
        quiz_host, tmp_path / "res", "openai-chat", [f"base_url={base_url}", "model=test", "backoff=0.01"]
    )
    assert outcome.result is not None and outcome.result.n_samples == 6
    [folder] = (tmp_path / "res").glob("openai-chat*/judge-quiz")
    record = json.loads((folder / "run.json").read_text())
    assert record["model"]["options"]["base_url"] == server.url.replace("http://", "http://user:***@")
    assert files_containing(tmp_path / "res", url_key) == [] and files_containing(tmp_path / "res", SECRET) == []
    # a judge failing at such an endpoint names it in the sample's error, with the key masked
    server.responder = lambda body: Status(500)
    judge = quiz_host.create("judges", "openai-judge", {"base_url": base_url, "max_retries": 0, "cache": False})
    judged = rescore(quiz_host, folder, judge)
    assert judged.n_errors == 6 and all("user:***@127.0.0.1" in reason for reason in judged.error_reasons)
    assert judged.run.judge["base_url"] == server.url.replace("http://", "http://user:***@")
    assert files_containing(tmp_path / "res", url_key) == []
