"""The contamination guard: training refuses examples that belong to a benchmark it will be evaluated on.

For every benchmark named for evaluation (``--eval``) or in ``guard.benches``, the benchmark plugin is created through
the host and its samples read (``dsr-synth`` builds its data on first use). A training example is contaminated when

* **its video is one of the benchmark's videos**: the same file content (SHA-256; only files of a size that some
  benchmark video has are read), wherever it lies and whatever it is called;
* **its question is one of the benchmark's**: the same question text and the same set of options (whitespace
  collapsed, the options' letter prefixes ``A.`` / ``A`` dropped, order ignored);
* **its scene is one of the benchmark's** (procedural scenes): the folders of ``dsr-templates`` output carry
  ``provenance.jsonl``, which names each question's scene as ``synth-scenes`` drew it (``scene_seed``: the seed and the
  scene's index); a training scene with the seed and index of a benchmark scene is the same scene, even when it was
  rendered again at another size or encoding (so ``dsr-synth`` scenes of the same seed are refused).

Training stops with a message counting each kind and naming the first examples; ``guard.allow_contamination``
(``--allow-contamination``) trains anyway and records the findings in the run record.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdpm_harness.store import file_digest

from .records import Example

_LETTER = re.compile(r"^[A-Z](?:\.\s*|\s+)")
PROVENANCE = "provenance.jsonl"


class ContaminationError(RuntimeError):
    """Training examples belong to an evaluation benchmark; the message counts and names them."""


def question_key(question: str, options: list[str]) -> str:
    """A question and its options, normalised for comparison (the module docstring)."""

    def clean(text: str) -> str:
        return " ".join(text.split())

    return json.dumps([clean(question), sorted(clean(_LETTER.sub("", o.strip())) for o in options)])


def scene_seeds(folders: set[Path]) -> dict[str, str]:
    """Video file path -> its scene (``"synthetic:<seed>,<index>"``), from the ``provenance.jsonl`` of each folder."""
    scenes: dict[str, str] = {}
    for folder in folders:
        path = folder / PROVENANCE
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            seed = entry.get("scene_seed")
            if seed is not None and entry.get("video"):
                scenes[str((folder / entry["video"]).resolve())] = f"{entry.get('source', 'scene')}:{json.dumps(seed)}"
    return scenes


@dataclass
class Reference:
    """What a benchmark holds: its videos by size, their digests, its question keys and scenes."""

    name: str
    videos_by_size: dict[int, list[str]] = field(default_factory=dict)
    questions: set[str] = field(default_factory=set)
    scenes: set[str] = field(default_factory=set)

    def digest_set(self, size: int, cache: dict[str, str]) -> set[str]:
        out = set()
        for video in self.videos_by_size.get(size, []):
            out.add(cache.setdefault(video, file_digest(video)))
        return out


def reference(host, name: str, options: dict[str, Any]) -> Reference:
    """Create the benchmark ``name`` and collect its videos, questions and scenes."""
    bench = host.create("benchmarks", name, options)
    ref = Reference(bench.id)
    videos = set()
    for sample in bench.samples():
        if sample.question:
            ref.questions.add(question_key(sample.question, sample.options))
        videos.update(m for m in sample.media if Path(m).is_file())
    for video in sorted(videos):
        ref.videos_by_size.setdefault(os.stat(video).st_size, []).append(video)
    ref.scenes = set(scene_seeds({Path(v).resolve().parent for v in videos}).values())
    return ref


@dataclass
class Finding:
    benchmark: str
    kind: str  # video | question | scene
    example: int
    source: str
    video: str


def check(examples: list[Example], references: list[Reference]) -> list[Finding]:
    """Every (example, benchmark, kind) where a training example belongs to a benchmark."""
    findings: list[Finding] = []
    cache: dict[str, str] = {}
    scenes = scene_seeds({Path(e.video).resolve().parent for e in examples})
    sizes: dict[str, int] = {}
    for example in examples:
        try:
            question, options = example.question_and_options()
            key = question_key(question, options)
        except ValueError:
            key = question_key(example.before + example.after, [])
        size = sizes.setdefault(example.video, os.stat(example.video).st_size)
        scene = scenes.get(str(Path(example.video).resolve()))
        for ref in references:
            found = []
            if size in ref.videos_by_size and cache.setdefault(example.video, file_digest(example.video)) in \
                    ref.digest_set(size, cache):  # fmt: skip
                found.append("video")
            if key in ref.questions:
                found.append("question")
            if scene is not None and scene in ref.scenes:
                found.append("scene")
            findings += [Finding(ref.name, kind, example.index, example.source, example.video) for kind in found]
    return findings


def report(findings: list[Finding]) -> str:
    """A message counting the findings by benchmark and kind, naming the first few examples."""
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        counts[(f.benchmark, f.kind)] = counts.get((f.benchmark, f.kind), 0) + 1
    parts = [f"{n} by {kind} with {bench}" for (bench, kind), n in sorted(counts.items())]
    examples = sorted({f.source for f in findings})
    return (f"{len({f.example for f in findings})} training examples belong to an evaluation benchmark ("
            + "; ".join(parts) + f"), e.g. {', '.join(examples[:3])}. Train on other data, or pass "
            "--allow-contamination (guard.allow_contamination = true) to train on it anyway")  # fmt: skip


def guard(host, examples: list[Example], benches: dict[str, dict[str, Any]], allow: bool) -> list[dict[str, Any]]:
    """Check ``examples`` against ``benches`` (name -> options); raise :class:`ContaminationError` unless ``allow``.
    Returns the findings (for the run record)."""
    if not benches:
        return []
    registry = host.registry("benchmarks")
    references = [reference(host, member, options) for name, options in benches.items()
                  for member in registry.expand(name)]  # fmt: skip
    findings = check(examples, references)
    if findings and not allow:
        raise ContaminationError(report(findings))
    return [f.__dict__ for f in findings]
