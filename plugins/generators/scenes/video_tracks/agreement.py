"""How much perception changes the answers: the same questions answered on perceived and on exact geometry.

For every video with a truth, ``questions`` copies of its perceived track and of its *exact twin* are written; the
twin keeps everything a question's draw depends on (frames, objects, labels, boxes, visibility, where orientations
are known) and replaces the geometry by the truth (camera poses, and the centroid and orientation of the truth
object each perceived object is matched to). ``dsr-templates`` (composed by id) then writes one question per copy
on each side, drawn from the copy's own seed, so both sides draw the same question as long as the geometry does not
change the draw; a question whose text differs between the sides is counted as such. The agreement of a template is
the share of questions asked on both sides whose correct answer text is the same. Questions about an object with no
truth match (a false detection) are left out.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vdpm_harness import ObjectTrack, SceneTrack

COPY = "{stem}__q{index:03d}"


def exact_twin(perceived: SceneTrack, truth: SceneTrack, pairs: dict[int, int]) -> SceneTrack:
    """The perceived track with the truth's geometry (``truth`` at the perceived frames; ``pairs`` from
    :func:`~.evaluate.match_objects`); unmatched objects keep their perceived values and are listed in
    ``meta["unmatched"]``."""
    objects = []
    for i, p in enumerate(perceived.objects):
        centroids, orientations = (
            np.array(p.centroids, float),
            None if p.orientations is None else np.array(p.orientations, float),
        )
        if i in pairs:
            t = truth.objects[pairs[i]]
            known = np.isfinite(centroids).all(axis=1)
            centroids[known] = np.asarray(t.centroids, float)[known]
            if orientations is not None:
                oriented = np.isfinite(orientations).all(axis=(1, 2))
                if t.orientations is None:
                    orientations[oriented] = np.nan
                else:
                    orientations[oriented] = np.asarray(t.orientations, float)[oriented]
        objects.append(
            ObjectTrack(
                label=p.label,
                is_agent=p.is_agent,
                object_id=p.object_id,
                centroids=centroids,
                boxes=p.boxes,
                visible=p.visible,
                orientations=orientations,
                meta=p.meta,
            )
        )
    unmatched = [p.object_id for i, p in enumerate(perceived.objects) if i not in pairs]
    return SceneTrack(timestamps=perceived.timestamps, camera_to_world=np.asarray(truth.camera_to_world, float),
                      intrinsics=truth.intrinsics, image_size=perceived.image_size, objects=objects,
                      video=perceived.video, fps=perceived.fps, source="video-tracks exact twin",
                      meta={**perceived.meta, "unmatched": unmatched})  # fmt: skip


def write_copies(folder: Path, stem: str, track: SceneTrack, video: Path, n: int) -> None:
    """``n`` copies of ``track`` in ``folder``, each beside a link to ``video`` under its own name (its own seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        name = COPY.format(stem=stem, index=index)
        link = folder / f"{name}{video.suffix}"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.abspath(video), link)
        track.video = link.name
        track.save(folder / f"{name}.npz")


def read_questions(folder: Path) -> dict[str, dict[str, Any]]:
    """``dsr-templates`` output in ``folder``: copy name -> type, question, correct answer text, entities."""
    tsv = folder / "DSRBench.tsv"
    if not tsv.is_file():
        return {}
    with open(tsv, newline="", encoding="utf-8") as handle:
        rows = {row["index"]: row for row in csv.DictReader(handle, delimiter="\t")}
    questions = {}
    for line in (folder / "provenance.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        row = rows[str(record["index"])]
        options = {option[0]: option[3:] for option in json.loads(row["options"])}
        entities = [record.get("observer", {}).get("entity")] + [t.get("entity") for t in record.get("targets", [])]
        questions[record["video_id"]] = {"type": row["task_type"], "question": row["question"],
                                         "answer": options[row["answer"]], "entities": entities}  # fmt: skip
    return questions


def agreement(perceived: dict[str, dict], exact: dict[str, dict], unmatched: dict[str, set[str]]) -> dict[str, Any]:
    """Per template: questions on both sides, agreeing answers, questions on one side only, questions whose text
    differs, and questions about unmatched objects (``unmatched``: copy name -> object ids without a truth)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for name in sorted(set(perceived) | set(exact)):
        p, e = perceived.get(name), exact.get(name)
        qtype = (p or e)["type"]
        if p is not None and set(p["entities"]) & unmatched.get(name, set()):
            counts[qtype]["unmatched"] += 1
        elif p is None or e is None:
            counts[qtype]["perceived_only" if e is None else "exact_only"] += 1
        elif p["question"] != e["question"]:
            counts[qtype]["different_question"] += 1
        else:
            counts[qtype]["both"] += 1
            counts[qtype]["agree"] += p["answer"] == e["answer"]
    table = {qtype: {**dict(c), "agreement": c["agree"] / c["both"] if c["both"] else None}
             for qtype, c in sorted(counts.items())}  # fmt: skip
    both = sum(c["both"] for c in counts.values())
    agree = sum(c["agree"] for c in counts.values())
    return {"per_template": table, "both": both, "agree": agree, "agreement": agree / both if both else None}
