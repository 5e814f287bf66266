"""Shared prompt prefixes for the GSM (``qwen25vl-gsm``, ``plugins/models/qwen25vl/gsm/sharing.py``): each video's
vision tower, Pi3 encoder, merger and prefix prefill run once for all its questions, each question's geometry tokens
(the Q-Formers, which read its text) once per question.

The reference is the GSM's own unshared path: ``generate`` on the whole prompts (one left-padded batch, the
processor's token ids with the geometry pads, the vision tower, Pi3 and the Q-Formers of every prompt in one pass).
On the CPU with the tiny random-weight GSM in float32, the shared path's logits are within 1e-5 of it at every step
and the greedy tokens are equal, under both ``numerics``; a shared path whose first Q-Former read the wrong text is
caught by that bound; the vision tower and the Pi3 encoder see each distinct video once; ``share_prefix`` is a
runtime option, so a run resumes across it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vdpm_harness_plugins.models.qwen25vl import prefix  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm import tokens  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm.plugin import Qwen25VLGSM  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm.sharing import GSMSharing  # noqa: E402

from .conftest import cli_env, run_cli, write_clips  # noqa: E402
from .test_distributed import summary_counts  # noqa: E402
from .test_gsm import image_request  # noqa: E402
from .test_prefix_sharing import (  # noqa: E402
    _dsr_table,
    assert_equals_generate,
    assert_row_is_prefix_and_suffix,
    prepared,
    recorded_batches,
    shared_steps,
)
from .test_prefix_sharing import loaded as prefix_loaded  # noqa: E402
from .test_prefix_sharing import mixed_batch as plain_mixed_batch  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny(tiny_gsm):
    """The session's tiny GSM checkpoint folder (conftest)."""
    return tiny_gsm[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips of different sizes and timing (40 frames at 8 fps, 192x144; 60 at 20 fps, 320x240): under the
    frame policy of ``tests/test_prefix_sharing.py`` they get grids of 10x14 and 12x16 patches; and a still image."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("gsm-prefix-clips")
    rng = np.random.default_rng(5)
    clips = write_clips(folder, rng)
    Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)).save(folder / "i.png")
    return {**clips, "i.png": str(folder / "i.png")}


def loaded(tiny, **options) -> Qwen25VLGSM:
    return prefix_loaded(tiny, Qwen25VLGSM, "qwen25vl-gsm", **options)


@pytest.fixture(scope="module")
def shared(tiny):
    plugin = loaded(tiny)
    yield plugin
    plugin.close()


def mixed_batch(clips, image: bool = False) -> list:
    """Three questions about a.mp4, two about b.mp4 (another size), interleaved, of different lengths, a text-only
    one and, with ``image``, a question about a still image."""
    batch = plain_mixed_batch(clips)  # the plain model's six questions
    return batch + ([image_request("i1", clips["i.png"], "What is shown?")] if image else [])


def staged(plugin, batch) -> tuple[list, prefix.SharedRun]:
    prompts = [plugin._prompt(i, one) for i, one in enumerate(batch)]
    run, overflow = prefix.stage_shared(plugin._processor, prompts, encoder=plugin.encode, max_positions=4096,
                                        rope_index=plugin._model.model.get_rope_index,
                                        sharing=plugin._sharing())  # fmt: skip
    assert overflow == []
    return prompts, run


# --- the option -----------------------------------------------------------------------------------------------------


def test_share_prefix_is_on_by_default_and_a_runtime_option(tiny, clips):
    """As for ``qwen25vl``: on by default, off with ``share_prefix=false``; the fingerprint (so every result key and
    the label) is the same either way, and off the model asks the planner for no grouping."""
    from vdpm_harness.pipeline import model_label

    on, off = Qwen25VLGSM({"path": str(tiny)}), Qwen25VLGSM({"path": str(tiny), "share_prefix": False})
    on.id = off.id = "qwen25vl-gsm"
    assert on.options.share_prefix is True and off.options.share_prefix is False
    assert on.fingerprint() == off.fingerprint() and model_label(on) == model_label(off)
    one = prepared("1", clips["a.mp4"], "Where?").request
    assert on.prefix_key(one) == prefix.request_key(one) is not None and off.prefix_key(one) is None
    original = Qwen25VLGSM({"path": str(tiny), "numerics": "original"})
    assert original.options.share_prefix is True and original.fingerprint() != on.fingerprint()


