"""4D-Bench plugins (``4dbench-qa``, ``4dbench-caption``): official prompts, parser, samplers, caption metrics
against direct pycocoevalcap calls, the GPT rubric, the human baseline, data handling and end-to-end runs.

Every official string, rule and number comes from ``WenxuanZhu1103/4D-Bench`` at commit ``f40f49a`` (each test names
the script). The data here is synthetic, written in the official layout of the Hugging Face dataset
``vxuanz/4D-Bench``: every video frame is a flat grey level that encodes (view, frame index), so the frames a model
receives can be checked against the official sampler rules.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import random
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vdpm_harness import hookimpl
from vdpm_harness.config import build_config
from vdpm_harness.interfaces import Judge, Model
from vdpm_harness.pipeline import Runner
from vdpm_harness.plugins import PluginError
from vdpm_harness.records import ImagePart, Response, Sample, Score, Strict, TextPart
from vdpm_harness.scoring import rescore
from vdpm_harness.video import write_video
from vdpm_harness_plugins.benchmarks.fourd_bench.caption import CSV_COLUMNS, FourDBenchCaption, caption_from_response
from vdpm_harness_plugins.benchmarks.fourd_bench.frames import stride_indices
from vdpm_harness_plugins.benchmarks.fourd_bench.gpt_rubric import (
    ACTION_SYSTEM,
    APPEARANCE_SYSTEM,
    gpt_judge_messages,
    parse_gpt_score,
)
from vdpm_harness_plugins.benchmarks.fourd_bench.metrics import (
    caption_metrics,
    human_baseline,
    official_sentence_scores,
)
from vdpm_harness_plugins.benchmarks.fourd_bench.prompts import (
    CAPTION_GPT_SYSTEM,
    QA_FORMAT,
    QA_GPT_PREAMBLE,
    QA_GPT_SYSTEM,
    caption_prompt,
    qa_prompt,
)
from vdpm_harness_plugins.benchmarks.fourd_bench.qa import FourDBenchQA, correctness_code, parse_answer

from .conftest import run_cli

needs_coco = pytest.mark.skipif(
    importlib.util.find_spec("pycocoevalcap") is None or shutil.which("java") is None,
    reason="caption metrics need pycocoevalcap (the captions extra) and Java",
)
needs_hub = pytest.mark.skipif(
    importlib.util.find_spec("huggingface_hub") is None, reason="needs huggingface_hub (the hub extra)"
)

VIEWS = (1, 8, 16)
N_FRAMES = 20  # sampler A takes 0, 3, ..., 15; sampler B floor(linspace(0, 19, 6)) = 0, 3, 7, 11, 15, 19


def grey(view: int, index: int) -> int:
    """The grey level of frame ``index`` of view ``view`` in the synthetic videos."""
    return 10 * index + view


def write_object(folder: Path, uid: str, n_frames: int = N_FRAMES) -> None:
    """The three rendered views of one object (the dataset's layout: ``<uid>/view_<k>_rgb_white_bg.mp4``)."""
    (folder / uid).mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        frames = np.stack([np.full((16, 16, 3), grey(view, t), np.uint8) for t in range(n_frames)])
        write_video(folder / uid / f"view_{view}_rgb_white_bg.mp4", frames, fps=10)


QA_DIR = "4D_Object_Question_Answering/data"
CAPTION_DIR = "4D_Object_Captioning/data"
CATEGORIES = ["Object Counting", "Temporal Relationship", "Action", "Spatial Relationship", "Appearance"]


def qa_records() -> dict:
    """Two questions on each of three objects; field names beyond the two the scripts read are illustrative."""
    records = {}
    for o, uid in enumerate(("a1f3", "b2e4", "c3d5")):
        for q in range(2):
            records[f"{uid}_{q}"] = {
                "Question": f"How many legs does object {o} move in part {q}?",
                "Choices": ["(A) one", "(B) two", "(C) three", "(D) four"],
                "Answer index": 1 + (o + q) % 4,
                "Category": CATEGORIES[(2 * o + q) % 5],
            }
    return records


def make_qa_data(root: Path) -> Path:
    (root / QA_DIR).mkdir(parents=True)
    (root / QA_DIR / "4d_qa.json").write_text(json.dumps(qa_records(), indent=1))
    for uid in ("a1f3", "b2e4", "c3d5"):
        write_object(root / QA_DIR / "4d_object_multi_view_videos", uid)
    return root


CAPTIONS = {
    "u100": ["A red robot walks forward and waves its left arm.", "A red robot is walking and waving.",
             "Red humanoid robot walking then waving its arm.", "A robot in red armour walks and waves a hand.",
             "A small red robot walks ahead while waving."],
    "u200": ["A green frog jumps twice.", "A frog, green, jumping up and down.", "",
             "Green cartoon frog hopping two times.", "A green frog leaps and lands."],
    "u300": ["A blue car drives to the right and stops.", "Blue car moving right, then stopping.",
             "A small blue car drives right.", "A toy car in blue rolls to the right and halts.",
             "A blue vehicle moves rightwards and comes to a stop."],
}  # fmt: skip
PREDICTED = {
    "u100": "caption: A red robot walks and waves its arm.",
    "u200": "Sure! Caption: a green frog is jumping.",
    "u300": "A blue truck parked on the road.",
}


def make_caption_data(root: Path) -> Path:
    (root / CAPTION_DIR).mkdir(parents=True)
    with (root / CAPTION_DIR / "human_annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for uid, captions in CAPTIONS.items():
            writer.writerow([uid, *captions])
    for uid in CAPTIONS:
        write_object(root / CAPTION_DIR / "4d_object_multi_view_videos", uid)
    return root


# --- test-local plugins -----------------------------------------------------------------------------------------------


class FrameProbe(Model):
    """Records what it receives (image files and decoded videos, with their mean grey levels); answers ``answer``."""

    class Options(Strict):
        log: str
        answer: str = "(B)"

    def generate(self, batch):
        out = []
        for prepared in batch:
            parts = [p for m in prepared.request.messages for p in m.content]
            entry = {
                "sample_id": prepared.request.sample_id,
                "order": [p.type for p in parts],
                "text": prepared.request.text(),
                "images": [Path(p.image).name for p in parts if isinstance(p, ImagePart)],
                "image_grey": [float(np.asarray(Image.open(p.image)).mean()) for p in parts if p.type == "image"],
                "video_indices": [v.indices for v in prepared.videos],
                "video_grey": [[float(f.mean()) for f in v.frames] for v in prepared.videos],
                "max_new_tokens": prepared.request.generation.max_new_tokens,
            }
            with open(self.options.log, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
            out.append(Response(sample_id=prepared.request.sample_id, text=self.options.answer))
        return out


class Captioner(Model):
    """Answers the caption request of each object with ``PREDICTED[uid]``; no frames needed."""

    needs_frames = False

    def generate(self, batch):
        return [Response(sample_id=p.request.sample_id, text=PREDICTED[p.request.sample_id]) for p in batch]


#: Scripted judge replies per object: a plain dict, a fenced dict, and an unusable reply.
GPT_REPLIES = {"u100": "{'appearance_score': 4}", "u200": "```python\n{'appearance_score': 2}\n```", "u300": "Score: 1"}


class ScriptedJudge(Judge):
    """Sends nothing: reads the scripted reply of each sample with the benchmark's own prompt and parser."""

    prompts: list = []

    def judge(self, benchmark, items):
        out = []
        for sample, prediction in items:
            ScriptedJudge.prompts.append(benchmark.judge_prompt(sample, prediction.response))
            parsed = benchmark.parse_judgement(sample, GPT_REPLIES[sample.sample_id])
            out.append(parsed.model_copy(update={"method": self.tag}))
        return out


class LocalPlugins:
    @hookimpl
    def register_models(self, register):
        register("frame-probe", FrameProbe)
        register("captioner", Captioner)

    @hookimpl
    def register_judges(self, register):
        register("scripted-gpt", ScriptedJudge)


@pytest.fixture
def local_host(host):
    host.register(LocalPlugins(), name="fourd-test-plugins")
    yield host


def run(host, out: Path, model: str, bench: str, bench_args=(), model_args=(), **kw):
    config = build_config(models=model, benches=bench, out=str(out), bench_args=tuple(bench_args),
                          model_args=tuple(model_args), decode_workers=1, **kw)  # fmt: skip
    [outcome] = Runner(config, host).run()
    assert outcome.error is None, outcome.error
    return outcome.result


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- prompts ----------------------------------------------------------------------------------------------------------


def test_prompts_are_the_official_strings():
    """Lengths and SHA-256 prefixes of the official strings: the QA prompts of ``eval_code_example/*_exp.py``
    (QA-13/21/25 with the literal ``{vqa}``, the GPT system message), the caption prompts of
    ``mllm_gen_caption/*_caption_exp.py`` (CAP-9/17/5) and the rubrics of ``llm_score/score_appearance.py`` and
    ``score_action.py``."""
    expected = {
        "qa13": (qa_prompt("qa13", "{vqa}"), 585, "2feec3afb4a345a9"),
        "qa21": (qa_prompt("qa21", "{vqa}"), 601, "2e0ee1d08c84cab3"),
        "qa25": (qa_prompt("qa25", "{vqa}"), 610, "7690873bac3592e2"),
        "qa-gpt-system": (QA_GPT_SYSTEM, 381, "d5b6f439f7142c24"),
        "cap9": (caption_prompt("cap9"), 1566, "54087bc085745cd0"),
        "cap17": (caption_prompt("cap17"), 1654, "48302f5e87227f31"),
        "cap5": (caption_prompt("cap5"), 1526, "0b760d1dccce7360"),
        "appearance": (APPEARANCE_SYSTEM, 3848, "d4354781b8aca036"),
        "action": (ACTION_SYSTEM, 4472, "7fc59628420a2e35"),
    }
    for name, (text, length, digest) in expected.items():
        assert (len(text), sha16(text)) == (length, digest), name


def test_gpt_user_messages_follow_the_official_templates():
    """``score_appearance.py``, ``score_action.py``: adjacent literals joined without a space after ``STRING.`` and
    ``command!``; the action template says ``Human_Caption`` and ``'action_score'``."""
    [system, user] = gpt_judge_messages("appearance", "A red ball.", "a ball")
    assert system == {"role": "system", "content": APPEARANCE_SYSTEM}
    assert user["content"] == (
        "Please evaluate the following video-based captions:\n\nHuman-annotated Caption: A red ball.\n"
        "Predicted Caption: a ball\n\nPlease generate the response in the form of a dictionary string with keys "
        "'appearance_score', where its value is the factual accuracy score in INTEGER, not STRING.DO NOT PROVIDE ANY "
        "OTHER OUTPUT TEXT OR EXPLANATION. You must follow this command!For example, your response should look like "
        "this: {'appearance_score': 4}."
    )
    [system, user] = gpt_judge_messages("action", "A red ball.", "a ball")
    assert system["content"] == ACTION_SYSTEM
    assert "Human_Caption: A red ball.\n" in user["content"] and user["content"].count("'action_score'") == 2


def test_gpt_reply_parsing():
    """The scripts parse with ``ast.literal_eval`` and the aspect's key; the harness also strips code fences.
    Non-numbers and values outside the 0-5 rubric are refused and counted, never dropped silently."""
    assert parse_gpt_score("appearance", "{'appearance_score': 4}") == (4.0, "")
    assert parse_gpt_score("action", '```python\n{"action_score": 0}\n```') == (0.0, "")
    assert parse_gpt_score("action", "```\n{'action_score': 5}```") == (5.0, "")
    for reply in ("Score: 4", "{'appearance_score': '4'}", "{'appearance_score': 7}", "{'action_score': 3}",
                  "{'appearance_score': True}", "[4]", ""):  # fmt: skip
        value, why = parse_gpt_score("appearance", reply)
        assert value is None and why, reply


# --- the QA parser ----------------------------------------------------------------------------------------------------


def official_extract(text: str, parenthesis_first: bool) -> str | None:
    """The parser exactly as ``eval_code_example/*_exp.py`` write it: ``re.findall(...)[0]`` of the parenthesis pattern,
    then of the isolated-letter pattern (the gpt-4o script only the latter); the scripts strip the response first."""
    text = text.strip()
    patterns = [r"\(([A-D])\)"] if parenthesis_first else []
    for pattern in patterns + [r"(?:^|[\s\(\.,;:])([A-D])(?:[\s\)\.,;:]|$)"]:
        matches = re.findall(pattern, text)
        if matches:
            return matches[0]
    return None


def test_qa_parser_on_the_hard_cases():
    """Hard cases of the official parser's rules: parenthesised letter first (even after a bare one), first match wins,
    case-sensitive, "A" as an article counts (the official rule, wrong here on purpose), letters glued to
    other characters do not count, E is not an option; the gpt-4o script has no parenthesis pass."""
    cases = [
        ("(B)", "paren_first", "B", "paren"),
        ("A is tempting, but the answer is (C).", "paren_first", "C", "paren"),
        ("(D) or (A)", "paren_first", "D", "paren"),
        ("The answer is B.", "paren_first", "B", "bare"),
        ("Answer: D", "paren_first", "D", "bare"),
        ("A dog walks, so C", "paren_first", "A", "bare"),
        ("C)", "paren_first", "C", "bare"),
        ("\n  B  \n", "paren_first", "B", "bare"),
        ("(b)", "paren_first", None, "no_option"),
        ("AB", "paren_first", None, "no_option"),
        ("A/B", "paren_first", None, "no_option"),
        ("(E)", "paren_first", None, "no_option"),
        ("Option-B", "paren_first", None, "no_option"),
        ("", "paren_first", None, "no_option"),
        ("A dog (D)", "bare", "A", "bare"),
        ("(D)", "bare", "D", "bare"),
    ]
    for text, parser, letter, rule in cases:
        assert parse_answer(text, parser) == (letter, rule), (text, parser)
        assert official_extract(text, parser == "paren_first") == letter, text
    assert parse_answer(None) == (None, "not_a_string")
    # the official correctness codes: 1 correct, 0 wrong, -1 no option, -2 not a string
    assert [correctness_code(*parse_answer(r), "B") for r in ("(B)", "(C)", "none", None)] == [1, 0, -1, -2]


def test_qa_parser_agrees_with_the_official_rules_on_random_text():
    """2000 random strings over the characters the patterns care about: the plugin's letter equals the official
    ``findall``-first letter for both parser variants."""
    rng = random.Random(0)
    alphabet = "ABCDEabcd() .,;:\n-/x"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for parser in ("paren_first", "bare"):
            assert parse_answer(text, parser)[0] == official_extract(text, parser == "paren_first"), repr(text)


# --- samplers ---------------------------------------------------------------------------------------------------------


def test_sampler_rules():
    """Sampler A (``myutils/utils.py``, ``get_video_uniform_frames``) takes ``i * (T // 6)`` and nothing when T < 6;
    sampler B is decord's ``np.linspace(0, T - 1, 6, dtype=int)``, the core's ``FramePolicy(nframes=6,
    sampler="floor")``."""
    from vdpm_harness.records import FramePolicy
    from vdpm_harness.video import VideoInfo, frame_indices

    assert stride_indices(20, 6) == [0, 3, 6, 9, 12, 15]
    assert stride_indices(6, 6) == [0, 1, 2, 3, 4, 5]
    assert stride_indices(5, 6) == []
    for total in (5, 6, 20, 37, 120):
        info = VideoInfo("x.mp4", total, 30.0, total / 30, 16, 16)
        expected = np.linspace(0, total - 1, 6, dtype=int).tolist()
        assert frame_indices(FramePolicy(nframes=6, sampler="floor"), info) == expected


# --- QA end to end ----------------------------------------------------------------------------------------------------


def test_qa_random_end_to_end_through_the_cli(tmp_path):
    """``vdpm-harness run --model random --bench 4dbench-qa`` on the official layout: six questions on three
    objects, micro accuracy with CIs clustered by object (the README's accuracy), per-category results."""
    data = make_qa_data(tmp_path / "data")
    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "4dbench-qa", "--bench-arg", f"data_dir={data}", "--out", str(out))
    folder = out / "random" / "4dbench-qa"
    result = json.loads((folder / "results.json").read_text())
    scores = lines(folder / "scores.jsonl")
    assert result["n_samples"] == 6 and result["n_errors"] == 0 and result["unparsed_rate"] == 0
    assert result["scoring"] == "rules:4dbench-qa-paren-first@1"
    accuracy = result["metrics"]["accuracy"]
    assert accuracy["value"] == pytest.approx(100 * sum(s["correct"] for s in scores) / 6)
    assert accuracy["n_clusters"] == 3
    gold = {key: "ABCD"[r["Answer index"] - 1] for key, r in qa_records().items()}
    for s in scores:
        assert s["gold"] == gold[s["sample_id"]] and s["video_id"] == s["sample_id"].split("_")[0]
        assert s["extraction"]["detail"]["correctness"] == (1 if s["extraction"]["answer"] == s["gold"] else 0)
    categories = {r["Category"] for r in qa_records().values()}
    assert set(result["categories"]) == categories
    assert result["category_order"] == [c for c in CATEGORIES if c in categories]


def test_qa_requests_and_frames_match_the_official_scripts(local_host, tmp_path):
    """Default family (Qwen2-VL): 18 frames as image parts taken with sampler A, view-major, then the QA-13 prompt
    with the repr of the question dict; ``internvl2``: three video parts sampled with sampler B."""
    data = make_qa_data(tmp_path / "data")
    log = tmp_path / "a.jsonl"
    result = run(local_host, tmp_path / "res", "frame-probe", "4dbench-qa", [f"data_dir={data}"], [f"log={log}"])
    records = qa_records()
    stride = [0, 3, 6, 9, 12, 15]
    entries = lines(log)
    assert sorted(e["sample_id"] for e in entries) == sorted(records)
    for entry in entries:
        record = dict(records[entry["sample_id"]])
        del record["Answer index"], record["Category"]
        assert entry["order"] == ["image"] * 18 + ["text"]
        assert entry["text"] == qa_prompt("qa13", repr(record)) and entry["max_new_tokens"] == 128
        assert entry["images"] == [f"view_{v}_rgb_white_bg_frame_{i:05d}.png" for v in VIEWS for i in stride]
        expected = [grey(v, i) for v in VIEWS for i in stride]
        assert np.allclose(entry["image_grey"], expected, atol=3)  # H.264 on flat frames: within a few levels
    answered_b = sum(r["Answer index"] == 2 for r in records.values())
    assert result.metrics["accuracy"].value == pytest.approx(100 * answered_b / 6)

    log = tmp_path / "b.jsonl"
    run(local_host, tmp_path / "res", "frame-probe", "4dbench-qa", [f"data_dir={data}", "family=internvl2"],
        [f"log={log}"])  # fmt: skip
    linspace = np.linspace(0, N_FRAMES - 1, 6, dtype=int).tolist()
    entries = lines(log)
    assert len(entries) == 6
    for entry in entries:
        assert entry["order"] == ["video"] * 3 + ["text"] and entry["video_indices"] == [linspace] * 3
        assert np.allclose(entry["video_grey"], [[grey(v, i) for i in linspace] for v in VIEWS], atol=3)


def test_gpt_family_layout_and_parser():
    """``gpt-4o_exp.py``, ``gpt-4o-mini_exp.py``: GPT-4o(-mini) get the system message ("I will provide you"), then the
    preamble, the 18 images, the question and the format line as separate user parts; gpt-4o parses without the
    parenthesis pass."""
    bench = FourDBenchQA({"family": "gpt-4o", "frames_per_view": 0})
    sample = Sample(sample_id="u_1", video_id="u", options=list("ABCD"), answer="B", meta={"vqa": "{'Q': 1}"})
    request = bench.build_request(sample)
    system, user = request.messages
    assert system.role == "system" and system.content[0].text == QA_GPT_SYSTEM
    assert [p.text for p in user.content] == [QA_GPT_PREAMBLE, "Question and choices: {'Q': 1}", QA_FORMAT]
    assert bench.extract(sample, "A dog (B)").answer == "A"
    assert FourDBenchQA({"family": "gpt-4o-mini"}).extract(sample, "A dog (B)").answer == "B"


def test_missing_media_become_per_sample_errors_naming_the_file(host, tmp_path):
    """A missing view makes the questions on that object error records naming the file, with either sampler;
    the other objects are scored and the errors count as wrong."""
    data = make_qa_data(tmp_path / "data")
    missing = data / QA_DIR / "4d_object_multi_view_videos" / "b2e4" / "view_8_rgb_white_bg.mp4"
    missing.unlink()
    for family in ("qwen2-vl", "llava-video"):
        out = tmp_path / family
        result = run(host, out, "random", "4dbench-qa", [f"data_dir={data}", f"family={family}"])
        assert result.n_samples == 6 and result.n_errors == 2
        scores = {s["sample_id"]: s for s in lines(out / "random" / "4dbench-qa" / "scores.jsonl")}
        for key in ("b2e4_0", "b2e4_1"):
            assert scores[key]["status"] == "error" and str(missing) in scores[key]["error"]
        assert all(s["status"] == "ok" for k, s in scores.items() if not k.startswith("b2e4"))
    problems = FourDBenchQA({"data_dir": str(data)}).verify()
    assert problems == [f"{missing}: missing"]


def test_bad_qa_data_is_reported_by_file_and_key(tmp_path):
    """A missing QA file says how to get it; a malformed record names the file and the question key."""
    bench = FourDBenchQA({"data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="4d_qa.json.*data pull 4dbench-qa"):
        list(bench.samples())
    (tmp_path / QA_DIR).mkdir(parents=True)
    records = qa_records()
    records["c3d5_1"]["Answer index"] = 5
    (tmp_path / QA_DIR / "4d_qa.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"4d_qa.json: question 'c3d5_1': 'Answer index' is 5"):
        list(bench.samples())
    assert any("question 'c3d5_1'" in p for p in bench.verify())


# --- caption metrics --------------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts pycocoevalcap's Java METEOR (seconds of CPU)
@needs_coco
def test_caption_aggregate_equals_direct_pycocoevalcap_calls():
    """The corpus metrics of ``aggregate`` equal ``Bleu(4)``, ``Meteor()``, ``Rouge()`` and ``Cider()``
    ``compute_score`` called here on the same PTB-tokenised gts/res (x 100); the ``*_4dbench`` metrics equal the
    mean over objects of the official per-object calls on untokenised text (``get_other_metrics_scores.py``)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    uids = list(CAPTIONS)
    candidates = [caption_from_response(PREDICTED[u]) for u in uids]
    references = [[c for c in CAPTIONS[u] if c] for u in uids]
    scores = [Score(sample_id=u, video_id=u, status="ok", response=PREDICTED[u], gold=refs)
              for u, refs in zip(uids, references)]  # fmt: skip
    metrics, categories = FourDBenchCaption().aggregate(scores)
    assert categories == {}

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(candidates)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        assert metrics[f"bleu{n + 1}_pycocoevalcap"].value == pytest.approx(100 * bleu[n], rel=1e-12)
    meteor = Meteor()
    assert metrics["meteor_java"].value == pytest.approx(100 * meteor.compute_score(gts, res)[0], rel=1e-12)
    assert metrics["rouge_l_pycocoevalcap"].value == pytest.approx(100 * Rouge().compute_score(gts, res)[0], rel=1e-12)
    assert metrics["cider_pycocoevalcap"].value == pytest.approx(100 * Cider().compute_score(gts, res)[0], rel=1e-12)
    assert metrics["cider_pycocoevalcap"].n_clusters == 3 and metrics["cider_pycocoevalcap"].ci_low is not None

    per_object = [(Bleu(4).compute_score({0: r}, {0: [c]}, verbose=0)[0], Rouge().compute_score({0: r}, {0: [c]})[0])
                  for c, r in zip(candidates, references)]  # fmt: skip
    for n in range(4):
        expected = 100 * np.mean([b[n] for b, _ in per_object])
        assert metrics[f"bleu{n + 1}_4dbench"].value == pytest.approx(expected, rel=1e-12)
    assert metrics["rouge_l_4dbench"].value == pytest.approx(100 * np.mean([r for _, r in per_object]), rel=1e-12)
    assert "bertscore_f1" not in metrics and "sbert_cosine" not in metrics


def test_caption_postprocessing():
    """The official ``handle_llm_caption_no_index``: text after the first ``caption:`` (any case), stripped; otherwise
    the whole response unchanged."""
    assert caption_from_response("Sure. CAPTION:  A cat jumps. ") == "A cat jumps."
    assert caption_from_response("caption: a caption: b") == "a caption: b"
    assert caption_from_response(" A cat. ") == " A cat. "
    assert caption_from_response(None) == ""


@pytest.mark.slow  # starts pycocoevalcap's Java METEOR (seconds of CPU)
@needs_coco
def test_human_baseline_scores_one_caption_against_the_others(tmp_path):
    """Leave-one-out (``human_caption_exp.py``) with a seeded, recorded draw; the metrics are those of
    ``caption_metrics`` on the held-out captions against the other four; identical captions give perfect per-object BLEU
    and ROUGE-L."""
    references = {uid: [c for c in captions if c] for uid, captions in CAPTIONS.items()}
    data = make_caption_data(tmp_path / "data")
    assert FourDBenchCaption({"data_dir": str(data)}).references() == references
    metrics, draws = human_baseline(references, seed=7)
    rng = random.Random(7)
    assert draws == {uid: rng.randint(1, len(references[uid])) for uid in sorted(references)}
    uids = sorted(references)
    candidates = [references[u][draws[u] - 1] for u in uids]
    others = [references[u][: draws[u] - 1] + references[u][draws[u] :] for u in uids]
    assert all(c not in o for c, o in zip(candidates, others))
    assert metrics == caption_metrics(candidates, others, uids)

    same, _ = human_baseline({"x": ["A red ball rolls left."] * 5, "y": ["Two blue cubes spin slowly."] * 5})
    assert same["bleu4_4dbench"].value == pytest.approx(100) and same["rouge_l_4dbench"].value == pytest.approx(100)
    with pytest.raises(ValueError, match="object z: 1 human caption"):
        human_baseline({"z": ["only one"]})


# --- caption end to end -----------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts pycocoevalcap's Java METEOR (seconds of CPU)
@needs_coco
def test_caption_run_and_gpt_rescore(local_host, tmp_path):
    """A caption run on the official layout: CAP-9 request, per-sample official BLEU/ROUGE-L, the aggregate equal to
    ``caption_metrics`` on the post-processed captions, CIDEr as primary; then a rescore through a judge reading
    scripted replies with the official appearance prompt (one failure: left out of the mean, counted as unparsed)."""
    data = make_caption_data(tmp_path / "data")
    result = run(local_host, tmp_path / "res", "captioner", "4dbench-caption", [f"data_dir={data}"])
    folder = tmp_path / "res" / "captioner" / "4dbench-caption"
    assert result.primary == "cider_pycocoevalcap" and result.n_samples == 3 and result.n_errors == 0
    uids = list(CAPTIONS)
    references = [[c for c in CAPTIONS[u] if c] for u in uids]
    candidates = [caption_from_response(PREDICTED[u]) for u in uids]
    expected = caption_metrics(candidates, references, uids)
    assert result.metrics == expected
    scores = {s["sample_id"]: s for s in lines(folder / "scores.jsonl")}
    for uid, candidate, refs in zip(uids, candidates, references):
        assert scores[uid]["extraction"]["answer"] == candidate and scores[uid]["gold"] == refs
        assert scores[uid]["metrics"] == pytest.approx(official_sentence_scores(candidate, refs))
        assert {"bertscore_f1", "sbert_cosine"} <= set(scores[uid]["extraction"]["detail"]["not_computed"])
    record = json.loads((folder / "run.json").read_text())
    assert record["benchmark"]["options"]["bertscore_model"] is None
    prediction = lines(folder / "predictions.jsonl")[0]
    assert len(prediction["frame_indices"]) == 0  # sampler A frames are image parts: the file names carry the index

    ScriptedJudge.prompts.clear()
    judged = rescore(local_host, folder, "scripted-gpt")
    assert judged.scoring == "judge:scripted-gpt@1"
    assert judged.metrics["gpt_appearance"].value == pytest.approx((4 + 2) / 2)
    assert judged.metrics["gpt_appearance"].n == 2 and judged.unparsed_rate == pytest.approx(1 / 3)
    assert judged.metrics["cider_pycocoevalcap"] == expected["cider_pycocoevalcap"]
    # the reference shown to the judge: random.seed(42) draws, as the rubric scripts, over the sorted objects
    rng = random.Random(42)
    columns = {u: [k for k in range(1, 6) if CAPTIONS[u][k - 1]] for u in sorted(CAPTIONS)}
    draws = {u: rng.choice(columns[u]) for u in sorted(CAPTIONS)}
    assert len(ScriptedJudge.prompts) == 3
    for prompt, uid in zip(ScriptedJudge.prompts, uids):
        assert prompt.messages == gpt_judge_messages(
            "appearance", CAPTIONS[uid][draws[uid] - 1], caption_from_response(PREDICTED[uid])
        )


def test_caption_request_layouts():
    """CAP-9 after the frames for Qwen2-VL; GPT: the caption system message, then CAP-17 before the images."""
    sample = Sample(sample_id="u", video_id="u", answer=["x"])
    [message] = FourDBenchCaption({"frames_per_view": 0}).build_request(sample).messages
    assert [p.text for p in message.content] == [caption_prompt("cap9")]
    system, user = FourDBenchCaption({"family": "gpt-4o", "frames_per_view": 0}).build_request(sample).messages
    assert system.content == [TextPart(text=CAPTION_GPT_SYSTEM)]
    assert user.content[0].text == caption_prompt("cap17")


@pytest.mark.slow  # starts pycocoevalcap's Java METEOR (seconds of CPU)
@needs_coco
def test_missing_caption_media_is_a_per_sample_error(local_host, tmp_path):
    """A missing caption video is a per-sample error naming the file (scored as an empty caption)."""
    data = make_caption_data(tmp_path / "data")
    missing = data / CAPTION_DIR / "4d_object_multi_view_videos" / "u300" / "view_16_rgb_white_bg.mp4"
    missing.unlink()
    assert FourDBenchCaption({"data_dir": str(data)}).verify() == [f"{missing}: missing"]
    result = run(local_host, tmp_path / "res", "captioner", "4dbench-caption", [f"data_dir={data}"])
    scores = {s["sample_id"]: s for s in lines(tmp_path / "res" / "captioner" / "4dbench-caption" / "scores.jsonl")}
    assert result.n_errors == 1 and scores["u300"]["status"] == "error" and str(missing) in scores["u300"]["error"]
    uids = list(CAPTIONS)
    candidates = [caption_from_response(PREDICTED[u]) if u != "u300" else "" for u in uids]
    expected = caption_metrics(candidates, [[c for c in CAPTIONS[u] if c] for u in uids], uids)
    assert result.metrics["cider_pycocoevalcap"] == expected["cider_pycocoevalcap"]


def test_model_metric_options_fail_early(local_host, tmp_path):
    """BERTScore and SBERT options fail at once with what is missing (the package, or a local model folder)."""
    for option, package in (("bertscore_model", "bert_score"), ("sbert_model", "sentence_transformers")):
        installed = importlib.util.find_spec(package) is not None
        message = "not a local model folder" if installed else f"'{package}' package, not installed"
        with pytest.raises(PluginError, match=re.escape(message)):
            local_host.create("benchmarks", "4dbench-caption", {option: str(tmp_path / "no-such-model")})


# --- data download and verification -----------------------------------------------------------------------------------


@needs_hub
def test_pull_offline_error_is_clear(tmp_path, monkeypatch):
    """With the hub unreachable (offline mode: no network is touched), ``pull`` names the dataset and the folder."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"cannot download the Hugging Face dataset vxuanz/4D-Bench into"):
        FourDBenchQA().pull(tmp_path / "4d")


@needs_hub
def test_pull_unpacks_archives_into_the_official_layout(tmp_path, monkeypatch):
    """``pull`` unpacks every zip archive the snapshot holds in place (once); ``verify`` then finds nothing missing.
    The download itself is replaced by a local archive (no network in tests)."""
    import huggingface_hub

    source = make_qa_data(tmp_path / "source")
    archive = tmp_path / "qa.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(source.rglob("*")):
            handle.write(path, path.relative_to(source))

    def fake_snapshot(repo_id, repo_type, local_dir):
        assert (repo_id, repo_type) == ("vxuanz/4D-Bench", "dataset")
        Path(local_dir, "4D_Object_Question_Answering.zip").write_bytes(archive.read_bytes())

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    target = tmp_path / "pulled"
    FourDBenchQA().pull(target)
    assert FourDBenchQA({"data_dir": str(target)}).verify() == []
    assert (target / ".4D_Object_Question_Answering.zip.extracted").is_file()
