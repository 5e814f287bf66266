"""The transformers-based perception plugins end to end on tiny random-weight models built and saved here, loaded
through each plugin's real loading code (``from_pretrained`` of a local folder, the Pi3 and Orient Anything
checkpoint files in their official layouts), offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vdpm_harness import Clip, plugins

pytest.importorskip("transformers")

#: A Pi3 small enough for a CPU test: the real layout (24 encoder blocks -> 2, width 1024 -> 32, ...).
TINY_PI3 = {"encoder": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}, "decoder_dim": 32,
            "decoder_depth": 2, "decoder_heads": 2, "head_dim": 32, "head_depth": 1, "head_heads": 2,
            "camera_dim": 16}  # fmt: skip
TINY_DINOV2 = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 224}


@pytest.fixture(scope="module")
def host():
    return plugins.Host()


def random_clip(frames: int = 4, width: int = 64, height: int = 48) -> Clip:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8)
    return Clip(frames=pixels, indices=np.arange(frames), timestamps=np.arange(frames) / 10.0)


# --- Grounding DINO ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grounding_dino_dir(tmp_path_factory):
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino"))


def save_tiny_grounding_dino(folder, words=("person", "dog", "car", "ball", "red", "a")):
    """A 0.4 M-parameter Grounding DINO with its processor and a BERT vocabulary of ``words``, saved with
    ``save_pretrained`` in ``folder / "model"`` (the configuration that runs in transformers 5.23: two decoder layers
    at least)."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,  # fmt: skip
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *words]) + "\n")
    swin = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7, out_indices=[2, 3, 4])
    bert = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32)  # fmt: skip
    config = GroundingDinoConfig(backbone_config=swin.to_dict(), text_config=bert.to_dict(), d_model=32,
                                 encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                                 decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=20,
                                 num_feature_levels=3, encoder_n_points=2, decoder_n_points=2,
                                 max_text_len=32)  # fmt: skip
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(folder / "model")
    processor = GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
                                       BertTokenizer(str(vocab)))  # fmt: skip
    processor.save_pretrained(folder / "model")
    return folder / "model"


