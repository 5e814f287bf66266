"""Random scenes: camera paths, object motions and layouts drawn from one generator per scene.

Scene ``index`` of a run with ``seed`` draws from ``SeedSequence([seed, index])`` alone (:func:`scene_rng`), so it
does not depend on how many scenes are generated. Objects are placed where they stay mostly in view and collide with
nothing (:class:`_Layout`); the layout depends on the aspect ratio only, not on the resolution or frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .scene import (
    CAMERA_MOTIONS,
    CATEGORIES,
    OBJECT_MOTIONS,
    PALETTE,
    CameraPath,
    Category,
    Motion,
    Scene,
    SceneObject,
    yaw_matrix,
)


class SceneError(RuntimeError):
    """No layout satisfying the constraints was found for a scene."""


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of scene ``index`` of a run with ``seed`` (independent of the other scenes)."""
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, index]))


def sample_camera(rng: np.random.Generator, kind: str) -> CameraPath:
    """A camera 8-13 m from a target near the origin, 1.5-2.8 m above the ground, moving as ``kind`` says."""
    target = (rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.6, 1.0))
    distance, height, azimuth = rng.uniform(8, 13), rng.uniform(1.5, 2.8), rng.uniform(0, 2 * np.pi)
    eye = (target[0] + distance * np.cos(azimuth), target[1] + distance * np.sin(azimuth), height)
    sign = rng.choice([-1.0, 1.0])
    rates = {"pan": (4, 8), "dolly": (0.3, 0.8), "orbit": (6, 12)}
    rate = sign * rng.uniform(*rates[kind]) if kind in rates else 0.0
    extra = {}
    if kind == "handheld":
        extra = {"shake": rng.uniform(0.01, 0.03), "shake_deg": rng.uniform(0.3, 1.0),
                 "shake_seed": int(rng.integers(2**31))}  # fmt: skip
    return CameraPath(kind, tuple(map(float, eye)), tuple(map(float, target)), float(rate), **extra)


def sample_motion(rng: np.random.Generator, kind: str, category: Category, duration: float) -> Motion:
    """A motion of ``kind`` at a speed drawn from the category's range, starting at the origin."""
    speed = rng.uniform(*category.speed)
    heading = rng.uniform(0, 360)
    sign = rng.choice([-1.0, 1.0])
    if kind == "static":
        return Motion(kind, heading=heading)
    if kind == "straight":
        return Motion(kind, heading=heading, speed=speed)
    if kind == "curved":  # turning 60-180 degrees over the clip
        turn = sign * np.deg2rad(rng.uniform(60, 180))
        return Motion(kind, heading=heading, speed=speed, curvature=turn / (speed * duration))
    if kind == "accelerating":  # from 15-40 % of the cruising speed up to it
        start = speed * rng.uniform(0.15, 0.4)
        return Motion(kind, heading=heading, speed=start, accel=(speed - start) / duration)
    if kind == "decelerating":  # from the cruising speed down to 10-35 % of it
        return Motion(kind, heading=heading, speed=speed, accel=(speed * rng.uniform(0.1, 0.35) - speed) / duration)
    if kind == "stopping":  # braking after 20-50 % of the clip, at rest after another 15-30 %
        return Motion(kind, heading=heading, speed=speed, brake_at=duration * rng.uniform(0.2, 0.5),
                      brake_time=duration * rng.uniform(0.15, 0.3))  # fmt: skip
    if kind == "turning":  # 90-270 degrees in place over the clip
        return Motion(kind, heading=heading, turn_rate=sign * rng.uniform(90, 270) / duration)
    raise ValueError(f"unknown object motion {kind!r}; known: {', '.join(OBJECT_MOTIONS)}")


