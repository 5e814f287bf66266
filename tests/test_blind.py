"""Blind baselines (``blind-shortest``, ``blind-longest``, ``blind-prior``) against hand-computed answers, and the
harness-level blind mode (``--model-arg blind=true``): media removed from the requests, nothing decoded, a result
key, label and run record of its own."""

from __future__ import annotations

import json
import types
from typing import ClassVar

import pytest

from vdpm_harness import (
    MCQBenchmark,
    Message,
    Model,
    PreparedRequest,
    Request,
    Response,
    Sample,
    Strict,
    TextPart,
    hookimpl,
)
from vdpm_harness.config import build_config
from vdpm_harness.pipeline import Runner, create_model
from vdpm_harness.planning import plan
from vdpm_harness.plugins import PluginError
from vdpm_harness_plugins.models.blind.length import option_items, option_length
from vdpm_harness_plugins.models.blind.prior import template_key

# --- a benchmark held in memory --------------------------------------------------------------------------------------

#: (sample id, video, category, question, options, answer letter)
TRAIN = [
    ("t1", "v1", "dist", "How far at 1.5s?", ["keep", "grow", "shrink", "wiggle"], "A"),
    ("t2", "v1", "dist", "How far at 2.5s?", ["grow", "keep", "shrink", "wiggle"], "B"),
    ("t3", "v2", "dist", "How far at 0.5s?", ["shrink", "keep", "grow", "wiggle"], "A"),
    ("t4", "v3", "dir", "Which way at 1.0s?", ["left", "right", "up", "down"], "D"),
    ("t5", "v3", "dir", "Which way at 3.0s?", ["right", "left", "down", "up"], "A"),
    ("t6", "v4", "dir", "Which way at 4.0s?", ["down", "left", "right", "up"], "A"),
]
TEST = [
    ("q1", "w1", "dist", "How far at 9.5s?", ["grow", "shrink", "keep", "wiggle"], "C"),
    ("q2", "w1", "dist", "How far at 9.0s?", ["grow", "wiggle", "shrink", "left"], "C"),
    ("q3", "w2", "dir", "Which way at 1.0s?", ["up", "keep", "left", "right"], "D"),
    ("q4", "w2", "dir", "Which way at 2.0s?", ["up", "keep", "left", "wiggle"], "C"),
    ("q5", "w3", "dir", "Which way at 3.0s?", ["up", "fly", "swim", "wiggle"], "A"),
    ("q6", "w3", "new", "Anything at 4.0s?", ["up", "down", "keep", "x"], "A"),
]
#: hand-computed answers of blind-prior (category groups) trained on TRAIN: the text most often correct in the group
#: (q1: keep 2; q2: shrink 1; q3: right 1, although keep is correct twice elsewhere), else over all groups (q4: keep
#: 2), else the letter most often correct in the group (q5: A twice in "dir"), else a tie (q6: down and keep, twice
#: each over all groups, no letter seen in "new")
PRIOR_ANSWERS = {"q1": "C", "q2": "C", "q3": "D", "q4": "B", "q5": "A"}


class TableBench(MCQBenchmark):
    version = "1"
    categories = ["dist", "dir", "new"]

    class Options(Strict):
        split: str = "train"

    def samples(self):
        for sid, video, category, question, options, answer in {"train": TRAIN, "test": TEST}.get(
            self.options.split, []
        ):
            yield Sample(sample_id=sid, video_id=video, category=category, question=question, options=options,
                         answer=answer)  # fmt: skip

    def build_request(self, sample):
        text = sample.question + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(sample.options))
        return self.mcq_request(sample, [Message(content=[TextPart(text=text)])])


class Recorder(Model):
    """Records the parts and decoded videos it is handed; answers A."""

    seen: ClassVar[list[tuple[list[str], int]]] = []

    class Options(Strict):
        batch_size: int = 4

    def generate(self, batch):
        for p in batch:
            Recorder.seen.append(([part.type for m in p.request.messages for part in m.content], len(p.videos)))
        return [Response(sample_id=p.request.sample_id, text="A") for p in batch]


@hookimpl
def _register_benchmarks(register):
    register("table-bench", TableBench, description="test_blind")


@hookimpl
def _register_models(register):
    register("recorder", Recorder, description="test_blind")


