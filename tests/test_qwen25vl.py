"""The ``qwen25vl`` model plugin and the offline checkpoint builders, on CPU with the tiny random-weight model.

The tiny model is built once per session by ``vdpm-harness models make-tiny`` and loaded back through the real
``from_pretrained`` paths with ``HF_HUB_OFFLINE=1``. Random weights generate gibberish, so the tests check shapes,
ids, timing metadata, errors and equalities, never the text itself. The option and registry tests need neither torch
nor transformers; the others are marked ``needs_torch``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from vdpm_harness.interfaces import PreparedRequest
from vdpm_harness.records import (
    FramePolicy,
    GenerationSettings,
    ImagePart,
    Message,
    Request,
    TextPart,
    VideoPart,
)  # fmt: skip
from vdpm_harness.video import decode, write_video
from vdpm_harness_plugins.models.qwen25vl import inputs as qwen_inputs
from vdpm_harness_plugins.models.qwen25vl.checkpoints import REAL_CONFIGS, SPECIAL_TOKENS, make_tiny
from vdpm_harness_plugins.models.qwen25vl.inputs import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS
from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL

from .conftest import HAS_TORCH, cli_env, needs_torch, run_cli, write_clips

if HAS_TORCH:
    import torch

OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny(tiny_qwen):
    """The session's tiny checkpoint (conftest): (folder, printed summary)."""
    return tiny_qwen


