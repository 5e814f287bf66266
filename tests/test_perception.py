"""The perception contracts and the pieces of the learned stages that need no network: masks and boxes, the default
object position (DSR's mean of masked points), the oracle stages on a synthetic scene, Orient Anything's angle
decoding and the DSR facing-vector convention on hand-built cases, DSR's crop, Grounding DINO's phrase scoring and
NMS, Pi3's frame size."""

from __future__ import annotations

import numpy as np
import pytest

from vdpm_harness import Clip, Orientation, Reconstruction, Reconstructor, SceneTrack, Tracks
from vdpm_harness import geometry as geo
from vdpm_harness_plugins.generators.scenes.video_tracks.assemble import estimate_intrinsics, object_rotation
from vdpm_harness_plugins.generators.scenes.video_tracks.sampling import read_classes, split_classes
from vdpm_harness_plugins.perception.grounding_dino.phrases import caption, nms, phrase_scores, positive_map
from vdpm_harness_plugins.perception.orient_anything.crops import crop
from vdpm_harness_plugins.perception.pi3.images import depth_edge, target_size

# --- the records ------------------------------------------------------------------------------------------------------


def test_tracks_from_masks_give_the_pixels_outer_edges():
    masks = np.zeros((2, 3, 6, 8), bool)
    masks[0, 0, 1:3, 2:5] = True  # rows 1-2, columns 2-4
    masks[0, 2, 5, 7] = True
    tracks = Tracks.from_masks(masks)
    np.testing.assert_array_equal(tracks.boxes[0, 0], [2, 1, 5, 3])
    np.testing.assert_array_equal(tracks.boxes[0, 2], [7, 5, 8, 6])
    assert np.isnan(tracks.boxes[0, 1]).all() and np.isnan(tracks.boxes[1]).all()
    np.testing.assert_array_equal(tracks.seen, [[True, False, True], [False, False, False]])


def test_reconstruction_resamples_by_nearest_neighbour_as_torch_does():
    import torch

    points = np.random.default_rng(0).normal(size=(2, 3, 5, 3)).astype(np.float32)
    valid = points[..., 0] > 0
    big, ok = Reconstruction(points, valid, np.tile(np.eye(4), (2, 1, 1))).at_size(13, 7)
    expected = torch.nn.functional.interpolate(torch.from_numpy(points).permute(0, 3, 1, 2), (7, 13))
    np.testing.assert_array_equal(big, expected.permute(0, 2, 3, 1).numpy())
    expected_valid = torch.nn.functional.interpolate(torch.from_numpy(valid[:, None].astype(np.float32)), (7, 13))
    np.testing.assert_array_equal(ok, expected_valid[:, 0].numpy().astype(bool))


class _Flat(Reconstructor):
    def reconstruct(self, clip):
        raise NotImplementedError


def test_default_locate_is_the_mean_of_masked_valid_points():
    """DSR's ``extract_obj_center``: the mean of the points under mask and validity; NaN when that set is empty."""
    points = np.zeros((1, 2, 2, 3), np.float32)
    points[0, :, :, 0] = [[1, 2], [3, 40]]
    valid = np.array([[[True, True], [True, False]]])
    clip = Clip(frames=np.zeros((1, 2, 2, 3), np.uint8), indices=np.array([0]), timestamps=np.array([0.0]))
    masks = np.array([[[[True, True], [False, True]]], [[[False, False], [False, True]]]])
    positions = _Flat().locate(clip, Reconstruction(points, valid, np.eye(4)[None]), Tracks.from_masks(masks))
    np.testing.assert_allclose(positions[0, 0], [1.5, 0, 0])  # (1 + 2) / 2: the invalid 40 is left out
    assert np.isnan(positions[1, 0]).all()


# --- orientation conventions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "azimuth, polar, facing",
    [(0, 0, [0, 0, -1]),  # facing the camera
     (90, 0, [-1, 0, 0]),  # facing image-left
     (180, 0, [0, 0, 1]),  # facing away
     (0, 30, [0, 0.5, -np.sqrt(3) / 2])],  # seen from above: the front tilts down in the image (+y is down)
)  # fmt: skip
def test_orientation_facing_follows_dsr(azimuth, polar, facing):
    np.testing.assert_allclose(Orientation(azimuth, polar, 0.0, 1.0).facing(), facing, atol=1e-12)