# --- staging: token ids, positions and where the prefix ends --------------------------------------------------------


def test_token_ids_and_positions_equal_the_gsm_encoders(shared, clips):
    """The shared path tokenises a group's other prompts itself, expands their video placeholders and adds the
    geometry pads: each row's ids (prefix, then suffix) equal one call of the GSM's encoder on every prompt (processor
    and geometry pads) and its positions the model's ``get_rope_index`` of that call. A video's prefix ends at its
    last vision pad; its questions' suffixes begin with the 32 geometry slots, then ``<|vision_end|>``."""
    batch = mixed_batch(clips, image=True)
    prompts, run = staged(shared, batch)
    reference = shared.prepare(prompts)
    mask = reference["attention_mask"].bool()
    positions, _ = shared._model.model.get_rope_index(
        reference["input_ids"], image_grid_thw=reference["image_grid_thw"], video_grid_thw=reference["video_grid_thw"],
        second_per_grid_ts=reference["second_per_grid_ts"], attention_mask=reference["attention_mask"],
    )  # fmt: skip
    assert run.row_groups.tolist() == [0, 1, 0, 2, 1, 0, 3]  # a, b, a, text, b, a, image
    assert run.prefix["video_grid_thw"].tolist() == [[4, 10, 14], [4, 12, 16]]
    assert run.prefix["second_per_grid_ts"].shape == (2,)  # the videos' timing reaches the geometry positions
    tokenizer = shared._processor.tokenizer
    video, vision_end = tokenizer.convert_tokens_to_ids(["<|video_pad|>", "<|vision_end|>"])
    queries = shared._model.gsm.settings.num_queries
    for i in range(len(batch)):
        ids = reference["input_ids"][i][mask[i]]
        suffix_ids = assert_row_is_prefix_and_suffix(run, i, ids, positions[:, i][:, mask[i]])
        n, p = len(ids), run.prefix_lengths[i]
        if int(run.row_groups[i]) == 2:  # text only: no geometry; everything but the last token is its own prefix
            assert p == n - 1 and video not in ids.tolist()
            continue
        slots = tokens.geometry_slots(ids[None], torch.tensor([True]), video_token_id=video, num_queries=queries)[0]
        assert p == int(slots.nonzero()[0])  # the prefix ends right before the geometry slots
        assert suffix_ids[:queries].tolist() == [video] * queries and int(suffix_ids[queries]) == vision_end
    assert run.group_sizes == [3, 2, 3, 1, 2, 3, 1]


def test_a_prompt_without_its_geometry_pads_is_refused(shared):
    """A prompt with a video but fewer than 32 ``<|video_pad|>`` beyond its grid cannot say where its prefix ends."""
    sharing = shared._sharing()
    assert isinstance(sharing, GSMSharing) and isinstance(sharing, prefix.Sharing)
    start, video = shared._processor.tokenizer.convert_tokens_to_ids(["<|vision_start|>", "<|video_pad|>"])
    with pytest.raises(ValueError, match="must carry 32 geometry pads after its last one; found 4"):
        sharing.prefix_limit([5, start, video, video, video, video, 6])
    assert sharing.prefix_limit([5, 6, 7]) is None
    padded = sharing.complete_ids([5, start, video, video, 6])
    assert padded == [5, start] + [video] * 34 + [6] and sharing.prefix_limit(padded) == 4


# --- the shared path computes what the unshared one does ------------------------------------------------------------