@pytest.fixture(scope="module")
def model(tiny):
    """The plugin on the tiny checkpoint, loaded once (CPU, so dtype auto = float32, batch size 1)."""
    plugin = Qwen25VL({"path": str(tiny[0])})
    plugin.id = "qwen25vl"
    plugin.load()
    yield plugin
    plugin.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Videos with known timing: 40 frames at 8 fps (5 s, 192x144) and 60 frames at 20 fps (3 s, 320x240)."""
    return write_clips(tmp_path_factory.mktemp("clips"), np.random.default_rng(3))


def prepared(sample_id: str, video: str | None, text: str, policy: FramePolicy | None = None, max_new_tokens=12,
             seed: int = 0, **generation) -> PreparedRequest:  # fmt: skip
    """A request as the harness hands it over: the video decoded by the harness decoder, in order."""
    policy = policy or FramePolicy(nframes=8)
    content = [TextPart(text=text)]
    videos = []
    if video is not None:
        content.insert(0, VideoPart(video=video, frames=policy))
        videos = [] if policy.blind else [decode(video, policy)]
    request = Request(sample_id=sample_id, messages=[Message(content=content)],
                      generation=GenerationSettings(max_new_tokens=max_new_tokens, **generation))  # fmt: skip
    return PreparedRequest(request, f"key-{sample_id}", seed, videos)


# --- the builders ---------------------------------------------------------------------------------------------------


@needs_torch
def test_make_tiny_builds_a_seeded_checkpoint_that_loads_through_the_real_paths(tiny, tmp_path):
    from transformers import (
        AutoModelForImageTextToText,
        AutoProcessor,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLVideoProcessor,
    )  # fmt: skip

    folder, summary = tiny
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(summary["files"])
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    assert isinstance(processor, Qwen2_5_VLProcessor) and isinstance(processor.tokenizer, Qwen2Tokenizer)
    assert isinstance(processor.video_processor, Qwen2VLVideoProcessor)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    assert sum(p.numel() for p in model.parameters()) == summary["parameters"]
    # the special tokens follow the trained vocabulary in the released order, and the config names them
    ids = processor.tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    assert ids == list(range(ids[0], ids[0] + len(SPECIAL_TOKENS))) and ids[-1] + 1 == summary["vocab_size"]
    assert model.config.video_token_id == ids[SPECIAL_TOKENS.index("<|video_pad|>")]
    assert model.config.vision_start_token_id == ids[SPECIAL_TOKENS.index("<|vision_start|>")]
    assert model.generation_config.eos_token_id == ids[SPECIAL_TOKENS.index("<|im_end|>")]
    # the Qwen2-VL chat format of the released checkpoints (their chat_template): default system turn, placeholders
    chat = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]}]
    assert processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\n"
    )
    # seeded: the same seed rebuilds the same weights, another seed other weights
    from safetensors.torch import load_file

    original = load_file(folder / "model.safetensors")
    make_tiny(tmp_path / "same", seed=0)
    make_tiny(tmp_path / "other", seed=1)
    same = load_file(tmp_path / "same" / "model.safetensors")
    other = load_file(tmp_path / "other" / "model.safetensors")
    assert all(torch.equal(original[k], same[k]) for k in original)
    assert not all(torch.equal(original[k], other[k]) for k in original if other[k].shape == original[k].shape)


@needs_torch
def test_make_random_7b_writes_the_real_configuration(host, tmp_path):
    """Values of the released Qwen/Qwen2.5-VL-7B-Instruct config.json (Hugging Face hub)."""
    from click.testing import CliRunner
    from transformers import AutoConfig, AutoProcessor

    from vdpm_harness.cli import cli

    host.pm.hook.register_commands(cli=cli)
    result = CliRunner().invoke(cli, ["models", "make-random", str(tmp_path / "r7b"), "--config", "7b"])
    assert result.exit_code == 0, result.output
    assert "model.safetensors" not in json.loads(result.output)["files"]
    config = AutoConfig.from_pretrained(tmp_path / "r7b")
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        3584, 28, 28, 4)  # fmt: skip
    assert (text.intermediate_size, text.vocab_size) == (18944, 152064)
    assert text.rope_parameters["rope_theta"] == 1e6 and text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert (vision.depth, vision.hidden_size, vision.num_heads, vision.intermediate_size) == (32, 1280, 16, 3420)
    assert (vision.out_hidden_size, vision.patch_size, vision.window_size) == (3584, 14, 112)
    assert list(vision.fullatt_block_indexes) == [7, 15, 23, 31]
    assert (vision.spatial_merge_size, vision.temporal_patch_size, vision.tokens_per_second) == (2, 2, 2)
    # the tiny tokenizer's special tokens sit at the released ids, so every id it emits is valid for the 7B vocab
    tokenizer = AutoProcessor.from_pretrained(tmp_path / "r7b").tokenizer
    assert tokenizer.convert_tokens_to_ids("<|video_pad|>") == config.video_token_id == 151656
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == config.image_token_id == 151655
    assert tokenizer.convert_tokens_to_ids("<|vision_start|>") == config.vision_start_token_id == 151652
    assert max(tokenizer.get_vocab().values()) < text.vocab_size
    unknown = CliRunner().invoke(cli, ["models", "make-random", str(tmp_path / "x"), "--config", "9b"])
    assert unknown.exit_code == 2 and "unknown configuration '9b'; known: 7b" in unknown.output
    assert set(REAL_CONFIGS) == {"7b"}


@needs_torch
def test_random_weights_build_a_config_only_checkpoint(tiny, tmp_path):
    """The same ``random_weights`` path a real-size config-only checkpoint takes, on the tiny configuration."""
    folder = tmp_path / "config-only"
    shutil.copytree(tiny[0], folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(FileNotFoundError, match="needs the option random_weights=true"):
        Qwen25VL({"path": str(folder)}).load()
    first, second = (Qwen25VL({"path": str(folder), "random_weights": True}) for _ in range(2))
    first.load()
    second.load()
    details = first.describe()
    assert details["parameters"] == tiny[1]["parameters"] and details["dtype"] == "float32"
    assert all(p.dtype == torch.float32 for p in first._model.parameters())  # one dtype throughout
    assert all(torch.equal(a, b) for a, b in zip(first._model.parameters(), second._model.parameters()))  # seeded
    assert first.revision().startswith("random:") and first.revision() == second.revision()
    [response] = first.generate([prepared("r", None, "Hello", max_new_tokens=4)])
    assert response.error is None and 1 <= response.usage["completion_tokens"] <= 4


# --- the plugin: options, revision ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "path\n  Field required"),
        ({"path": "x", "device": "gpu"}, "device\n  String should match pattern"),
        ({"path": "x", "dtype": "fp8"}, "dtype\n  Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
        ({"path": "x", "min_pixels": 5000, "max_pixels": 4000}, "min_pixels (5000) exceeds max_pixels (4000)"),
        ({"path": "x", "max_pixel": 4000}, "max_pixel\n  Extra inputs are not permitted"),
        ({"path": "x", "batch_size": 0}, "batch_size\n  Input should be greater than or equal to 1"),
        ({"path": "x", "vision_attention": "flash"}, "vision_attention\n  Input should be"),
    ],
)
def test_invalid_options_are_clear_errors(host, options, message):
    from vdpm_harness.plugins import PluginError

    with pytest.raises(PluginError, match="invalid options for model 'qwen25vl'") as raised:
        host.create("models", "qwen25vl", options)
    assert message in str(raised.value)


def test_flash_attention_needs_its_package(host):

    from vdpm_harness.plugins import PluginError

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    with pytest.raises(PluginError, match="needs the flash-attn package, which is not installed; use 'sdpa'"):
        host.create("models", "qwen25vl", {"path": "x", "attn_implementation": "flash_attention_2"})


def test_sized_ids_default_to_the_released_checkpoints(host):
    for size in ("3b", "7b", "32b", "72b"):
        assert host.create("models", f"qwen25vl-{size}").options.path == f"Qwen/Qwen2.5-VL-{size.upper()}-Instruct"


def test_listing_models_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys; from vdpm_harness.plugins import get_host; ids = [e.id for e in get_host().registry('models')]; "
        "print(ids, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = cli_env(VDPM_LOAD_PLUGINS="qwen25vl")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == (
        "['qwen25vl', 'qwen25vl-3b', 'qwen25vl-7b', 'qwen25vl-32b', 'qwen25vl-72b', 'qwen25vl-gsm'] False False"
    )


@needs_torch
def test_revision_follows_the_weights(tiny, tmp_path, monkeypatch):
    """Local folder: a copy keeping modification times keeps the fingerprint, new weights change it. Hub id: the
    commit of the cached snapshot, loaded offline through the hub cache layout."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny[0], copy)  # copy2 keeps modification times
    original, copied = Qwen25VL({"path": str(tiny[0])}), Qwen25VL({"path": str(copy)})
    original.id = copied.id = "qwen25vl"
    assert original.revision().startswith("local:") and copied.revision() == original.revision()
    assert copied.fingerprint() == original.fingerprint()
    make_tiny(tmp_path / "retrained", seed=5)
    shutil.copy(tmp_path / "retrained" / "model.safetensors", copy / "model.safetensors")
    assert copied.revision() != original.revision() and copied.fingerprint() != original.fingerprint()

    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-3B-Instruct"
    shutil.copytree(tiny[0], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from vdpm_harness_plugins.models.qwen25vl.model import Qwen25VL3B, Qwen25VL7B

    hub_model = Qwen25VL3B({})
    assert hub_model.revision() == f"Qwen/Qwen2.5-VL-3B-Instruct@{commit}"
    hub_model.load()
    assert hub_model.revision() == f"Qwen/Qwen2.5-VL-3B-Instruct@{commit}"
    assert hub_model.generate([prepared("h", None, "Hi", max_new_tokens=2)])[0].error is None
    with pytest.raises(OSError, match=r"Qwen/Qwen2.5-VL-7B-Instruct is not in the local Hugging Face cache"):
        Qwen25VL7B({}).load()


# --- the plugin: requests -> inputs -----------------------------------------------------------------------------------


@needs_torch
def test_second_per_grid_ts_comes_from_the_decoders_timing(model, clips):
    """Qwen2.5-VL: second_per_grid_ts = temporal_patch_size / sampled fps, sampled fps = frames / duration
    (transformers' VideoMetadata.sampled_fps); without metadata transformers assumes 24 fps (checked below)."""
    # a.mp4: 40 frames at 8 fps = 5 s; 8 frames -> 1.6 fps -> 1.25 s per grid of 2 frames
    # b.mp4: 60 frames at 20 fps = 3 s; 8 frames -> 8/3 fps -> 0.75 s per grid
    for name, fps, expected in (("a.mp4", 8.0, 1.25), ("b.mp4", 20.0, 0.75)):
        one = prepared(name, clips[name], "Q?")
        assert one.videos[0].native_fps == pytest.approx(fps)
        inputs = model.prepare([model._prompt(0, one)])
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([expected])
        assert inputs["video_grid_thw"][0, 0].item() == 4  # 8 frames / temporal patch 2
    frames = prepared("a", clips["a.mp4"], "Q?").videos[0].frames
    default = model._processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[frames],
                               do_sample_frames=False, cap_pixels_per_frame=True, return_tensors="pt")  # fmt: skip
    assert default["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])  # the pitfall the plugin avoids


@needs_torch
def test_frames_sized_by_the_decoder_are_not_resized_again(model, clips):
    """A policy with max_pixels and size_multiple=28 gives frames that smart_resize keeps as they are: the grid is the
    frame size in 14-pixel patches and the pixels equal the processor's own output with resizing off."""
    policy = FramePolicy(nframes=4, max_pixels=40_000, size_multiple=28)
    one = prepared("b", clips["b.mp4"], "Q?", policy=policy)
    frames = one.videos[0].frames
    assert frames.shape[1:3] == (168, 224)  # 320x240 scaled to <= 40000 px, sides multiples of 28
    assert model.video_pixels(policy) == (28 * 28, 40_000)  # the policy sized the frames: no 128*28*28 floor
    inputs = model.prepare([model._prompt(0, one)])
    assert inputs["video_grid_thw"].tolist() == [[2, 168 // 14, 224 // 14]]
    unresized = model._processor.video_processor(videos=[frames], do_resize=False, return_tensors="pt")
    assert torch.equal(inputs["pixel_values_videos"], unresized["pixel_values_videos"])
    # native frames (no limits in the policy) get qwen-vl-utils' video defaults (the official DSR cap is the max)
    assert model.video_pixels(FramePolicy(nframes=4)) == (VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS) == (100352, 602112)
    assert model.video_pixels(FramePolicy(nframes=4, min_pixels=5000)) == (5000, VIDEO_MAX_PIXELS)


def test_pixel_limits_and_context_check_are_plain_functions():
    """The rules of ``inputs`` without a plugin instance (what a trainer calls): explicit limits override the
    policy's, the max wins over the min, and the context check names both token counts and the limit."""
    policy = FramePolicy(nframes=4, max_pixels=40_000)
    assert qwen_inputs.video_pixels(policy) == (qwen_inputs.MIN_FRAME_PIXELS, 40_000)
    assert qwen_inputs.video_pixels(policy, max_pixels=50_000) == (28 * 28, 50_000)
    assert qwen_inputs.video_pixels(FramePolicy(nframes=4), min_pixels=700_000) == (VIDEO_MAX_PIXELS, VIDEO_MAX_PIXELS)
    assert qwen_inputs.context_overflow(4090, 6, 4096) is None
    assert qwen_inputs.context_overflow(4091, 6, 4096) == (
        "context overflow: 4091 prompt tokens + 6 new tokens exceed the model's 4096 positions"
    )


@needs_torch
def test_inputs_from_a_bare_processor_equal_the_plugins(model, tiny, clips):
    """A trainer's path: the checkpoint's processor loaded alone and the ``inputs`` functions give the tensors the
    plugin generates from (same ids, mask, pixels and timing), and drop a prompt over the context length."""
    from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_processor

    processor = load_processor(str(tiny[0]))
    batch = [prepared("a", clips["a.mp4"], "Which way?"), prepared("b", clips["b.mp4"], "Which disc is faster?")]
    prompts = [qwen_inputs.build_prompt(processor, one, i) for i, one in enumerate(batch)]
    assert prompts[0].conversation == [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]}
    ]
    encoded = qwen_inputs.encode_within_context(processor, prompts, max_new_tokens=8, max_positions=4096)
    reference = model.prepare([model._prompt(i, one) for i, one in enumerate(batch)])
    assert set(encoded.inputs.keys()) == set(reference.keys()) and encoded.overflow == []
    for key in reference:
        assert torch.equal(encoded.inputs[key], reference[key]), key
    assert encoded.lengths == reference["attention_mask"].sum(dim=1).tolist()
    long = qwen_inputs.build_prompt(processor, prepared("long", None, "word " * 5000), 2)
    encoded = qwen_inputs.encode_within_context(processor, [*prompts, long], max_new_tokens=8, max_positions=4096)
    assert [p.index for p in encoded.prompts] == [0, 1] and [p.index for p, _ in encoded.overflow] == [2]
    assert encoded.overflow[0][1].startswith("context overflow: ")
    assert torch.equal(encoded.inputs["input_ids"], reference["input_ids"])


@needs_torch
def test_blind_request_is_text_only(model, clips):
    """nframes = 0: the video part is left out of the chat; the harness decodes nothing (videos is empty)."""
    blind = prepared("blind", clips["a.mp4"], "Which way does it move?", policy=FramePolicy(nframes=0))
    assert blind.videos == []
    prompt = model._prompt(0, blind)
    assert "<|video_pad|>" not in prompt.text and prompt.text.endswith("Which way does it move?<|im_end|>\n"
                                                                          "<|im_start|>assistant\n")  # fmt: skip
    inputs = model.prepare([prompt])
    assert "pixel_values_videos" not in inputs
    [response] = model.generate([blind])
    assert response.error is None and response.text is not None and response.usage["prompt_tokens"] > 0


@needs_torch
def test_batched_generation_equals_one_at_a_time(model, clips):
    """Greedy decoding in fp32 with left padding: a batch of 3 requests of different lengths (two videos of different
    sizes and a text-only one) gives token-for-token the answers of the requests run alone."""
    batch = [
        prepared("v1", clips["a.mp4"], "In which direction does the red disc move?"),
        prepared("v2", clips["b.mp4"], "Which disc is faster?", policy=FramePolicy(nframes=6, max_pixels=30_000)),
        prepared("t", None, "A much longer question without any video, asked only in words, to pad the batch."),
    ]
    together = model.generate(batch)
    alone = [model.generate([one])[0] for one in batch]
    assert [r.sample_id for r in together] == ["v1", "v2", "t"]
    assert all(r.error is None for r in together + alone)
    assert [r.usage["output_ids"] for r in together] == [r.usage["output_ids"] for r in alone]
    assert [r.text for r in together] == [r.text for r in alone]
    assert len({r.usage["prompt_tokens"] for r in alone}) == 3  # the batch really was padded


@needs_torch
def test_images_missing_media_and_context_overflow_are_per_sample(model, clips, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((56, 84, 3), 200, np.uint8)).save(tmp_path / "still.png")
    with_image = PreparedRequest(
        Request(sample_id="img", messages=[Message(content=[ImagePart(image=str(tmp_path / "still.png")),
                                                            TextPart(text="What is shown?")])],
                generation=GenerationSettings(max_new_tokens=3)), "k-img", 0)  # fmt: skip
    inputs = model.prepare([model._prompt(0, with_image)])
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 6]]  # 56x84 in 14-pixel patches, no resize
    missing = with_image.request.model_copy(deep=True)
    missing.sample_id = "gone"
    missing.messages[0].content[0].image = str(tmp_path / "gone.png")
    too_long = prepared("long", None, "word " * 5000, max_new_tokens=3)  # over the tiny model's 4096 positions
    responses = model.generate([with_image, PreparedRequest(missing, "k-gone", 0), too_long])
    assert responses[0].error is None and responses[0].text is not None
    assert "gone.png" in responses[1].error
    assert responses[2].error.startswith("context overflow: ")
    assert "exceed the model's 4096 positions" in responses[2].error