def test_object_rotation_puts_the_agent_axes_in_the_world():
    """Columns of the stored object-to-world rotation are forward, left, up; reading the angles back gives them."""
    c2w = geo.look_at([0, -5, 1.5], [0, 0, 1.5])  # a level camera looking along world +y
    rotation = object_rotation(c2w, 0.0, 0.0, 0.0)  # an agent facing that camera
    np.testing.assert_allclose(rotation[:, 0], [0, -1, 0], atol=1e-12)  # forward: back towards the camera
    np.testing.assert_allclose(rotation[:, 2], [0, 0, 1], atol=1e-12)  # up: world up
    np.testing.assert_allclose(rotation[:, 1], [1, 0, 0], atol=1e-12)  # its left is the camera's right
    for angles in [(10.0, 200.0, -20.0), (-35.0, 15.0, 60.0)]:
        back = geo.angles_from_rotation(c2w[:3, :3].T @ object_rotation(c2w, *angles))
        np.testing.assert_allclose(back, angles, atol=1e-9)


def test_orient_anything_decoding_by_layout():
    import torch

    from vdpm_harness_plugins.perception.orient_anything.decoding import decode

    def logits(out_dim, azimuth, polar, rotation, front):
        x = torch.zeros(1, out_dim)
        bins = 180 if out_dim == 722 else 360
        x[0, azimuth] = x[0, 360 + polar] = x[0, 540 + rotation] = 5.0
        x[0, 540 + bins :] = torch.tensor([front, 0.0])
        return x

    # 722 (croplargeEX2, DSR): rotation bins 0..179 -> -90..89
    np.testing.assert_allclose(decode(logits(722, 30, 100, 179, np.log(3.0)))[0], [30, 10, 89, 0.75], atol=1e-6)
    # 902 (ronormsigma1): rotation bins 0..359 -> -180..179; the confidence is the last two logits
    np.testing.assert_allclose(decode(logits(902, 359, 0, 0, 0.0))[0], [359, -90, -180, 0.5], atol=1e-6)
    with pytest.raises(ValueError, match="layouts"):
        decode(torch.zeros(1, 720))


def test_dsr_crop_margin_and_background():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    mask = np.zeros((20, 30), bool)
    mask[12:15, 3:8] = True  # rows 12-14, columns 3-7
    out = crop(image, mask)
    # margins min(10, 12, 20 - 14) = 6 rows and min(10, 3, 30 - 7) = 3 columns; the slice ends are exclusive
    np.testing.assert_array_equal(out, image[6:20, 0:10])
    black = crop(image, mask, "black")
    assert black.shape == out.shape and (black[0, 0] == 0).all() and (black[6, 3] == image[12, 3]).all()


# --- Grounding DINO's phrases and NMS, Pi3's frame size -----------------------------------------------------------


def test_caption_spans_and_phrase_scores():
    text, spans = caption(["Red  Car", "dog"])
    assert text == "red car. dog." and [text[a:b] for a, b in spans] == ["red car", "dog"]
    offsets = [(0, 0), (0, 3), (4, 7), (7, 8), (9, 12), (12, 13), (0, 0)]  # [CLS] red car . dog . [SEP]
    positive = positive_map(offsets, spans, 8)
    np.testing.assert_allclose(positive[0, :3], [0, 0.5, 0.5])
    np.testing.assert_allclose(positive[1], [0, 0, 0, 0, 1, 0, 0, 0])
    probabilities = np.zeros((2, 8))
    probabilities[0, [1, 2]] = [0.2, 0.6]  # query 0: "red car" scores (0.2 + 0.6) / 2
    probabilities[1, 4] = 0.3
    score, best = phrase_scores(probabilities, positive)
    np.testing.assert_allclose(score, [0.4, 0.3])
    np.testing.assert_array_equal(best, [0, 1])


def test_nms_keeps_the_stronger_of_overlapping_boxes():
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29]], float)
    # IoU of the first two with the +1 convention: 81 / (100 + 100 - 81) = 0.68 > 0.6
    assert nms(boxes, np.array([0.5, 0.9, 0.4]), 0.6) == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.4]), 0.7) == [1, 0, 2]


def test_pi3_frame_size_and_depth_edges():
    import torch

    assert target_size(1280, 720) == (672, 378)  # 48 x 27 patches, under 255,000 pixels
    assert target_size(720, 1280) == (378, 672)
    depth = torch.ones(1, 5, 5)
    depth[0, :, 3:] = 2.0
    edges = depth_edge(depth, rtol=0.03)[0]
    assert edges[:, 2:4].all() and not edges[:, :2].any() and not edges[:, 4:].any()