def _counting(plugin):
    """Wrap the vision tower's and the Pi3 encoder's entry points to count the images and videos they encode."""
    inner, gsm = plugin._model.model, plugin._model.gsm
    seen = {"vision": 0, "pi3": 0}
    vision, pi3 = inner.get_video_features, gsm.encode
    image = inner.get_image_features

    def video_features(pixels, grid, **kwargs):
        seen["vision"] += grid.shape[0]
        return vision(pixels, grid, **kwargs)

    def image_features(pixels, grid, **kwargs):
        seen["vision"] += grid.shape[0]
        return image(pixels, grid, **kwargs)

    def encode(frames):
        seen["pi3"] += len(frames)
        return pi3(frames)

    inner.get_video_features, inner.get_image_features, gsm.encode = video_features, image_features, encode

    def restore():
        del inner.get_video_features, inner.get_image_features, gsm.encode

    return seen, restore


@pytest.mark.parametrize("numerics", ["fixed", pytest.param("original", marks=pytest.mark.slow)])
def test_shared_logits_and_tokens_equal_the_unshared_path(tiny, shared, clips, numerics):
    """Every step's float32 logits of the shared path are within 1e-5 of ``generate``'s on the whole prompts and the
    greedy tokens are equal, for three questions about one video, two about a video of another size, a text-only
    question and an image question in one batch; the vision tower and the Pi3 encoder encode the 2 videos and the image
    once (3 inputs) where the unshared path encodes 6. ``numerics="original"`` (the header in the first Q-Former's
    text, the mistyped mean, positions in the model dtype) shares as exactly."""
    plugin = shared if numerics == "fixed" else loaded(tiny, numerics=numerics)
    try:
        batch = mixed_batch(clips, image=True)
        prompts, run = staged(plugin, batch)
        seen, restore = _counting(plugin)
        try:
            tokens_shared, logits = shared_steps(plugin, run, sharing=plugin._sharing())
            assert seen == {"vision": 3, "pi3": 3}  # a.mp4, b.mp4, the image: each once
            seen.update(vision=0, pi3=0)
            assert_equals_generate(plugin, prompts, tokens_shared, logits)
            assert seen == {"vision": 6, "pi3": 6}  # every question's video again
        finally:
            restore()
    finally:
        if plugin is not shared:
            plugin.close()


def test_the_bound_catches_a_first_q_former_reading_the_wrong_text(shared, clips):
    """The comparison above resolves the geometry tokens' text: a shared path whose first Q-Former read only the
    question's own tokens (not the system turn and instruction in the shared prefix) is more than 1e-4 off in the
    first step's logits of every question about a video, and exact on the text-only one."""
    batch = mixed_batch(clips)
    prompts, run = staged(shared, batch)
    inner = shared._model.model
    original = inner.gsm_text

    def suffix_only(ids, mask, embeds, rows, text_mask=None):
        mask = mask.clone()
        mask[:, : mask.shape[1] - run.suffix_ids.shape[1]] = 0
        return original(ids, mask, embeds, rows, text_mask)

    inner.gsm_text = suffix_only
    try:
        _, logits = shared_steps(shared, run, steps=1, sharing=shared._sharing())
    finally:
        del inner.gsm_text
    with torch.inference_mode():
        out = shared._model.generate(**shared.prepare(prompts), max_new_tokens=1, do_sample=False, output_logits=True,
                                     return_dict_in_generate=True)  # fmt: skip
    per_row = (logits[0] - out.logits[0]).abs().amax(dim=1).tolist()
    assert [d > 1e-4 for d in per_row] == [True, True, True, False, True, True], per_row
    assert per_row[3] < 1e-5


