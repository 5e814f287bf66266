"""The ``qwen25vl-gsm`` model: DSR Suite's Geometry Selection Module on Qwen2.5-VL, on CPU with tiny random weights.

Each test checks against a reference no one here wrote, or an exact identity: the Qwen2-VL processors'
patchification, transformers' ``Dinov2WithRegistersModel``, the key tables of the released layouts (Pi3's checkpoint,
the GSM module table of the paper's code), the module sizes of the paper's 7B model, transformers 4.51's M-RoPE rule
worked by hand, and the model's own single-request outputs (batching must not change them).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402

from vdpm_harness import dinov2  # noqa: E402
from vdpm_harness.interfaces import PreparedRequest  # noqa: E402
from vdpm_harness.records import FramePolicy, GenerationSettings, ImagePart, Message, Request, TextPart  # noqa: E402
from vdpm_harness.video import write_video  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl import inputs as qwen_inputs  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.checkpoints import load_processor, make_tiny  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints, pi3, tokens  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm.patches import renormalise, split_frames, unflatten  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm.positions import rope_index  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm.settings import (  # noqa: E402
    CLIP_MEAN,
    CLIP_MEAN_ORIGINAL,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PI3_ENCODER,
    GSMSettings,
)

from .conftest import cli_env, run_cli  # noqa: E402
from .test_qwen25vl import _dsr_data, _fourd_data, _vlm4d_data, prepared  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny(tiny_gsm):
    """The session's tiny GSM (conftest): (folder, printed summary)."""
    return tiny_gsm