def test_intrinsics_are_fitted_from_a_point_map():
    k = np.array([[50.0, 0, 40], [0, 55.0, 30], [0, 0, 1]])
    h, w = 6, 8  # a point map at a tenth of the 80x60 frames
    u, v = np.meshgrid((np.arange(w) + 0.5) * 10, (np.arange(h) + 0.5) * 10)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T
    points = (rays * np.random.default_rng(1).uniform(1, 3, (h, w, 1)))[None]
    fitted, how = estimate_intrinsics(Reconstruction(points, np.ones((1, h, w), bool), np.eye(4)[None]), 80, 60)
    np.testing.assert_allclose(fitted, k, atol=1e-9)
    assert how == "fitted"


# --- phrases ------------------------------------------------------------------------------------------------------


def test_class_lists_are_split_stripped_and_read_from_the_curation_table(tmp_path):
    assert split_classes(" Person. dog.  Red car . None") == ["person", "dog", "red car"]
    assert split_classes(None) == [] and split_classes("None") == []
    table = tmp_path / "agent_object.csv"
    table.write_text("videoID,agent,obj\nv1,person. dog,ball\nv2,,box. cone\n")
    classes = read_classes(table)
    assert classes["v1"].all == ["ball", "person", "dog"] and classes["v2"].agents == []


# --- the oracle stages ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """One rendered synthetic scene (36 frames of 128x96) and the clip of its 32 sampled frames."""
    from vdpm_harness import plugins
    from vdpm_harness_plugins.generators.scenes.video_tracks.sampling import sample_clip

    out = tmp_path_factory.mktemp("oracle-scene")
    host = plugins.Host()
    host.create(
        "generators",
        "synth-scenes",
        {"n_videos": 1, "width": 128, "height": 96, "duration": 2.4, "min_objects": 3, "camera_motions": "orbit"},
    ).run(out, seed=5)
    return host, SceneTrack.load(out / "scene_0000.npz"), sample_clip(out / "scene_0000.mp4", 32)


def test_oracle_stages_return_the_truth(scene):
    host, truth, clip = scene
    k = 7
    index = clip.indices[k]
    visible = [o for o in truth.objects if o.visible[index]]
    detector = host.create("detectors", "oracle")
    [found] = detector.detect(clip, [k], [o.label for o in truth.objects])
    assert [d.truth_id for d in found] == [o.object_id for o in visible]
    np.testing.assert_array_equal(found[0].box, visible[0].boxes[index])
    tracks = host.create("trackers", "oracle").track(clip, k, np.array([d.box for d in found]))
    for i, obj in enumerate(visible):
        seen = obj.visible[clip.indices]
        np.testing.assert_array_equal(tracks.seen[i], seen)
        np.testing.assert_array_equal(tracks.boxes[i][seen], obj.boxes[clip.indices][seen])
    reconstructor = host.create("reconstructors", "oracle")
    recon = reconstructor.reconstruct(clip)
    np.testing.assert_array_equal(recon.camera_to_world, truth.camera_to_world[clip.indices])
    positions = reconstructor.locate(clip, recon, tracks)
    expected = geo.world_to_camera(visible[0].centroids[index], truth.camera_to_world[index])
    np.testing.assert_allclose(positions[0, k], expected, atol=1e-12)
    agents = [i for i, o in enumerate(visible) if o.is_agent]
    assert agents, "the scene of seed 5 shows an agent on frame 7"
    estimator = host.create("orientation_estimators", "oracle")
    [orientation] = estimator.estimate(clip, [(k, tracks.masks[agents[0], k])])
    rotation = visible[agents[0]].orientations[index]
    facing = truth.camera_to_world[index, :3, :3].T @ rotation[:, 0]
    np.testing.assert_allclose(orientation.facing(), facing, atol=1e-9)
    assert orientation.confidence == 1.0


def test_oracle_without_a_truth_says_which_file_is_missing(scene, tmp_path):
    host, _, clip = scene
    lonely = Clip(frames=clip.frames, indices=clip.indices, timestamps=clip.timestamps, video=tmp_path / "x.mp4")
    with pytest.raises(FileNotFoundError, match="no truth SceneTrack .*x.npz"):
        host.create("detectors", "oracle").detect(lonely, [0], ["person"])
