"""``synth-scenes``: procedural 4D scenes rendered on the CPU, with exact per-frame ground truth.

Each scene is a textured ground plane (1 m checker tiles) with 2-6 objects of six categories: ``person``, ``dog`` and
``car`` are agents with a yellow front marker (chest plate and nose, snout, front bumper) so their orientation can be
seen; ``ball``, ``box`` and ``cone`` are plain objects. Objects move on the ground in closed form (:class:`Motion`):
``static``, ``straight``, ``curved``, ``accelerating``, ``decelerating``, ``stopping`` or ``turning`` in place;
agents always face their direction of travel (or turn in place). The camera is ``static`` or moves
(:class:`CameraPath`): ``pan`` (rotation about the vertical axis), ``dolly`` (along its optical axis), ``orbit``
(around a target at constant distance) or ``handheld`` (small smooth jitter). Sizes are metric (people about 1.7 m,
cars 4.2 m) and speeds physical (people 0.8-1.8 m/s, dogs 1-3 m/s, cars 2-5 m/s).

``vdpm-harness generate synth-scenes --n-videos N --out DIR --seed S`` writes ``scene_XXXX.mp4`` (H.264 by
:func:`vdpm_harness.video.write_video`, deterministic),
``scene_XXXX.npz`` (a :class:`~vdpm_harness.scene.SceneTrack`) and ``manifest.json``. Scene ``i`` is drawn from
``SeedSequence([seed, i])`` alone, so it does not depend on how many scenes are generated; the same seed and options
give byte-identical tracks and videos.

Ground-truth conventions of the tracks (see :mod:`vdpm_harness.geometry` for the frames):

* world: metres, z up, the ground is ``z = 0``; ``timestamps[i] = i / fps``;
* ``camera_to_world``: the exact pose of the rendering camera (OpenCV: x right, y down, z forward);
* ``intrinsics``: ``fx = fy = (W / 2) / tan(fov / 2)`` for the horizontal field of view, principal point
  ``(W / 2, H / 2)``; pixel column ``u`` covers ``[u, u + 1)``, so a pixel centre is ``(u + 0.5, v + 0.5)``;
* ``centroids``: the centre of the object's 3D bounding box in its own frame, mapped to the world;
* ``orientations`` (agents): object-to-world rotations whose columns are forward, left, up; forward is the direction
  the front marker faces (the yaw of travel, or of turning in place), up is world +z; ``None`` for plain objects;
* ``boxes``: the amodal 2D box of all the object's triangles (clipped to the near plane) projected and clipped to
  ``[0, W] x [0, H]``; NaN where not visible;
* ``visible``: the object owns at least ``min_visible_pixels`` pixels of the rendered z-buffer (so it is in view and
  not fully occluded); ``meta["pixels"]`` holds that pixel count per frame.

The renderer is in :mod:`vdpm_harness_plugins.generators.scenes.synth.render`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from vdpm_harness import Generator, ObjectTrack, SceneTrack, Strict, file_digest, geometry, hookimpl, write_video

from .render import Mesh, Rasterizer, Renderer, box_mesh, cone_mesh, rasterize, sphere_mesh

GENERATOR_VERSION = "2"

#: The colour of every agent's front marker (no body colour is close to it).
FRONT_COLOR = (250, 215, 0)
#: Body colours, one per object of a scene (named, so question writers can say "the red person").
PALETTE = {
    "red": (200, 40, 40), "blue": (40, 70, 200), "green": (40, 150, 60), "purple": (130, 60, 170),
    "orange": (235, 120, 30), "cyan": (40, 175, 195), "magenta": (205, 60, 150), "brown": (125, 80, 50),
    "white": (228, 228, 228), "black": (38, 38, 44),
}  # fmt: skip
CAMERA_MOTIONS = ("static", "pan", "dolly", "orbit", "handheld")
OBJECT_MOTIONS = ("static", "straight", "curved", "accelerating", "decelerating", "stopping", "turning")

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

_SKIN, _DARK, _TYRE = (222, 184, 150), (58, 60, 72), (34, 34, 38)


# --- categories ----------------------------------------------------------------------------------------------------


def _person(color) -> Mesh:
    return Mesh.merge([
        box_mesh((-0.1, -0.2, 0), (0.1, -0.03, 0.8), _DARK), box_mesh((-0.1, 0.03, 0), (0.1, 0.2, 0.8), _DARK),
        box_mesh((-0.14, -0.23, 0.8), (0.14, 0.23, 1.42), color),  # torso
        box_mesh((-0.11, -0.1, 1.44), (0.11, 0.1, 1.7), _SKIN),  # head
        box_mesh((0.14, -0.14, 0.9), (0.17, 0.14, 1.3), FRONT_COLOR),  # chest plate
        box_mesh((0.11, -0.035, 1.53), (0.18, 0.035, 1.61), FRONT_COLOR),  # nose
    ])  # fmt: skip


def _dog(color) -> Mesh:
    legs = [box_mesh((x - 0.04, y - 0.04, 0), (x + 0.04, y + 0.04, 0.3), _DARK)
            for x in (-0.28, 0.22) for y in (-0.08, 0.08)]  # fmt: skip
    return Mesh.merge(legs + [
        box_mesh((-0.38, -0.13, 0.3), (0.32, 0.13, 0.58), color),  # body
        box_mesh((0.28, -0.1, 0.5), (0.5, 0.1, 0.74), color),  # head
        box_mesh((0.5, -0.05, 0.53), (0.62, 0.05, 0.63), FRONT_COLOR),  # snout
    ])  # fmt: skip


def _car(color) -> Mesh:
    wheels = [box_mesh((x - 0.32, y0, 0), (x + 0.32, y0 + 0.22, 0.62), _TYRE)
              for x in (-1.35, 1.35) for y0 in (-0.92, 0.7)]  # fmt: skip
    glass = tuple(0.55 * np.asarray(color))
    return Mesh.merge(wheels + [
        box_mesh((-2.1, -0.88, 0.28), (2.1, 0.88, 0.95), color),  # body
        box_mesh((-1.25, -0.78, 0.95), (0.7, 0.78, 1.45), glass),  # cabin
        box_mesh((2.1, -0.8, 0.4), (2.16, 0.8, 0.8), FRONT_COLOR),  # front bumper
    ])  # fmt: skip


@dataclass(frozen=True)
class Category:
    """A kind of object: its mesh at scale 1 (object frame: x forward, y left, z up, standing on z = 0), the range of
    its scale factor, its cruising speed (m/s) and the motions it may have."""

    label: str
    is_agent: bool
    build: Callable[[tuple], Mesh]
    scale: tuple[float, float]
    speed: tuple[float, float] = (0.0, 0.0)
    motions: tuple[str, ...] = ("static",)


CATEGORIES = {c.label: c for c in [
    Category("person", True, _person, (0.9, 1.1), (0.8, 1.8), OBJECT_MOTIONS),
    Category("dog", True, _dog, (0.8, 1.2), (1.0, 3.0), OBJECT_MOTIONS),
    Category("car", True, _car, (0.9, 1.1), (2.0, 5.0), OBJECT_MOTIONS[:-1]),
    Category("ball", False, lambda color: sphere_mesh((0, 0, 1), 1.0, color), (0.15, 0.45), (0.8, 3.0),
             ("static", "straight", "curved", "decelerating", "stopping")),  # scale = radius
    Category("box", False, lambda color: box_mesh((-0.5, -0.5, 0), (0.5, 0.5, 1), color), (0.4, 0.9)),  # side
    Category("cone", False, lambda color: cone_mesh(0.25, 1.0, color), (0.5, 0.9)),  # scale = height
]}  # fmt: skip


# --- motion ----------------------------------------------------------------------------------------------------------


def _yaw_matrix(radians) -> np.ndarray:
    """Active rotations about world z, ``(..., 3, 3)``: columns are the rotated x, y, z axes."""
    c, s = np.cos(radians), np.sin(radians)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


@dataclass(frozen=True)
class Motion:
    """Closed-form motion of an object on the ground.

    The object travels a distance ``s(t)`` along a path starting at ``start`` (x, y) with heading ``heading``
    (degrees of world yaw: 0 = +x, 90 = +y), bending with ``curvature`` (1/m, positive to the left). ``s(t)`` is
    ``speed * t + accel * t**2 / 2``, or, when ``brake_time > 0``, ``speed`` until ``brake_at`` then uniform braking
    to rest within ``brake_time`` seconds. The yaw is the path's tangent plus ``turn_rate * t`` (deg/s, turning in
    place). ``kind`` names the pattern (one of ``OBJECT_MOTIONS``).
    """

    kind: str
    start: tuple[float, float] = (0.0, 0.0)
    heading: float = 0.0
    speed: float = 0.0
    accel: float = 0.0
    curvature: float = 0.0
    turn_rate: float = 0.0
    brake_at: float = 0.0
    brake_time: float = 0.0

    def distance(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        if self.brake_time <= 0:
            return self.speed * t + 0.5 * self.accel * t**2
        tau = np.clip(t - self.brake_at, 0, self.brake_time)
        cruise = self.speed * np.minimum(t, self.brake_at)
        return cruise + self.speed * tau - 0.5 * self.speed / self.brake_time * tau**2

    def state(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(T, 2)`` on the ground and yaw ``(T,)`` in radians at times ``t``."""
        t = np.asarray(t, float)
        s = self.distance(t)
        theta0 = np.deg2rad(self.heading)
        k = self.curvature
        if abs(k) < 1e-12:
            xy = np.stack([s * np.cos(theta0), s * np.sin(theta0)], axis=1)
        else:
            xy = np.stack([np.sin(theta0 + k * s) - np.sin(theta0), np.cos(theta0) - np.cos(theta0 + k * s)], 1) / k
        return xy + np.asarray(self.start, float), theta0 + k * s + np.deg2rad(self.turn_rate) * t