@pytest.mark.slow
def test_grounding_dino_phrase_scoring_end_to_end(host, grounding_dino_dir):
    from vdpm_harness_plugins.perception.grounding_dino.phrases import caption, to_pixels

    clip = random_clip()
    detector = host.create("detectors", "grounding-dino", {"model": str(grounding_dino_dir), "box_threshold": 0.0,
                                                           "batch_size": 2, "device": "cpu"})  # fmt: skip
    found = detector.detect(clip, [0, 1, 3], ["person", "red car"])
    assert len(found) == 3 and all(found)
    # frame 0 by hand: phrase scores = mean token probabilities, the best query kept first
    text, _ = caption(["person", "red car"])
    inputs = detector.processor(images=[clip.frames[0]], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = detector.model(**inputs)
    probabilities = out.logits[0].sigmoid()
    ids = inputs["input_ids"][0].tolist()
    tokens = detector.processor.tokenizer.convert_ids_to_tokens(ids)
    person = probabilities[:, tokens.index("person")]
    red_car = probabilities[:, [tokens.index("red"), tokens.index("car")]].mean(dim=1)
    scores = torch.maximum(person, red_car)
    best = int(scores.argmax())
    first = found[0][0]
    assert first.score == pytest.approx(float(scores[best]), abs=1e-6)
    assert first.phrase == ("person" if person[best] >= red_car[best] else "red car")
    np.testing.assert_allclose(first.box, to_pixels(out.pred_boxes[0, best : best + 1].numpy(), 64, 48)[0], atol=1e-4)
    for detections in found:  # NMS at 0.6: no two kept boxes overlap more
        boxes = np.array([d.box for d in detections])
        assert len(boxes) <= 20 and np.all([d.phrase in ("person", "red car") for d in detections])
    strict = host.create("detectors", "grounding-dino", {"model": str(grounding_dino_dir), "box_threshold": 1.0})
    assert strict.detect(clip, [0], ["person"]) == [[]]


@pytest.mark.slow
def test_grounding_dino_transformers_scoring(host, grounding_dino_dir):
    detector = host.create("detectors", "grounding-dino", {"model": str(grounding_dino_dir), "device": "cpu",
                                                           "scoring": "transformers", "box_threshold": 0.0,
                                                           "text_threshold": 0.0})  # fmt: skip
    [found] = detector.detect(random_clip(), [2], ["dog", "ball"])
    assert found and all(d.phrase in ("dog", "ball") and 0 <= d.score <= 1 for d in found)


# --- SAM 2 ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory):
    return save_tiny_sam2(tmp_path_factory.mktemp("sam2"))


def save_tiny_sam2(folder):
    """A 2.5 M-parameter SAM 2 video model and its processor saved in ``folder`` (S = 256; the constraints of
    transformers 5.23: a global block never first in a stage, the FPN width a multiple of and larger than the memory
    encoder's 64 channels)."""
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,  # fmt: skip
    )

    s, f = 256, 128
    vision = {"backbone_config": {"model_type": "sam2_hiera_det_model", "blocks_per_stage": [1, 1, 2, 1],
                                  "global_attention_blocks": [3], "embed_dim_per_stage": [16, 32, 64, 128],
                                  "num_attention_heads_per_stage": [1, 1, 1, 1], "hidden_size": 16,
                                  "image_size": [s, s]},
              "backbone_channel_list": [128, 64, 32, 16], "backbone_feature_sizes": [[s // 4] * 2, [s // 8] * 2,
                                                                                     [s // 16] * 2],
              "fpn_hidden_size": f}  # fmt: skip
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": f, "image_size": s},
        mask_decoder_config={"hidden_size": f},
        image_size=s,
        memory_attention_hidden_size=f,
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=f,
        mask_downsampler_embed_dim=f,
        memory_fuser_embed_dim=f,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=f,
        memory_fuser_intermediate_dim=f,
    )
    torch.manual_seed(0)
    Sam2VideoModel(config).save_pretrained(folder)
    size = {"height": s, "width": s}
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size=size),
                       video_processor=Sam2VideoVideoProcessor(size=size)).save_pretrained(folder)  # fmt: skip
    return folder


@pytest.mark.slow
def test_sam2_tracks_forward_and_backward_and_segments(host, sam2_dir):
    pytest.importorskip("torchvision")
    tracker = host.create("trackers", "sam2", {"model": str(sam2_dir), "device": "cpu"})
    clip = random_clip(frames=4, width=80, height=60)
    boxes = np.array([[5, 5, 30, 40], [40, 10, 75, 55]], float)
    tracks = tracker.track(clip, 1, boxes)  # prompted on frame 1: frame 0 comes from the backward pass
    assert tracks.masks.shape == (2, 4, 60, 80) and tracks.masks.dtype == bool
    assert tracks.boxes.shape == (2, 4, 4)
    seen = tracks.seen
    np.testing.assert_array_equal(seen, tracks.masks.any(axis=(2, 3)))
    masks = tracker.segment(clip.frames[0], boxes)
    assert masks.shape == (2, 60, 80) and masks.dtype == bool
    assert tracker.track(clip, 0, np.zeros((0, 4))).masks.shape == (0, 4, 60, 80)


# --- Pi3 -------------------------------------------------------------------------------------------------------------


def tiny_pi3():
    from vdpm_harness_plugins.perception.pi3.config import Pi3Config
    from vdpm_harness_plugins.perception.pi3.model import Pi3

    torch.manual_seed(0)
    return Pi3(Pi3Config.from_overrides(TINY_PI3)).eval()


