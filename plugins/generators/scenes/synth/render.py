"""CPU renderer of the synthetic scenes: flat-shaded triangle meshes over a procedural ground plane, in numpy.

No GPU and no display. A frame is drawn in three steps:

1. **Background**: every pixel's ray is intersected with the ground plane ``z = 0`` in closed form: a 1 m checker
   with per-tile brightness noise (so camera motion is visible and the metric scale readable), soft elliptic
   contact shadows under the objects, a distance fog to the horizon colour (which also hides the checker's aliasing
   far away), and a vertical sky gradient above the horizon.
2. **Triangles**: transformed to the camera, back faces culled, clipped against the near plane ``z = near`` (a
   triangle crossing it becomes one or two triangles), projected with the pinhole intrinsics, and rasterised in one
   batch (:func:`rasterize`): every (triangle, pixel) pair of the triangles' pixel bounding boxes is tested with
   barycentric edge functions, and a z-buffer on perspective-correct ``1/z`` keeps the nearest triangle per pixel.
3. **Shading**: Lambert per face, ``albedo * (ambient + diffuse * max(0, n . sun))``.

The ground never hides an object: objects stand on or above the plane and the camera is above it, so the segment
from the camera to any object point lies above the plane. The z-buffer therefore holds the objects only.

Conventions: world in metres, z up; cameras OpenCV (x right, y down, z forward) with camera-to-world poses as in
:mod:`vdpm_harness.geometry`. Pixel column ``u`` covers ``[u, u + 1)``: a pixel is sampled at its centre
``(u + 0.5, v + 0.5)``, so the principal point ``(W / 2, H / 2)`` is the image centre. Rendering is deterministic:
the z-buffer keeps the minimum of an integer key (depth bits, then triangle index), which does not depend on the
order of evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Bits of the z-buffer key that hold the triangle index (at most 2**21 triangles per frame).
_INDEX_BITS = 21
_EMPTY = np.iinfo(np.int64).max
#: Bit pattern of float32 +inf: ``_INF_BITS - bits(1/z)`` grows with depth for positive ``1/z``.
_INF_BITS = 0x7F800000
#: Tolerance of the inside test in barycentric units: pixel centres on a shared edge belong to both triangles
#: (the z-buffer picks one), so meshes have no cracks.
_EDGE_EPS = 1e-7


# --- meshes --------------------------------------------------------------------------------------------------------


@dataclass
class Mesh:
    """Triangles in an object's own frame: ``vertices (V, 3)`` metres, ``faces (F, 3)`` vertex indices wound
    counter-clockwise seen from outside (outward normals by the right-hand rule), ``colors (F, 3)`` albedo 0-255."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """``(F, 3, 3)``: the corners of every face."""
        return self.vertices[self.faces]

    @staticmethod
    def merge(meshes: Sequence[Mesh]) -> Mesh:
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(
            vertices=np.concatenate([m.vertices for m in meshes]),
            faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
            colors=np.concatenate([m.colors for m in meshes]),
        )


def _outward(vertices: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Faces of a convex solid re-wound so that their normals point away from the interior point ``inside``."""
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("ij,ij->i", normal, tri.mean(axis=1) - inside) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def box_mesh(lo, hi, color, front_color=None) -> Mesh:
    """An axis-aligned box from corner ``lo`` to ``hi``; its +x face gets ``front_color`` when one is given."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    corners = np.array([[(hi if (i >> k) & 1 else lo)[k] for k in range(3)] for i in range(8)])  # bit k: axis k
    quads = [(0, 2, 6, 4), (1, 3, 7, 5), (0, 1, 5, 4), (2, 3, 7, 6), (0, 1, 3, 2), (4, 5, 7, 6)]  # -x +x -y +y -z +z
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    colors = np.tile(np.asarray(color, float), (12, 1))
    if front_color is not None:
        colors[2:4] = front_color
    return Mesh(corners, _outward(corners, faces, (lo + hi) / 2), colors)


def sphere_mesh(center, radius: float, color, segments: int = 12, rings: int = 8) -> Mesh:
    """A UV sphere: ``segments`` around the vertical axis, ``rings`` from pole to pole."""
    center = np.asarray(center, float)
    polar = np.linspace(0, np.pi, rings + 1)[1:-1]
    azimuth = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    ring = np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius + center
    top, bottom = 0, len(vertices) - 1
    ring_index = lambda i, j: 1 + i * segments + j % segments  # vertex j of ring i
    faces = []
    for j in range(segments):
        faces += [(top, ring_index(0, j), ring_index(0, j + 1))]
        faces += [(bottom, ring_index(rings - 2, j), ring_index(rings - 2, j + 1))]
        for i in range(rings - 2):
            a0, a1, b0, b1 = ring_index(i, j), ring_index(i, j + 1), ring_index(i + 1, j), ring_index(i + 1, j + 1)
            faces += [(a0, b0, b1), (a0, b1, a1)]
    faces = np.array(faces)
    return Mesh(vertices, _outward(vertices, faces, center), np.tile(np.asarray(color, float), (len(faces), 1)))


def cone_mesh(radius: float, height: float, color, segments: int = 16) -> Mesh:
    """An upright cone with its base on ``z = 0``, centred on the z axis."""
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    base = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(segments)], axis=1)
    vertices = np.concatenate([base, [[0, 0, height], [0, 0, 0]]])
    apex, middle = segments, segments + 1
    pairs = [(j, (j + 1) % segments) for j in range(segments)]
    faces = np.array([(a, b, apex) for a, b in pairs] + [(a, b, middle) for a, b in pairs])
    faces = _outward(vertices, faces, np.array([0.0, 0.0, height / 4]))
    return Mesh(vertices, faces, np.tile(np.asarray(color, float), (len(faces), 1)))


# --- rasterisation -------------------------------------------------------------------------------------------------


def clip_near(triangles: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip camera-frame triangles ``(F, 3, 3)`` to ``z > near``; return the pieces and, per piece, its source face.

    A triangle with one corner in front becomes one smaller triangle, one with two corners in front a quad split
    into two; the winding order (hence the facing) is kept.
    """
    inside = triangles[..., 2] > near
    count = inside.sum(axis=1)
    pieces, sources = [triangles[count == 3]], [np.flatnonzero(count == 3)]

    def cut(p, q):  # the point of segment p -> q on the plane z = near
        s = (near - p[:, 2:3]) / (q[:, 2:3] - p[:, 2:3])
        return p + s * (q - p)

    for n_inside in (1, 2):
        faces = np.flatnonzero(count == n_inside)
        if not faces.size:
            continue
        # rotate the corners (keeping the cyclic order) so that corner 0 is the odd one: inside for 1, outside for 2
        first = np.argmax(inside[faces] == (n_inside == 1), axis=1)
        a, b, c = (triangles[faces, (first + k) % 3] for k in range(3))
        if n_inside == 1:
            pieces.append(np.stack([a, cut(a, b), cut(a, c)], axis=1))
            sources.append(faces)
        else:
            ca, ab = cut(c, a), cut(a, b)
            pieces += [np.stack([b, c, ca], axis=1), np.stack([b, ca, ab], axis=1)]
            sources += [faces, faces]
    return np.concatenate(pieces), np.concatenate(sources)


