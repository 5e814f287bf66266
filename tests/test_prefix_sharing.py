"""Shared prompt prefixes (issue 16): each video is encoded and its prompt prefix prefilled once for all the questions
a batch asks about it (``plugins/models/qwen25vl/prefix.py``), and the planner puts a video's questions together.

On the CPU with the tiny random-weight model in float32: the shared path's logits are within 1e-5 of the unshared
path's at every step, with the same greedy tokens, on batches with several questions per video and videos of
different sizes, under ``sdpa`` and the plugin's ``rowwise`` attention; the token ids the shared path builds equal the
processor's; result keys do not change, so a run resumes across the option; the planner groups a video's questions and
keeps them in one batch where they fit.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections import Counter

import numpy as np
import pytest

from vdpm_harness.interfaces import Model, PreparedRequest
from vdpm_harness.planning import WorkItem, group_by_prefix, opens_batch
from vdpm_harness.records import (
    FramePolicy,
    GenerationSettings,
    ImagePart,
    Message,
    Request,
    Response,
    Sample,
    TextPart,
    VideoPart,
)  # fmt: skip
from vdpm_harness.video import decode
from vdpm_harness_plugins.models.qwen25vl import prefix
from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL

from .conftest import HAS_TORCH, needs_torch, write_clips

if HAS_TORCH:
    import torch

OFFLINE = {"HF_HUB_OFFLINE": "1"}
PRE = "These are the frames of a video. Answer the question."
#: Frames sized by the decoder under one pixel limit: the two clips below get different grids (10x14 and 12x16 patches).
POLICY = FramePolicy(nframes=8, max_pixels=40_000, size_multiple=28)


@pytest.fixture(scope="module")
def tiny(tiny_qwen):
    """The session's tiny checkpoint folder (conftest)."""
    return tiny_qwen[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips of different sizes and timing: 40 frames at 8 fps (192x144) and 60 at 20 fps (320x240)."""
    return write_clips(tmp_path_factory.mktemp("clips"), np.random.default_rng(5))


def loaded(tiny, plugin_class=Qwen25VL, plugin_id: str = "qwen25vl", **options):
    """The plugin (``plugin_class``, registered as ``plugin_id``) on the tiny checkpoint, batch size 8, loaded."""
    plugin = plugin_class({"path": str(tiny), "batch_size": 8, **options})
    plugin.id = plugin_id
    plugin.load()
    return plugin


@pytest.fixture(scope="module")
def shared(tiny):
    plugin = loaded(tiny)
    yield plugin
    plugin.close()


@pytest.fixture(scope="module")
def unshared(tiny):
    plugin = loaded(tiny, share_prefix=False)
    yield plugin
    plugin.close()


def request(sample_id: str, video: str | None, question: str, policy: FramePolicy = POLICY, max_new_tokens=6,
            **generation) -> Request:  # fmt: skip
    """DSR-Bench's layout: the instruction, the video, the question."""
    content = [TextPart(text=PRE), TextPart(text=question)]
    if video is not None:
        content.insert(1, VideoPart(video=video, frames=policy))
    settings = GenerationSettings(max_new_tokens=max_new_tokens, **generation)
    return Request(sample_id=sample_id, messages=[Message(content=content)], generation=settings)


def prepared(sample_id: str, video: str | None, question: str, **kwargs) -> PreparedRequest:
    one = request(sample_id, video, question, **kwargs)
    videos = [decode(part.video, part.frames) for part in one.video_parts()]
    return PreparedRequest(one, f"key-{sample_id}", 0, videos)


def mixed_batch(clips) -> list[PreparedRequest]:
    """Three questions about a.mp4 and two about b.mp4, interleaved, of different lengths, and a text-only one."""
    return [
        prepared("a1", clips["a.mp4"], "Where does the red square go?"),
        prepared("b1", clips["b.mp4"], "Which disc is faster, the left or the right one?"),
        prepared("a2", clips["a.mp4"], "Does the camera move at all during the whole video, or does it stay still?"),
        prepared("t1", None, "A question in words only."),
        prepared("b2", clips["b.mp4"], "Fast?"),
        prepared("a3", clips["a.mp4"], "How many objects?"),
    ]


# --- which requests share a prefix, and the planner ---------------------------------------------------------------


def test_request_key_names_the_video_and_what_precedes_it(clips):
    """Questions about one video with the same chat before it share a key; another video, frame policy, text before
    the video or generation setting does not; a request without a video it looks at, or with an image, has none."""
    key = prefix.request_key
    first = key(request("1", clips["a.mp4"], "Where?"))
    assert first is not None and first == key(request("2", clips["a.mp4"], "A different question entirely?"))
    assert first != key(request("3", clips["b.mp4"], "Where?"))
    assert first != key(request("4", clips["a.mp4"], "Where?", policy=FramePolicy(nframes=4)))
    assert first != key(request("5", clips["a.mp4"], "Where?", max_new_tokens=7))
    other_head = request("6", clips["a.mp4"], "Where?")
    other_head.messages[0].content[0] = TextPart(text="Another instruction.")
    assert first != key(other_head)
    assert key(request("7", None, "Where?")) is None
    assert key(request("8", clips["a.mp4"], "Where?", policy=FramePolicy(nframes=0))) is None  # blind
    with_image = request("9", clips["a.mp4"], "Where?")
    with_image.messages[0].content.append(ImagePart(image="still.png"))
    assert key(with_image) is None


def test_the_option_turns_sharing_off_without_changing_result_keys(tiny, clips, host):
    """``share_prefix`` is a runtime option: the fingerprint (and so every result key and the label) is the same with
    it on or off, and off the model asks the planner for no grouping. The GSM has the same option, on by default
    (its sharing is tested in ``tests/test_gsm_prefix.py``)."""
    from vdpm_harness.pipeline import model_label

    on, off = Qwen25VL({"path": str(tiny)}), Qwen25VL({"path": str(tiny), "share_prefix": False})
    on.id = off.id = "qwen25vl"
    assert on.options.share_prefix is True and "share_prefix" not in on.fingerprint_data()["options"]
    assert on.fingerprint() == off.fingerprint() and model_label(on) == model_label(off)
    one = request("1", clips["a.mp4"], "Where?")
    assert on.prefix_key(one) == prefix.request_key(one) is not None and off.prefix_key(one) is None
    assert Model.prefix_key(on, one) is None  # the default of every other model
    gsm = host.create("models", "qwen25vl-gsm", {"path": str(tiny)})
    assert gsm.options.share_prefix is True and gsm.prefix_key(one) == prefix.request_key(one)


class _Keyed(Model):
    """A model that groups requests by their first video file."""

    id, needs_frames = "keyed", False

    def prefix_key(self, request):
        parts = request.video_parts()
        return parts[0].video if parts else None

    def generate(self, batch):
        return [Response(sample_id=p.request.sample_id, text="A") for p in batch]


def _item(sample_id: str, video: str | None) -> WorkItem:
    content = [TextPart(text="q")] + ([VideoPart(video=video, frames=FramePolicy(nframes=2))] if video else [])
    one = Request(sample_id=sample_id, messages=[Message(content=content)])
    return WorkItem(Sample(sample_id=sample_id, video_id=video or "none"), one, f"k{sample_id}", [])


def test_planner_puts_a_videos_questions_together_and_keeps_groups_in_one_batch():
    """``group_by_prefix`` moves each video's questions next to its first one (stable; unkeyed items keep their
    place); ``opens_batch`` starts a new batch for a group that would not fit in the room left, but fills a batch
    with a group larger than a batch."""
    items = [_item(s, v) for s, v in [("1", "x"), ("2", "y"), ("3", None), ("4", "x"), ("5", "z"), ("6", "y"),
                                       ("7", "x")]]  # fmt: skip
    grouped = group_by_prefix(_Keyed(), items)
    assert [i.sample.sample_id for i in grouped] == ["1", "4", "7", "2", "6", "3", "5"]
    assert [i.prefix for i in grouped] == ["x", "x", "x", "y", "y", None, "z"]
    assert sorted(i.key for i in grouped) == [i.key for i in items]  # the same items, keys untouched
    unkeyed = group_by_prefix(Qwen25VL({"path": "unused", "share_prefix": False}), items)
    assert [i.sample.sample_id for i in unkeyed] == ["1", "2", "3", "4", "5", "6", "7"]

    def batches(items, size):
        sizes = Counter(i.prefix for i in items if i.prefix is not None)
        out, batch = [], []
        for item in items:
            if opens_batch(batch, item, sizes, size):
                out.append(batch)
                batch = []
            batch.append(item)
            if len(batch) >= size:
                out.append(batch)
                batch = []
        return [[i.sample.sample_id for i in b] for b in [*out, batch] if b]

    grouped = group_by_prefix(_Keyed(), items)
    assert batches(grouped, 4) == [["1", "4", "7"], ["2", "6", "3", "5"]]  # y (2) does not fit after x (3)
    assert batches(grouped, 2) == [["1", "4"], ["7"], ["2", "6"], ["3", "5"]]  # x (3) is larger than a batch
    assert batches(grouped, 8) == [["1", "4", "7", "2", "6", "3", "5"]]


def test_inference_batches_follow_the_groups(host, tmp_path):
    """Through ``Inference.run``: motion-basics' questions shuffled across videos come back grouped by video, each
    video's three questions in one batch of at most 4."""
    from vdpm_harness.config import build_config
    from vdpm_harness.inference import Inference
    from vdpm_harness.planning import plan
    from vdpm_harness.store import PredictionStore

    seen: list[list[str]] = []

    class Recording(_Keyed):
        @property
        def batch_size(self):
            return 4

        def generate(self, batch):
            seen.append([p.request.video_parts()[0].video for p in batch])
            return super().generate(batch)

    bench = host.create("benchmarks", "motion-basics")
    samples = list(bench.samples())[:12]  # 4 videos, 3 questions each
    samples = samples[0::3] + samples[1::3] + samples[2::3]  # interleaved: no two neighbours share a video
    model = Recording()
    items = plan(bench, model, samples, None)
    Inference(model, bench, PredictionStore(tmp_path), build_config(models="x", benches="y"), set()).run(items)
    assert [len(b) for b in seen] == [3, 3, 3, 3] and all(len(set(b)) == 1 for b in seen)
    assert len({b[0] for b in seen}) == 4


# --- the shared path computes what the unshared one does ----------------------------------------------------------


def assert_row_is_prefix_and_suffix(run, i, ids, row_positions):
    """Row ``i`` of a staged shared ``run``, its group's prefix row then its own suffix, is the reference's ``ids``
    with its positions ``row_positions`` (3 x tokens), and its next position follows; returns the row's suffix ids."""
    n, p, g = len(ids), run.prefix_lengths[i], int(run.row_groups[i])
    prefix_ids = run.prefix["input_ids"][g][run.prefix["attention_mask"][g].bool()]
    suffix_ids = run.suffix_ids[i][run.suffix_ids.shape[1] - (n - p) :]
    assert torch.equal(torch.cat([prefix_ids, suffix_ids]), ids)
    assert torch.equal(run.prefix["position_ids"][:, g, -p:], row_positions[:, :p])
    assert torch.equal(run.suffix_positions[:, i, run.suffix_ids.shape[1] - (n - p) :], row_positions[:, p:])
    assert run.next_positions[:, i].tolist() == (row_positions[:, -1] + 1).tolist()
    return suffix_ids


@needs_torch
def test_token_ids_equal_the_processors(shared, clips):
    """The shared path tokenises a group's other prompts itself and expands their video placeholders to the group's
    pad counts: the ids, modality types and positions equal those of one processor call on every prompt."""
    batch = mixed_batch(clips)
    prompts = [shared._prompt(i, one) for i, one in enumerate(batch)]
    run, overflow = prefix.stage_shared(shared._processor, prompts, encoder=shared.encode, max_positions=4096,
                                        rope_index=shared._model.model.get_rope_index)  # fmt: skip
    assert overflow == [] and len(run.prompts) == 6
    reference = shared.prepare(prompts)
    mask = reference["attention_mask"].bool()
    positions, _ = shared._model.model.get_rope_index(
        reference["input_ids"], mm_token_type_ids=reference["mm_token_type_ids"],
        video_grid_thw=reference["video_grid_thw"], second_per_grid_ts=reference["second_per_grid_ts"],
        attention_mask=reference["attention_mask"],
    )  # fmt: skip
    assert run.lengths == mask.sum(dim=1).tolist()
    assert run.row_groups.tolist() == [0, 1, 0, 2, 1, 0]  # a, b, a, text, b, a
    # three prefix rows: the two videos' (of different lengths) and the text-only prompt's
    assert run.prefix["input_ids"].shape[0] == 3 and run.prefix["video_grid_thw"].tolist() == [[4, 10, 14], [4, 12, 16]]
    for i in range(6):
        assert_row_is_prefix_and_suffix(run, i, reference["input_ids"][i][mask[i]], positions[:, i][:, mask[i]])
    # a's questions share everything up to their question text, which begins after the video
    video_end = (reference["input_ids"][0][mask[0]] == shared._processor.video_token_id).nonzero().max().item()
    assert run.prefix_lengths[0] == run.prefix_lengths[2] == run.prefix_lengths[5] > video_end
    assert run.group_sizes == [3, 2, 3, 1, 2, 3]


def shared_steps(plugin, run, steps: int = 6, **options):
    """``steps`` greedy steps of ``prefix.generate_shared`` on a staged ``run``, keeping each step's logits:
    ``(tokens, logits)``."""
    config = plugin._model.generation_config
    return prefix.generate_shared(plugin._model, run, max_new_tokens=steps, eos_token_ids=[config.eos_token_id],
                                  pad_token_id=config.pad_token_id, keep_logits=True, **options)  # fmt: skip


def assert_equals_generate(plugin, prompts, tokens, logits, steps: int = 6) -> None:
    """The reference: ``generate`` on the whole ``prompts`` (one left-padded batch) for ``steps`` steps; every step's
    float32 ``logits`` within 1e-5 of it and the greedy ``tokens`` equal."""
    inputs = plugin.prepare(prompts)
    with torch.inference_mode():
        out = plugin._model.generate(**inputs, max_new_tokens=steps, do_sample=False, output_logits=True,
                                     return_dict_in_generate=True)  # fmt: skip
    reference = torch.stack(out.logits, dim=1)
    assert len(logits) == reference.shape[1] == steps
    difference = (torch.stack(logits, dim=1) - reference).abs().max().item()
    assert difference < 1e-5, difference
    assert tokens == out.sequences[:, inputs["input_ids"].shape[1] :].tolist()


@needs_torch
@pytest.mark.parametrize("attention", ["sdpa", pytest.param("rowwise", marks=pytest.mark.slow)])
def test_shared_logits_and_tokens_equal_the_unshared_path(tiny, shared, clips, attention):
    """Every step's float32 logits of the shared path are within 1e-5 of ``generate``'s on the whole prompts (one
    left-padded batch), and the greedy tokens are equal, for several questions per video, two videos of different
    sizes and a text-only prompt in one batch."""
    plugin = shared if attention == "sdpa" else loaded(tiny, attn_implementation=attention)
    assert plugin.describe()["attn_implementation"] == {"sdpa": "sdpa", "rowwise": "vdpm_rowwise"}[attention]
    try:
        batch = mixed_batch(clips)
        prompts = [plugin._prompt(i, one) for i, one in enumerate(batch)]
        run, _ = prefix.stage_shared(plugin._processor, prompts, encoder=plugin.encode, max_positions=4096,
                                     rope_index=plugin._model.model.get_rope_index)  # fmt: skip
        tokens, logits = shared_steps(plugin, run)
        assert_equals_generate(plugin, prompts, tokens, logits)
    finally:
        if plugin is not shared:
            plugin.close()


@needs_torch
def test_the_plugin_answers_as_without_sharing(shared, unshared, clips):
    """``generate`` with sharing on (the default) and off: the same token ids, texts and prompt lengths; the shared
    rows say how many prompt tokens they shared; a request that samples, and a batch where no video repeats, run
    whole."""
    batch = mixed_batch(clips)
    staged = shared.stage(batch)
    assert [type(run).__name__ for run in staged.runs] == ["SharedRun", "tuple"]  # the text-only prompt: no pixels
    on, off = shared.generate_staged(staged), unshared.generate(batch)
    assert all(r.error is None for r in on + off)
    assert [r.usage["output_ids"] for r in on] == [r.usage["output_ids"] for r in off]
    assert [r.text for r in on] == [r.text for r in off]
    assert [r.usage["prompt_tokens"] for r in on] == [r.usage["prompt_tokens"] for r in off]
    assert ["shared_prefix_tokens" in r.usage for r in on] == [True, True, True, False, True, True]
    assert all("shared_prefix_tokens" not in r.usage for r in off)
    distinct = [batch[0], batch[1], batch[3]]
    assert [type(run).__name__ for run in shared.stage(distinct).runs] == ["tuple", "tuple"]
    sampled = [prepared(s, clips["a.mp4"], "Where?", temperature=1.0) for s in ("s1", "s2")]
    assert [type(run).__name__ for run in shared.stage(sampled).runs] == ["tuple", "tuple"]


@needs_torch
def test_a_prompt_over_the_context_fails_alone_in_a_shared_batch(shared, clips):
    """A question too long for the tiny model's 4096 positions is an error; the other questions about its video are
    answered as alone, and a group left with no prompt that fits is not encoded at all."""
    long = "word " * 5000
    batch = [prepared("a1", clips["a.mp4"], "Where?"), prepared("a2", clips["a.mp4"], long),
             prepared("a3", clips["a.mp4"], "Why?"), prepared("b1", clips["b.mp4"], long),
             prepared("b2", clips["b.mp4"], long)]  # fmt: skip
    staged = shared.stage(batch)
    [run] = staged.runs
    assert [p.prepared.request.sample_id for p in run.prompts] == ["a1", "a3"]
    assert run.prefix["video_grid_thw"].shape[0] == 1  # b's pixels were dropped with its prompts
    responses = shared.generate_staged(staged)
    assert [r.error is None for r in responses] == [True, False, True, False, False]
    assert all(r.error.startswith("context overflow: ") for r in responses if r.error)
    alone = [shared.generate([one])[0] for one in (batch[0], batch[2])]
    assert [r.usage["output_ids"] for r in (responses[0], responses[2])] == [r.usage["output_ids"] for r in alone]


@needs_torch
def test_rowwise_attention_after_cached_tokens_is_bottom_right_causal():
    """New tokens after cached ones with nothing padded (no mask): each attends to the cache and to itself and the
    tokens before it, as SDPA with the explicit bottom-right causal mask does."""
    from vdpm_harness_plugins.models.qwen25vl.attention import rowwise_attention_forward

    class Layer(torch.nn.Module):
        is_causal = True
        num_key_value_groups = 1

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    out, _ = rowwise_attention_forward(Layer(), q, k, v, None)
    mask = torch.ones(3, 7, dtype=torch.bool).tril(4)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
    assert torch.allclose(out, expected, atol=1e-6)


# --- through the pipeline: same answers, same keys, a run resumes across the option -------------------------------


def _dsr_table(root, clips) -> list[str]:
    """Six DSR-Bench rows (VLMEvalKit's TSV layout) over the two clips, interleaved, three questions each."""
    video_dir = root / "raw_data" / "dsr-bench"
    video_dir.mkdir(parents=True)
    for name, path in clips.items():
        (video_dir / name).write_bytes(open(path, "rb").read())
    options = ["A. Left", "B. Right", "C. Toward the camera", "D. Away from the camera"]
    questions = ["Where does the square go?", "Where does the camera go?", "Which way is the disc moving, mostly?"]
    with open(root / "DSRBench.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["index", "video", "question", "options", "answer", "task_type"])
        for i in range(6):
            writer.writerow([i, ["a.mp4", "b.mp4"][i % 2], questions[i // 2], json.dumps(options), "B", "abs_dir"])
    frames = json.dumps({"nframes": 8, "max_pixels": 40_000, "size_multiple": 28})
    return [f"dsr:data_dir={root}", f"dsr:frames={frames}", "dsr:max_new_tokens=5"]


@contextlib.contextmanager
def recorded_batches(plugin_class):
    """While open, ``plugin_class.generate_staged`` also records the sample ids of every batch it answers (in the list
    yielded)."""
    batches: list[list[str]] = []
    original = plugin_class.generate_staged

    def recording(self, staged):
        responses = original(self, staged)
        batches.append([r.sample_id for r in responses])
        return responses

    plugin_class.generate_staged = recording
    try:
        yield batches
    finally:
        plugin_class.generate_staged = original


@needs_torch
@pytest.mark.slow
def test_runs_resume_across_the_option_with_the_same_answers(tiny, clips, host, tmp_path):
    """``vdpm-harness run`` on DSR-Bench rows interleaving two videos: without sharing, then again with it into the
    same results folder (every sample reused, nothing recomputed: the keys are the same), and with it into a fresh
    folder (the same keys and token ids; each video's questions were batched together)."""
    from vdpm_harness.config import build_config
    from vdpm_harness.pipeline import Runner
    from vdpm_harness.store import PredictionStore

    bench_args = tuple(_dsr_table(tmp_path / "dsr", clips))

    def run(out, share):
        model_args = (f"path={tiny}", "batch_size=4", f"share_prefix={str(share).lower()}")
        config = build_config(models="qwen25vl", benches="dsr", out=str(out), decode_workers=1, bench_args=bench_args,
                              model_args=model_args)  # fmt: skip
        [outcome] = Runner(config, host).run()
        assert outcome.error is None, outcome.error
        [folder] = out.glob("*/dsr")
        return outcome, folder, {p.key: p for p in PredictionStore(folder).load().values()}

    with recorded_batches(Qwen25VL) as batches:
        off, off_folder, off_predictions = run(tmp_path / "res", share=False)
        assert off.counts["ok"] == 6 and not any("shared_prefix_tokens" in p.usage for p in off_predictions.values())
        again, again_folder, again_predictions = run(tmp_path / "res", share=True)
        assert again.counts["reused"] == 6 and again.counts["ok"] == 0 and again_folder == off_folder
        assert again_predictions.keys() == off_predictions.keys()
        batches.clear()
        on, on_folder, on_predictions = run(tmp_path / "fresh", share=True)
    assert on.counts["ok"] == 6 and on_folder.parent.name == off_folder.parent.name  # the same label
    assert on_predictions.keys() == off_predictions.keys()
    for key, prediction in on_predictions.items():
        assert prediction.usage["output_ids"] == off_predictions[key].usage["output_ids"]
        assert prediction.usage["shared_prefix_tokens"] > 0
    # the table alternates videos; the planner batched each video's three questions together
    by_id = {p.sample_id: p.video_id for p in on_predictions.values()}
    assert sorted(len(b) for b in batches) == [3, 3] and all(len({by_id[s] for s in b}) == 1 for b in batches)


def test_a_videos_neighbouring_questions_decode_it_once(host, tmp_path, monkeypatch):
    """The harness decodes a run of neighbouring requests with the same videos once (a video's questions, planned
    together) and hands each request those frames; without grouping, every request decodes its own."""
    from vdpm_harness import prefetch
    from vdpm_harness.config import build_config
    from vdpm_harness.inference import Inference
    from vdpm_harness.planning import plan
    from vdpm_harness.store import PredictionStore

    decoded: list[str] = []
    original = prefetch.decode_request_job

    def counting(job):
        decoded.extend(video for video, _ in job[0])
        return original(job)

    monkeypatch.setattr(prefetch, "decode_request_job", counting)
    received: dict[str, list] = {}

    class Watching(_Keyed):
        needs_frames = True

        @property
        def batch_size(self):
            return 4

        def generate(self, batch):
            received.update({p.request.sample_id: p.videos for p in batch})
            return super().generate(batch)

    class Ungrouped(Watching):
        def prefix_key(self, request):
            return None

    bench = host.create("benchmarks", "motion-basics", {"frames": {"nframes": 2}})
    samples = list(bench.samples())[:6]  # 2 videos, 3 questions each
    samples = samples[0::3] + samples[1::3] + samples[2::3]
    config = build_config(models="x", benches="y", decode_workers=0)
    for model, expected in ((Watching(), 2), (Ungrouped(), 6)):
        decoded.clear()
        received.clear()
        items = plan(bench, model, samples, None)
        Inference(model, bench, PredictionStore(tmp_path / str(expected)), config, set()).run(items)
        assert len(decoded) == expected and len(received) == 6
        for item in items:
            [video] = received[item.sample.sample_id]
            assert item.request.video_parts()[0].video.endswith(f"{item.sample.video_id}.mp4")
            assert video.indices == item.frame_indices[0]