@pytest.fixture
def bench_host(host):
    host.register(types.SimpleNamespace(register_benchmarks=_register_benchmarks, register_models=_register_models),
                  name="test-blind")  # fmt: skip
    yield host
    host.unregister("test-blind")


def prepared(options: list[str], seed: int = 0, category: str | None = None, sample_id: str = "s") -> PreparedRequest:
    letters = [chr(65 + i) for i in range(len(options))]
    request = Request(sample_id=sample_id, messages=[Message(content=[TextPart(text="Q?")])], choices=letters,
                      options=options)  # fmt: skip
    return PreparedRequest(request, key=sample_id, seed=seed, category=category)


def answers(model, batch) -> list[str]:
    return [r.text for r in model.generate(batch)]


# --- lengths ---------------------------------------------------------------------------------------------------------

DSR_LIKE = ["A. (1) Front. (2) Left.", "B. (1) Behind.", "C. (1) Left. (2) Right. (3) Front.",
            "D. (1) Keep nearly constant."]  # fmt: skip
WORDS = ["left", "right", "not moving", "no"]
COMPARE = ["The latter is always faster.", "(1) The former is faster. (2) Nearly the same."]


def test_option_lengths():
    assert [option_items(t) for t in ["(1) Front. (2) Left.", "The latter is always faster.", "left", "A. B. C."]] == [
        2, 1, 1, 3]  # fmt: skip
    assert [option_length(o, "items") for o in DSR_LIKE] == [2, 1, 3, 1]
    assert [option_length(o, "characters") for o in DSR_LIKE] == [20, 11, 31, 25]  # the letter prefix is not counted
    assert [option_length(o, "characters") for o in WORDS] == [4, 5, 10, 2]


def test_length_baselines_pick_the_hand_computed_options(bench_host):
    def create(name, **options):
        return bench_host.create("models", name, options)

    batch = [prepared(DSR_LIKE), prepared(WORDS), prepared(COMPARE)]
    assert answers(create("blind-longest"), batch) == ["C", answers(create("blind-longest"), batch)[1], "B"]
    assert answers(create("blind-shortest", unit="characters"), batch) == ["B", "D", "A"]
    assert answers(create("blind-longest", unit="characters"), batch) == ["C", "C", "B"]
    # ties (DSR_LIKE: B and D have one item; WORDS: all four) go to a draw seeded by the sample, or to the first
    shortest = create("blind-shortest")
    draws = {answers(shortest, [prepared(DSR_LIKE, seed=s)])[0] for s in range(40)}
    assert draws == {"B", "D"}
    assert answers(shortest, [prepared(DSR_LIKE, seed=3)]) == answers(shortest, [prepared(DSR_LIKE, seed=3)])
    assert {answers(shortest, [prepared(WORDS, seed=s)])[0] for s in range(60)} == set("ABCD")
    assert answers(create("blind-shortest", ties="first"), batch) == ["B", "A", "A"]
    assert answers(create("blind-longest", ties="first"), batch) == ["C", "A", "B"]
    [error] = create("blind-shortest").generate([prepared([])])
    assert error.error and error.text is None


def test_baselines_are_blind_and_need_no_frames(bench_host):
    for name in ("blind-shortest", "blind-longest"):
        model = bench_host.create("models", name)
        assert model.blind and model.text_only and not model.needs_frames and not model.run_blind
    prior = bench_host.create("models", "blind-prior", {"train_bench": "table-bench"})
    assert prior.blind and not prior.needs_frames


# --- the prior -------------------------------------------------------------------------------------------------------


def test_prior_answers_the_text_most_often_correct_in_the_group(bench_host):
    prior = bench_host.create("models", "blind-prior", {"train_bench": "table-bench"})
    prior.load()
    assert prior.n_train == 6 and prior.describe() == {"train_samples": 6}
    bench = bench_host.create("benchmarks", "table-bench", {"split": "test"})
    batch = [PreparedRequest(bench.build_request(s), s.sample_id, seed=i, category=s.category)
             for i, s in enumerate(bench.samples())]  # fmt: skip
    got = dict(zip((p.request.sample_id for p in batch), answers(prior, batch)))
    assert {k: got[k] for k in PRIOR_ANSWERS} == PRIOR_ANSWERS
    assert got["q6"] in ("B", "C")
    first = bench_host.create("models", "blind-prior", {"train_bench": "table-bench", "ties": "first"})
    assert answers(first, batch[5:]) == ["B"]
    # the training split's option texts are compared without their letters, case or spacing
    assert prior.scores(prepared(["A. KEEP", "B.  Shrink ", "C. down", "D. x"], category="dist"))[:2] == [
        (2, 2, 2), (1, 1, 1)]  # fmt: skip


