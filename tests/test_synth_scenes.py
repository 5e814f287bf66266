"""The ``synth-scenes`` generator: rendered pixels agree with the stored ground truth, motions and camera paths do what
their docstrings say, runs are deterministic, and the CLI works end to end.

References: pixel positions come from ``vdpm_harness.geometry.project`` of the stored centroids through the stored
poses and intrinsics (the track's own contract, ``vdpm_harness/scene.py``); ray-plane intersections and finite
differences of the closed-form motions are computed independently in the tests.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.conftest import run_cli
from vdpm_harness import geometry as g
from vdpm_harness.records import FramePolicy
from vdpm_harness.scene import SceneTrack
from vdpm_harness.store import file_digest
from vdpm_harness.video import decode, write_video
from vdpm_harness_plugins.generators.scenes.synth import render as sr
from vdpm_harness_plugins.generators.scenes.synth.generator import SynthScenes
from vdpm_harness_plugins.generators.scenes.synth.rendering import render_frames
from vdpm_harness_plugins.generators.scenes.synth.sampling import sample_camera, sample_motion
from vdpm_harness_plugins.generators.scenes.synth.scene import (
    CAMERA_MOTIONS,
    CATEGORIES,
    OBJECT_MOTIONS,
    CameraPath,
    Motion,
    Scene,
    SceneObject,
)

STATIC = CameraPath("static", eye=(0.0, -8.0, 1.6), target=(0.0, 0.0, 0.5))  # looks along +y; image right = +x


def red_mask(rgb):
    """Pixels of the red body colour (200, 40, 40) under any Lambert factor in [0.45, 1]; grey ground fails."""
    f = rgb.astype(int)
    return (f[..., 0] > 70) & (f[..., 0] > 2 * f[..., 1]) & (f[..., 0] > 2 * f[..., 2])


def yellow_mask(rgb):
    """Pixels of the front colour (250, 215, 0) under any Lambert factor; grey, skin and blue fail."""
    f = rgb.astype(int)
    return (f[..., 0] > 90) & (f[..., 1] > 0.7 * f[..., 0]) & (f[..., 2] < 0.45 * f[..., 1])


def blob_center(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centres, the track's pixel convention


def projected(track, obj, i, point=None):
    """Pixel position of ``point`` (default: the object's stored centroid) at frame ``i``."""
    p = obj.centroids[i] if point is None else point
    return g.project(g.world_to_camera(p, track.camera_to_world[i]), track.intrinsics)


def test_object_moving_right_matches_the_decoded_video(tmp_path):
    """A red box sliding along +x (the static camera's right) at 1 m/s: in the decoded H.264 video its colour blob
    moves right, and the stored centroid projects inside the stored box and within 1.5 px of the blob's centre."""
    box = SceneObject("box", Motion("straight", start=(-2.5, 0.0), heading=0.0, speed=1.0), "red", 0.6)
    frames, track = render_frames(Scene(STATIC, (box,)), 320, 240, fps=10, duration=5)
    write_video(tmp_path / "v.mp4", frames, 10)
    decoded = decode(tmp_path / "v.mp4", FramePolicy(nframes=len(frames))).frames
    obj = track.objects[0]
    xs = []
    for i in range(0, len(frames), 7):
        blob = blob_center(red_mask(decoded[i]))
        center = projected(track, obj, i)
        x0, y0, x1, y1 = obj.boxes[i]
        assert obj.visible[i] and x0 < center[0] < x1 and y0 < center[1] < y1
        assert np.linalg.norm(blob - center) < 1.5, (i, blob, center)
        xs.append(blob[0])
    assert np.all(np.diff(xs) > 15)  # 0.7 m per step at 8 m: about 24 px


def test_front_marker_shows_the_stored_orientation():
    """A person turning in place through a full circle: its yellow front shows when the stored forward axis points
    towards the camera, is hidden when it points away, and lies on the image side the forward axis points to."""
    person = SceneObject("person", Motion("turning", start=(0.0, 0.0), heading=-90.0, turn_rate=60.0), "blue")
    frames, track = render_frames(Scene(STATIC, (person,)), 320, 240, fps=10, duration=6)
    obj = track.objects[0]
    eye, right = track.camera_to_world[0, :3, 3], track.camera_to_world[0, :3, 0]
    checked = {"front": 0, "back": 0, "side": 0}
    for i in range(len(frames)):
        forward = obj.facing(i)
        to_camera = (eye - obj.centroids[i])[:2] / np.linalg.norm((eye - obj.centroids[i])[:2])
        toward, lateral = forward[:2] @ to_camera, forward @ right
        yellow = yellow_mask(frames[i])
        if toward > 0.3:
            assert yellow.sum() > 10, i
            checked["front"] += 1
            if abs(lateral) > 0.6:
                offset = blob_center(yellow)[0] - projected(track, obj, i)[0]
                assert np.sign(offset) == np.sign(lateral), (i, offset, lateral)
                checked["side"] += 1
        elif toward < -0.8:  # seen from behind (from behind and aside, the nose tip still peeks out)
            assert yellow.sum() == 0, i
            checked["back"] += 1
    assert min(checked.values()) >= 5, checked


def test_visibility_is_occlusion_aware():
    """A ball right behind a car (seen from the static camera) is in view but hidden: not visible, NaN box; a box
    behind the camera is out of view; the car is visible with a finite box."""
    car = SceneObject("car", Motion("static", start=(0.0, 0.0)), "red")
    ball = SceneObject("ball", Motion("static", start=(0.0, 3.0)), "blue", 0.3)
    behind = SceneObject("box", Motion("static", start=(0.0, -12.0)), "green", 0.5)
    _, track = render_frames(Scene(STATIC, (car, ball, behind)), 160, 120, fps=5, duration=1)
    car_t, ball_t, behind_t = track.objects
    assert car_t.visible.all() and np.isfinite(car_t.boxes).all()
    u, v = projected(track, ball_t, 0)
    assert 0 < u < 160 and 0 < v < 120  # in view ...
    assert not ball_t.visible.any() and np.isnan(ball_t.boxes).all()  # ... but occluded
    assert not behind_t.visible.any() and np.isnan(behind_t.boxes).all()
    assert ball_t.meta["pixels"] == [0] * track.n_frames


def test_near_plane_clipping_against_ray_casting():
    """A wall (the +x face of a 4 m cube) runs from behind the camera to 2 m in front of it: after near-plane
    clipping, exactly the pixels whose rays hit the face in front of the camera show it (up to edge pixels)."""
    width, height = 160, 120
    cube = sr.box_mesh((-2, -2, 0), (2, 2, 4), (200, 40, 40))
    c2w = g.look_at([2.5, 0.0, 1.0], [2.5, 1.0, 1.0])
    k = np.array([[80.0, 0, 80], [0, 80.0, 60], [0, 0, 1]])
    renderer = sr.Renderer(width, height, k, sun=(0.3, 0.2, 1.0))
    tris = cube.triangles
    frame = renderer.render(c2w, tris, cube.colors, np.zeros(len(tris), int), 1, np.zeros((0, 3, 3)))
    # reference: per pixel, the ray hits the plane x = 2 at y in (0, 2] (in front of the camera) and z in [0, 4]
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T @ c2w[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (2.0 - 2.5) / rays[..., 0]
        hit_y, hit_z = s * rays[..., 1], 1.0 + s * rays[..., 2]
    expected = (s > 0) & (hit_y <= 2) & (hit_z >= 0) & (hit_z <= 4)
    shown = red_mask(frame.rgb)
    assert expected.sum() > 2000 and np.abs(frame.pixels[0] - expected.sum()) < 0.02 * expected.sum()
    assert (shown != expected).sum() < 0.02 * expected.sum()
    assert frame.boxes[0, 0] == 0 and frame.boxes[0, 2] < width / 2  # the wall is on the left, cut by the border


def test_rasterize_matches_a_per_pixel_reference():
    """The batched z-buffer equals a plain loop over pixels and triangles with the same inside rule (barycentric
    weights >= 0) and the same tie rule (nearest 1/z, then the lower index)."""
    rng = np.random.default_rng(5)
    width, height = 24, 16
    xy = rng.uniform([-4, -4], [width + 4, height + 4], size=(12, 3, 2))
    inv_depth = rng.uniform(0.1, 1.0, size=(12, 3))
    owner = sr.rasterize(xy, inv_depth, width, height).reshape(height, width)
    for py in range(height):
        for px in range(width):
            best, best_key = -1, None
            for t in range(len(xy)):
                (x0, y0), (x1, y1), (x2, y2) = xy[t]
                area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
                w0 = ((x1 - px - 0.5) * (y2 - py - 0.5) - (x2 - px - 0.5) * (y1 - py - 0.5)) / area
                w1 = ((x2 - px - 0.5) * (y0 - py - 0.5) - (x0 - px - 0.5) * (y2 - py - 0.5)) / area
                if min(w0, w1, 1 - w0 - w1) < -1e-7:
                    continue
                iz = np.float32(w0 * inv_depth[t, 0] + w1 * inv_depth[t, 1] + (1 - w0 - w1) * inv_depth[t, 2])
                if best_key is None or iz > best_key:
                    best, best_key = t, iz
            assert owner[py, px] == best, (px, py)


@pytest.mark.parametrize("kind", CAMERA_MOTIONS)
def test_camera_motions(kind):
    """static: identical poses; pan: fixed eye, rotation about world z by rate * t; dolly: fixed rotation,
    translation rate * t along the optical axis; orbit: constant distance to the target, looking at it; handheld:
    bounded jitter around the static pose. Checked on sampled paths (``sample_camera``)."""
    path = sample_camera(np.random.default_rng(3), kind)
    t = np.linspace(0, 6, 31)
    poses = path.poses(t)
    r, eye = poses[:, :3, :3], poses[:, :3, 3]
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    base = g.look_at(path.eye, path.target)
    if kind != "handheld":
        np.testing.assert_allclose(poses[0], base, atol=1e-12)
    if kind == "static":
        assert (poses == poses[0]).all()
    elif kind == "pan":
        np.testing.assert_allclose(eye, np.broadcast_to(path.eye, eye.shape), atol=1e-12)
        relative = r @ r[0].T  # rotation from the first pose, in the world
        angle = np.deg2rad(path.rate) * t
        np.testing.assert_allclose(relative[:, 2], np.broadcast_to([0, 0, 1], (len(t), 3)), atol=1e-12)
        np.testing.assert_allclose(relative[:, 0, :2], np.stack([np.cos(angle), -np.sin(angle)], 1), atol=1e-12)
    elif kind == "dolly":
        np.testing.assert_allclose(r, np.broadcast_to(r[0], r.shape), atol=1e-12)
        np.testing.assert_allclose(eye - eye[0], (path.rate * t)[:, None] * r[0][:, 2], atol=1e-12)
    elif kind == "orbit":
        distance = np.linalg.norm(eye - np.asarray(path.target), axis=1)
        np.testing.assert_allclose(distance, distance[0], rtol=1e-12)
        toward = (np.asarray(path.target) - eye) / distance[:, None]
        np.testing.assert_allclose(r[:, :, 2], toward, atol=1e-12)  # still looking at the target
        around = eye[:, :2] - np.asarray(path.target[:2])
        swept = np.unwrap(np.arctan2(around[:, 1], around[:, 0]))
        np.testing.assert_allclose(swept - swept[0], np.deg2rad(path.rate) * t, atol=1e-12)
    else:
        offset = np.abs(eye - np.asarray(path.eye))
        assert offset.max() <= path.shake + 1e-12 and offset.max() > 0.2 * path.shake
        cos_tilt = (np.trace(r @ base[:3, :3].T, axis1=1, axis2=2) - 1) / 2  # angle of the relative rotation
        tilt = np.rad2deg(np.arccos(np.clip(cos_tilt, -1, 1)))
        assert tilt.max() <= np.sqrt(3) * path.shake_deg + 1e-9 and tilt.max() > 0.1 * path.shake_deg


@pytest.mark.parametrize("kind", OBJECT_MOTIONS)
def test_object_motions(kind):
    """Speeds from finite differences of the closed-form positions have the named profile, and agents face their
    direction of travel (or only turn, in place)."""
    category = CATEGORIES["person"]
    motion = sample_motion(np.random.default_rng(11), kind, category, duration=6.0)
    t = np.linspace(0, 6, 601)
    xy, yaw = motion.state(t)
    step = np.diff(xy, axis=0)
    speed = np.linalg.norm(step, axis=1) / np.diff(t)
    heading = np.unwrap(np.arctan2(step[:, 1], step[:, 0]))
    low, high = category.speed
    if kind in ("static", "turning"):
        assert np.all(speed == 0)
        assert (np.ptp(yaw) > np.deg2rad(80)) == (kind == "turning")
        return
    moving = speed > 1e-6
    mid_yaw = (yaw[1:] + yaw[:-1]) / 2
    np.testing.assert_allclose(np.angle(np.exp(1j * (heading - mid_yaw)))[moving], 0, atol=1e-6)
    if kind == "straight":
        np.testing.assert_allclose(speed, speed[0], rtol=1e-6)
        assert low <= speed[0] <= high and np.ptp(yaw) == 0
    elif kind == "curved":
        np.testing.assert_allclose(speed, speed[0], rtol=1e-3)
        assert np.deg2rad(59) < np.ptp(yaw) < np.deg2rad(181)
    elif kind == "accelerating":
        assert np.all(np.diff(speed) > 0) and speed[-1] > 2.4 * speed[0]
    elif kind == "decelerating":
        assert np.all(np.diff(speed) < 0) and 0 < speed[-1] < 0.36 * speed[0]
    elif kind == "stopping":
        assert speed[0] == pytest.approx(speed[50]) and speed[-1] == 0


def test_sampled_scenes_are_varied_and_respect_the_options():
    """Over 40 sampled layouts every camera motion, object motion and category occurs; each scene has 2-6 objects,
    an agent first, distinct colours; options restrict what is drawn."""
    gen = SynthScenes({})
    scenes = [gen.scene(seed=7, index=i) for i in range(40)]
    assert {s.camera.kind for s in scenes} == set(CAMERA_MOTIONS)
    assert {o.motion.kind for s in scenes for o in s.objects} == set(OBJECT_MOTIONS)
    assert {o.category for s in scenes for o in s.objects} == set(CATEGORIES)
    for s in scenes:
        assert 2 <= len(s.objects) <= 6 and CATEGORIES[s.objects[0].category].is_agent
        assert len({o.color for o in s.objects}) == len(s.objects)
    narrow = SynthScenes({"camera_motions": "orbit", "categories": "ball,cone", "min_objects": 3,
                             "max_objects": 3})  # fmt: skip
    for i in range(5):
        s = narrow.scene(seed=7, index=i)
        assert s.camera.kind == "orbit" and len(s.objects) == 3
        assert {o.category for o in s.objects} <= {"ball", "cone"}


def _arrays(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _run(out, seed, n=2):
    options = {"n_videos": n, "width": 96, "height": 64, "fps": 8.0, "duration": 1.5}
    return SynthScenes(options).run(out, seed=seed)


def test_runs_are_deterministic(tmp_path):
    """Same seed: identical arrays (headers included) and byte-identical videos that decode to identical frames;
    scene 0 does not depend on how many scenes are generated; another seed gives other scenes."""
    _run(tmp_path / "a", seed=4)
    _run(tmp_path / "b", seed=4)
    _run(tmp_path / "one", seed=4, n=1)
    _run(tmp_path / "c", seed=5)
    for index in range(2):
        stem = f"scene_{index:04d}"
        a, b = _arrays(tmp_path / "a" / f"{stem}.npz"), _arrays(tmp_path / "b" / f"{stem}.npz")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
        video_a, video_b = (tmp_path / d / f"{stem}.mp4" for d in "ab")
        assert video_a.read_bytes() == video_b.read_bytes()
        policy = FramePolicy(nframes=12)
        assert np.array_equal(decode(video_a, policy).frames, decode(video_b, policy).frames)
    one, a = _arrays(tmp_path / "one" / "scene_0000.npz"), _arrays(tmp_path / "a" / "scene_0000.npz")
    assert all(np.array_equal(one[k], a[k], equal_nan=True) for k in a if k != "header")
    other = _arrays(tmp_path / "c" / "scene_0000.npz")
    assert not np.array_equal(other["camera_to_world"], a["camera_to_world"])


def test_tracks_load_and_follow_the_conventions(tmp_path):
    """Every written track loads with ``SceneTrack.load`` (which validates it); agents' orientation columns are
    orthonormal with up = +z and forward along their horizontal velocity; boxes are NaN exactly where not visible;
    the manifest's checksums match the files and the summary counts add up."""
    stats = _run(tmp_path, seed=2, n=3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert stats["videos"] == 3 and len(manifest["scenes"]) == 3
    assert sum(stats["categories"].values()) == sum(len(s["objects"]) for s in manifest["scenes"])
    assert stats["frames"] == 3 * 12 and stats["render_frames_per_second"] > 0
    for entry in manifest["scenes"]:
        for file in entry["files"].values():
            assert file_digest(tmp_path / file["path"]) == file["sha256"]
        track = SceneTrack.load(tmp_path / entry["files"]["track"]["path"])
        assert track.video == entry["files"]["video"]["path"] and track.image_size == (96, 64)
        assert track.meta["seed"] == [2, entry["index"]] and track.meta["camera"]["kind"] == entry["camera_motion"]
        np.testing.assert_allclose(track.timestamps, np.arange(12) / 8.0)
        for obj, listed in zip(track.objects, entry["objects"]):
            assert obj.label == listed["category"] and obj.meta["motion"]["kind"] == listed["motion"]
            assert np.array_equal(np.isnan(obj.boxes).any(axis=1), ~obj.visible)
            assert np.array_equal(obj.visible, np.array(obj.meta["pixels"]) >= 1)
            if not obj.is_agent:
                assert obj.orientations is None
                continue
            rot = obj.orientations
            np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
            np.testing.assert_allclose(rot[:, :, 2], np.broadcast_to([0, 0, 1], (len(rot), 3)), atol=1e-12)
            velocity = np.diff(obj.centroids[:, :2], axis=0)
            moving = np.linalg.norm(velocity, axis=1) > 0.05
            forward = (rot[1:, :2, 0] + rot[:-1, :2, 0])[moving]
            cosine = np.sum(forward * velocity[moving], 1) / np.linalg.norm(forward, axis=1)
            assert np.all(cosine / np.linalg.norm(velocity[moving], axis=1) > 0.95)


def test_invalid_options_name_the_problem():
    with pytest.raises(ValidationError, match="even"):
        SynthScenes({"width": 161})
    with pytest.raises(ValidationError, match="min_objects"):
        SynthScenes({"min_objects": 5, "max_objects": 3})
    with pytest.raises(ValidationError, match="unknown category.*'plane'"):
        SynthScenes({"categories": "person,plane"})
    with pytest.raises(ValidationError, match="unknown camera motion.*'zoom'"):
        SynthScenes({"camera_motions": "zoom"})
    with pytest.raises(ValidationError, match="unknown x264 preset 'quick'"):
        SynthScenes({"preset": "quick"})


def test_cli_end_to_end(tmp_path):
    """``vdpm-harness generate synth-scenes`` as a user runs it: videos, tracks, manifest, and the summary."""
    out = tmp_path / "scenes"
    proc = run_cli("generate", "synth-scenes", "--n-videos", "2", "--out", str(out), "--seed", "1",
                   "--width", "160", "--height", "120", "--duration", "1")  # fmt: skip
    stats = json.loads(proc.stdout)
    assert stats["videos"] == 2 and stats["frames"] == 30
    assert sorted(p.name for p in Path(out).iterdir()) == [
        "manifest.json", "scene_0000.mp4", "scene_0000.npz", "scene_0001.mp4", "scene_0001.npz"]  # fmt: skip
    track = SceneTrack.load(out / "scene_0001.npz")
    assert track.n_frames == 15 and decode(out / "scene_0001.mp4", FramePolicy(nframes=15)).frames.shape == (
        15, 120, 160, 3)  # fmt: skip
    bad = run_cli("generate", "synth-scenes", "--out", str(out), "--width", "161", check=False)
    assert bad.returncode != 0 and "even" in bad.stdout + bad.stderr
