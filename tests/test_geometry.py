"""Coordinate frames and transforms against hand-computed cases of the original DSR code (TencentARC/DSR_Suite,
``data/qa_utils.py``: ``Rx``/``Ry``/``Rz``, camera-to-self, camera-to-agent) and round trips."""

import numpy as np
import pytest

from vdpm_harness import geometry as g

RNG = np.random.default_rng(0)


def test_rotation_primitives_are_the_passive_forms():
    # DSR's passive primitive: Rz(90) = [[0,1,0],[-1,0,0],[0,0,1]] (transpose of the active rotation)
    np.testing.assert_allclose(g.rz(90), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(g.rx(90), [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(g.ry(90), [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12)
    for r in (g.rx(33), g.ry(-71), g.rz(140)):
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_agent_frame_with_zero_angles():
    """DSR's camera-to-agent rotation at zero angles, checked numerically: +z_cam -> -x_agent, +x_cam -> +y_agent,
    +y_cam -> -z_agent."""
    origin = np.zeros(3)
    np.testing.assert_allclose(g.camera_to_agent([0, 0, 1], 0, 0, 0, origin), [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(g.camera_to_agent([1, 0, 0], 0, 0, 0, origin), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(g.camera_to_agent([0, 1, 0], 0, 0, 0, origin), [0, 0, -1], atol=1e-12)


@pytest.mark.parametrize(
    "azimuth, facing",
    [(0, [0, 0, -1]),  # facing the camera
     (90, [-1, 0, 0]),  # facing image-left
     (180, [0, 0, 1]),  # facing away
     (270, [1, 0, 0])],
)  # fmt: skip
def test_facing_vector_by_azimuth(azimuth, facing):
    np.testing.assert_allclose(g.facing_vector(0, azimuth, 0), facing, atol=1e-12)


def test_closed_form_axes():
    """Rows of R equal the closed forms of DSR's camera-to-agent rotation for arbitrary angles."""
    pol, az, rot = 17.0, 245.0, -32.0
    sp, cp = np.sin(np.deg2rad(pol)), np.cos(np.deg2rad(pol))
    sa, ca = np.sin(np.deg2rad(az)), np.cos(np.deg2rad(az))
    sr, cr = np.sin(np.deg2rad(rot)), np.cos(np.deg2rad(rot))
    forward = [-sa * cr - sp * sr * ca, -sa * sr + sp * ca * cr, -ca * cp]
    left = [ca * cr - sa * sp * sr, sa * sp * cr + sr * ca, -sa * cp]
    up = [sr * cp, -cp * cr, -sp]
    np.testing.assert_allclose(g.agent_rotation(pol, az, rot), [forward, left, up], atol=1e-12)


def test_agent_round_trip_and_angle_recovery():
    for _ in range(50):
        pol, az, rot = RNG.uniform(-80, 80), RNG.uniform(0, 360), RNG.uniform(-170, 170)
        center = RNG.normal(size=3)
        points = RNG.normal(size=(5, 3))
        back = g.agent_to_camera(g.camera_to_agent(points, pol, az, rot, center), pol, az, rot, center)
        np.testing.assert_allclose(back, points, atol=1e-10)
        r = g.agent_rotation(pol, az, rot)
        got = g.angles_from_axes(*r)
        np.testing.assert_allclose(got, (pol, az % 360, rot), atol=1e-8)
        np.testing.assert_allclose(g.angles_from_rotation(r.T), (pol, az % 360, rot), atol=1e-8)


def test_self_frame():
    """DSR's camera-to-self map: self = (z, -x, -y): the optical axis is forward, image-left is left, image-up is up."""
    np.testing.assert_allclose(g.camera_to_self([0, 0, 2]), [2, 0, 0])
    np.testing.assert_allclose(g.camera_to_self([-1, 0, 0]), [0, 1, 0])
    np.testing.assert_allclose(g.camera_to_self([0, -1, 0]), [0, 0, 1])
    p = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(g.self_to_camera(g.camera_to_self(p)), p)


def test_camera_to_camera_and_projection():
    # camera a at the origin looking along +x of the world (z up); camera b 2 m further along x, same orientation
    a = g.look_at([0, 0, 1], [5, 0, 1])
    b = g.look_at([2, 0, 1], [7, 0, 1])
    point_world = np.array([4.0, 0.0, 1.0])
    in_a = g.world_to_camera(point_world, a)
    np.testing.assert_allclose(in_a, [0, 0, 4], atol=1e-12)  # straight ahead, 4 m
    np.testing.assert_allclose(g.camera_to_camera(in_a, a, b), [0, 0, 2], atol=1e-12)
    # world +y (left of a camera looking along +x) is image-left: negative x in OpenCV
    assert g.world_to_camera([4, 1, 1], a)[0] < 0
    # world up is image up: negative y
    assert g.world_to_camera([4, 0, 2], a)[1] < 0
    k = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
    np.testing.assert_allclose(g.project([[0, 0, 4], [1, -1, 4]], k), [[64, 48], [89, 23]])
    np.testing.assert_allclose(g.camera_to_world(in_a, a), point_world, atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        g.look_at([0, 0, 0], [0, 0, 5])