def test_prior_with_video_holdout_never_learns_from_the_questions_own_video(bench_host):
    options = {"train_bench": "table-bench", "holdout": "video", "ties": "first"}
    prior = bench_host.create("models", "blind-prior", options)
    bench = bench_host.create("benchmarks", "table-bench")
    batch = [PreparedRequest(bench.build_request(s), s.sample_id, seed=0, category=s.category) for s in bench.samples()]
    # t1, t2 (v1): keep's two wins are v1's own, shrink's is v2's -> shrink; t3 (v2): keep -> B; t4, t5 (v3): down
    # once, in v4 -> t4 D, t5 C; t6 (v4): down (t4, letter D) and right (t5, letter A) once each, in v3 -> down, by
    # the letter A it sits on
    got = answers(prior, batch)
    assert got == ["C", "C", "B", "D", "C", "A"]
    assert prior.scores(batch[5]) == [(1, 1, 1), (0, 0, 0), (1, 1, 0), (0, 0, 1)]  # down, left, right, up
    plain = bench_host.create("models", "blind-prior", {"train_bench": "table-bench", "ties": "first"})
    assert answers(plain, batch)[:3] == ["A", "B", "B"]  # learning from its own video, it knows t1 and t2


def test_prior_by_template(bench_host):
    bench = bench_host.create("benchmarks", "table-bench")
    samples = list(bench.samples())
    first, second, other = (bench.build_request(samples[i]) for i in (0, 1, 3))
    assert template_key(first) == template_key(second) == "How far at #s? A. B. C. D."
    assert template_key(other) == "Which way at #s? A. B. C. D."
    prior = bench_host.create("models", "blind-prior", {"train_bench": "table-bench", "group_by": "template",
                                                        "ties": "first"})  # fmt: skip
    test = bench_host.create("benchmarks", "table-bench", {"split": "test"})
    batch = [PreparedRequest(test.build_request(s), s.sample_id, seed=0) for s in test.samples()]
    assert answers(prior, batch)[:3] == ["C", "C", "D"]  # no category given: the templates group the questions


def test_prior_needs_multiple_choice_training_data(bench_host):
    with pytest.raises(PluginError, match="train_bench"):
        bench_host.create("models", "blind-prior", {})
    prior = bench_host.create("models", "blind-prior", {"train_bench": "table-bench", "train_options": {"split": "x"}})
    with pytest.raises(ValueError, match="no multiple-choice sample"):
        prior.load()


def test_baselines_run_end_to_end_and_score_as_computed(bench_host, tmp_path):
    config = build_config(models="blind-prior,blind-longest", benches="table-bench", out=str(tmp_path),
                          model_args=("blind-prior:train_bench=table-bench",), bench_args=("split=test",))  # fmt: skip
    outcomes = {o.label.split("-")[1]: o for o in Runner(config, bench_host).run()}
    prior = outcomes["prior"].result
    assert prior.categories["dist"]["accuracy"].value == 100.0  # q1, q2
    assert prior.categories["dir"]["accuracy"].value == pytest.approx(100 * 2 / 3)  # q3, q5 right, q4 wrong
    assert prior.categories["new"]["accuracy"].value == 0.0  # q6: B or C, the gold is A
    assert prior.run.model["blind"] is True and prior.run.model["components"][0]["id"] == "table-bench"


# --- the blind mode of every model -----------------------------------------------------------------------------------