@needs_torch
def test_out_of_memory_fails_the_batch_and_is_an_error_alone(model, monkeypatch):
    """The harness retries a failed batch one request at a time (Inference.generate); alone, OOM is an error."""

    def oom(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "_run", oom)
    batch = [prepared("a", None, "Hi"), prepared("b", None, "Ho")]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        model.generate(batch)
    [alone] = model.generate(batch[:1])
    assert alone.error.startswith("CUDA out of memory: ") and alone.text is None


@needs_torch
def test_sampling_is_seeded_per_request(model):
    """temperature > 0 samples each request alone with its own seed: the same seed repeats, batch order does not
    matter."""
    first = prepared("s1", None, "Tell me something.", max_new_tokens=8, seed=11, temperature=1.0)
    second = prepared("s2", None, "Tell me something.", max_new_tokens=8, seed=12, temperature=1.0)
    forward, backward = model.generate([first, second]), model.generate([second, first])
    assert forward[0].usage["output_ids"] == backward[1].usage["output_ids"]
    assert forward[1].usage["output_ids"] == backward[0].usage["output_ids"]


# --- end to end through the command line ------------------------------------------------------------------------------


def _vlm4d_data(root) -> tuple[list[str], int, int]:
    """Two VLM4D questions with their videos laid out as in the Hugging Face dataset ``shijiezhou/VLM4D``
    (``videos_real/``, ``videos_synthetic/``); 8 frames at 4 fps."""
    clips = {"real/validation_1": "videos_real/davis/aerobatics.mp4",
             "synthetic/validation_1": "videos_synthetic/synth_001.mp4"}  # fmt: skip
    for i, rel in enumerate(clips.values()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / rel, np.full((8, 56, 84, 3), 60 * i, np.uint8), fps=4)
    return [f"data_dir={root}", f"ids={json.dumps(list(clips))}"], 2, 2  # 1 fps of a 2 s clip: 2 frames