def test_pi3_outputs_and_permutation_equivariance():
    network = tiny_pi3()
    images = torch.rand(1, 3, 3, 28, 42)
    with torch.no_grad():
        out = network(images)
    assert out["local_points"].shape == (1, 3, 28, 42, 3) and out["conf"].shape == (1, 3, 28, 42)
    rotations = out["camera_poses"][0, :, :3, :3]
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-5,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(torch.det(rotations), torch.ones(3), atol=1e-5, rtol=0)
    assert (out["local_points"][..., 2] > 0).all()  # z = exp(.)
    world = out["camera_poses"][0, 0, :3, :3] @ out["local_points"][0, 0, 5, 7] + out["camera_poses"][0, 0, :3, 3]
    torch.testing.assert_close(out["points"][0, 0, 5, 7], world)
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        shuffled = network(images[:, order])
    for key, value in out.items():  # no reference frame: shuffling the frames shuffles the outputs
        torch.testing.assert_close(shuffled[key][0], value[0][order], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="multiples of 14"):
        network(torch.rand(1, 1, 3, 30, 42))


def test_pi3_key_map_round_trip():
    from vdpm_harness_plugins.perception.pi3.checkpoint import model_to_official, official_to_model

    state = tiny_pi3().state_dict()
    official = model_to_official(state)
    encoder = sorted(k for k in official if k.startswith("encoder."))
    assert "encoder.blocks.1.attn.qkv.weight" in encoder and "encoder.pos_embed" in encoder
    assert not any("embeddings" in k or "layer_scale" in k or "_proj" in k for k in encoder)
    assert official["encoder.blocks.0.attn.qkv.weight"].shape == (96, 32)
    back = official_to_model(official)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.slow
def test_pi3_layout_is_the_official_checkpoints():
    """The full-size network on the meta device, mapped to the checkpoint's names, is yyfz233/Pi3's
    ``model.safetensors`` as the upstream strict load requires: 1210 entries, 958,696,732 parameters, and per prefix
    the entries and shapes of the released file."""
    from collections import Counter

    from vdpm_harness_plugins.perception.pi3.checkpoint import model_to_official
    from vdpm_harness_plugins.perception.pi3.config import Pi3Config
    from vdpm_harness_plugins.perception.pi3.model import Pi3

    with torch.device("meta"):
        official = model_to_official(Pi3(Pi3Config()).state_dict())
    assert len(official) == 1210
    assert sum(v.numel() for k, v in official.items() if k not in ("image_mean", "image_std")) == 958_696_732
    prefixes = Counter("_".join(k.split(".")[:1]) if k.split(".")[0] not in ("point_head", "conf_head")
                       else k.rsplit(".", 1)[0] for k in official)  # fmt: skip
    assert prefixes == {"encoder": 343, "decoder": 648, "register_token": 1, "point_decoder": 64,
                        "point_head.proj": 2, "conf_decoder": 64, "conf_head.proj": 2, "camera_decoder": 64,
                        "camera_head": 20, "image_mean": 1, "image_std": 1}  # fmt: skip
    shapes = {"encoder.pos_embed": (1, 1370, 1024), "encoder.register_tokens": (1, 4, 1024),
              "encoder.blocks.23.attn.qkv.weight": (3072, 1024), "decoder.35.attn.q_norm.weight": (64,),
              "decoder.0.ls1.gamma": (1024,), "register_token": (1, 1, 5, 1024),
              "point_decoder.projects.weight": (1024, 2048), "point_head.proj.weight": (588, 1024),
              "conf_head.proj.weight": (196, 1024), "camera_decoder.linear_out.weight": (512, 1024),
              "camera_head.res_conv.1.res_conv3.weight": (512, 512), "camera_head.more_mlps.2.weight": (512, 512),
              "camera_head.fc_rot.weight": (9, 512), "camera_head.fc_t.weight": (3, 512)}  # fmt: skip
    for key, shape in shapes.items():
        assert tuple(official[key].shape) == shape, key


