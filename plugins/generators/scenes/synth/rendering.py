"""A scene rendered frame by frame, and the exact ground truth of what was rendered (a SceneTrack).

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
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from vdpm_harness import ObjectTrack, SceneTrack

from .render import Rasterizer, Renderer, rasterize
from .scene import CATEGORIES, FRONT_COLOR, PALETTE, Scene, yaw_matrix

#: The version of the generated data (scene sampling, rendering, tracks): recorded in every track and manifest.
GENERATOR_VERSION = "2"


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
        world = np.einsum("nij,nkj->nki", yaw_matrix(self.yaw[:, i]), ring)
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
            rotation = yaw_matrix(self.yaw[i])  # (T, 3, 3): columns forward, left, up
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