@dataclass
class _Layout:
    """What placing objects needs: check times, camera poses at those times, and the view's half-angles."""

    times: np.ndarray
    poses: np.ndarray
    tan_x: float
    tan_y: float
    placed: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (xy track, footprint radius)

    def fits(self, centroids: np.ndarray, xy: np.ndarray, radius: float) -> bool:
        """Whether an object whose bounding-box centre follows ``centroids (T, 3)`` and whose origin follows
        ``xy (T, 2)`` with footprint ``radius`` around it is in view (centroid inside 90 % of the image) at 75 % of the
        times at least, never within 1.5 m of the camera, and never within 0.3 m of a placed object."""
        cam = np.einsum("tji,tj->ti", self.poses[:, :3, :3], centroids - self.poses[:, :3, 3])  # world -> camera
        if np.any(np.linalg.norm(cam, axis=1) < radius + 1.5):
            return False
        z = np.maximum(cam[:, 2], 1e-9)
        in_view = (cam[:, 2] > 0) & (np.abs(cam[:, 0] / z) < 0.9 * self.tan_x)
        in_view &= np.abs(cam[:, 1] / z) < 0.9 * self.tan_y
        if in_view.mean() < 0.75:
            return False
        return all(np.all(np.linalg.norm(xy - other, axis=1) >= radius + r + 0.3) for other, r in self.placed)


def sample_scene(rng: np.random.Generator, *, duration: float, aspect: float = 4 / 3, min_objects: int = 2,
                 max_objects: int = 6, camera_motions=CAMERA_MOTIONS, categories=tuple(CATEGORIES),
                 attempts: int = 300) -> Scene:  # fmt: skip
    """A random scene: camera motion drawn from ``camera_motions``, 2-6 objects from ``categories`` (the first one
    an agent when agents are allowed), each placed where it stays mostly in view and collides with nothing.

    The layout depends on the aspect ratio only (not on the resolution or frame rate)."""
    fov = rng.uniform(50, 70)
    sun_azimuth, sun_elevation = rng.uniform(0, 360), rng.uniform(35, 70)
    camera = sample_camera(rng, str(rng.choice(list(camera_motions))))
    times = np.linspace(0, duration, max(25, int(np.ceil(duration / 0.05)) + 1))
    tan_x = np.tan(np.deg2rad(fov) / 2)
    layout = _Layout(times, camera.poses(times), tan_x, tan_x / aspect)
    colors = [str(c) for c in rng.permutation(list(PALETTE))]
    agents = [c for c in categories if CATEGORIES[c].is_agent]
    objects: list[SceneObject] = []
    for k in range(int(rng.integers(min_objects, max_objects + 1))):
        for _ in range(attempts):
            category = CATEGORIES[str(rng.choice(agents if k == 0 and agents else list(categories)))]
            obj = _sample_object(rng, category, colors[k], duration, layout)
            if obj is not None:
                objects.append(obj)
                break
        else:
            if len(objects) >= min_objects:
                break
            raise SceneError(f"could not place object {k + 1} of the scene in {attempts} attempts")
    return Scene(camera, tuple(objects), float(fov), float(sun_azimuth), float(sun_elevation))


def _sample_object(rng, category: Category, color: str, duration: float, layout: _Layout) -> SceneObject | None:
    """One candidate object, placed so that it is in view at mid-clip; None when it does not fit the layout."""
    scale = float(rng.uniform(*category.scale))
    motion = sample_motion(rng, str(rng.choice(list(category.motions))), category, duration)
    mesh = SceneObject(category.label, motion, color, scale).mesh()
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    radius = float(np.linalg.norm(np.maximum(np.abs(lo[:2]), np.abs(hi[:2]))))
    xy, yaw = motion.state(layout.times)
    mid = len(layout.times) // 2
    pose = layout.poses[mid]
    view = np.arctan2(pose[1, 2], pose[0, 2]) + rng.uniform(-0.8, 0.8) * np.arctan(layout.tan_x)
    reach = rng.uniform(5 + radius, min(8 + 5 * float(np.max(hi - lo)), 18) + radius)  # small objects stay closer
    anchor = pose[:2, 3] + reach * np.array([np.cos(view), np.sin(view)])
    motion = replace(motion, start=tuple(map(float, anchor - xy[mid])))
    xy = xy + anchor - xy[mid]
    center = np.einsum("tij,j->ti", yaw_matrix(yaw), (lo + hi) / 2)
    center[:, :2] += xy
    if not layout.fits(center, xy, radius):
        return None
    layout.placed.append((xy, radius))
    return SceneObject(category.label, motion, color, scale)
