"""DSR-Bench (``dsr``): parity with VLMEvalKit's rule scorer, both data layouts end to end, byte-exact prompts, bad
videos, blind runs, data download.

The reference is VLMEvalKit itself, as shipped on PyPI in ``ms-vlmeval==0.0.20`` (wheel sha256 pinned below): the
wheel is fetched once with ``pip download --no-deps`` into pytest's cache, and only the files of DSR-Bench's rule
scorer are loaded from it (never the ``vlmeval`` package, which needs torch and dozens of packages):

* ``vlmeval/dataset/utils/spatial_bench/matching_func.py``: ``can_match_option`` (its ``num2words`` import only
  builds a table for numeric answers, so a stub stands in);
* ``vlmeval/dataset/utils/spatial_bench/cal_scores.py``: ``compute_mcq_score`` and ``eval_mcq_score``, the per-row
  hits and the overall / per-``task_type`` accuracies ``DSRBench.evaluate`` reports (its judge, LLM and file-path
  imports are stubbed: the rule path does not use them), with ``tools/files.py`` beside it;
* ``vlmeval/dataset/dsrbench.py`` and ``vlmeval/dataset/utils/videomme.py``: read with ``ast`` only, for
  ``FRAMES_TMPL_NOSUB``, ``DATASET_MD5``, the category order and ``extract_characters_regex`` (the extractor of the
  authors' evaluation, TencentARC/DSR_Suite ``VLMEvalKit_mine``).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from vdpm_harness import hookimpl, safe_unzip
from vdpm_harness.config import build_config
from vdpm_harness.extract import extract_choice
from vdpm_harness.interfaces import Model
from vdpm_harness.pipeline import Runner
from vdpm_harness.records import FramePolicy, Response, Sample, Score, TextPart, VideoPart
from vdpm_harness.video import write_video
from vdpm_harness_plugins.benchmarks.dsr import extraction, prompts, table
from vdpm_harness_plugins.benchmarks.dsr.benchmark import DSRBench
from vdpm_harness_plugins.benchmarks.dsr.extraction import extract_dsr
from vdpm_harness_plugins.benchmarks.dsr.parity import fork_choice, vlmevalkit_choice

from .conftest import run_cli

MS_VLMEVAL = "ms-vlmeval==0.0.20"
WHEEL = "ms_vlmeval-0.0.20-py3-none-any.whl"
WHEEL_SHA256 = "0f7bef18e9c1918c8619ba6e5ff0638cf9148e53c00bd32dfbb9dfbd34cda261"
SPATIAL = "vlmeval/dataset/utils/spatial_bench"

LETTERS = ["A", "B", "C", "D"]
OPTIONS = ["A. Left", "B. Right", "C. Toward the camera", "D. Away from the camera"]


# --- the VLMEvalKit reference, from the ms-vlmeval wheel --------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel(request, tmp_path_factory) -> Path:
    """The pinned ms-vlmeval wheel, downloaded once (PyPI) and kept in pytest's cache for offline reruns."""
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("ms-vlmeval")) if cache is not None else tmp_path_factory.mktemp("ms-vlmeval")
    path = folder / WHEEL
    if not path.is_file():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", MS_VLMEVAL,
             "-d", str(folder)], capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0 or not path.is_file():
            pytest.fail(f"could not download {MS_VLMEVAL} from PyPI (needed once, then cached in {folder}):\n"
                        f"{proc.stdout}\n{proc.stderr}")  # fmt: skip
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == WHEEL_SHA256, f"{path}: sha256 {digest}, expected the pinned {WHEEL_SHA256}"
    return path


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # importable as a package too
    module.__dict__.update(attributes)
    return module