@pytest.fixture(scope="module")
def model(tiny):
    """The ``qwen25vl-gsm`` plugin on the tiny checkpoint (CPU: float32, batch size 1)."""
    from vdpm_harness.plugins import get_host

    plugin = get_host().create("models", "qwen25vl-gsm", {"path": str(tiny[0])})
    plugin.load()
    yield plugin
    plugin.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 4:3 clip (40 frames at 8 fps, 192x144) and a 16:9 one (24 frames at 12 fps, 256x144): under one frame
    policy they get different grids."""
    folder = tmp_path_factory.mktemp("gsm-clips")
    rng = np.random.default_rng(5)
    for name, (n, h, w, fps) in {"a.mp4": (40, 144, 192, 8.0), "w.mp4": (24, 144, 256, 12.0)}.items():
        write_video(folder / name, rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), fps)
    return {name: str(folder / name) for name in ("a.mp4", "w.mp4")}


POLICY = FramePolicy(nframes=8, max_pixels=30_000, size_multiple=28)


def image_request(sample_id: str, path, text: str) -> PreparedRequest:
    content = [ImagePart(image=str(path)), TextPart(text=text)]
    request = Request(sample_id=sample_id, messages=[Message(content=content)],
                      generation=GenerationSettings(max_new_tokens=4))  # fmt: skip
    return PreparedRequest(request, f"k-{sample_id}", 0)


def encoded(plugin, requests):
    """The GSM inputs of requests sharing pixel limits (the plugin's own path: prompt, processor, geometry pads)."""
    prompts = [plugin._prompt(i, r) for i, r in enumerate(requests)]
    return plugin.encode(plugin._processor, prompts)


def logits(plugin, requests) -> list[torch.Tensor]:
    """Each request's logits over its real (left-padded) positions, from one forward pass of the batch."""
    batch = encoded(plugin, requests)
    with torch.no_grad():
        out = plugin._model(**batch).logits
    return [out[i, -n:] for i, n in enumerate(batch["attention_mask"].sum(dim=1).tolist())]


# --- frames from patches ----------------------------------------------------------------------------------------------


def test_unflatten_is_the_exact_inverse_of_the_processors_patchification(tiny):
    """The Qwen2-VL video and image processors' ``patchify`` (transformers), with resizing and normalisation off, fed
    uint8 frames: unflattening their rows gives the frames back bit for bit (a video's odd last group repeats its last
    frame, an image is repeated over the temporal patch); two videos of different sizes split by their grids."""
    processor = load_processor(str(tiny[0]))
    rng = np.random.default_rng(0)
    videos = [
        rng.integers(0, 256, (5, 56, 84, 3), dtype=np.uint8),
        rng.integers(0, 256, (4, 112, 56, 3), dtype=np.uint8),
    ]
    raw = {"do_resize": False, "do_rescale": False, "do_normalize": False, "return_tensors": "pt"}
    out = processor.video_processor(videos=videos, do_sample_frames=False, **raw)
    assert out["video_grid_thw"].tolist() == [[3, 4, 6], [2, 8, 4]]
    frames = split_frames(out["pixel_values_videos"], out["video_grid_thw"])
    for video, got in zip(videos, frames):
        expected = torch.from_numpy(video).permute(0, 3, 1, 2)
        assert got.shape[0] == expected.shape[0] + expected.shape[0] % 2
        assert torch.equal(got[: len(video)], expected.to(got.dtype))
        assert torch.equal(got[len(video) :], expected[-1:].expand(got.shape[0] - len(video), -1, -1, -1).to(got.dtype))
    image = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
    out = processor.image_processor(images=[image], **raw)
    got = unflatten(out["pixel_values"], out["image_grid_thw"][0].tolist())
    assert torch.equal(got, torch.from_numpy(image).permute(2, 0, 1)[None].expand(2, -1, -1, -1).to(got.dtype))
    with pytest.raises(ValueError, match="do not fit the grid"):
        unflatten(out["pixel_values"], (1, 4, 4))


def test_renormalisation_turns_the_processors_clip_pixels_into_imagenet_pixels(tiny):
    """From the processor's normalised patches (CLIP mean/std, its own constants) to the ImageNet normalisation of the
    Pi3 encoder: equal to normalising the frames directly; the original's mistyped mean shifts green by exactly
    (0.4576275 - 0.4578275) / 0.224."""
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    assert (list(CLIP_MEAN), list(CLIP_STD)) == (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    assert (list(IMAGENET_MEAN), list(IMAGENET_STD)) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    processor = load_processor(str(tiny[0]))
    video = np.random.default_rng(1).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    out = processor.video_processor(videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt")
    [frames] = split_frames(out["pixel_values_videos"], out["video_grid_thw"])
    direct = (torch.from_numpy(video).permute(0, 3, 1, 2).double() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
              ) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)  # fmt: skip
    exact = renormalise(frames, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(exact.double(), direct, atol=2e-6)
    typo = renormalise(frames, CLIP_MEAN_ORIGINAL, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD)
    shift = (typo - exact).double()
    assert torch.allclose(shift[:, 1], torch.full_like(shift[:, 1], (0.4576275 - 0.4578275) / 0.224), atol=1e-6)
    assert shift[:, [0, 2]].abs().max() == 0


# --- the Pi3 encoder --------------------------------------------------------------------------------------------------


def pi3_state(device="meta", depth=24, width=1024, heads_mlp=4, patch=14, grid=37, registers=4) -> dict:
    """A state dict laid out as Pi3's ``model.safetensors`` (GitHub yyfz/Pi3; encoder table: DINOv2 ViT-L/14 with
    registers, keys under ``encoder.``), with the other parts' representative keys; meta tensors by default."""

    def t(*shape):
        return torch.empty(*shape, device=device)

    state = {"encoder.cls_token": t(1, 1, width), "encoder.register_tokens": t(1, registers, width),
             "encoder.pos_embed": t(1, 1 + grid * grid, width), "encoder.patch_embed.proj.weight": t(width, 3, patch,
             patch), "encoder.patch_embed.proj.bias": t(width), "encoder.norm.weight": t(width),
             "encoder.norm.bias": t(width)}  # fmt: skip
    block_shapes = {"norm1.weight": (width,), "norm1.bias": (width,), "attn.qkv.weight": (3 * width, width),
                    "attn.qkv.bias": (3 * width,), "attn.proj.weight": (width, width), "attn.proj.bias": (width,),
                    "ls1.gamma": (width,), "norm2.weight": (width,), "norm2.bias": (width,),
                    "mlp.fc1.weight": (heads_mlp * width, width), "mlp.fc1.bias": (heads_mlp * width,),
                    "mlp.fc2.weight": (width, heads_mlp * width), "mlp.fc2.bias": (width,),
                    "ls2.gamma": (width,)}  # fmt: skip
    for i in range(depth):
        state.update({f"encoder.blocks.{i}.{name}": t(*shape) for name, shape in block_shapes.items()})
    state.update({"decoder.0.attn.qkv.weight": t(3072, 1024), "decoder.0.attn.q_norm.weight": t(64),
                  "register_token": t(1, 1, 5, 1024), "point_decoder.projects.weight": t(1024, 2048),
                  "point_head.proj.weight": t(588, 1024), "conf_head.proj.weight": t(196, 1024),
                  "camera_head.fc_rot.weight": t(9, 512), "image_mean": t(1, 3, 1, 1),
                  "image_std": t(1, 3, 1, 1)})  # fmt: skip
    return state


def test_the_pi3_encoder_layout_maps_onto_dinov2_with_registers():
    """Pi3's checkpoint layout (343 encoder entries) onto ``Dinov2WithRegistersModel`` of the Pi3 configuration, on
    the meta device: no missing key but the unused ``mask_token``, no unexpected key, every shape equal; and back."""
    from transformers import Dinov2WithRegistersModel

    full = pi3_state()
    encoder = pi3.encoder_from_pi3_checkpoint(full)
    assert len(encoder) == 343 and sum(v.numel() for v in encoder.values()) == pytest.approx(304.37e6, rel=2e-5)
    mapped, unexpected = pi3.map_pi3_encoder(encoder)
    assert unexpected == []
    with torch.device("meta"):
        reference = Dinov2WithRegistersModel(GSMSettings().encoder_config())
    expected = reference.state_dict()
    assert pi3.missing_keys(expected, mapped) == [] and set(expected) - set(mapped) == set(pi3.UNUSED)
    assert set(mapped) <= set(expected)
    assert all(mapped[k].shape == expected[k].shape for k in mapped)
    back = dinov2.to_dinov2(mapped)
    assert set(back) == set(encoder) and all(back[k].shape == encoder[k].shape for k in back)
    assert pi3.map_pi3_encoder({"blocks.0.attn.qkv.weight": torch.empty(6, 2), "head.weight": torch.empty(1)})[1] == [
        "head.weight"]  # fmt: skip


def test_a_tiny_encoder_gives_the_same_features_through_the_harness_as_through_transformers(model, tiny):
    """Frames through the harness (processor patches -> unflatten -> ImageNet -> the GSM's encoder loaded from Pi3's
    layout) and through ``Dinov2WithRegistersModel`` directly (the frames normalised by hand; last hidden state
    without CLS and registers): the same features."""
    from transformers import Dinov2WithRegistersModel

    gsm = model._model.gsm
    torch.manual_seed(3)
    reference = Dinov2WithRegistersModel(gsm.spatial_encoder.config).eval()
    pi3_layout = dinov2.to_dinov2(reference.state_dict())
    mapped, unexpected = pi3.map_pi3_encoder(pi3_layout)
    assert unexpected == []
    saved = {k: v.clone() for k, v in gsm.spatial_encoder.state_dict().items()}
    try:
        gsm.spatial_encoder.load_state_dict(mapped, strict=False)
        processor = model._processor
        video = np.random.default_rng(2).integers(0, 256, (4, 56, 84, 3), dtype=np.uint8)
        out = processor.video_processor(videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt")
        with torch.no_grad():
            [harness] = gsm.encode(gsm.frames(out["pixel_values_videos"], out["video_grid_thw"]))
            mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            frames = (torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255 - mean) / std
            direct = reference(pixel_values=frames).last_hidden_state[:, 1 + 4 :]
        assert harness.shape == direct.shape == (4, 4 * 6, 32)
        assert torch.allclose(harness, direct, atol=1e-5)
    finally:
        gsm.spatial_encoder.load_state_dict(saved)


def test_geometry_features_follow_qwens_merged_token_order(model):
    """With the encoder replaced by "each patch's own pixels" and the merger by the identity, merged geometry token k
    holds exactly the pixels of the processor's rows 4k..4k+3 (Qwen's merged token k): the 2 frames x 2x2 patches
    regrouping matches the vision tower's token order."""
    gsm = model._model.gsm
    video = np.random.default_rng(4).integers(0, 256, (4, 56, 112, 3), dtype=np.uint8)
    out = model._processor.video_processor(videos=[video], do_resize=False, do_rescale=False, do_normalize=False,
                                           do_sample_frames=False, return_tensors="pt")  # fmt: skip
    rows, grid = out["pixel_values_videos"].float(), out["video_grid_thw"]

    def patch_pixels(frames):  # (F, 3, H, W) -> (F, h*w, 3*14*14), patches in raster order
        return [f.unfold(2, 14, 14).unfold(3, 14, 14).permute(0, 2, 3, 1, 4, 5).reshape(f.shape[0], -1, 3 * 196)
                for f in frames]  # fmt: skip

    merger = gsm.spatial_merger
    gsm.frames, gsm.encode = (lambda pixels, g: split_frames(pixels, g)), patch_pixels
    gsm.spatial_merger = torch.nn.Identity()
    try:
        [merged] = gsm.geometry(rows, grid)
    finally:
        del gsm.frames, gsm.encode
        gsm.spatial_merger = merger
    t, h, w = grid[0].tolist()
    assert merged.shape == (t * h * w // 4, 8 * 3 * 196)
    # merged: (tp, my, mx, C, py, px); processor rows: 4 rows (my, mx) of (C, tp, py, px)
    regrouped = merged.view(-1, 2, 2, 2, 3, 14, 14).permute(0, 2, 3, 4, 1, 5, 6).reshape(-1, 4, 3 * 2 * 196)
    assert torch.equal(regrouped, rows.view(-1, 4, 3 * 2 * 196))


# --- tokens and positions ---------------------------------------------------------------------------------------------


def test_geometry_pads_follow_each_requests_last_image_or_video(tiny):
    processor = load_processor(str(tiny[0]))
    tok = processor.tokenizer
    start, end, image, video = tok.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                                                          "<|video_pad|>"])  # fmt: skip
    pad = tok.pad_token_id
    rows = [[5, start, video, video, end, 6, start, image, end, 7], [pad] * 7 + [8, 9, 10]]
    ids = torch.tensor(rows)
    mask = (ids != pad).long()
    new_ids, new_mask, types = tokens.insert_geometry_pads(
        ids, mask, None, vision_start_token_id=start, image_token_id=image, video_token_id=video, pad_token_id=pad,
        num_queries=3,
    )  # fmt: skip
    assert new_ids.tolist() == [[5, start, video, video, end, 6, start, image, video, video, video, end, 7],
                                [pad] * 10 + [8, 9, 10]]  # fmt: skip
    assert new_mask.sum(dim=1).tolist() == [13, 3] and types.abs().sum() == 0
    rows_with = tokens.rows_with_vision(new_ids, vision_start_token_id=start, image_token_id=image,
                                        video_token_id=video)  # fmt: skip
    assert rows_with.tolist() == [True, False]
    slots = tokens.geometry_slots(new_ids, rows_with, video_token_id=video, num_queries=3)
    assert slots[0].nonzero().flatten().tolist() == [8, 9, 10] and not slots[1].any()


def test_the_first_q_former_reads_the_prompt_without_its_header_unless_original(model, clips):
    """Fixed: the prompt's text without special tokens and without the assistant header (what the original trains
    on); original numerics: with ``assistant\\n`` (what the original evaluates with)."""
    batch = encoded(model, [prepared("a", clips["a.mp4"], "Which way?", policy=POLICY)])
    settings = model._model.gsm.settings
    selected = {}
    for original in (False, True):
        mask = tokens.text_selection(
            batch["input_ids"], batch["attention_mask"], excluded_token_ids=settings.excluded_token_ids,
            im_start_token_id=settings.im_start_token_id, with_generation_prompt=original,
        )  # fmt: skip
        selected[original] = model._processor.tokenizer.decode(batch["input_ids"][0][mask[0]])
    assert selected[False] == "system\nYou are a helpful assistant.\nuser\nWhich way?\n"
    assert selected[True] == selected[False] + "assistant\n"


def test_positions_follow_the_rule_the_checkpoint_was_trained_with():
    """transformers 4.51 / qwen-vl-finetune's ``get_rope_index_25``, worked by hand: text 0,1,2; a 2x4x6 video grid
    (2x2x3 merged tokens) at 1.5 s per grid and 2 tokens per second starts at 3 with times int(0*3)=0, int(1*3)=3;
    the text after it, the 32 geometry pads first, resumes at the grid's largest position + 1 = 7."""
    s, e, v = 90, 91, 92
    row = [1, 2, s] + [v] * 12 + [v] * 32 + [e, 3]
    ids = torch.tensor([[0, 0] + row])  # left padding
    mask = torch.tensor([[0, 0] + [1] * len(row)])
    positions, deltas = rope_index(ids, mask, None, torch.tensor([[2, 4, 6]]), torch.tensor([1.5]),
                                   vision_start_token_id=s, image_token_id=93, video_token_id=v, spatial_merge_size=2,
                                   tokens_per_second=2)  # fmt: skip
    grid_t = [3] * 6 + [6] * 6
    grid_y = [3, 3, 3, 4, 4, 4] * 2
    grid_x = [3, 4, 5] * 4
    text_after = list(range(7, 7 + 34))
    expected = [[0, 0, 0, 1, 2, *axis, *text_after] for axis in (grid_t, grid_y, grid_x)]
    assert positions[:, 0].tolist() == expected
    assert deltas.tolist() == [[41 - len(row)]]


def test_generate_gives_the_language_model_these_positions(model, clips):
    batch = encoded(model, [prepared("a", clips["a.mp4"], "Which way?", policy=POLICY)])
    seen = []
    language_model = model._model.model.language_model
    hook = language_model.register_forward_pre_hook(lambda m, a, k: seen.append(k["position_ids"]), with_kwargs=True)
    try:
        with torch.no_grad():
            model._model.generate(**batch, max_new_tokens=2, do_sample=False)
    finally:
        hook.remove()
    expected, _ = model._model.model.get_rope_index(batch["input_ids"], attention_mask=batch["attention_mask"],
                                                    video_grid_thw=batch["video_grid_thw"],
                                                    second_per_grid_ts=batch["second_per_grid_ts"])  # fmt: skip
    assert torch.equal(seen[0][-3:], expected)
    assert int(seen[1][-1, 0, -1]) == int(expected[:, 0].max()) + 1  # the first new token continues after the last


# --- batching ---------------------------------------------------------------------------------------------------------


def test_a_batch_of_two_different_samples_gives_the_logits_of_each_alone(model, clips):
    """fp32: two requests with videos of different grids and texts of different lengths, left-padded into one batch:
    each request's logits equal its logits alone (1e-5). Its 32 queries see only its own text and frames, and the
    M-RoPE positions of its queries and geometry pads do not depend on the batch."""
    requests = [prepared("a", clips["a.mp4"], "In which direction does the red disc move during the video?",
                         policy=POLICY),
                prepared("w", clips["w.mp4"], "Which is faster?", policy=POLICY)]  # fmt: skip
    batch = encoded(model, requests)
    assert batch["video_grid_thw"][0].tolist() != batch["video_grid_thw"][1].tolist()
    together = logits(model, requests)
    alone = [logits(model, [r])[0] for r in requests]
    assert together[0].shape != together[1].shape  # the batch really was padded
    for a, b in zip(together, alone):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=0)


def test_images_videos_and_text_only_requests_batch_together(model, clips, tmp_path):
    """Images are GSM inputs too (one grid each); a text-only request gets no geometry pads and runs as plain text;
    greedy answers in one batch equal those alone."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(6).integers(0, 256, (56, 84, 3), dtype=np.uint8)).save(tmp_path / "i.png")
    requests = [image_request("img", tmp_path / "i.png", "What is shown?"),
                prepared("a", clips["a.mp4"], "Which way?", policy=POLICY, max_new_tokens=4),
                prepared("t", None, "Words only.", max_new_tokens=4)]  # fmt: skip
    for request, extra in zip(requests, (32, 32, 0)):
        plain = qwen_inputs.encode(model._processor, [model._prompt(0, request)])
        with_pads = encoded(model, [request])
        assert with_pads["input_ids"].shape[1] == plain["input_ids"].shape[1] + extra
    together = model.generate(requests)
    alone = [model.generate([r])[0] for r in requests]
    assert all(r.error is None for r in together + alone)
    assert [r.usage["output_ids"] for r in together] == [r.usage["output_ids"] for r in alone]


# --- checkpoints ------------------------------------------------------------------------------------------------------


def original_layout(plain_folder, config) -> dict[str, torch.Tensor]:
    """A state dict in the released GSM checkpoint's layout at tiny sizes: the plain Qwen2.5-VL part as transformers
    saves it (``visual.*``, ``model.layers.*``, ``lm_head``) and the GSM modules of the paper code's module table
    (``spatial_encoder`` in Pi3's DINOv2 layout, ``spatial_merger`` = RMSNorm + Linear + GELU + Linear over 8 encoder
    features, 32 queries, two Q-Former layers of the language model's sizes with biases but none on ``o_proj``,
    ``q_former_norm``), seeded random values."""
    state = load_file(plain_folder / "model.safetensors")
    generator = torch.Generator().manual_seed(11)
    text, encoder = config.text_config, config.gsm["encoder"]
    hidden, inter = text.hidden_size, text.intermediate_size
    kv = text.num_key_value_heads * hidden // text.num_attention_heads
    width = encoder["hidden_size"]
    grid = encoder["image_size"] // encoder["patch_size"]
    pi3_part = pi3_state("cpu", depth=encoder["num_hidden_layers"], width=width, grid=grid)
    shapes = {f"visual.spatial_encoder.{k[len('encoder.') :]}": v.shape for k, v in pi3_part.items()
              if k.startswith("encoder.")}  # fmt: skip
    shapes.update({"visual.spatial_merger.ln_q.weight": (8 * width,), "visual.spatial_merger.mlp.0.weight": (8 * width,
                   8 * width), "visual.spatial_merger.mlp.0.bias": (8 * width,), "visual.spatial_merger.mlp.2.weight":
                   (hidden, 8 * width), "visual.spatial_merger.mlp.2.bias": (hidden,), "visual.q_former_queries":
                   (32, hidden), "visual.q_former_norm.weight": (hidden,)})  # fmt: skip
    for q in ("visual.q_former_1.", "visual.q_former_2."):
        shapes.update({q + "norm1.weight": (hidden,), q + "norm2.weight": (hidden,), q + "attn.q_proj.weight":
                       (hidden, hidden), q + "attn.q_proj.bias": (hidden,), q + "attn.k_proj.weight": (kv, hidden),
                       q + "attn.k_proj.bias": (kv,), q + "attn.v_proj.weight": (kv, hidden), q + "attn.v_proj.bias":
                       (kv,), q + "attn.o_proj.weight": (hidden, hidden), q + "mlp.gate_proj.weight": (inter, hidden),
                       q + "mlp.gate_proj.bias": (inter,), q + "mlp.up_proj.weight": (inter, hidden),
                       q + "mlp.up_proj.bias": (inter,), q + "mlp.down_proj.weight": (hidden, inter),
                       q + "mlp.down_proj.bias": (hidden,)})  # fmt: skip
    state.update({k: torch.randn(*s, generator=generator) * 0.05 for k, s in shapes.items()})
    return state


@pytest.fixture(scope="module")
def original(tiny, tmp_path_factory):
    """A folder holding :func:`original_layout` with the tiny GSM's config and processor: (folder, state)."""
    from transformers import AutoConfig

    root = tmp_path_factory.mktemp("original")
    make_tiny(root / "plain", seed=0)  # the same tokenizer and Qwen2.5-VL sizes as the tiny GSM
    folder = root / "gsm"
    shutil.copytree(tiny[0], folder, ignore=shutil.ignore_patterns("*.safetensors"))
    state = original_layout(root / "plain", AutoConfig.from_pretrained(folder))
    save_file(state, str(folder / "model.safetensors"))
    return folder, state


def test_the_released_layout_loads_with_no_missing_or_unexpected_key(original):
    folder, state = original
    model, _ = checkpoints.load_model(str(folder), random_weights=False, dtype="float32", device="cpu",
                                      attn_implementation="sdpa")  # fmt: skip
    params = model.state_dict()
    width = model.config.gsm["encoder"]["hidden_size"]
    qkv = state["visual.spatial_encoder.blocks.1.attn.qkv.weight"]
    assert torch.equal(
        params["model.gsm.spatial_encoder.encoder.layer.1.attention.k_proj.weight"], qkv[width : 2 * width]
    )
    assert torch.equal(params["model.gsm.spatial_encoder.embeddings.position_embeddings"],
                       state["visual.spatial_encoder.pos_embed"])  # fmt: skip
    assert torch.equal(params["model.gsm.q_former_2.attn.v_proj.bias"], state["visual.q_former_2.attn.v_proj.bias"])
    assert torch.equal(params["model.gsm.q_former_queries"], state["visual.q_former_queries"])
    assert torch.equal(params["model.visual.blocks.0.attn.qkv.weight"], state["visual.blocks.0.attn.qkv.weight"])
    assert torch.equal(
        params["model.language_model.layers.1.mlp.up_proj.weight"], state["model.layers.1.mlp.up_proj.weight"]
    )
    assert torch.equal(params["lm_head.weight"], state["lm_head.weight"])
    assert set(checkpoints.released_state(model)) == set(state)  # and saving writes exactly that layout


def test_save_then_load_gives_identical_logits(original, model, clips, tmp_path):
    folder, _ = original
    first, _ = checkpoints.load_model(str(folder), random_weights=False, dtype="float32", device="cpu",
                                      attn_implementation="sdpa")  # fmt: skip
    checkpoints.save(first, tmp_path / "saved", max_shard_bytes=400_000)  # sharded, with an index
    assert (tmp_path / "saved" / "model.safetensors.index.json").is_file()
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja"):
        shutil.copy(folder / name, tmp_path / "saved" / name)
    second, _ = checkpoints.load_model(str(tmp_path / "saved"), random_weights=False, dtype="float32", device="cpu",
                                       attn_implementation="sdpa")  # fmt: skip
    batch = encoded(model, [prepared("a", clips["a.mp4"], "Which way?", policy=POLICY)])
    with torch.no_grad():
        a, b = first(**batch).logits, second(**batch).logits
    assert torch.equal(a, b)
    with torch.no_grad():  # and the loaded weights are used: another checkpoint gives other logits
        assert not torch.allclose(a, model._model(**batch).logits)


def test_a_checkpoint_that_does_not_fit_is_an_error_naming_its_keys(original, tiny, tmp_path):
    folder, state = original

    def variant(name, change):
        target = tmp_path / name
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors"))
        save_file(change(dict(state)), str(target / "model.safetensors"))
        return str(target)

    def load(path):
        checkpoints.load_model(path, random_weights=False, dtype="float32", device="cpu", attn_implementation="sdpa")

    missing = variant("missing", lambda s: {k: v for k, v in s.items() if "q_former_2.mlp.up_proj" not in k})
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"2 missing keys: visual\.q_former_2\.mlp\.up_proj\.bias, "
                       r"visual\.q_former_2\.mlp\.up_proj\.weight\. Nothing was loaded"):  # fmt: skip
        load(missing)
    extra = variant("extra", lambda s: {**s, "visual.geometry_kv_attn.in_proj_weight": torch.zeros(3, 3)})
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"1 unexpected keys: visual\.geometry_kv_attn"):
        load(extra)
    shape = variant("shape", lambda s: {**s, "visual.q_former_queries": torch.zeros(16, 64)})
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"wrong shape: visual\.q_former_queries \(16, 64\) for "
                       r"\(32, 64\)"):  # fmt: skip
        load(shape)
    encoder_qkv = variant(
        "qkv", lambda s: {k: v for k, v in s.items() if k != "visual.spatial_encoder.blocks.0.attn.qkv.bias"}
    )
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"visual\.spatial_encoder\.blocks\.0\.attn\.qkv\.bias"):
        load(encoder_qkv)
    plain = variant(
        "plain", lambda s: {k: v for k, v in s.items() if not k.startswith(("visual.spatial", "visual.q_"))}
    )
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"missing keys: .*visual\.q_former_queries"):
        load(plain)