def _dsr_data(root) -> tuple[list[str], int, int]:
    """Two DSR-Bench rows in VLMEvalKit's TSV layout (``DSRBench.tsv``: index, video, question, options, answer,
    task_type) on one clip under raw_data/dsr-bench/."""
    (root / "raw_data" / "dsr-bench").mkdir(parents=True)
    write_video(root / "raw_data" / "dsr-bench" / "clip.mp4", np.full((40, 56, 84, 3), 90, np.uint8), fps=10)
    options = ["A. Left", "B. Right", "C. Toward the camera", "D. Away from the camera"]
    rows = ["index\tvideo\tquestion\toptions\tanswer\ttask_type"]
    rows += [f"{i}\tclip.mp4\tWhere does the car go?\t{json.dumps(options)}\tB\tabs_dir" for i in (1, 2)]
    (root / "DSRBench.tsv").write_text("\n".join(rows) + "\n")
    return [f"data_dir={root}"], 2, 32  # the authors' 32-frame setting


def _fourd_data(root) -> tuple[list[str], int, None]:
    """One 4D-Bench QA object in the layout of the dataset ``vxuanz/4D-Bench`` (``4d_qa.json`` and
    ``4d_object_multi_view_videos/<uid>/view_<k>_rgb_white_bg.mp4``): views 1, 8, 16 sent as 18 still images
    (Qwen2-VL family)."""
    folder = root / "4D_Object_Question_Answering" / "data"
    for view in (1, 8, 16):
        (folder / "4d_object_multi_view_videos" / "obj1").mkdir(parents=True, exist_ok=True)
        frames = np.full((12, 32, 32, 3), 7 * view, np.uint8)
        write_video(folder / "4d_object_multi_view_videos" / "obj1" / f"view_{view}_rgb_white_bg.mp4", frames, fps=6)
    record = {"Question": "How many arms move?", "Choices": ["(A) 0", "(B) 1", "(C) 2", "(D) 3"],
              "Answer index": 2, "Category": "Action"}  # fmt: skip
    (folder / "4d_qa.json").write_text(json.dumps({"obj1_0": record}))
    return [f"data_dir={root}", f"frames_cache={root / 'frames'}"], 1, None  # images, no video parts