def _load_from_wheel(folder: Path, stubs: dict, modules: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """Import ``modules`` (paths under ``SPATIAL``, dotted) from the extracted wheel in ``folder``, in order, with
    ``stubs`` standing in for the rest of ``vlmeval``; ``sys.modules`` is restored afterwards."""
    pkg = SPATIAL.replace("/", ".")
    loaded = {}
    saved = {name: sys.modules.get(name) for name in [*stubs, *(f"{pkg}.{m}" for m in modules)]}
    try:
        sys.modules.update(stubs)
        for sub in modules:
            name = f"{pkg}.{sub}"
            spec = importlib.util.spec_from_file_location(name, folder / SPATIAL / (sub.replace(".", "/") + ".py"))
            loaded[sub] = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded[sub]
            spec.loader.exec_module(loaded[sub])
    finally:  # leave no fake ``vlmeval`` behind
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return loaded


@pytest.fixture(scope="session")
def ref(wheel, tmp_path_factory) -> types.SimpleNamespace:
    """VLMEvalKit's DSR-Bench rule scorer, loaded from the wheel's own files with importlib."""
    pytest.importorskip("pandas", reason="VLMEvalKit's scorer works on pandas frames")
    folder = tmp_path_factory.mktemp("vlmeval-ref")
    with zipfile.ZipFile(wheel) as zf:
        for member in (f"{SPATIAL}/matching_func.py", f"{SPATIAL}/cal_scores.py", f"{SPATIAL}/tools/files.py",
                       "vlmeval/dataset/dsrbench.py", "vlmeval/dataset/utils/videomme.py"):  # fmt: skip
            zf.extract(member, folder)

    def intermediate(eval_file, suffix="", target_format=None):
        return str(Path(eval_file).with_suffix("")) + suffix + "." + (target_format or "tsv")

    pkg = SPATIAL.replace("/", ".")
    stubs = {
        "num2words": _module("num2words", num2words=lambda number, lang="en": str(number)),
        "vlmeval": _module("vlmeval"),
        "vlmeval.smp": _module("vlmeval.smp"),
        "vlmeval.smp.file": _module("vlmeval.smp.file", get_intermediate_file_path=intermediate),
        "vlmeval.smp.vlm": _module("vlmeval.smp.vlm", gpt_key_set=lambda: False),
        "vlmeval.dataset": _module("vlmeval.dataset"),
        "vlmeval.dataset.utils": _module("vlmeval.dataset.utils"),
        "vlmeval.dataset.utils.judge_util": _module("vlmeval.dataset.utils.judge_util", build_judge=None),
        pkg: _module(pkg),
        f"{pkg}.llm_extract": _module(f"{pkg}.llm_extract", parallel_llm_extract=None),
        f"{pkg}.tools": _module(f"{pkg}.tools"),
    }
    loaded = _load_from_wheel(folder, stubs, ("matching_func", "tools.files", "cal_scores"))

    dsrbench = ast.parse((folder / "vlmeval/dataset/dsrbench.py").read_text())
    [cls] = [n for n in dsrbench.body if isinstance(n, ast.ClassDef) and n.name == "DSRBench"]
    attrs = {t.id: n.value for n in cls.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    [order] = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "_task_category"]
    videomme = ast.parse((folder / "vlmeval/dataset/utils/videomme.py").read_text())
    [regex_fn] = [n for n in videomme.body if isinstance(n, ast.FunctionDef) and n.name == "extract_characters_regex"]
    namespace = {"re": re}
    exec(compile(ast.Module(body=[regex_fn], type_ignores=[]), "videomme.py", "exec"), namespace)
    return types.SimpleNamespace(
        can_match_option=loaded["matching_func"].can_match_option,
        cal_scores=loaded["cal_scores"],
        frames_tmpl=ast.literal_eval(attrs["FRAMES_TMPL_NOSUB"]),
        dataset_md5=ast.literal_eval(attrs["DATASET_MD5"])["DSRBench"],
        categories=ast.literal_eval(order.body[-1].value),
        extract_characters_regex=namespace["extract_characters_regex"],
    )


def ref_hits(ref, responses: list[str], golds: list[str]) -> list[float]:
    """Per-row hits of VLMEvalKit's ``compute_mcq_score`` (the rule path of ``DSRBench.evaluate``)."""
    import pandas as pd

    frame = pd.DataFrame({"index": range(len(golds)), "prediction": responses, "answer": golds})
    return [float(h) for h in ref.cal_scores.compute_mcq_score(frame)["hit"]]


def fork_hit(ref, response: str, gold: str) -> float:
    """The fork's score: ``extract_characters_regex`` == answer; '' falls back to 'Z' (always wrong)."""
    return float((ref.extract_characters_regex(response) or "Z") == gold)


# --- hard cases: (response, gold) -------------------------------------------------------------------------------------

HARD_CASES = [
    ("B", "B"),
    ("b", "B"),  # lowercase
    ("(c)", "C"),
    ("d.", "D"),
    ("**B**", "B"),
    ("B. Right", "B"),
    ("The answer is (B).", "B"),
    ("The answer is (B).", "C"),
    ("Answer: C", "C"),
    ("answer: c", "C"),
    ("Final answer: (D)", "D"),
    ("The best answer is D", "D"),
    ("The correct option is C (toward the camera).", "C"),
    ("I choose C.", "C"),
    ("Best answer: C", "C"),  # the fork never strips "Best answer:" and reads the B of "Best"
    ("The person walks to the right of the frame, so the answer is B.", "B"),  # verbose
    ("Based on the video, the person moves right. B", "B"),
    ("The object moves away from the camera, D", "D"),
    ("answer is definitely B", "B"),
    ("A person walks to the left.", "A"),  # an article, not option A
    ("A person walks to the left, so the answer is B.", "B"),
    ("The answer is a person walking", "A"),
    ("<think>A seems plausible but the car turns.</think>\nC", "C"),  # think block
    ("<think>Left or right? It moves right.</think>\n<answer>B</answer>", "B"),
    ("<think>I think the answer is B", "B"),  # unclosed: the reasoning never finished
    ("<answer>D</answer>", "D"),  # answer tags
    ("<answer>The answer is C because it moves away</answer>", "C"),
    ("<answer>Definitely C</answer>", "C"),
    ("<answer>I think C</answer>", "C"),
    ("The answer is A. Wait, actually the answer is C.", "C"),  # the last declaration
    ("A or B", "A"),  # multiple letters
    ("A and C", "C"),
    ("B, C", "B"),
    ("It could be B or C.", "B"),
    ("Option B is correct because option A is wrong.", "B"),
    ("Toward the camera", "C"),  # option text only
    ("toward the camera.", "C"),
    ("Right", "B"),
    ("A. Left\nB. Right\nC. Toward the camera\nD. Away from the camera", "D"),  # the options restated
    ("A. Left\nB. Right\nC. Toward the camera\nD. Away from the camera\nAnswer: C", "C"),
    ("E", "A"),  # not an option here
    ("It moves right.", "B"),
    ("", "A"),  # empty
    ("   ", "A"),
    ("\u200bB\u200b", "B"),
]

#: Where the default extractor deliberately reads a response differently from VLMEvalKit's ``can_match_option``:
#: response -> (harness letter, VLMEvalKit letter, reason). Every other hard case must agree letter for letter.
DELIBERATE = {
    "d.": ("D", None, "a lone letter with a full stop is an answer; VLMEvalKit accepts lowercase only without it"),
    "A person walks to the left.": (None, "A", "'A person' is an article, not option A"),
    "The answer is a person walking": (None, "A", "the article again, after a declaration phrase"),
    "<think>I think the answer is B": (None, "B", "an unclosed <think>: the reasoning was cut off, no final answer"),
    "<answer>Definitely C</answer>": ("C", "D", "VLMEvalKit takes the first character of an <answer> block"),
    "<answer>I think C</answer>": ("C", "I", "the same rule gives 'I', not even an option"),
    "The answer is A. Wait, actually the answer is C.": ("C", "A", "the last declaration wins, not the first"),
    "Toward the camera": ("C", None, "the text of exactly one option"),
    "toward the camera.": ("C", None, "the text of exactly one option"),
    "Right": ("B", None, "the text of exactly one option"),
    "A. Left\nB. Right\nC. Toward the camera\nD. Away from the camera": (
        None, "D", "restating every option is not an answer (VLMEvalKit takes the last restated line)"),
    "E": (None, "E", "only the sample's letters A-D are answers (VLMEvalKit allows A-F)"),
}  # fmt: skip


def bench(**options) -> DSRBench:
    return DSRBench({"data_dir": "/nonexistent", **options})


def sample(gold: str, sample_id: str = "0", category: str | None = "abs_dir", video: str = "v.mp4") -> Sample:
    return Sample(sample_id=sample_id, video_id=video, category=category, question="Where does the car go?",
                  options=OPTIONS, answer=gold, media=[f"/data/{video}"])  # fmt: skip


@pytest.mark.network
def test_vlmevalkit_decision_matches_the_reference_on_every_hard_case(ref):
    """``detail["vlmevalkit"]`` equals ``can_match_option`` and the hit of ``compute_mcq_score`` on every item."""
    b = bench()
    responses, golds = zip(*HARD_CASES)
    hits = ref_hits(ref, list(responses), list(golds))
    for (response, gold), hit in zip(HARD_CASES, hits):
        detail = b.extract(sample(gold), response).detail["vlmevalkit"]
        assert detail["answer"] == (ref.can_match_option(response) or None), response
        assert detail["hit"] == hit, response


@pytest.mark.network
def test_vlmevalkit_reimplementation_on_random_text(ref):
    """5000 seeded random strings from the cascade's building blocks (tags, phrases, brackets, Chinese phrases,
    option lines, lone letters, the 800-character tail window, zero-width characters)."""
    fragments = [
        "A", "B", "C", "D", "E", "F", "G", "a", "b", "c", "f", "(", ")", "[", "]", "（", "【", "】", "*", "**", "_",
        "`", ">", "-", ".", ",", ":", "：", "!", "、", "。", " ", "\n", "\n\n", "\t", "<answer>", "</answer>",
        "< answer >", "<think>", "</think>", "answer", "Answer", "answer is", "the answer is", "final answer",
        "correct answer", "Option A:", "option b:", "选项 C：", "答案", "我选择", "选", "person", "is", "x", "Based",
        "\u200b", "The", "I", "=", "'", "é", "ſ", "K", "1", "<answer x=1>", "\r\n",
    ]  # fmt: skip
    rng = np.random.default_rng(20261124)
    for i in range(5000):
        text = "".join(rng.choice(fragments, size=int(rng.integers(1, 15))))
        if i % 7 == 0:
            text = "x " * int(rng.integers(385, 410)) + text
        assert vlmevalkit_choice(text) == (ref.can_match_option(text) or None), repr(text)


@pytest.mark.network
def test_default_extractor_differs_from_vlmevalkit_only_where_listed(ref):
    """Agreement letter for letter except the deliberate differences, each with its reason (DELIBERATE)."""
    differences = {}
    for response, _ in HARD_CASES:
        ours = extract_dsr(response, LETTERS, OPTIONS).answer
        theirs = ref.can_match_option(response) or None
        if ours != theirs:
            differences[response] = (ours, theirs)
    assert differences == {response: (ours, theirs) for response, (ours, theirs, _) in DELIBERATE.items()}


@pytest.mark.network
def test_fork_decision_matches_extract_characters_regex(ref):
    """``detail["fork"]`` is the first capital A-D after the fused prefixes (``extract_characters_regex``)."""
    b = bench()
    for response, gold in HARD_CASES:
        detail = b.extract(sample(gold), response).detail["fork"]
        assert detail["answer"] == (ref.extract_characters_regex(response) or None), response
        assert detail["hit"] == fork_hit(ref, response, gold), response
    assert fork_choice("Best answer: C") == "B"  # the fused "Best answer:Best option:" is never stripped


@pytest.mark.parametrize(
    "response, expected, core",
    [
        ("b", "B", "B"),  # a lone lowercase letter (the core extractor reads it too)
        ("d.", "D", "D"),
        ("Option B is correct because option A is wrong.", None, "A"),  # a mention is not a declaration
        ("The answer is a person walking", None, "A"),  # the article after a declaration phrase
        ("A. Left\nB. Right\nC. Toward the camera\nD. Away from the camera", None, "D"),  # restated options
        ("The answer is (B).", "B", "B"),
        ("<think>A? no.</think> Final answer: c", "C", "C"),
        ("A person walks to the left.", None, None),
    ],
)
def test_dsr_rules_beyond_the_core_extractor(response, expected, core):
    """The four changes of :func:`extract_dsr` against ``vdpm_harness.extract.extract_choice`` (and agreement)."""
    assert extract_dsr(response, LETTERS, OPTIONS).answer == expected
    assert extract_choice(response, LETTERS, OPTIONS).answer == core


@pytest.mark.network
def test_aggregates_match_vlmevalkit_eval_mcq_score(ref, tmp_path):
    """On 13 categories x 7 questions, ``accuracy_vlmevalkit`` (overall and per category) equals the summary of
    VLMEvalKit's ``eval_mcq_score`` with the rule scorer, and ``accuracy`` / ``accuracy_fork`` equal the means of
    our own and the fork's hits."""
    import pandas as pd

    assert ref.categories == table.CATEGORIES
    b = bench()
    samples, responses = [], []
    for i in range(13 * 7):
        response, gold = HARD_CASES[(5 * i) % len(HARD_CASES)]
        samples.append(sample(gold, str(i), table.CATEGORIES[i % 13], f"clip_{i % 5}.mp4"))
        responses.append(response)
    scores = []
    for s, response in zip(samples, responses):
        extraction = b.extract(s, response)
        correct, metrics = b.score(s, extraction)
        scores.append(Score(sample_id=s.sample_id, video_id=s.video_id, category=s.category, status="ok",
                            correct=correct, metrics=metrics, extraction=extraction, gold=s.answer))  # fmt: skip
    metrics, categories = b.aggregate(scores)

    frame = pd.DataFrame({
        "index": [int(s.sample_id) for s in samples], "prediction": responses,
        "answer": [s.answer for s in samples], "task_type": [s.category for s in samples],
    })  # fmt: skip
    summary = ref.cal_scores.eval_mcq_score(
        load_fn=lambda _: frame.copy(), eval_file=str(tmp_path / "model_DSRBench.xlsx"),
        score_fn=ref.cal_scores.build_mcq_score_fn(), group_col="task_type", order=ref.categories,
        dataset_name="DSRBench",
    )  # fmt: skip
    assert metrics["accuracy_vlmevalkit"].value == pytest.approx(summary["overall"], abs=1e-9)
    assert list(categories) == table.CATEGORIES
    for category in table.CATEGORIES:
        assert categories[category]["accuracy_vlmevalkit"].value == pytest.approx(summary[f"{category}_accuracy"])
        assert categories[category]["accuracy"].n == 7 and categories[category]["accuracy"].ci_low is not None
    ours = [extract_dsr(r, LETTERS, OPTIONS).answer == s.answer for s, r in zip(samples, responses)]
    assert metrics["accuracy"].value == pytest.approx(100 * np.mean(ours))
    fork = [fork_hit(ref, r, s.answer) for s, r in zip(samples, responses)]
    assert metrics["accuracy_fork"].value == pytest.approx(100 * np.mean(fork))
    assert metrics["accuracy"].value != metrics["accuracy_vlmevalkit"].value  # the fixture exercises the differences


# --- prompts ----------------------------------------------------------------------------------------------------------

#: VLMEvalKit's ``DSRBench.FRAMES_TMPL_NOSUB`` (``vlmeval/dataset/dsrbench.py``), transcribed character by character.
PRE_PROMPT = (
    "\nThese are the frames of a video. Select the best answer to the following multiple-choice question based on "
    "the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)


@pytest.mark.network
def test_instruction_and_checksum_are_the_wheels(ref):
    """The instruction equals the wheel's ``FRAMES_TMPL_NOSUB``, the published checksum its ``DATASET_MD5``."""
    assert prompts.PRE_PROMPT == PRE_PROMPT == ref.frames_tmpl
    assert table.TSV_MD5 == ref.dataset_md5


def test_prompts_are_byte_exact():
    """The instruction is VLMEvalKit's (transcribed above); the question part ends in "Answer: " (trailing space);
    upstream puts the instruction before the video, the fork an empty text, the video, then it."""
    assert prompts.PRE_PROMPT == PRE_PROMPT
    s = sample("B")
    question = ("Question: Where does the car go?\nA. Left\nB. Right\nC. Toward the camera\n"
                "D. Away from the camera\nAnswer: ")  # fmt: skip
    [upstream] = bench().build_request(s).messages
    assert [p.type for p in upstream.content] == ["text", "video", "text"]
    assert upstream.content[0].text == PRE_PROMPT and upstream.content[2].text == question
    assert upstream.content[2].text.endswith("\nAnswer: ")
    [fork] = bench(prompt="dsr_fork").build_request(s).messages
    assert [p.type for p in fork.content] == ["text", "video", "text", "text"]
    assert [p.text for p in fork.content if isinstance(p, TextPart)] == ["", PRE_PROMPT, question]
    video = fork.content[1]
    assert isinstance(video, VideoPart) and video.video == "/data/v.mp4" and video.frames == FramePolicy(nframes=32)


def test_frame_settings():
    """32 frames by default (the authors' setting); VLMEvalKit's named variants; ``frames`` for anything else."""
    assert bench().frame_policy == FramePolicy(nframes=32)
    assert bench(frame_preset="64frame").frame_policy == FramePolicy(nframes=64)
    assert bench(frame_preset="30frame").frame_policy == FramePolicy(nframes=30)
    assert bench(frame_preset="1fps").frame_policy == FramePolicy(fps=1.0)
    assert bench(frames={"nframes": 0}).frame_policy.blind
    with pytest.raises(ValueError, match="either 'frames' or 'frame_preset'"):
        bench(frames={"nframes": 8}, frame_preset="32frame")


# --- data fixtures ----------------------------------------------------------------------------------------------------


def fixture_rows() -> list[dict]:
    """Two questions per category on six clips (each category spans two clips, so its CI is defined)."""
    rows = []
    for i, category in enumerate(table.CATEGORIES):
        for j in range(2):
            k = 2 * i + j
            options = [f"A. ({k}) Front|Left.", "B. Toward the camera's right", f"C. Away, {category}", "D. Static"]
            rows.append({"index": 100 + k, "video": f"clip_{k % 6}.mp4", "question": f"Question {k} on {category}?",
                         "options": options, "answer": LETTERS[k % 4], "task_type": category})  # fmt: skip
    return rows


def write_tsv(path: Path, rows: list[dict]) -> None:
    """VLMEvalKit's TSV layout; options alternate between JSON and a Python literal, as both are published."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "video", "question", "options", "answer", "task_type"])
        for n, row in enumerate(rows):
            options = json.dumps(row["options"]) if n % 2 == 0 else repr(row["options"])
            writer.writerow([row["index"], row["video"], row["question"], options, row["answer"], row["task_type"]])


def write_videos(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(sorted(set(names))):
        frames = np.zeros((8, 32, 32, 3), np.uint8)
        for t in range(8):
            frames[t, :, (3 * t + n) % 28 : (3 * t + n) % 28 + 4] = 200
        write_video(folder / name, frames, fps=4)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def tsv_data(tmp_path) -> Path:
    """``DSRBench.tsv`` with the videos in VLMEvalKit's place, ``raw_data/dsr-bench/``."""
    root = tmp_path / "dsr"
    root.mkdir()
    rows = fixture_rows()
    write_tsv(root / table.TSV_NAME, rows)
    write_videos(root / table.VIDEO_FOLDER, [r["video"] for r in rows])
    return root


def check_results(result: dict, n_per_category: int = 2) -> None:
    """13 categories in VLMEvalKit's order, n per cell, CIs clustered over the two clips of each category."""
    assert result["category_order"] == table.CATEGORIES and list(result["categories"]) == table.CATEGORIES
    for cells in result["categories"].values():
        accuracy = cells["accuracy"]
        assert accuracy["n"] == n_per_category and accuracy["n_clusters"] == 2
        assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    overall = result["metrics"]["accuracy"]
    assert overall["n"] == 13 * n_per_category and overall["n_clusters"] == 6 and overall["ci_low"] is not None
    assert result["scoring"] == extraction.METHOD and result["primary"] == "accuracy"
    # the random baseline answers a bare letter, which all three protocols read alike
    for name in ("accuracy_vlmevalkit", "accuracy_fork"):
        assert result["metrics"][name]["value"] == overall["value"]


# --- both layouts end to end ------------------------------------------------------------------------------------------


def test_tsv_layout_end_to_end(tsv_data, tmp_path):
    """``vdpm-harness run --model random --bench dsr --bench-arg data_dir=...`` on the VLMEvalKit layout."""
    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "dsr", "--bench-arg", f"data_dir={tsv_data}", "--out", str(out))
    folder = out / "random" / "dsr"
    result = json.loads((folder / "results.json").read_text())
    check_results(result)
    assert result["n_samples"] == 26 and result["n_errors"] == 0
    assert "differs from the published" in result["run"]["benchmark"]["dataset_revision"]
    scores = {s["sample_id"]: s for s in lines(folder / "scores.jsonl")}
    assert set(scores) == {str(100 + k) for k in range(26)}
    assert scores["101"]["category"] == "abs_dis" and scores["101"]["gold"] == "B"
    preds = lines(folder / "predictions.jsonl")
    assert all(len(p["frame_indices"][0]) == 32 for p in preds)  # 32 frames sampled from the 8-frame clips


def test_options_json_and_python_literal_load_identically(tsv_data):
    samples = list(DSRBench({"data_dir": str(tsv_data)}).samples())
    expected = fixture_rows()
    assert [s.options for s in samples] == [r["options"] for r in expected]
    assert samples[1].options[1] == "B. Toward the camera's right"  # from the Python literal
    assert samples[0].media == [str(tsv_data / table.VIDEO_FOLDER / "clip_0.mp4")]
    assert samples[0].video_id == "clip_0.mp4"


def write_parquet(path: Path, rows: list[dict]) -> None:
    """The authors' ``benchmark.parquet`` layout: videoID, options (array), question, answer; no category."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.table({
        "videoID": [Path(r["video"]).stem for r in rows], "options": [r["options"] for r in rows],
        "question": [r["question"] for r in rows], "answer": [r["answer"] for r in rows],
    })  # fmt: skip
    pq.write_table(arrow, path)


def test_parquet_layout_end_to_end(tmp_path):
    """The parquet with the TSV beside it: categories joined by (video, question), ids are row numbers; without the
    TSV the categories are unknown. Without pyarrow, a clear error says to install it."""
    root = tmp_path / "dsr"
    root.mkdir()
    rows = fixture_rows()
    write_videos(root, [r["video"] for r in rows])  # videos directly under data_dir: detected
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        (root / table.PARQUET_NAME).write_bytes(b"PAR1")
        with pytest.raises(table.DataError, match="pip install pyarrow"):
            list(DSRBench({"data_dir": str(root)}).samples())
        return
    write_parquet(root / table.PARQUET_NAME, rows[::-1])  # another row order than the TSV
    alone = list(DSRBench({"data_dir": str(root)}).samples())
    assert [s.sample_id for s in alone] == [str(i) for i in range(26)] and {s.category for s in alone} == {None}
    assert alone[0].media == [str(root / "clip_1.mp4")] and alone[0].question == rows[-1]["question"]

    write_tsv(root / table.TSV_NAME, rows)
    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "dsr", "--bench-arg", f"data_dir={root}",
            "--bench-arg", "layout=parquet", "--out", str(out))  # fmt: skip
    result = json.loads((out / "random" / "dsr" / "results.json").read_text())
    check_results(result)
    assert "benchmark.parquet md5:" in result["run"]["benchmark"]["dataset_revision"]
    scores = {s["sample_id"]: s for s in lines(out / "random" / "dsr" / "scores.jsonl")}
    assert scores["0"]["category"] == rows[-1]["task_type"] and scores["0"]["gold"] == rows[-1]["answer"]


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / table.PARQUET_NAME).write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(table.DataError, match=r"benchmark\.parquet: reading .* needs pyarrow.*pip install pyarrow"):
        list(DSRBench({"data_dir": str(tmp_path), "layout": "parquet"}).samples())


# --- bad data ---------------------------------------------------------------------------------------------------------


def test_missing_and_corrupt_videos_are_error_records_and_verify_lists_them(tsv_data, host, tmp_path):
    folder = tsv_data / table.VIDEO_FOLDER
    (folder / "clip_2.mp4").unlink()
    (folder / "clip_3.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    problems = DSRBench({"data_dir": str(tsv_data)}).verify()
    assert problems[0].startswith(f"{tsv_data / table.TSV_NAME}: MD5 ") and table.TSV_MD5 in problems[0]
    assert problems[1:] == [f"{folder / 'clip_2.mp4'}: video missing (4 questions)"]

    config = build_config(models="random", benches="dsr", bench_args=(f"data_dir={tsv_data}",), out=str(tmp_path / "r"))
    [outcome] = Runner(config, host).run()
    assert outcome.result.n_samples == 26 and outcome.result.n_errors == 8  # 4 questions on each bad clip
    scores = lines(tmp_path / "r" / "random" / "dsr" / "scores.jsonl")
    errors = {s["sample_id"]: s["error"] for s in scores if s["status"] == "error"}
    assert len(errors) == 8 and all(e.startswith("video error: ") for e in errors.values())
    assert str(folder / "clip_2.mp4") in errors["102"] and str(folder / "clip_3.mp4") in errors["103"]


def test_malformed_rows_are_named(tmp_path):
    rows = fixture_rows()[:3]
    write_tsv(tmp_path / table.TSV_NAME, rows)
    text = (tmp_path / table.TSV_NAME).read_text().replace("\tA\tabs_dis", "\tE\tabs_dis")
    (tmp_path / table.TSV_NAME).write_text(text.replace("['A. (1)", "[broken 'A. (1)"))
    b = DSRBench({"data_dir": str(tmp_path)})
    with pytest.raises(table.DataError, match="the DSR-Bench table has 2 malformed rows") as info:
        list(b.samples())
    assert f"{tmp_path / table.TSV_NAME} line 2: answer 'E' is not one of the option letters ABCD" in str(info.value)
    assert f"{tmp_path / table.TSV_NAME} line 3: options" in str(info.value)
    assert sum(" line 2: " in p or " line 3: " in p for p in b.verify()) == 2
    (tmp_path / table.TSV_NAME).write_bytes(b"index\tvideo\n\xff\xfe not UTF-8")
    assert DSRBench({"data_dir": str(tmp_path)}).verify() == [
        f"{tmp_path / table.TSV_NAME}: not a readable UTF-8 TSV table: 'utf-8' codec can't decode byte 0xff in "
        "position 12: invalid start byte"
    ]


def test_no_data_is_a_clear_error(tmp_path):
    with pytest.raises(table.DataError, match="no data folder; pass --bench-arg data_dir=DIR"):
        list(DSRBench().samples())
    with pytest.raises(table.DataError, match=r"no DSR-Bench table: expected .*DSRBench\.tsv or .*benchmark\.parquet"):
        list(DSRBench({"data_dir": str(tmp_path)}).samples())
    assert DSRBench({"data_dir": str(tmp_path)}).verify()[0].startswith("dsr: no DSR-Bench table")


# --- blind runs -------------------------------------------------------------------------------------------------------


class FrameCounter(Model):
    """Records the frame count of every video it is handed; answers B."""

    seen: ClassVar[list[list[int]]] = []

    def generate(self, batch):
        for prepared in batch:
            FrameCounter.seen.append([video.frames.shape[0] for video in prepared.videos])
        return [Response(sample_id=p.request.sample_id, text="B") for p in batch]


@hookimpl
def _register_frame_counter(register):
    register("frame-counter", FrameCounter, description="Counts decoded frames (test_dsr).")


def test_blind_run_decodes_no_frames(tsv_data, host, tmp_path):
    """``frames={"nframes": 0}``: the request keeps its video part, but no frame is probed or decoded (the clips may
    even be gone); the normal run of the same model gets 32 frames per clip."""
    host.register(types.SimpleNamespace(register_models=_register_frame_counter), name="dsr-frame-counter")
    try:
        FrameCounter.seen.clear()
        config = build_config(models="frame-counter", benches="dsr", out=str(tmp_path / "seeing"),
                              bench_args=(f"data_dir={tsv_data}",), decode_workers=0)  # fmt: skip
        Runner(config, host).run()
        assert len(FrameCounter.seen) == 26 and all(seen == [32] for seen in FrameCounter.seen)

        FrameCounter.seen.clear()
        for video in (tsv_data / table.VIDEO_FOLDER).iterdir():
            video.unlink()
        config = build_config(models="frame-counter", benches="dsr", out=str(tmp_path / "blind"),
                              bench_args=(f"data_dir={tsv_data}", 'frames={"nframes": 0}'))  # fmt: skip
        [outcome] = Runner(config, host).run()
    finally:
        host.unregister("dsr-frame-counter")
    assert outcome.result.n_errors == 0 and FrameCounter.seen == [[]] * 26
    preds = lines(tmp_path / "blind" / "frame-counter" / "dsr" / "predictions.jsonl")
    assert all(p["frame_indices"] == [[]] for p in preds)
    run = json.loads((tmp_path / "blind" / "frame-counter" / "dsr" / "run.json").read_text())
    assert run["benchmark"]["options"]["frames"]["nframes"] == 0


def test_blind_run_from_the_command_line(tsv_data, tmp_path):
    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "dsr", "--bench-arg", f"data_dir={tsv_data}",
            "--bench-arg", 'frames={"nframes": 0}', "--out", str(out))  # fmt: skip
    [folder] = list(out.glob("random*/dsr"))
    assert all(p["frame_indices"] == [[]] for p in lines(folder / "predictions.jsonl"))
    check_results(json.loads((folder / "results.json").read_text()))


# --- download ---------------------------------------------------------------------------------------------------------


def test_safe_unzip_refuses_paths_outside_the_folder(tmp_path):
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("dsr-bench/clip.mp4", b"x")
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("dsr-bench/ok.mp4", b"x")
        zf.writestr("../escaped.txt", b"x")
    assert safe_unzip(good, tmp_path / "out") == 1 and (tmp_path / "out/dsr-bench/clip.mp4").read_bytes() == b"x"
    with pytest.raises(RuntimeError, match=r"unsafe path in the archive.*'\.\./escaped\.txt'"):
        safe_unzip(bad, tmp_path / "out2")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out2").exists()


def test_pull_offline_is_a_clear_error(tmp_path, monkeypatch):
    """With the hub unreachable (offline mode: no network is touched) the error says what to copy where."""
    constants = pytest.importorskip("huggingface_hub.constants", reason="downloading needs the hub extra")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError) as info:
        DSRBench().pull(tmp_path)
    message = str(info.value)
    assert f"could not download DSRBench.tsv from https://huggingface.co/datasets/{table.EASI_REPO}" in message
    assert f"vdpm-harness data verify dsr --data-dir {tmp_path}" in message


def test_pull_unpacks_the_videos_where_vlmevalkit_does(tmp_path, monkeypatch):
    """``pull`` with a stand-in for ``hf_hub_download`` (the files it would fetch): the archive is unpacked into
    ``raw_data/`` so the videos land in ``raw_data/dsr-bench/``, and verify then finds every video."""
    huggingface_hub = pytest.importorskip("huggingface_hub", reason="downloading needs the hub extra")

    staging = tmp_path / "hub"
    staging.mkdir()
    rows = fixture_rows()
    write_tsv(staging / table.TSV_NAME, rows)
    write_videos(staging / "videos", [r["video"] for r in rows])
    with zipfile.ZipFile(staging / "dsr-bench.zip", "w") as zf:
        for video in sorted((staging / "videos").iterdir()):
            zf.write(video, f"dsr-bench/{video.name}")
    fetched = []

    def fake_download(repo_id, filename, repo_type, local_dir):
        fetched.append((repo_id, filename, repo_type))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((staging / Path(filename).name).read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    data = tmp_path / "data"
    DSRBench().pull(data)
    assert fetched == [
        (table.EASI_REPO, "DSRBench.tsv", "dataset"),
        (table.EASI_REPO, "raw_data/dsr-bench.zip", "dataset"),
    ]
    assert (data / "raw_data" / table.EXTRACTED_SENTINEL).is_file()
    problems = DSRBench({"data_dir": str(data)}).verify()
    assert len(problems) == 1 and "differs from the published" in problems[0]  # only the fixture's checksum
    assert len(list(DSRBench({"data_dir": str(data)}).samples())) == 26


# --- the LLM scorer (VLMEvalKit's llm_extract.py, from the same wheel) ------------------------------------------------


@pytest.fixture(scope="session")
def ref_judge(wheel, tmp_path_factory) -> types.SimpleNamespace:
    """VLMEvalKit's LLM scorer for DSR-Bench (``extract_ans_by_llm`` and ``call_llm_extract``), loaded from the
    wheel's ``llm_extract.py`` and ``tools/utils.py`` with importlib; a fake judge model stands in for the API."""
    pytest.importorskip("pandas", reason="VLMEvalKit's scorer works on pandas frames")
    import logging

    folder = tmp_path_factory.mktemp("vlmeval-judge")
    with zipfile.ZipFile(wheel) as zf:
        for member in (f"{SPATIAL}/llm_extract.py", f"{SPATIAL}/tools/utils.py"):
            zf.extract(member, folder)
    pkg = SPATIAL.replace("/", ".")
    stubs = {
        "vlmeval": _module("vlmeval"),
        "vlmeval.smp": _module("vlmeval.smp"),
        "vlmeval.smp.file": _module("vlmeval.smp.file", load=None),
        "vlmeval.smp.log": _module("vlmeval.smp.log", get_logger=logging.getLogger),
        "vlmeval.utils": _module("vlmeval.utils"),
        "vlmeval.utils.mp_util": _module("vlmeval.utils.mp_util", track_progress_rich=None),
        "vlmeval.dataset": _module("vlmeval.dataset"),
        "vlmeval.dataset.utils": _module("vlmeval.dataset.utils"),
        pkg: _module(pkg),
        f"{pkg}.tools": _module(f"{pkg}.tools"),
    }
    module = _load_from_wheel(folder, stubs, ("tools.utils", "llm_extract"))["llm_extract"]
    return types.SimpleNamespace(prompt=module.GENERIC_EXTRACT_JUDGE_PROMPT, extract=module.extract_ans_by_llm)


class FakeJudge:
    """What VLMEvalKit calls: ``generate(prompt) -> str``; records the prompts, replies with ``reply``."""

    def __init__(self, reply: str):
        self.reply, self.prompts = reply, []

    def generate(self, prompt):
        self.prompts.append(prompt)
        return self.reply


JUDGE_ROWS = [
    # (question, options as stored in the TSV, gold, response)
    ("Where does the car go?", OPTIONS, "B", "The car turns right, so B."),
    ("Relative to the dog at the start, where is the ball?",
     ["A. (1) Front|Left.", "B.  (2)   Back|Right. ", "C. (3) Left", "D. (4) Right"], "A", "<think>hmm</think>A"),
    ("Which is faster?\nThink carefully.", ["A. The dog", "B. The ball", "C. Same speed"], "C", ""),
]  # fmt: skip


@pytest.mark.network
def test_judge_prompt_is_vlmevalkits_to_the_character(ref_judge):
    """The request of the ``dsr`` plugin for a response equals the prompt VLMEvalKit's ``extract_ans_by_llm`` sends
    for the same table row (options serialised as in ``DSRBench.tsv``), quirks included (``"A. A. ..."``)."""
    from vdpm_harness_plugins.benchmarks.dsr.judge import JUDGE_PROMPT

    assert JUDGE_PROMPT == ref_judge.prompt
    import pandas as pd

    sent = []
    for question, options, gold, response in JUDGE_ROWS:
        judge = FakeJudge("A\tB")
        row = pd.Series({"index": 0, "question": question, "options": json.dumps(options), "answer": gold,
                         "prediction": response})  # fmt: skip
        assert ref_judge.extract(judge, row, mode="mcq") == ("A", "B")
        mine = Sample(sample_id="0", video_id="v", question=question, options=options, answer=gold, media=["v.mp4"])
        [message] = bench().judge_prompt(mine, response).messages
        assert message == {"role": "user", "content": judge.prompts[0]}
        sent.append(judge.prompts[0])
    # upstream's quirks, reproduced: letters prefixed twice, whitespace collapsed, the gold answer as letter + text
    assert "Options:\nA. A. (1) Front|Left.\nB. B. (2) Back|Right.\n" in sent[1]
    assert "<Standard Answer Begin>\nA. A. (1) Front|Left.\n<Standard Answer End>" in sent[1]


@pytest.mark.network
@pytest.mark.parametrize("reply", [
    "A\tB", "B\tC. Stay the same", "C\tN/A", "A", "B  ", "  A | B", "A: the ball", "A,B", "C\\tN/A", "A\t",
    "A\tB\nsecond line ignored", "Answer: B", "The grade is A", "D\tB", "a\tB", "", "   \n  ", "AB\tB", "(A)\tB",
])  # fmt: skip
def test_judge_replies_are_read_as_vlmevalkit_reads_them(ref_judge, reply):
    """Grade and extracted answer from a reply equal ``call_llm_extract``'s (which re-asks an unreadable reply three
    times, then grades C; an empty reply crashes it, here it is an unreadable one)."""
    import pandas as pd

    question, options, gold, response = JUDGE_ROWS[0]
    row = pd.Series({"question": question, "options": json.dumps(options), "answer": gold, "prediction": response})
    mine = bench().parse_judgement(sample(gold), reply)
    if reply.strip():
        grade, extracted = ref_judge.extract(FakeJudge(reply), row, mode="mcq")
    else:
        with pytest.raises(IndexError):  # upstream: ``ans.splitlines()[0]`` of an empty reply
            ref_judge.extract(FakeJudge(reply), row, mode="mcq")
        grade, extracted = "C", "N/A"
    assert (mine.detail["grade"], mine.detail["extracted_answer"]) == (grade, extracted)
    assert bench().score(sample(gold), mine)[0] == (1.0 if grade == "A" else 0.0)


def test_rescore_with_the_llm_scorer_through_the_judge(tsv_data, host, tmp_path, monkeypatch):
    """A finished ``dsr`` run rescored with ``openai-judge`` (a real HTTP server on loopback plays the judge): one
    user message per response in VLMEvalKit's format, no structured output, and correct iff the grade is A."""
    from tests.chat_server import ChatServer
    from vdpm_harness.config import build_config
    from vdpm_harness.pipeline import Runner
    from vdpm_harness.scoring import rescore

    config = build_config(
        models="random", benches="dsr", out=str(tmp_path / "res"), bench_args=(f"data_dir={tsv_data}",)
    )
    [outcome] = Runner(config, host).run()
    folder = tmp_path / "res" / "random" / "dsr"
    responses = {p["sample_id"]: p["response"] for p in lines(folder / "predictions.jsonl")}

    def grade(body):  # A when the response's letter is the gold one (read from the request), else B
        [message] = body["messages"]
        text = message["content"]
        gold = re.search(r"<Standard Answer Begin>\n(\w)\. ", text).group(1)
        answer = re.search(r"<Candidate's Answer Begin>\n(.*)\n<Candidate's Answer End>", text, re.S).group(1)
        return f"{'A' if answer.strip() == gold else 'B'}\t{answer.strip()}"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ChatServer(responder=grade) as server:
        judge = host.create("judges", "openai-judge", {"base_url": server.url, "model": "gpt-4o-mini",
                                                        "temperature": 0})  # fmt: skip
        judged = rescore(host, folder, judge)
        assert len(server.requests) == 26
        assert all("response_format" not in r.body and r.body["temperature"] == 0 for r in server.requests)
    assert judged.scoring == "judge:openai-judge@1"
    assert judged.metrics["accuracy"].value == pytest.approx(outcome.result.metrics["accuracy"].value)
    scores = {s["sample_id"]: s for s in lines(folder / "scores.jsonl")}
    for sample_id, score in scores.items():
        detail = score["extraction"]["detail"]
        assert detail["grade"] in "AB" and detail["extracted_answer"] == responses[sample_id].strip()
        assert score["correct"] == (1.0 if detail["grade"] == "A" else 0.0)
