"""Trajectory windows of a SceneTrack, drawn as the DSR Suite's free-form generator draws them.

TencentARC/DSR_Suite, ``data/qa_nontemp.py`` (``generate_one_video``), with its perception (Pi3 point maps, Grounding
DINO and SAM 2 masks, Orient Anything angles) replaced by the track's exact geometry:

* 32 frames ``round(linspace(0, N - 1, 32))`` are sampled and shown as ``round(t, 1)`` seconds; frames 0-29 carry
  the windows (``timestamps[:-2]``);
* a trial draws ``abs`` or ``rel`` with probability 0.5 and a window of two frames at least 3 apart; at most 50
  trials per attempt;
* ``abs``: the observer is drawn uniformly from ``["camera", *agent classes]``; for a class, one agent seen on a
  uniformly drawn frame ``t_obs`` (its orientation known there: the original's confidence gate). Every object seen on
  the window's first frame is a target; its centroid on frame ``t`` is moved into the camera of ``t_obs``, then into
  the observer's frame frozen at ``t_obs`` (the agent frame of its Orient Anything angles, or the camera's self
  frame, x forward, y left, z up);
* ``rel``: the targets are every object seen on the first frame; the observer is the camera with probability 0.5,
  else one of the targets drawn uniformly, retried when it is not an agent, and removed from the targets. Each
  frame's targets are in the observer's frame of that frame;
* the window ends before the first frame where a target (or a ``rel`` agent observer, or its orientation) is lost,
  and must keep at least four frames;
* targets are named ``"{label} with initial bounding box coordinates [x1,y1,x2,y2]"`` (their box on the first
  frame), the observer ``"{label} with bounding box coordinates [..] at {t_obs:.1f}s"`` / ``"camera at {t:.1f}s"``
  (abs) or ``"{label} with initial bounding box coordinates [..]"`` / ``"camera"`` (rel).

Deviations, each fixing the original: the ``abs`` observer is not also a target (the original samples them
independently, so it may describe an object from its own perspective; ``exclude_observer``); a trial without any
target or with two targets of the same name fails (the original sends ``{}`` or merges them); randomness comes from a
generator seeded by ``(seed, video id)``, so the draws are reproducible (the original seeds nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from vdpm_harness import SampledFrames, SceneTrack
from vdpm_harness import geometry as geo

N_SAMPLED = 32
QUESTION_FRAMES = 30
MIN_GAP = 3
TRIALS = 50
CAMERA = "camera"


class TrialFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SampledTrack(SampledFrames):
    """A track at its 32 sampled frames (the core's :class:`SampledFrames`): per object and frame its centroid in
    that frame's camera (OpenCV), whether it is seen, its integer box and, for an object with a front, its Orient
    Anything angles ``(polar, azimuth, rotation)``, derived exactly from the rotation: ``angles_from_rotation(R_cam^T
    R_obj)``. A track with fewer frames raises ``TooFewFrames`` (the original's sampler raises "repeat frame")."""

    def __init__(self, track: SceneTrack):
        super().__init__(track, N_SAMPLED)

    def box_text(self, o: int, k: int) -> str:
        b = self.boxes[o][k]
        return f"[{b[0]},{b[1]},{b[2]},{b[3]}]"

    def oriented(self, o: int, k: int) -> bool:
        return bool(self.seen[o, k]) and self.angles[o][k] is not None


@dataclass
class Trial:
    """One window: its type, observer (as the prompt names it), frames and the targets' coordinates."""

    qa_type: str
    observer: str
    observer_entity: dict[str, Any]
    t_obs: int | None
    start: int
    end: int
    targets: list[dict[str, Any]]
    coordinates: dict[str, list[list[float]]]

    def prompt_fields(self, times: list[float]) -> dict[str, Any]:
        """The fields of the ``freeform`` prompt: ``str(obj_coords)`` is the Python repr of the dict, the timestamps
        ``", ".join(str(t) + "s")`` of the window's frames (as the original formats them)."""
        shown = ", ".join(f"{t}s" for t in times[self.start : self.end + 1])
        return {"agent": self.observer, "coordinates": str(self.coordinates), "start": times[self.start],
                "end": times[self.end], "timestamps": shown}  # fmt: skip

    def record(self, times: list[float]) -> dict[str, Any]:
        return {"qa_type": self.qa_type, "observer": self.observer, "observer_entity": self.observer_entity,
                "t_obs": None if self.t_obs is None else {"frame": self.t_obs, "time": times[self.t_obs]},
                "window": {"frames": [self.start, self.end], "times": [times[self.start], times[self.end]]},
                "targets": self.targets, "coordinates": self.coordinates}  # fmt: skip


def draw_window(rng: np.random.Generator) -> tuple[int, int]:
    """Two question frames at least ``MIN_GAP`` apart, uniformly among such pairs (the original re-draws until)."""
    while True:
        s, e = sorted(int(i) for i in rng.choice(QUESTION_FRAMES, 2, replace=False))
        if e - s >= MIN_GAP:
            return s, e


class TrialDrawer:
    """Draws trials of one track with one generator (see the module docstring)."""

    def __init__(self, scene: SampledTrack, rng: np.random.Generator, exclude_observer: bool = True,
                 decimals: int | None = None):  # fmt: skip
        self.scene = scene
        self.rng = rng
        self.exclude_observer = exclude_observer
        self.decimals = decimals

    def draw(self) -> tuple[Trial | None, Counter]:
        """A trial within ``TRIALS`` tries (None when all fail) and the failed tries by reason."""
        failures: Counter = Counter()
        for _ in range(TRIALS):
            qa_type = "rel" if self.rng.uniform() < 0.5 else "abs"
            try:
                return (self.rel() if qa_type == "rel" else self.abs()), failures
            except TrialFailure as failure:
                failures[failure.reason] += 1
        return None, failures

    # --- the two kinds ---

    def abs(self) -> Trial:
        scene, rng = self.scene, self.rng
        pick = int(rng.integers(len(scene.agent_labels) + 1))  # 0: "camera", else an agent class
        k_obs = int(rng.integers(QUESTION_FRAMES))
        s, e = draw_window(rng)
        observer: int | None = None
        if pick:
            seen = [o for o, obj in enumerate(scene.objects) if obj.is_agent and scene.seen[o, k_obs]]
            if not seen:
                raise TrialFailure("no_agent_seen")
            observer = seen[int(rng.integers(len(seen)))]
            if scene.angles[observer][k_obs] is None:
                raise TrialFailure("no_orientation")
        targets = [o for o in range(len(scene.objects)) if scene.seen[o, s]]
        if self.exclude_observer and observer is not None:
            targets = [o for o in targets if o != observer]
        end = self.tracked_end(targets, s, e, None)

        def view(k: int) -> np.ndarray:
            points = geo.camera_to_camera(scene.pos[targets, k], scene.poses[k], scene.poses[k_obs])
            if observer is None:
                return geo.camera_to_self(points)
            return geo.camera_to_agent(points, *scene.angles[observer][k_obs], scene.pos[observer, k_obs])

        time = f"{scene.times[k_obs]:.1f}s"
        if observer is None:
            name, entity = f"camera at {time}", {"entity": CAMERA}
        else:
            box = scene.box_text(observer, k_obs)
            name = f"{scene.objects[observer].label} with bounding box coordinates {box} at {time}"
            entity = self.entity(observer, k_obs)
        return self.trial("abs", name, entity, k_obs, s, end, targets, view)

    def rel(self) -> Trial:
        scene, rng = self.scene, self.rng
        s, e = draw_window(rng)
        targets = [o for o in range(len(scene.objects)) if scene.seen[o, s]]
        observer: int | None = None
        if rng.uniform() >= 0.5:
            if not targets:
                raise TrialFailure("no_target")
            observer = targets[int(rng.integers(len(targets)))]
            if not scene.objects[observer].is_agent:
                raise TrialFailure("observer_not_agent")
            targets = [o for o in targets if o != observer]
        end = self.tracked_end(targets, s, e, observer)

        def view(k: int) -> np.ndarray:
            if observer is None:
                return geo.camera_to_self(scene.pos[targets, k])
            return geo.camera_to_agent(scene.pos[targets, k], *scene.angles[observer][k], scene.pos[observer, k])

        if observer is None:
            name, entity = CAMERA, {"entity": CAMERA}
        else:
            name = (
                f"{scene.objects[observer].label} with initial bounding box coordinates {scene.box_text(observer, s)}"
            )
            entity = self.entity(observer, s)
        return self.trial("rel", name, entity, None, s, end, targets, view)

    # --- shared steps ---

    def tracked_end(self, targets: list[int], s: int, e: int, observer: int | None) -> int:
        """The last frame of ``s..e`` before a target (or the moving observer, or its orientation) is lost."""
        if not targets:
            raise TrialFailure("no_target")
        end = s - 1
        for k in range(s, e + 1):
            lost = not self.scene.seen[targets, k].all() or (
                observer is not None and not self.scene.oriented(observer, k)
            )
            if lost:
                break
            end = k
        if end - s < MIN_GAP:
            raise TrialFailure("window_too_short")
        return end

    def entity(self, o: int, k: int) -> dict[str, Any]:
        obj = self.scene.objects[o]
        return {"entity": obj.object_id, "label": obj.label, "is_agent": obj.is_agent, "box": self.scene.boxes[o][k],
                "box_frame": k}  # fmt: skip

    def trial(self, qa_type, observer, entity, k_obs, s, end, targets, view) -> Trial:
        scene = self.scene
        names = [
            f"{scene.objects[o].label} with initial bounding box coordinates {scene.box_text(o, s)}" for o in targets
        ]
        if len(set(names)) < len(names):
            raise TrialFailure("duplicate_name")
        series = np.stack([view(k) for k in range(s, end + 1)], axis=1)  # (targets, frames, 3)
        if self.decimals is not None:
            series = np.round(series, self.decimals)
        coordinates = {target: series[i].tolist() for i, target in enumerate(names)}
        described = [{**self.entity(o, s), "name": target} for o, target in zip(targets, names)]
        return Trial(qa_type, observer, entity, k_obs, s, end, described, coordinates)