def test_pi3_plugin_loads_an_official_layout_checkpoint(host, tmp_path):
    from safetensors.torch import save_file

    from vdpm_harness_plugins.perception.pi3.checkpoint import model_to_official

    network = tiny_pi3()
    official = {k: v.contiguous() for k, v in model_to_official(network.state_dict()).items()}
    save_file(official, str(tmp_path / "model.safetensors"))
    reconstructor = host.create("reconstructors", "pi3", {"model": str(tmp_path), "architecture": TINY_PI3,
                                                           "device": "cpu", "pixel_limit": 1200})  # fmt: skip
    clip = random_clip(frames=3, width=64, height=48)
    recon = reconstructor.reconstruct(clip)
    assert recon.local_points.shape == (3, 28, 42, 3) and recon.valid.shape == (3, 28, 42)  # 42x28: 1176 pixels
    assert recon.camera_to_world.shape == (3, 4, 4) and recon.scale == "normalized"
    for key, value in reconstructor.network.state_dict().items():  # every weight came from the file
        torch.testing.assert_close(value, network.state_dict()[key])
    del official["decoder.1.ls2.gamma"]
    save_file(official, str(tmp_path / "broken.safetensors"))
    broken = host.create("reconstructors", "pi3", {"model": str(tmp_path / "broken.safetensors"),
                                                   "architecture": TINY_PI3, "device": "cpu"})  # fmt: skip
    with pytest.raises(ValueError, match=r"missing \['decoder.1.ls2.gamma'\]"):
        broken.load()


# --- Orient Anything -------------------------------------------------------------------------------------------------


def test_orient_anything_loads_a_transformers_4_checkpoint(host, tmp_path):
    """A checkpoint saved with the transformers 4.x DINOv2 names loads strictly, and the plugin's angles are the
    decoding of the network's logits on DSR's crops."""
    from vdpm_harness_plugins.perception.orient_anything.checkpoint import RENAMES
    from vdpm_harness_plugins.perception.orient_anything.crops import crop
    from vdpm_harness_plugins.perception.orient_anything.decoding import decode
    from vdpm_harness_plugins.perception.orient_anything.network import DINOV2_LARGE, OrientNet

    torch.manual_seed(0)
    network = OrientNet({**DINOV2_LARGE, **TINY_DINOV2}, 722).eval()
    old = {}
    for key, value in network.state_dict().items():
        for name_4, name_5 in RENAMES.items():
            key = key.replace(name_5, name_4)
        old[key] = value
    assert "dinov2.encoder.layer.0.attention.attention.query.weight" in old
    (tmp_path / "croplargeEX2").mkdir()
    torch.save(old, tmp_path / "croplargeEX2" / "dino_weight.pt")
    estimator = host.create("orientation_estimators", "orient-anything", {"model": str(tmp_path),
                                                                           "backbone": TINY_DINOV2, "device": "cpu",
                                                                           "batch_size": 2})  # fmt: skip
    clip = random_clip(frames=2, width=64, height=48)
    masks = [np.zeros((48, 64), bool) for _ in range(3)]
    masks[0][10:30, 5:20] = masks[1][0:48, 30:64] = masks[2][20:22, 40:41] = True
    requests = [(0, masks[0]), (1, masks[1]), (1, masks[2])]
    found = estimator.estimate(clip, requests)
    assert len(found) == 3
    pixels = estimator.processor(images=[crop(clip.frames[k], m) for k, m in requests], return_tensors="pt")
    with torch.no_grad():
        expected = decode(network(pixels["pixel_values"]))
    for orientation, row in zip(found, expected.tolist()):
        assert [orientation.azimuth, orientation.polar, orientation.rotation] == row[:3]
        assert orientation.confidence == pytest.approx(row[3], abs=1e-6)
        assert 0 <= orientation.azimuth < 360 and -90 <= orientation.polar < 90 and -90 <= orientation.rotation < 90