def test_random_weights_from_a_config_only_gsm_checkpoint(tiny, tmp_path):
    from vdpm_harness.plugins import get_host

    folder = tmp_path / "config-only"
    shutil.copytree(tiny[0], folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"make-random --gsm\) needs the option random_weights=true"):
        get_host().create("models", "qwen25vl-gsm", {"path": str(folder)}).load()
    first, second = (get_host().create("models", "qwen25vl-gsm", {"path": str(folder), "random_weights": True})
                     for _ in range(2))  # fmt: skip
    first.load()
    second.load()
    assert first.describe()["gsm"]["parameters"] == tiny[1]["gsm_parameters"]
    assert all(torch.equal(a, b) for a, b in zip(first._model.parameters(), second._model.parameters()))
    assert first.revision().startswith("random:")


def test_make_random_7b_gsm_has_the_papers_module_sizes(host, tmp_path):
    """``models make-random DIR --config 7b --gsm``: the 7B configuration and the GSM of the paper code's module table:
    spatial_merger 96.5 M, each Q-Former 233.1 M, queries 0.11 M (about 563 M trainable), the Pi3 encoder 304.37 M
    (Pi3's 343 encoder entries); built on the meta device."""
    from click.testing import CliRunner
    from transformers import AutoConfig

    from vdpm_harness.cli import cli
    from vdpm_harness_plugins.models.qwen25vl.gsm.model import Qwen25VLGSMForConditionalGeneration

    host.pm.hook.register_commands(cli=cli)
    result = CliRunner().invoke(cli, ["models", "make-random", str(tmp_path / "g7b"), "--config", "7b", "--gsm"])
    assert result.exit_code == 0, result.output
    config = AutoConfig.from_pretrained(tmp_path / "g7b")
    assert config.architectures == ["Qwen2_5_VLForConditionalGeneration_Spatial"]
    settings = GSMSettings.from_config(config)
    assert settings.encoder == PI3_ENCODER and settings.num_queries == 32
    assert settings.excluded_token_ids == (151652, 151653, 151654, 151655, 151656, 151643, 151644, 151645)
    with torch.device("meta"):
        gsm = Qwen25VLGSMForConditionalGeneration(config).gsm

    def millions(module):
        return round(sum(p.numel() for p in module.parameters()) / 1e6, 2)

    assert millions(gsm.spatial_merger) == 96.49 and millions(gsm.q_former_1) == millions(gsm.q_former_2) == 233.10
    assert round(gsm.q_former_queries.numel() / 1e6, 2) == 0.11
    trainable = sum(p.numel() for n, p in gsm.named_parameters() if not n.startswith("spatial_encoder."))
    assert round(trainable / 1e6) == 563
    encoder = sum(p.numel() for n, p in gsm.spatial_encoder.named_parameters() if n not in pi3.UNUSED)
    assert round(encoder / 1e6, 2) == 304.37


