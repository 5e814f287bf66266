"""Every coordinate frame and transform of the DSR pipeline, in one place.

Frames, as the original DSR pipeline builds them (TencentARC/DSR_Suite, ``data/qa_utils.py``; the paper,
arXiv 2512.20557):

* **world**: where a :class:`~vdpm_harness.scene.SceneTrack` stores centroids and camera poses.
* **camera (OpenCV)**: x right, y down, z forward (the optical axis). Poses are camera-to-world 4x4 matrices
  ``T_c2w``: ``P_world = R @ P_cam + t``.
* **self**: the camera's own body frame, x forward, y left, z up: ``self = (z, -x, -y)`` of OpenCV coordinates.
* **agent**: an agent's body frame, x = the direction it faces, y = its left, z = up. DSR builds it from Orient
  Anything's angles (polar, azimuth, rotation, degrees) measured in the camera frame of one moment:
  ``P_agent = R(polar, azimuth, rotation) @ (P_cam - c_agent)`` with ``R = Rz(270) Rx(90) Ry(azimuth) Rx(polar)
  Rz(rotation)`` and the *passive* rotation primitives below. Azimuth 0 means facing the camera, 90 facing image-left,
  180 facing away.

Arrays are float64; points are ``(..., 3)`` and transform in their last axis.
"""

from __future__ import annotations

import numpy as np


def _c_s(degrees: float) -> tuple[float, float]:
    a = np.deg2rad(degrees)
    return float(np.cos(a)), float(np.sin(a))


def rx(degrees: float) -> np.ndarray:
    """Passive rotation about x (the transpose of the textbook active rotation), as DSR's ``Rx``."""
    c, s = _c_s(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def ry(degrees: float) -> np.ndarray:
    """Passive rotation about y, as DSR's ``Ry``."""
    c, s = _c_s(degrees)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def rz(degrees: float) -> np.ndarray:
    """Passive rotation about z, as DSR's ``Rz``."""
    c, s = _c_s(degrees)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


# --- camera poses -------------------------------------------------------------------------------------------------


def world_to_camera(points: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World points into the OpenCV frame of a camera with camera-to-world pose ``c2w``."""
    r, t = c2w[:3, :3], c2w[:3, 3]
    return (np.asarray(points, float) - t) @ r  # r.T @ (p - t), row-vector form


def camera_to_world(points: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    r, t = c2w[:3, :3], c2w[:3, 3]
    return np.asarray(points, float) @ r.T + t


def camera_to_camera(points: np.ndarray, c2w_a: np.ndarray, c2w_b: np.ndarray) -> np.ndarray:
    """Points in camera a's frame into camera b's frame: ``P_b = R_b^-1 (R_a P_a + t_a - t_b)`` (as DSR does)."""
    return world_to_camera(camera_to_world(points, c2w_a), c2w_b)


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pinhole projection of OpenCV camera points to pixel coordinates ``(..., 2)`` (points must have z > 0)."""
    p = np.asarray(points_cam, float)
    uvw = p @ np.asarray(intrinsics, float).T
    return uvw[..., :2] / uvw[..., 2:3]


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose of an OpenCV camera at ``eye`` looking at ``target``, ``up`` pointing image-up."""
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: the viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # image down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = eye
    return pose


# --- the camera's self frame ----------------------------------------------------------------------------------------


def camera_to_self(points: np.ndarray) -> np.ndarray:
    """OpenCV camera coordinates to the camera's self frame (x forward, y left, z up): ``(z, -x, -y)``."""
    p = np.asarray(points, float)
    return np.stack([p[..., 2], -p[..., 0], -p[..., 1]], axis=-1)


def self_to_camera(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, float)
    return np.stack([-p[..., 1], -p[..., 2], p[..., 0]], axis=-1)


# --- agent frames ---------------------------------------------------------------------------------------------------


def agent_rotation(polar: float, azimuth: float, rotation: float) -> np.ndarray:
    """``R`` with ``P_agent = R @ (P_cam - c)``; its rows are the agent's forward, left and up axes in the camera."""
    return rz(270) @ rx(90) @ ry(azimuth) @ rx(polar) @ rz(rotation)


def camera_to_agent(
    points: np.ndarray, polar: float, azimuth: float, rotation: float, center: np.ndarray
) -> np.ndarray:
    """Camera points into an agent's frame, as DSR builds it; ``center`` is the agent's centroid in the same camera."""
    r = agent_rotation(polar, azimuth, rotation)
    return (np.asarray(points, float) - np.asarray(center, float)) @ r.T


def agent_to_camera(
    points: np.ndarray, polar: float, azimuth: float, rotation: float, center: np.ndarray
) -> np.ndarray:
    """The exact inverse of :func:`camera_to_agent` (DSR's agent to camera): ``R^T P + c``."""
    r = agent_rotation(polar, azimuth, rotation)
    return np.asarray(points, float) @ r + np.asarray(center, float)


def facing_vector(polar: float, azimuth: float, rotation: float) -> np.ndarray:
    """The unit direction an agent faces, in camera coordinates (agent-frame ``[1, 0, 0]`` mapped to the camera)."""
    return agent_rotation(polar, azimuth, rotation)[0].copy()


def angles_from_axes(forward: np.ndarray, left: np.ndarray, up: np.ndarray) -> tuple[float, float, float]:
    """Orient-Anything style ``(polar, azimuth, rotation)`` in degrees of an agent whose body axes, expressed in the
    camera frame, are ``forward``, ``left`` and ``up`` (a right-handed orthonormal triple).

    Inverts the closed form of DSR's camera-to-agent rotation: ``up = (sin rot cos pol, -cos pol cos rot, -sin pol)``,
    ``forward_z = -cos az cos pol``, ``left_z = -sin az cos pol``.
    """
    forward, left, up = (np.asarray(v, float) for v in (forward, left, up))
    polar = np.arcsin(np.clip(-up[2], -1.0, 1.0))
    rotation = np.arctan2(up[0], -up[1])
    azimuth = np.arctan2(-left[2], -forward[2])
    return float(np.rad2deg(polar)), float(np.rad2deg(azimuth)) % 360.0, float(np.rad2deg(rotation))


def angles_from_rotation(object_to_camera: np.ndarray) -> tuple[float, float, float]:
    """Angles of an object whose body frame (x forward, y left, z up) maps to the camera by ``object_to_camera``."""
    m = np.asarray(object_to_camera, float)
    return angles_from_axes(m[:, 0], m[:, 1], m[:, 2])