def rasterize(xy: np.ndarray, inv_depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """The nearest triangle at every pixel, as indices into ``xy`` (``-1``: none), shape ``(height * width,)``.

    ``xy (F, 3, 2)`` are the projected corners in pixels, ``inv_depth (F, 3)`` their ``1/z``. All triangles at once:
    each triangle's bounding box of pixel centres is enumerated, the centres are tested with barycentric edge
    functions, ``1/z`` is interpolated linearly in the image (exact under perspective), and ``np.minimum.at`` keeps,
    per pixel, the smallest key ``(depth bits << 21) | triangle`` (nearest first, then the lower index).
    """
    owner = np.full(width * height, -1, dtype=np.int64)
    if not len(xy):
        return owner
    if len(xy) >= 1 << _INDEX_BITS:
        raise ValueError(f"rasterize: {len(xy)} triangles in one frame; the z-buffer key holds at most 2**21")
    x, y = xy[..., 0], xy[..., 1]
    x0 = np.clip(np.ceil(x.min(axis=1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(x.max(axis=1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(y.min(axis=1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(y.max(axis=1) - 0.5), -1, height - 1).astype(np.int64)
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    w, h = x1 - x0 + 1, y1 - y0 + 1
    keep = np.flatnonzero((w > 0) & (h > 0) & (np.abs(area) > 1e-12))
    if not keep.size:
        return owner
    x, y, area, iz = x[keep], y[keep], area[keep], inv_depth[keep]
    # barycentric weights of corners 0 and 1 as planes a*u + b*v + c in pixel coordinates; 1/z as a plane too
    coef = np.stack([
        (y[:, 1] - y[:, 2]) / area, (x[:, 2] - x[:, 1]) / area, (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]) / area,
        (y[:, 2] - y[:, 0]) / area, (x[:, 0] - x[:, 2]) / area, (x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]) / area,
        iz[:, 2], iz[:, 0] - iz[:, 2], iz[:, 1] - iz[:, 2],
    ])  # fmt: skip
    counts = w[keep] * h[keep]
    tri = np.repeat(np.arange(len(keep)), counts)
    local = np.arange(len(tri)) - np.repeat(np.cumsum(counts) - counts, counts)
    row = local // w[keep][tri]
    px = x0[keep][tri] + local - row * w[keep][tri]
    py = y0[keep][tri] + row
    c = coef[:, tri]
    u, v = px + 0.5, py + 0.5
    w0 = c[0] * u + c[1] * v + c[2]
    w1 = c[3] * u + c[4] * v + c[5]
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w0 + w1 <= 1 + _EDGE_EPS)
    w0, w1, c, tri = w0[inside], w1[inside], c[:, inside], tri[inside]
    inv_z = np.maximum(c[6] + w0 * c[7] + w1 * c[8], 1e-12).astype(np.float32)
    key = ((_INF_BITS - inv_z.view(np.int32)).astype(np.int64) << _INDEX_BITS) | tri
    zbuffer = np.full(width * height, _EMPTY, dtype=np.int64)
    np.minimum.at(zbuffer, py[inside] * width + px[inside], key)
    hit = zbuffer != _EMPTY
    owner[hit] = keep[zbuffer[hit] & ((1 << _INDEX_BITS) - 1)]
    return owner


# --- frames --------------------------------------------------------------------------------------------------------

Rasterizer = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


@dataclass
class Frame:
    """One rendered frame: ``rgb (H, W, 3)`` uint8; per object, ``pixels`` it owns in the z-buffer and its amodal
    2D box ``x0, y0, x1, y1`` (all its near-clipped triangles projected, clipped to the image; NaN when none of it
    projects into the image)."""

    rgb: np.ndarray
    pixels: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class Style:
    """Colours (RGB 0-255) and lighting constants of the renderer."""

    tile: float = 1.0  # checker tile size, metres
    ground: tuple = (150, 150, 141)  # light tiles; dark tiles are ``dark`` times as bright
    dark: float = 0.7
    tile_noise: float = 0.17  # peak-to-peak relative brightness noise per tile
    horizon: tuple = (190, 203, 214)
    zenith: tuple = (86, 136, 206)
    fog_start: float = 18.0  # metres of depth where the fog begins ...
    fog_end: float = 70.0  # ... and where only the horizon colour is left
    shadow: float = 0.6  # brightness of the ground in a contact shadow
    ambient: float = 0.45
    diffuse: float = 0.55


class Renderer:
    """Renders frames of ``width x height`` pixels through ``intrinsics`` (3x3), lit by ``sun`` (the direction
    towards the light, world frame). ``rasterizer`` is :func:`rasterize` unless a benchmark swaps it."""

    def __init__(self, width: int, height: int, intrinsics: np.ndarray, sun, *, near: float = 0.05,
                 style: Style = Style(), rasterizer: Rasterizer = rasterize):  # fmt: skip
        self.width, self.height = width, height
        self.intrinsics = np.asarray(intrinsics, float)
        self.sun = np.asarray(sun, float) / np.linalg.norm(sun)
        self.near, self.style, self.rasterizer = near, style, rasterizer
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
        rays = np.linalg.inv(self.intrinsics) @ pixels  # camera frame, z = 1: the ray parameter is the depth
        self.ray_x, self.ray_y = rays[0].astype(np.float32), rays[1].astype(np.float32)
        self.inv_norm = (1 / np.linalg.norm(rays, axis=0)).astype(np.float32)

    def background(self, c2w: np.ndarray) -> np.ndarray:
        """Ground and sky, ``(P, 3)`` uint8 in row-major pixel order."""
        s, f32 = self.style, np.float32
        r, eye = c2w[:3, :3].astype(np.float32), c2w[:3, 3]
        dx, dy, dz = (r[i, 0] * self.ray_x + r[i, 1] * self.ray_y + r[i, 2] for i in range(3))  # world directions
        ground = dz < -1e-6
        depth = f32(-eye[2]) / np.where(ground, dz, f32(-1))
        gx = (f32(eye[0]) + depth * dx) * f32(1 / s.tile)
        gy = (f32(eye[1]) + depth * dy) * f32(1 / s.tile)
        ix, iy = np.floor(gx).astype(np.int32), np.floor(gy).astype(np.int32)
        noise = (((ix * 73856093) ^ (iy * 19349663)) & 255).astype(np.float32)  # int32 overflow wraps: a hash
        light = s.ambient + s.diffuse * max(self.sun[2], 0.0)  # Lambert factor of the ground (normal +z)
        brightness = ((ix + iy) & 1) * f32(light * (1 - s.dark)) + f32(light * s.dark)
        brightness *= noise * f32(s.tile_noise / 255) + f32(1 - s.tile_noise / 2)
        fog = np.clip((depth - f32(s.fog_start)) * f32(1 / (s.fog_end - s.fog_start)), 0, 1)
        brightness *= 1 - fog
        elevation = np.clip(dz * self.inv_norm * f32(2.5), 0, 1)
        rgb = np.empty((self.width * self.height, 3), np.uint8)
        for c in range(3):
            hor = f32(s.horizon[c])
            ground_c = brightness * f32(s.ground[c]) + fog * hor
            sky_c = elevation * f32(s.zenith[c] - s.horizon[c]) + hor
            rgb[:, c] = np.where(ground, ground_c, sky_c)
        return rgb

    def render(self, c2w: np.ndarray, triangles: np.ndarray, albedo: np.ndarray, face_object: np.ndarray,
               n_objects: int, shadows: np.ndarray) -> Frame:  # fmt: skip
        """Render world-frame ``triangles (F, 3, 3)`` with per-face ``albedo (F, 3)`` and object index
        ``face_object (F,)`` seen from camera-to-world pose ``c2w``. ``shadows (S, 3, 3)`` are triangles lying on the
        ground that darken it (contact shadows); they hide nothing and belong to no object."""
        width, height = self.width, self.height
        rgb = self.background(c2w)
        rotation, eye = c2w[:3, :3], c2w[:3, 3]
        n_faces = len(triangles)
        triangles = np.concatenate([triangles, shadows])
        normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        front = np.einsum("ij,ij->i", normal, triangles[:, 0] - eye) < 0
        lambert = self.style.ambient + self.style.diffuse * np.clip(normal[:n_faces] @ self.sun, 0, 1)
        color = np.clip(albedo * lambert[:, None], 0, 255).astype(np.uint8)
        pieces, source = clip_near((triangles - eye) @ rotation, self.near)
        uvw = pieces @ self.intrinsics.T
        xy = uvw[..., :2] / uvw[..., 2:]
        boxes = np.full((n_objects, 4), np.nan)
        piece_object = np.concatenate([face_object, np.full(len(shadows), -1)])[source]
        for o in np.unique(piece_object[piece_object >= 0]):
            corners = xy[piece_object == o].reshape(-1, 2)
            box = np.clip(np.concatenate([corners.min(axis=0), corners.max(axis=0)]), 0, [width, height] * 2)
            if box[2] > box[0] and box[3] > box[1]:
                boxes[o] = box
        shown = np.flatnonzero(front[source])
        owner = self.rasterizer(xy[shown], 1 / pieces[shown][..., 2], width, height)
        pixel = np.flatnonzero(owner >= 0)
        face = source[shown[owner[pixel]]]
        solid = face < n_faces
        rgb[pixel[solid]] = color[face[solid]]
        dim = pixel[~solid]
        rgb[dim] = (rgb[dim] * self.style.shadow).astype(np.uint8)
        pixels = np.bincount(face_object[face[solid]], minlength=n_objects)
        return Frame(rgb.reshape(height, width, 3), pixels, boxes)