def test_the_plugin_answers_as_without_sharing(tiny, shared, clips):
    """``generate`` with sharing on (the default) and off: the same token ids, texts and prompt lengths; a shared row
    says how many prompt tokens it shared (its video's prefix, up to the last vision pad)."""
    batch = mixed_batch(clips)
    unshared = loaded(tiny, share_prefix=False)
    try:
        run_types = [type(run).__name__ for run in shared.stage(batch).runs]
        assert run_types == ["SharedRun", "tuple"]  # the text-only prompt has other pixel limits: a run of its own
        assert [type(run).__name__ for run in unshared.stage(batch).runs] == ["tuple", "tuple"]
        on, off = shared.generate(batch), unshared.generate(batch)
    finally:
        unshared.close()
    assert all(r.error is None for r in on + off)
    assert [r.usage["output_ids"] for r in on] == [r.usage["output_ids"] for r in off]
    assert [r.text for r in on] == [r.text for r in off]
    assert [r.usage["prompt_tokens"] for r in on] == [r.usage["prompt_tokens"] for r in off]
    queries = shared._model.gsm.settings.num_queries
    for response, one in zip(on, batch):
        if one.request.sample_id == "t1":
            assert "shared_prefix_tokens" not in response.usage
            continue
        ids = shared.prepare([shared._prompt(0, one)])["input_ids"][0]
        video = shared._processor.video_token_id
        assert response.usage["shared_prefix_tokens"] == int((ids == video).nonzero().max()) + 1 - queries
    assert all("shared_prefix_tokens" not in r.usage for r in off)


# --- through the command line: a run resumes across the option ------------------------------------------------------


@pytest.mark.slow
def test_runs_resume_across_the_option_with_the_same_answers(tiny, clips, tmp_path):
    """``vdpm-harness run --model qwen25vl-gsm --model-arg path=TINY`` on DSR-Bench rows alternating two videos:
    first with ``share_prefix=false``, then with sharing into the same results folder (every sample reused, nothing
    recomputed: the keys are the same); then with sharing into a fresh folder (in process, to see the batches): the
    same keys and token ids, each video's three questions in one batch, sharing their prefix."""
    from vdpm_harness.config import build_config
    from vdpm_harness.pipeline import Runner
    from vdpm_harness.plugins import get_host
    from vdpm_harness.store import PredictionStore

    bench_args = _dsr_table(tmp_path / "dsr", {k: v for k, v in clips.items() if k.endswith(".mp4")})
    out = tmp_path / "res"

    def cli(share: bool):
        args = ["run", "--model", "qwen25vl-gsm", "--model-arg", f"path={tiny}", "--model-arg", "batch_size=4",
                "--model-arg", f"share_prefix={str(share).lower()}", "--bench", "dsr", "--out", str(out),
                "--decode-workers", "1"]  # fmt: skip
        for arg in bench_args:
            args += ["--bench-arg", arg]
        env = cli_env(COLUMNS="250", **OFFLINE)  # the summary table unwrapped
        return summary_counts(run_cli(*args, env=env).stdout, "dsr")

    assert cli(share=False) == {"new": 6, "reused": 0}
    [folder] = out.glob("*/dsr")
    before = (folder / "predictions.jsonl").read_bytes()
    off = {p.key: p for p in PredictionStore(folder).load().values()}
    assert not any("shared_prefix_tokens" in p.usage for p in off.values())
    assert cli(share=True) == {"new": 0, "reused": 6}
    assert (folder / "predictions.jsonl").read_bytes() == before
    assert json.loads((folder / "results.json").read_text())["n_samples"] == 6

    config = build_config(models="qwen25vl-gsm", benches="dsr", out=str(tmp_path / "fresh"), decode_workers=1,
                          bench_args=tuple(bench_args), model_args=(f"path={tiny}", "batch_size=4"))  # fmt: skip
    with recorded_batches(Qwen25VLGSM) as batches:
        [outcome] = Runner(config, get_host()).run()
    assert outcome.error is None and outcome.counts["ok"] == 6
    [fresh] = (tmp_path / "fresh").glob("*/dsr")
    assert fresh.parent.name == folder.parent.name  # the same label
    on = {p.key: p for p in PredictionStore(fresh).load().values()}
    assert on.keys() == off.keys()
    for key, prediction in on.items():
        assert prediction.usage["output_ids"] == off[key].usage["output_ids"]
        assert prediction.usage["shared_prefix_tokens"] > 0
    by_id = {p.sample_id: p.video_id for p in on.values()}
    assert sorted(len(b) for b in batches) == [3, 3] and all(len({by_id[s] for s in b}) == 1 for b in batches)