# --- the plugin -------------------------------------------------------------------------------------------------------


def test_the_released_checkpoint_missing_offline_names_the_hub_id_and_the_trainer(host, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    plugin = host.create("models", "qwen25vl-gsm")
    assert plugin.options.path == "TencentARC/DSR_Suite-Model"
    message = (
        r"TencentARC/DSR_Suite-Model is not in the local Hugging Face cache .*hf download TencentARC/DSR_Suite-Model"
    )
    with pytest.raises(OSError, match=message + r".*vdpm-harness train gsm"):
        plugin.load()


def test_numerics_original_changes_only_what_it_names(model, tiny, clips):
    """``numerics="original"`` is a different fingerprint and different logits (the first Q-Former reads the header,
    the mistyped mean); ``fixed`` is the default."""
    from vdpm_harness.plugins import PluginError, get_host

    host = get_host()
    original = host.create("models", "qwen25vl-gsm", {"path": str(tiny[0]), "numerics": "original"})
    original.load()
    assert model.options.numerics == "fixed" and original.fingerprint() != model.fingerprint()
    assert original.describe()["gsm"]["clip_mean"] == "original" and model.describe()["gsm"]["clip_mean"] == "exact"
    request = [prepared("a", clips["a.mp4"], "Which way?", policy=POLICY)]
    assert not torch.allclose(logits(model, request)[0], logits(original, request)[0])
    with pytest.raises(PluginError, match="numerics\n  Input should be 'fixed' or 'original'"):
        host.create("models", "qwen25vl-gsm", {"path": "x", "numerics": "parity"})


# --- end to end through the command line ------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_dsr_synth_through_the_cli(tiny, tmp_path):
    """``vdpm-harness run --model qwen25vl-gsm --model-arg path=TINY --bench dsr-synth --limit 8``."""
    from .test_dsr_synth import SMALL_ARGS as args

    out = tmp_path / "res"
    run_cli("run", "--model", "qwen25vl-gsm", "--model-arg", f"path={tiny[0]}", "--model-arg", "max_new_tokens=8",
            "--bench", "dsr-synth", *args, "--limit", "8", "--out", str(out), "--decode-workers", "1",
            env=cli_env(**OFFLINE))  # fmt: skip
    [folder] = out.glob("qwen25vl-gsm*/dsr-synth")
    result = json.loads((folder / "results.json").read_text())
    assert (result["n_samples"], result["n_errors"]) == (8, 0)
    record = json.loads((folder / "run.json").read_text())["model"]
    assert record["id"] == "qwen25vl-gsm" and record["details"]["gsm"]["num_queries"] == 32
    predictions = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert all(p["status"] == "ok" and len(p["frame_indices"][0]) == 32 for p in predictions)


@pytest.mark.slow
def test_the_users_command_runs_all_three_benchmark_families(tiny, tmp_path):
    """``--bench dsr,vlm4d,4dbench-qa`` on the official-format fixtures of test_qwen25vl.py, then the user's command
    ``--model qwen25vl-gsm --bench dsr,vlm4d,4dbench`` (4dbench = QA and captioning) into the same results folder, the
    4D-Bench folder now holding the captioning task too: dsr, vlm4d and QA are reused, captioning runs."""
    from .test_fourd_bench import make_caption_data

    out = tmp_path / "res"
    base = ["run", "--model", "qwen25vl-gsm", "--model-arg", f"path={tiny[0]}", "--model-arg", "max_new_tokens=8",
            "--out", str(out), "--decode-workers", "1"]  # fmt: skip
    options, expected = {}, {}
    for bench, make in (("dsr", _dsr_data), ("vlm4d", _vlm4d_data), ("4dbench-qa", _fourd_data)):
        bench_args, expected[bench], _ = make(tmp_path / bench)
        options[bench] = [arg for value in bench_args for arg in ("--bench-arg", f"{bench}:{value}")]
    run_cli(*base, *(a for args in options.values() for a in args), "--bench", "dsr,vlm4d,4dbench-qa",
            env=cli_env(**OFFLINE))  # fmt: skip
    [label] = [p.name for p in out.iterdir() if p.is_dir()]
    for bench, n in expected.items():
        result = json.loads((out / label / bench / "results.json").read_text())
        assert (result["n_samples"], result["n_errors"]) == (n, 0), bench

    before = {b: (out / label / b / "predictions.jsonl").read_bytes() for b in expected}
    qa_root = tmp_path / "4dbench-qa"
    make_caption_data(qa_root)  # the captioning task beside the QA one, as in the dataset
    group = [arg.replace("4dbench-qa:", "4dbench:") for arg in options["4dbench-qa"]]
    proc = run_cli(*base, *options["dsr"], *options["vlm4d"], *group, "--bench", "dsr,vlm4d,4dbench",
                   env=cli_env(**OFFLINE))  # fmt: skip
    assert "failed" not in proc.stdout
    for bench, n in (("4dbench-qa", expected["4dbench-qa"]), ("4dbench-caption", 3)):
        result = json.loads((out / label / bench / "results.json").read_text())
        assert (result["n_samples"], result["n_errors"]) == (n, 0), bench
    for bench in expected:  # already there: reused, not generated again
        assert (out / label / bench / "predictions.jsonl").read_bytes() == before[bench], bench
