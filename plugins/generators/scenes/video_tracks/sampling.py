"""The frames and the object phrases of one video, as the DSR Suite's generator takes them.

Frames (TencentARC/DSR_Suite ``data/qa_utils.py``, ``sample_uniform_frames``): ``num_frames`` (32) frames at
``round(linspace(0, N - 1, num_frames))`` of the whole video, at its own resolution, with timestamps ``index / fps``;
a video too short for distinct frames fails (the original raises "repeat frame").

Phrases (``data/deepseek_agent.py`` writes ``agent_object.csv`` with the columns ``videoID, agent, obj``, each a list
of classes separated by dots such as ``person. dog``, or ``None``): the classes are split on ``.``, stripped and
lower-cased (the original does not strip, which misaligns its phrase spans; see ``docs/perception.md``), and the
detector is asked for the objects and the agents together, as the original's general caption ``objs + agents``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vdpm_harness import Clip, FramePolicy, VideoError, decode, probe

#: Missing values of the curation table (pandas reads an empty cell or ``None`` as NaN).
_NONE = {"", "none", "nan"}


def split_classes(text: str | None) -> list[str]:
    """``"Person. dog.  "`` -> ``["person", "dog"]``: dot-separated classes, stripped, lower-cased, de-duplicated."""
    if text is None:
        return []
    names = [" ".join(part.lower().split()) for part in str(text).split(".")]
    return list(dict.fromkeys(name for name in names if name not in _NONE))


@dataclass
class Phrases:
    """The classes a video is searched for: ``agents`` (things with a front) and other ``objects``."""

    agents: list[str]
    objects: list[str]

    @property
    def all(self) -> list[str]:
        """What the detector is asked for: the objects, then the agents (the original's ``objs + agents``)."""
        return list(dict.fromkeys(self.objects + self.agents))


def read_classes(path: str | Path) -> dict[str, Phrases]:
    """``agent_object.csv`` (columns ``videoID, agent, obj``) -> video id -> its phrases."""
    table: dict[str, Phrases] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if "videoID" not in row:
                raise ValueError(f"{path}: no 'videoID' column (expected the columns videoID, agent, obj)")
            table[str(row["videoID"]).strip()] = Phrases(split_classes(row.get("agent")), split_classes(row.get("obj")))
    return table


def sample_clip(video: Path, num_frames: int) -> Clip:
    """The original's frames of ``video`` (see the module docstring); :class:`VideoError` when it cannot be read or
    is too short."""
    info = probe(video)
    if info.num_frames < num_frames:
        raise VideoError(video, f"{info.num_frames} frames, fewer than the {num_frames} sampled (repeat frame)")
    decoded = decode(video, FramePolicy(nframes=num_frames, sampler="round"))
    indices = np.asarray(decoded.indices, int)
    if np.any(np.diff(indices) == 0):
        raise VideoError(video, f"repeat frame {int(indices[np.flatnonzero(np.diff(indices) == 0)[0]])}")
    return Clip(frames=decoded.frames, indices=indices, timestamps=np.asarray(decoded.timestamps, float),
                video=video, fps=decoded.native_fps)  # fmt: skip