def run_recorder(host, tmp_path, *model_args):
    Recorder.seen.clear()
    config = build_config(models="recorder", benches="fixture-videos", out=str(tmp_path), model_args=model_args,
                          bench_args=(f"data_dir={tmp_path / 'videos'}", "broken=false", "n_videos=2"),
                          decode_workers=0)  # fmt: skip
    [outcome] = Runner(config, host).run()
    return outcome, list(Recorder.seen)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_blind_true_strips_the_media_and_changes_the_result_key(bench_host, tmp_path):
    seeing, seen = run_recorder(bench_host, tmp_path)
    assert seeing.label == "recorder" and seen == [(["video", "text"], 1)] * 6
    blind, seen = run_recorder(bench_host, tmp_path, "blind=true")
    assert blind.label == "recorder-blind" and blind.counts == {"ok": 6}  # nothing reused from the seeing run
    assert seen == [(["text"], 0)] * 6
    folder = tmp_path / "recorder-blind" / "fixture-videos"
    record = json.loads((folder / "run.json").read_text())
    assert record["model"]["blind"] is True and "blind" not in record["model"]["options"]
    seeing_record = json.loads((tmp_path / "recorder" / "fixture-videos" / "run.json").read_text())
    assert seeing_record["model"]["blind"] is False
    assert record["model"]["fingerprint"] != seeing_record["model"]["fingerprint"]
    predictions = read_lines(folder / "predictions.jsonl")
    assert all(p["frame_indices"] == [] for p in predictions)
    seeing_keys = {p["key"] for p in read_lines(tmp_path / "recorder" / "fixture-videos" / "predictions.jsonl")}
    assert not seeing_keys & {p["key"] for p in predictions}
    again, seen = run_recorder(bench_host, tmp_path, "blind=true")
    assert again.counts == {"reused": 6} and seen == []


def test_every_model_takes_blind_true(bench_host):
    chat = create_model(bench_host, "openai-chat", {"model": "m", "blind": True})
    assert chat.blind and chat.run_blind and not chat.text_only and "blind" not in chat.options.model_dump()
    assert not create_model(bench_host, "openai-chat", {"model": "m"}).blind
    qwen = create_model(bench_host, "qwen25vl-3b", {"blind": True})
    assert qwen.blind and "blind" not in qwen.options.model_dump()
    assert create_model(bench_host, "qwen25vl-gsm", {"blind": True}).blind
    assert create_model(bench_host, "random", {"blind": False}).blind is False
    with pytest.raises(PluginError, match="blind must be true or false"):
        create_model(bench_host, "random", {"blind": "sometimes"})


def test_a_blind_api_model_sends_only_text(bench_host, tmp_path):
    chat = create_model(bench_host, "openai-chat", {"model": "m", "blind": True})
    bench = bench_host.create("benchmarks", "fixture-videos", {"data_dir": str(tmp_path), "broken": False,
                                                                "n_videos": 1})  # fmt: skip
    [item, *_] = plan(bench, chat, list(bench.samples()), None)
    assert item.frame_indices == [] and item.request.video_parts() == []
    body = chat.payload(PreparedRequest(item.request, item.key, 0))
    assert body["messages"] == [{"role": "user", "content": "q0?"}]


@pytest.mark.slow
@pytest.mark.parametrize("model, flags", [("qwen25vl", []), ("qwen25vl-gsm", ["--gsm"])])
def test_real_models_run_blind_end_to_end(bench_host, tmp_path, model, flags):
    """Tiny random-weight checkpoints (``vdpm-harness models make-tiny``, offline, CPU) of ``qwen25vl`` and
    ``qwen25vl-gsm`` answer the fixture's questions with ``blind=true``: text-only prompts (the GSM adds no geometry
    tokens to a request without media), no frame decoded, a blind run record."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from .conftest import cli_env, run_cli

    folder = tmp_path / "tiny"
    run_cli("models", "make-tiny", str(folder), *flags, env=cli_env(HF_HUB_OFFLINE="1"))
    config = build_config(models=model, benches="fixture-videos", out=str(tmp_path / "res"),
                          model_args=(f"path={folder}", "blind=true", "max_new_tokens=4"),
                          bench_args=(f"data_dir={tmp_path / 'videos'}", "broken=false", "n_videos=1"),
                          decode_workers=0)  # fmt: skip
    [outcome] = Runner(config, bench_host).run()
    assert outcome.result is not None and outcome.result.n_errors == 0, outcome.error
    folder = tmp_path / "res" / outcome.label / "fixture-videos"
    assert outcome.label.endswith("-blind") and json.loads((folder / "run.json").read_text())["model"]["blind"]
    assert all(p["frame_indices"] == [] and p["status"] == "ok" for p in read_lines(folder / "predictions.jsonl"))