@needs_torch
@pytest.mark.slow
def test_run_every_benchmark_end_to_end_through_the_cli(tiny, host, tmp_path):
    """`vdpm-harness run --model qwen25vl` on motion-basics (4 samples) and on every other benchmark registered now
    (dsr, vlm4d, 4dbench-qa), each on a small local fixture in its official layout (no hub here), in one run."""
    out = tmp_path / "res"
    expected = {"motion-basics": (4, 16)}  # 4 samples of 16 frames
    args = ["run", "--model", "qwen25vl", "--model-arg", f"path={tiny[0]}", "--model-arg", "max_new_tokens=16",
            "--limit", "4", "--out", str(out), "--decode-workers", "1"]  # fmt: skip
    registered = {entry.id for entry in host.registry("benchmarks")}
    for bench, make in (("vlm4d", _vlm4d_data), ("dsr", _dsr_data), ("4dbench-qa", _fourd_data)):
        if bench in registered:
            bench_args, n, frames = make(tmp_path / bench)
            expected[bench] = (n, frames)
            args += [arg for value in bench_args for arg in ("--bench-arg", f"{bench}:{value}")]
    run_cli(*args, "--bench", ",".join(expected), env=cli_env(**OFFLINE))
    [label] = [p.name for p in out.iterdir() if p.is_dir()]
    assert label.startswith("qwen25vl-")  # non-default options: the label carries their hash
    for bench, (n, frames) in expected.items():
        folder = out / label / bench
        result = json.loads((folder / "results.json").read_text())
        assert (result["n_samples"], result["n_errors"]) == (n, 0), bench
        record = json.loads((folder / "run.json").read_text())["model"]
        assert record["revision"].startswith("local:") and record["details"]["dtype"] == "float32"
        assert record["details"]["attn_implementation"] == "sdpa" and record["details"]["batch_size"] == 1
        assert record["details"]["share_prefix"] is True  # on by default (tests/test_prefix_sharing.py)
        predictions = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert all(p["status"] == "ok" and 0 < p["usage"]["completion_tokens"] <= 16 for p in predictions), bench
        if frames is not None:
            assert all(len(p["frame_indices"][0]) == frames for p in predictions), bench