def _axis_angle(vectors: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(T, 3, 3)`` of rotation vectors ``(T, 3)`` (Rodrigues' formula)."""
    angle = np.linalg.norm(vectors, axis=1)[:, None, None]
    axis = vectors / np.maximum(angle[:, 0], 1e-12)
    k = np.zeros((len(vectors), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class CameraPath:
    """The camera's motion, starting at ``eye`` looking at ``target`` (image up = world up).

    * ``static``: fixed;
    * ``pan``: fixed eye, rotating about the world vertical at ``rate`` deg/s (positive: counter-clockwise seen from
      above, i.e. turning left);
    * ``dolly``: fixed orientation, moving along the optical axis at ``rate`` m/s (positive: forward);
    * ``orbit``: circling ``target`` about the vertical at ``rate`` deg/s, always looking at it (constant distance);
    * ``handheld``: the static pose plus smooth jitter of at most ``shake`` metres per axis and ``shake_deg`` degrees
      per axis (sums of three sinusoids of 0.4-2 Hz per axis, drawn from ``shake_seed``).
    """

    kind: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    rate: float = 0.0
    shake: float = 0.0
    shake_deg: float = 0.0
    shake_seed: int = 0

    def poses(self, t: np.ndarray) -> np.ndarray:
        """Camera-to-world poses ``(T, 4, 4)`` at times ``t``."""
        t = np.asarray(t, float)
        eye, target = np.asarray(self.eye, float), np.asarray(self.target, float)
        base = geometry.look_at(eye, target)[:3, :3]
        rotation = np.repeat(base[None], len(t), axis=0)
        position = np.repeat(eye[None], len(t), axis=0)
        if self.kind == "pan":
            rotation = _yaw_matrix(np.deg2rad(self.rate) * t) @ base
        elif self.kind == "dolly":
            position = eye + (self.rate * t)[:, None] * base[:, 2]
        elif self.kind == "orbit":
            turn = _yaw_matrix(np.deg2rad(self.rate) * t)
            rotation = turn @ base
            position = target + turn @ (eye - target)
        elif self.kind == "handheld":
            rng = np.random.default_rng(self.shake_seed)
            freq, phase = rng.uniform(0.4, 2.0, (6, 3)), rng.uniform(0, 2 * np.pi, (6, 3))
            weight = rng.uniform(0.5, 1, (6, 3))
            wave = np.einsum("ak,tak->ta", weight, np.sin(2 * np.pi * freq * t[:, None, None] + phase)) / weight.sum(1)
            position = eye + self.shake * wave[:, :3]
            rotation = base @ _axis_angle(np.deg2rad(self.shake_deg) * wave[:, 3:])
        elif self.kind != "static":
            raise ValueError(f"unknown camera motion {self.kind!r}; known: {', '.join(CAMERA_MOTIONS)}")
        poses = np.repeat(np.eye(4)[None], len(t), axis=0)
        poses[:, :3, :3], poses[:, :3, 3] = rotation, position
        return poses


# --- scenes ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneObject:
    """An object of ``category`` with body colour ``color`` (a ``PALETTE`` name), scaled by ``scale``."""

    category: str
    motion: Motion
    color: str
    scale: float = 1.0

    def mesh(self) -> Mesh:
        mesh = CATEGORIES[self.category].build(PALETTE[self.color])
        return replace(mesh, vertices=mesh.vertices * self.scale)


@dataclass(frozen=True)
class Scene:
    """Camera path, objects, horizontal field of view (degrees) and the sun's direction (degrees)."""

    camera: CameraPath
    objects: tuple[SceneObject, ...]
    fov: float = 60.0
    sun_azimuth: float = 40.0
    sun_elevation: float = 55.0

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        f = width / 2 / np.tan(np.deg2rad(self.fov) / 2)
        return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])

    def sun(self) -> np.ndarray:
        az, el = np.deg2rad(self.sun_azimuth), np.deg2rad(self.sun_elevation)
        return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


class SceneRendering:
    """Renders a scene frame by frame and records the ground truth seen in each frame.

    Iterate :meth:`frames` (once) to get the RGB frames, then call :meth:`track`. ``render_seconds`` is the time
    spent rendering (without whatever the caller does with the frames, such as encoding).
    """

    def __init__(self, scene: Scene, width: int, height: int, fps: float, duration: float, *,
                 min_visible_pixels: int = 1, rasterizer: Rasterizer = rasterize):  # fmt: skip
        self.scene, self.width, self.height, self.fps = scene, width, height, fps
        self.min_visible_pixels = min_visible_pixels
        self.times = np.arange(max(2, round(duration * fps))) / fps
        self.poses = scene.camera.poses(self.times)
        meshes = [obj.mesh() for obj in scene.objects]
        self.local = np.concatenate([m.triangles for m in meshes])
        self.albedo = np.concatenate([m.colors for m in meshes])
        self.face_object = np.concatenate([np.full(len(m.faces), i) for i, m in enumerate(meshes)])
        lo = np.array([m.vertices.min(axis=0) for m in meshes])
        hi = np.array([m.vertices.max(axis=0) for m in meshes])
        self.center, self.half = (lo + hi) / 2, (hi - lo) / 2  # bounding boxes in the object frames
        states = [obj.motion.state(self.times) for obj in scene.objects]
        self.xy = np.stack([s[0] for s in states])  # (N, T, 2)
        self.yaw = np.stack([s[1] for s in states])  # (N, T)
        self.renderer = Renderer(width, height, scene.intrinsics(width, height), scene.sun(), rasterizer=rasterizer)
        n = len(scene.objects)
        self.pixels = np.zeros((len(self.times), n), dtype=np.int64)
        self.boxes = np.full((len(self.times), n, 4), np.nan)
        self.render_seconds = 0.0
        self.rendered = 0  # frames rendered so far

    def world_triangles(self, i: int) -> np.ndarray:
        """All objects' triangles ``(F, 3, 3)`` in the world at frame ``i``."""
        yaw = self.yaw[self.face_object, i][:, None]
        c, s = np.cos(yaw), np.sin(yaw)
        x, y, z = self.local[..., 0], self.local[..., 1], self.local[..., 2]
        offset = self.xy[self.face_object, i][:, None, :]
        return np.stack([c * x - s * y + offset[..., 0], s * x + c * y + offset[..., 1], z], axis=-1)

    def shadow_triangles(self, i: int, sides: int = 12) -> np.ndarray:
        """Contact shadows at frame ``i``: per object, a flat polygon 2 mm above the ground covering its footprint
        (an ellipse 1.15 times the half extents of its bounding box), as ``(N * sides, 3, 3)`` triangles facing up."""
        angle = np.linspace(0, 2 * np.pi, sides + 1)
        ring = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=-1)  # (sides + 1, 3), CCW
        ring = ring * np.column_stack([1.15 * self.half[:, :2], np.zeros(len(self.half))])[:, None]
        ring[..., :2] += self.center[:, None, :2]
        ring[..., 2] = 0.002
        world = np.einsum("nij,nkj->nki", _yaw_matrix(self.yaw[:, i]), ring)
        world[..., :2] += self.xy[:, i, None]
        center = world[:, :-1].mean(axis=1, keepdims=True)
        fan = np.stack([np.broadcast_to(center, world[:, :-1].shape), world[:, :-1], world[:, 1:]], axis=2)
        return fan.reshape(-1, 3, 3)

    def frames(self) -> Iterator[np.ndarray]:
        """The RGB frames ``(H, W, 3)`` uint8, in order."""
        for i in range(len(self.times)):
            start = time.perf_counter()
            frame = self.renderer.render(self.poses[i], self.world_triangles(i), self.albedo, self.face_object,
                                         len(self.scene.objects), self.shadow_triangles(i))  # fmt: skip
            self.pixels[i], self.boxes[i] = frame.pixels, frame.boxes
            self.render_seconds += time.perf_counter() - start
            self.rendered = i + 1
            yield frame.rgb

    def track(self, video: str | None = None) -> SceneTrack:
        """The ground truth of the rendered frames as a validated :class:`SceneTrack`."""
        if self.rendered < len(self.times):
            raise RuntimeError(f"track(): only {self.rendered} of {len(self.times)} frames were rendered")
        objects = []
        for i, obj in enumerate(self.scene.objects):
            category = CATEGORIES[obj.category]
            rotation = _yaw_matrix(self.yaw[i])  # (T, 3, 3): columns forward, left, up
            centroids = np.einsum("tij,j->ti", rotation, self.center[i])
            centroids[:, :2] += self.xy[i]
            visible = self.pixels[:, i] >= self.min_visible_pixels
            boxes = np.where(visible[:, None], self.boxes[:, i], np.nan)
            meta = {"category": obj.category, "color": obj.color, "rgb": list(PALETTE[obj.color]),
                    "scale": obj.scale, "size": (2 * self.half[i]).tolist(), "motion": asdict(obj.motion),
                    "pixels": self.pixels[:, i].tolist()}  # fmt: skip
            if category.is_agent:
                meta["front_rgb"] = list(FRONT_COLOR)
            objects.append(ObjectTrack(label=obj.category, is_agent=category.is_agent, object_id=f"o{i}",
                                       centroids=centroids, boxes=boxes, visible=visible, meta=meta,
                                       orientations=rotation if category.is_agent else None))  # fmt: skip
        meta = {"generator": "synth-scenes", "generator_version": GENERATOR_VERSION, "units": "metres",
                "world": "z up, ground plane z = 0", "camera": asdict(self.scene.camera), "fov_deg": self.scene.fov,
                "sun_azimuth_deg": self.scene.sun_azimuth, "sun_elevation_deg": self.scene.sun_elevation,
                "min_visible_pixels": self.min_visible_pixels}  # fmt: skip
        track = SceneTrack(timestamps=self.times.copy(), camera_to_world=self.poses.copy(),
                           intrinsics=self.renderer.intrinsics.copy(), image_size=(self.width, self.height),
                           objects=objects, video=video, fps=float(self.fps), meta=meta)  # fmt: skip
        return track.validate()


def render_frames(scene: Scene, width: int, height: int, fps: float, duration: float,
                  **kwargs) -> tuple[np.ndarray, SceneTrack]:  # fmt: skip
    """All frames ``(T, H, W, 3)`` of a scene and its track (keyword arguments go to :class:`SceneRendering`)."""
    rendering = SceneRendering(scene, width, height, fps, duration, **kwargs)
    frames = np.stack(list(rendering.frames()))
    return frames, rendering.track()


# --- sampling --------------------------------------------------------------------------------------------------------


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
    center = np.einsum("tij,j->ti", _yaw_matrix(yaw), (lo + hi) / 2)
    center[:, :2] += xy
    if not layout.fits(center, xy, radius):
        return None
    layout.placed.append((xy, radius))
    return SceneObject(category.label, motion, color, scale)


# --- the generator ---------------------------------------------------------------------------------------------------


def _names(value: str, known, what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown {what} {unknown or value!r}; known: {', '.join(known)}")
    return names


class SynthScenes(Generator):
    """Renders procedural scenes to H.264 videos with exact ``SceneTrack`` ground truth (module docstring)."""

    class Options(Strict):
        n_videos: int = Field(10, ge=1, description="Number of scenes (default 10).")
        width: int = Field(320, ge=16, description="Frame width in pixels, even (default 320).")
        height: int = Field(240, ge=16, description="Frame height in pixels, even (default 240).")
        fps: float = Field(15.0, gt=0, description="Frames per second (default 15).")
        duration: float = Field(6.0, gt=0, description="Seconds per video (default 6).")
        min_objects: int = Field(2, ge=1, le=len(PALETTE), description="Fewest objects per scene (default 2).")
        max_objects: int = Field(6, ge=1, le=len(PALETTE), description="Most objects per scene (default 6).")
        camera_motions: str = Field(",".join(CAMERA_MOTIONS), description="Camera motions, comma-separated (all).")
        categories: str = Field(",".join(CATEGORIES), description="Object categories, comma-separated (all).")
        min_visible_pixels: int = Field(1, ge=1, description="Pixels an object must show to be visible (default 1).")
        crf: int = Field(18, ge=0, le=51, description="x264 quality, lower is better (default 18).")
        preset: str = Field("medium", description="x264 preset (default medium).")

        @model_validator(mode="after")
        def _check(self):
            if self.width % 2 or self.height % 2:
                raise ValueError(f"width and height must be even for H.264 (got {self.width}x{self.height})")
            if self.min_objects > self.max_objects:
                raise ValueError(f"min_objects ({self.min_objects}) exceeds max_objects ({self.max_objects})")
            if self.preset not in X264_PRESETS:
                raise ValueError(f"unknown x264 preset {self.preset!r}; known: {', '.join(X264_PRESETS)}")
            _names(self.camera_motions, CAMERA_MOTIONS, "camera motion")
            _names(self.categories, CATEGORIES, "category")
            return self

    def scene(self, seed: int, index: int) -> Scene:
        """Scene ``index`` of a run with ``seed``."""
        o = self.options
        return sample_scene(scene_rng(seed, index), duration=o.duration, aspect=o.width / o.height,
                            min_objects=o.min_objects, max_objects=o.max_objects,
                            camera_motions=_names(o.camera_motions, CAMERA_MOTIONS, "camera motion"),
                            categories=_names(o.categories, CATEGORIES, "category"))  # fmt: skip

    def run(self, out: Path, seed: int = 0) -> dict[str, Any]:
        o = self.options
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        entries, counts = [], {"camera_motions": Counter(), "object_motions": Counter(), "categories": Counter()}
        frames = 0
        render_seconds = 0.0
        for index in range(o.n_videos):
            scene = self.scene(seed, index)
            stem = f"scene_{index:04d}"
            rendering = SceneRendering(scene, o.width, o.height, o.fps, o.duration,
                                       min_visible_pixels=o.min_visible_pixels)  # fmt: skip
            write_video(out / f"{stem}.mp4", rendering.frames(), o.fps, crf=o.crf, preset=o.preset)
            track = rendering.track(video=f"{stem}.mp4")
            track.meta.update(seed=[seed, index], index=index)
            track.save(out / f"{stem}.npz")
            frames += track.n_frames
            render_seconds += rendering.render_seconds
            counts["camera_motions"][scene.camera.kind] += 1
            counts["object_motions"].update(obj.motion.kind for obj in scene.objects)
            counts["categories"].update(obj.category for obj in scene.objects)
            entries.append({
                "index": index, "seed": [seed, index], "frames": track.n_frames, "camera_motion": scene.camera.kind,
                "objects": [{"id": f"o{i}", "category": obj.category, "color": obj.color, "motion": obj.motion.kind}
                            for i, obj in enumerate(scene.objects)],
                "files": {kind: {"path": f"{stem}.{ext}", "sha256": file_digest(out / f"{stem}.{ext}")}
                          for kind, ext in (("video", "mp4"), ("track", "npz"))},
            })  # fmt: skip
        manifest = {"generator": "synth-scenes", "version": GENERATOR_VERSION, "seed": seed,
                    "options": o.model_dump(mode="json"), "scenes": entries}  # fmt: skip
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        seconds = time.perf_counter() - start
        return {
            "out": str(out), "videos": o.n_videos, "frames": frames, "seconds": round(seconds, 3),
            "render_seconds": round(render_seconds, 3), "frames_per_second": round(frames / seconds, 1),
            "render_frames_per_second": round(frames / max(render_seconds, 1e-9), 1),
            **{name: dict(sorted(counter.items())) for name, counter in counts.items()},
        }  # fmt: skip


@hookimpl
def register_generators(register):
    register(
        "synth-scenes",
        "vdpm_harness_plugins.generators.scenes.synth:SynthScenes",
        description="Procedural 4D scenes rendered on the CPU: H.264 videos with exact SceneTrack ground truth",
    )
