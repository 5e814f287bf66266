"""What a synthetic scene is: object categories with their meshes, closed-form motions on the ground, camera paths.

Each scene is a textured ground plane with objects of six categories: ``person``, ``dog`` and ``car`` are agents
with a yellow front marker (chest plate and nose, snout, front bumper) so their orientation can be seen; ``ball``,
``box`` and ``cone`` are plain objects. Sizes are metric (people about 1.7 m, cars 4.2 m) and speeds physical (people
0.8-1.8 m/s, dogs 1-3 m/s, cars 2-5 m/s). Objects move on the ground in closed form (:class:`Motion`); agents
always face their direction of travel (or turn in place). The camera follows a :class:`CameraPath`. World: metres,
z up, the ground is ``z = 0``; cameras as in :mod:`vdpm_harness.geometry` (OpenCV: x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from vdpm_harness import geometry

from .render import Mesh, box_mesh, cone_mesh, sphere_mesh

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


def yaw_matrix(radians) -> np.ndarray:
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
            rotation = yaw_matrix(np.deg2rad(self.rate) * t) @ base
        elif self.kind == "dolly":
            position = eye + (self.rate * t)[:, None] * base[:, 2]
        elif self.kind == "orbit":
            turn = yaw_matrix(np.deg2rad(self.rate) * t)
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
