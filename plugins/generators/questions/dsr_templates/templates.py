"""The 12 DSR question templates: :class:`TemplateWriter` writes one question of a given type on a sampled scene.

The question strings, the type list and the draws follow the original template generator (TencentARC/DSR_Suite,
``data/qa_temp.py`` and ``data/template.py``; the paper, arXiv 2512.20557). An attempt draws a time window, an
observer and targets (the "camera coin": each slot becomes the camera with probability 0.5, the first camera ends
the draw), computes the quantity of its type in the observer's frame (frozen at ``t_obs`` for ``abs_*``, moving with
the observer for ``rel_*``), describes it (:mod:`.describers`), draws three distractors and the correct letter. A
tracking failure is an object not visible (or an agent without a known orientation) on a frame of the window, which
truncates the window as in the original. Every attempt that yields no question raises
:class:`~.failures.Failure`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .describers import (
    DescriberError,
    describe_dir,
    describe_dist_runs,
    describe_spd_comp,
    n_items,
    truncate_items,
)
from .failures import (
    AMBIGUOUS,
    DEGENERATE,
    EXHAUSTED,
    LOST,
    NO_MOTION,
    NO_OBSERVER,
    NOT_AGENT,
    NOT_IN_FUTURE,
    OBSERVER_ORIENTATION,
    SAME_ENTITY,
    TOO_FEW,
    TOO_LONG,
    Failure,
)
from .options import TemplateOptions
from .sampling import CAMERA, N_QUESTION_FRAMES, PRED_FROM, PRED_TO, SampledScene

#: The 12 types in the order of the original's ``question_type`` list (the weights of the type draw follow it).
QUESTION_TYPES = [
    "rel_dis", "rel_dir", "rel_ori", "abs_dis", "abs_dir", "abs_ori",
    "rel_spd", "abs_spd", "rel_spd_comp", "abs_spd_comp", "rel_dir_pred", "abs_dir_pred",
]  # fmt: skip
#: The original's exact question strings; ``{:.1f}`` values are seconds, ``{}`` values entity descriptors.
TEMPLATES = {
    "rel_dis": "Between {:.1f}s and {:.1f}s, following the perspective of {}, how does the distance between {} and {} "
    "change?",
    "rel_dir": "Between {:.1f}s and {:.1f}s, following the perspective of {}, how does the direction of {} to {} "
    "change?",
    "rel_ori": "Between {:.1f}s and {:.1f}s, following the perspective of {}, how does the orientation of {} change?",
    "abs_dis": "Between {:.1f}s and {:.1f}s, from the perspective of {} at {:.1f}s, how does the distance between {} "
    "and {} change?",
    "abs_dir": "Between {:.1f}s and {:.1f}s, from the perspective of {} at {:.1f}s, how does the direction of {} to {} "
    "change?",
    "abs_ori": "Between {:.1f}s and {:.1f}s, from the perspective of {} at {:.1f}s, how does the orientation of {} "
    "change?",
    "rel_spd": "Between {:.1f}s and {:.1f}s, following the perspective of {}, how does the speed of {} change?",
    "abs_spd": "Between {:.1f}s and {:.1f}s, from the perspective of {} at {:.1f}s, how does the speed of {} change?",
    "rel_spd_comp": "Between {:.1f}s and {:.1f}s, following the perspective of {}, compare the speed between {} "
    "and {}.",
    "abs_spd_comp": "Between {:.1f}s and {:.1f}s, from the perspective of {} at {:.1f}s, compare the speed between {} "
    "and {}.",
    "rel_dir_pred": "Following the perspective of {}, predict the moving direction of {}",
    "abs_dir_pred": "From the perspective of {} at {:.1f}s, predict the moving direction of {}",
}
MIN_WINDOW_GAP = 4  # idx_e - idx_s >= 4
LETTERS = "ABCD"


@dataclass
class QA:
    """One question: its type, text, options by letter, correct letter, and provenance (every underlying number)."""

    qtype: str
    question: str
    answer: str
    options: dict[str, str]
    correct: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The original's ``qa_pairs.json`` record: Type, Question, the three wrong letters in A-D order, the correct
        letter, Correct."""
        wrong = [letter for letter in LETTERS if letter != self.correct]
        record: dict[str, Any] = {"Type": self.qtype, "Question": self.question}
        record.update({letter: self.options[letter] for letter in wrong})
        record[self.correct] = self.options[self.correct]
        record["Correct"] = self.correct
        return record


@dataclass
class Answer:
    """A described quantity: the answer text, how to redescribe it under other thresholds, the distractor kind."""

    text: str
    redescribe: Callable[[float, float, float], str]
    distractors: str
    n: int


class TemplateWriter:
    """Writes questions of one sampled scene; all randomness comes from ``rng``."""

    def __init__(self, scene: SampledScene, rng: np.random.Generator, options: TemplateOptions):
        self.scene = scene
        self.rng = rng
        self.options = options
        self.agents_with_cam = [CAMERA, *scene.agent_labels]
        self.windows = [(s, e) for s in range(N_QUESTION_FRAMES) for e in range(s + MIN_WINDOW_GAP, N_QUESTION_FRAMES)]

    def write(self, qtype: str) -> QA:
        return getattr(self, qtype)()

    # --- random draws (each a method, so a test can pin them) ---

    def window(self) -> tuple[int, int]:
        """Two distinct sorted question frames at least 4 apart, uniformly (the original resamples until they are)."""
        return self.windows[int(self.rng.integers(len(self.windows)))]

    def observer_frame(self) -> int:
        """``t_obs`` of the abs templates: any question frame."""
        return int(self.rng.integers(N_QUESTION_FRAMES))

    def draws_camera_observer(self) -> bool:
        """The original's observer draw, uniform over ``["camera"] + agent classes``: is it the camera?"""
        return int(self.rng.integers(len(self.agents_with_cam))) == 0

    def camera_coin(self, n: int) -> list[bool]:
        """The original's "camera coin": slot i becomes the camera with probability 0.5, the first camera ends the
        draw."""
        slots = [False] * n
        for i in range(n):
            if self.rng.random() < 0.5:
                slots[i] = True
                break
        return slots

    def target_is_camera(self) -> bool:
        """The single target of abs_ori, abs_spd and the prediction templates is the camera with probability 0.5."""
        return bool(self.rng.random() < 0.5)

    def pick(self, candidates: list[int], n: int) -> list[int]:
        """``n`` distinct candidates in random order (the original samples detections at random)."""
        return [candidates[i] for i in self.rng.choice(len(candidates), size=n, replace=False)]

    def correct_letter(self) -> str:
        """The original's correct letter: A if u < .25, B if u < .5, C if u < .75, else D."""
        return LETTERS[min(int(self.rng.random() * 4), 3)]

    def detect(self, k: int, n: int, agents_only: bool, exclude=()) -> list[int]:
        """``n`` distinct random objects visible on frame ``k`` (of the agents or of all objects)."""
        scene = self.scene
        candidates = [o for o, obj in enumerate(scene.objects)
                      if scene.seen[o, k] and (obj.is_agent or not agents_only) and o not in exclude]  # fmt: skip
        if len(candidates) < n:
            raise Failure(TOO_FEW, f"{len(candidates)} < {n} on frame {k}")
        return self.pick(candidates, n)

    def excluded(self, observer) -> tuple:
        return (observer,) if self.options.exclude_observer and observer != CAMERA else ()

    def abs_observer(self) -> tuple[Any, int]:
        """The observer of the abs templates and its frame ``t_obs`` (any question frame), checked for visibility and
        orientation at ``t_obs``."""
        camera = self.draws_camera_observer()
        k_obs = self.observer_frame()
        if camera:
            return CAMERA, k_obs
        agents = [o for o, obj in enumerate(self.scene.objects) if obj.is_agent and self.scene.seen[o, k_obs]]
        if not agents:
            raise Failure(NO_OBSERVER, f"frame {k_obs}")
        agent = self.pick(agents, 1)[0]
        if self.scene.angles[agent][k_obs] is None:
            raise Failure(OBSERVER_ORIENTATION, f"frame {k_obs}")
        return agent, k_obs

    def tracked_end(self, s: int, e: int, tracked, oriented=()) -> int:
        """The last frame of ``[s, e]`` before any tracked object is lost (or an oriented one has no orientation)."""
        scene = self.scene
        for k in range(s, e + 1):
            if any(t != CAMERA and not scene.seen[t, k] for t in tracked) or any(
                t != CAMERA and scene.angles[t][k] is None for t in oriented
            ):
                return k - 1
        return e

    # --- shared steps ---

    def check_window(self, s: int, end: int, speeds: bool) -> None:
        """dir, dis and ori need 4 frames; spd and spd_comp 4 speed samples (5 frames)."""
        have = end - s if speeds else end - s + 1
        if have < 4:
            raise Failure(LOST, f"{have} {'speed samples' if speeds else 'frames'} left")

    def describe(self, kind: str, series, n: int, distractors: str | None = None) -> Answer:
        """Describe ``series`` (``dist``: one scalar series, ``comp``: two, ``dir``: vectors) with the thresholds."""
        o = self.options

        def redescribe(eps: float, small: float, dir_eps: float) -> str:
            if kind == "dist":
                return describe_dist_runs(series, eps, small)
            if kind == "comp":
                return describe_spd_comp(series[0], series[1], eps, small, o.number_every_item)
            return describe_dir(series, dir_eps)

        try:
            text = redescribe(o.ratio_epsilon, o.small, o.direction_epsilon)
        except DescriberError as exc:
            raise Failure(DEGENERATE, str(exc)) from None
        return Answer(text, redescribe, distractors or kind, n)

    def check_answer(self, answer: Answer, limit_items: bool = True) -> None:
        o = self.options
        if limit_items and n_items(answer.text) > o.max_answer_items:
            raise Failure(TOO_LONG, f"{n_items(answer.text)} items")
        m = o.ambiguity_margin
        if m > 0:
            for f in (1 - m, 1 + m):
                for g in (1 - m, 1 + m):
                    other = answer.redescribe(o.ratio_epsilon * f, o.small * g, o.direction_epsilon * f)
                    if other != answer.text:
                        raise Failure(AMBIGUOUS, f"{answer.text!r} becomes {other!r}")

    def random_description(self, kind: str, n: int) -> str:
        """A description of random data (the original's first distractor step; :func:`.describers.truncate_items`
        is the second)."""
        o, rng = self.options, self.rng
        if kind == "dist" or kind == "abs_spd" or (kind == "rel_spd" and o.spd_distractors == "positive"):
            return describe_dist_runs(rng.uniform(0, 2, n), o.ratio_epsilon, o.small)
        if kind == "rel_spd":
            return describe_dist_runs(rng.uniform(-1, 1, n), o.ratio_epsilon, o.small)
        if kind == "comp":
            return describe_spd_comp(rng.uniform(0, 2, n), rng.uniform(0, 2, n), o.ratio_epsilon, o.small,
                                     o.number_every_item)  # fmt: skip
        return describe_dir(rng.uniform(-1, 1, (n, 3)), o.direction_epsilon)

    def distractors(self, answer: Answer, pred: bool) -> list[str]:
        """Three wrong options, each different from the answer and from the others (resampled, at most
        ``distractor_tries`` draws each). Prediction distractors are single random directions."""
        wrong: list[str] = []
        length = n_items(answer.text)
        for _ in range(3):
            for _ in range(self.options.distractor_tries):
                text = self.random_description(answer.distractors, answer.n)
                if not pred:
                    text = truncate_items(text, length, self.rng)
                if text != answer.text and text not in wrong:
                    wrong.append(text)
                    break
            else:
                raise Failure(EXHAUSTED, f"{len(wrong)} found for {answer.text!r}")
        return wrong

    def finish(self, qtype: str, question: str, answer: Answer, provenance: dict[str, Any]) -> QA:
        pred = qtype.endswith("_pred")
        self.check_answer(answer, limit_items=not pred)
        wrong = self.distractors(answer, pred)
        correct = self.correct_letter()
        others = iter(wrong)
        options = {letter: answer.text if letter == correct else next(others) for letter in LETTERS}
        o = self.options
        provenance.update(
            type=qtype, question=question, answer=answer.text, correct=correct, options=options,
            thresholds={"ratio_epsilon": o.ratio_epsilon, "small": o.small, "direction_epsilon": o.direction_epsilon,
                        "scale": self.scene.scale},
        )  # fmt: skip
        return QA(qtype, question, answer.text, options, correct, provenance)

    def window_record(self, s: int, e: int, end: int) -> dict[str, Any]:
        scene = self.scene
        return {"start": s, "end": end, "requested_end": e, "truncated": end != e,
                "frames": scene.frames[s : end + 1].tolist(), "times": scene.times[s : end + 1]}  # fmt: skip

    def observer_record(self, observer, k: int | None, moving: bool) -> dict[str, Any]:
        record = self.scene.entity_record(observer, k)
        record["moving"] = moving
        if observer != CAMERA and k is not None and not moving:
            record.update(frame=k, time=self.scene.times[k], angles=list(self.scene.angles[observer][k]),
                          center=self.scene.pos[observer, k].tolist())  # fmt: skip
        elif observer == CAMERA and k is not None and not moving:
            record.update(frame=k, time=self.scene.times[k])
        return record

    @staticmethod
    def speeds(positions: list[np.ndarray]) -> np.ndarray:
        p = np.asarray(positions)
        return np.linalg.norm(p[1:] - p[:-1], axis=1)

    # --- the abs templates: the observer frame is frozen at t_obs ---

    def _abs_start(self):
        observer, k_obs = self.abs_observer()
        s, e = self.window()
        return observer, k_obs, s, e

    def _abs_question(self, qtype: str, s: int, end: int, observer, k_obs: int, *targets: str) -> str:
        scene = self.scene
        return TEMPLATES[qtype].format(scene.times[s], scene.times[end], scene.descriptor(observer, k_obs, "plain"),
                                       scene.times[k_obs], *targets)  # fmt: skip

    def _two_targets(self, k: int, exclude) -> list:
        slots = self.camera_coin(2)
        found = self.detect(k, 2, agents_only=False, exclude=exclude)
        return [CAMERA if camera else obj for camera, obj in zip(slots, found)]

    def abs_dis(self) -> QA:
        observer, k_obs, s, e = self._abs_start()
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, end, speeds=False)
        distances = self._distances(targets, s, end)
        answer = self.describe("dist", distances, len(distances))
        question = self._abs_question("abs_dis", s, end, observer, k_obs,
                                      *(self.scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), targets, distances=distances.tolist()
        )
        return self.finish("abs_dis", question, answer, provenance)

    def _distances(self, targets: list, s: int, end: int) -> np.ndarray:
        """Distance between the two targets per frame (frame-invariant: abs and rel compute the same numbers)."""
        a, b = targets
        return np.array([float(np.linalg.norm(self.scene.point(a, k) - self.scene.point(b, k)))
                         for k in range(s, end + 1)])  # fmt: skip

    def abs_dir(self) -> QA:
        observer, k_obs, s, e = self._abs_start()
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, end, speeds=False)
        scene = self.scene
        vectors = [scene.frozen(observer, k_obs, np.stack([scene.point(t, k) for t in targets]), k) for k in
                   range(s, end + 1)]  # fmt: skip
        vectors = np.array([v[0] - v[1] for v in vectors])
        answer = self.describe("dir", vectors, len(vectors))
        question = self._abs_question("abs_dir", s, end, observer, k_obs,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), targets, vectors=vectors.tolist()
        )
        return self.finish("abs_dir", question, answer, provenance)

    def abs_ori(self) -> QA:
        observer, k_obs, s, e = self._abs_start()
        camera = self.target_is_camera()
        found = self.detect(s, 1, agents_only=True, exclude=self.excluded(observer))
        target = CAMERA if camera else found[0]
        end = self.tracked_end(s, e, [target], [target])
        self.check_window(s, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            ends = scene.frozen(observer, k_obs, scene.facing_points(target, k), k)
            vectors.append(ends[1] - ends[0])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._abs_question("abs_ori", s, end, observer, k_obs, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), [target], vectors=vectors.tolist()
        )
        return self.finish("abs_ori", question, answer, provenance)

    def abs_spd(self) -> QA:
        observer, k_obs, s, e = self._abs_start()
        camera = self.target_is_camera()
        found = self.detect(s, 1, agents_only=True, exclude=self.excluded(observer))
        target = CAMERA if camera else found[0]
        end = self.tracked_end(s, e, [target])
        self.check_window(s, end, speeds=True)
        scene = self.scene
        positions = [scene.frozen(observer, k_obs, scene.point(target, k), k) for k in range(s, end + 1)]
        speeds = self.speeds(positions)
        answer = self.describe("dist", speeds, len(speeds), distractors="abs_spd")
        question = self._abs_question("abs_spd", s, end, observer, k_obs, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s,
            e,
            end,
            self.observer_record(observer, k_obs, False),
            [target],
            positions=np.array(positions).tolist(),
            speeds=speeds.tolist(),
        )
        return self.finish("abs_spd", question, answer, provenance)

    def abs_spd_comp(self) -> QA:
        observer, k_obs, s, e = self._abs_start()
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, end, speeds=True)
        scene = self.scene
        tracks = [[scene.frozen(observer, k_obs, scene.point(t, k), k) for k in range(s, end + 1)] for t in targets]
        speeds = [self.speeds(p) for p in tracks]
        answer = self.describe("comp", speeds, len(speeds[0]))
        question = self._abs_question("abs_spd_comp", s, end, observer, k_obs,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s,
            e,
            end,
            self.observer_record(observer, k_obs, False),
            targets,
            positions=[np.array(p).tolist() for p in tracks],
            speeds=[v.tolist() for v in speeds],
        )
        return self.finish("abs_spd_comp", question, answer, provenance)

    # --- the rel templates: the observer frame moves with the observer ---

    def _rel_question(self, qtype: str, s: int, end: int, observer, *targets: str) -> str:
        scene = self.scene
        return TEMPLATES[qtype].format(scene.times[s], scene.times[end], scene.descriptor(observer, s, "initial"),
                                       *targets)  # fmt: skip

    def _rel_observer(self, s: int):
        """Camera, or an agent detected on the window's first frame (rel_dis, rel_dir)."""
        return CAMERA if self.draws_camera_observer() else self.detect(s, 1, agents_only=True)[0]

    def rel_dis(self) -> QA:
        s, e = self.window()
        observer = self._rel_observer(s)  # named only: its track plays no part in the distances
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, end, speeds=False)
        distances = self._distances(targets, s, end)
        answer = self.describe("dist", distances, len(distances))
        question = self._rel_question("rel_dis", s, end, observer,
                                      *(self.scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), targets, distances=distances.tolist()
        )
        return self.finish("rel_dis", question, answer, provenance)

    def rel_dir(self) -> QA:
        s, e = self.window()
        observer = self._rel_observer(s)
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, [*targets, observer], [observer])
        self.check_window(s, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            seen = scene.view(observer, k, np.stack([scene.point(t, k) for t in targets]))
            vectors.append(seen[0] - seen[1])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._rel_question("rel_dir", s, end, observer,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), targets, vectors=vectors.tolist()
        )
        return self.finish("rel_dir", question, answer, provenance)

    def _rel_slots(self, n: int, s: int, agents_only: bool) -> tuple[Any, list]:
        """rel_ori, rel_spd, rel_spd_comp: slot 0 of an n-slot camera coin is the observer. Detections are drawn
        for every slot: agents for rel_ori; all objects for the speeds, whose detection 0 must be an agent even when
        the camera observes (as in the original)."""
        slots = self.camera_coin(n)
        found = self.detect(s, n, agents_only=agents_only)
        if not self.scene.objects[found[0]].is_agent:
            raise Failure(NOT_AGENT, self.scene.objects[found[0]].label)
        entities = [CAMERA if camera else obj for camera, obj in zip(slots, found)]
        return entities[0], entities[1:]

    def rel_ori(self) -> QA:
        s, e = self.window()
        observer, (target,) = self._rel_slots(2, s, agents_only=True)
        end = self.tracked_end(s, e, [observer, target], [observer, target])
        self.check_window(s, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            ends = scene.view(observer, k, scene.facing_points(target, k))
            vectors.append(ends[1] - ends[0])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._rel_question("rel_ori", s, end, observer, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), [target], vectors=vectors.tolist()
        )
        return self.finish("rel_ori", question, answer, provenance)

    def rel_spd(self) -> QA:
        s, e = self.window()
        observer, (target,) = self._rel_slots(2, s, agents_only=False)
        end = self.tracked_end(s, e, [observer, target], [observer])
        self.check_window(s, end, speeds=True)
        scene = self.scene
        positions = [scene.view(observer, k, scene.point(target, k)) for k in range(s, end + 1)]
        speeds = self.speeds(positions)
        answer = self.describe("dist", speeds, len(speeds), distractors="rel_spd")
        question = self._rel_question("rel_spd", s, end, observer, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s,
            e,
            end,
            self.observer_record(observer, s, True),
            [target],
            positions=np.array(positions).tolist(),
            speeds=speeds.tolist(),
        )
        return self.finish("rel_spd", question, answer, provenance)

    def rel_spd_comp(self) -> QA:
        s, e = self.window()
        observer, targets = self._rel_slots(3, s, agents_only=False)
        end = self.tracked_end(s, e, [observer, *targets], [observer])
        self.check_window(s, end, speeds=True)
        scene = self.scene
        tracks = [[scene.view(observer, k, scene.point(t, k)) for k in range(s, end + 1)] for t in targets]
        speeds = [self.speeds(p) for p in tracks]
        answer = self.describe("comp", speeds, len(speeds[0]))
        question = self._rel_question("rel_spd_comp", s, end, observer,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s,
            e,
            end,
            self.observer_record(observer, s, True),
            targets,
            positions=[np.array(p).tolist() for p in tracks],
            speeds=[v.tolist() for v in speeds],
        )
        return self.finish("rel_spd_comp", question, answer, provenance)

    # --- prediction: frames 29 -> 31 ---

    def _pred_answer(self, displacement: np.ndarray) -> Answer:
        motion = float(np.linalg.norm(displacement))
        if motion < self.options.min_pred_motion:
            raise Failure(NO_MOTION, f"{motion:.4g}")
        return self.describe("dir", displacement[None], 1)

    def _future_target(self, exclude=()):
        camera = self.target_is_camera()
        found = self.detect(PRED_FROM, 1, agents_only=False, exclude=exclude)
        target = CAMERA if camera else found[0]
        if target != CAMERA and not (self.scene.seen[target, PRED_FROM] and self.scene.seen[target, PRED_TO]):
            raise Failure(NOT_IN_FUTURE, self.scene.objects[target].label)
        return target

    def abs_dir_pred(self) -> QA:
        observer, k_obs = self.abs_observer()
        target = self._future_target(self.excluded(observer))
        scene = self.scene
        ends = [scene.frozen(observer, k_obs, scene.point(target, k), k) for k in (PRED_FROM, PRED_TO)]
        displacement = ends[1] - ends[0]
        answer = self._pred_answer(displacement)
        question = TEMPLATES["abs_dir_pred"].format(scene.descriptor(observer, k_obs, "plain"), scene.times[k_obs],
                                                    scene.descriptor(target, PRED_FROM, "final"))  # fmt: skip
        provenance = self._pred_provenance(self.observer_record(observer, k_obs, False), target, ends, displacement)
        return self.finish("abs_dir_pred", question, answer, provenance)

    def rel_dir_pred(self) -> QA:
        camera_observer = self.draws_camera_observer()
        target = self._future_target()
        scene = self.scene
        observer = CAMERA
        if not camera_observer:
            observer = self.detect(PRED_FROM, 1, agents_only=True)[0]
            if not scene.seen[observer, PRED_TO]:
                raise Failure(NOT_IN_FUTURE, scene.objects[observer].label)
            if scene.angles[observer][PRED_FROM] is None or scene.angles[observer][PRED_TO] is None:
                raise Failure(OBSERVER_ORIENTATION, "frames 29 and 31")
        if observer == target:
            raise Failure(SAME_ENTITY, CAMERA if observer == CAMERA else scene.objects[observer].label)
        if observer != CAMERA and target != CAMERA and _iou(scene.boxes[observer][PRED_FROM],
                                                             scene.boxes[target][PRED_FROM]) > 0.5:  # fmt: skip
            raise Failure(SAME_ENTITY, "boxes overlap with IoU > 0.5 on frame 29")
        ends = [scene.view(observer, k, scene.point(target, k)) for k in (PRED_FROM, PRED_TO)]
        displacement = ends[1] - ends[0]
        answer = self._pred_answer(displacement)
        question = TEMPLATES["rel_dir_pred"].format(scene.descriptor(observer, PRED_FROM, "final"),
                                                    scene.descriptor(target, PRED_FROM, "final"))  # fmt: skip
        provenance = self._pred_provenance(self.observer_record(observer, PRED_FROM, True), target, ends, displacement)
        return self.finish("rel_dir_pred", question, answer, provenance)

    # --- provenance ---

    def _provenance(self, s: int, e: int, end: int, observer: dict, targets: list, **series) -> dict[str, Any]:
        return {"window": self.window_record(s, e, end), "observer": observer,
                "targets": [self.scene.entity_record(t, s) for t in targets], "series": series}  # fmt: skip

    def _pred_provenance(self, observer: dict, target, ends: list, displacement: np.ndarray) -> dict[str, Any]:
        scene = self.scene
        return {
            "window": {"start": PRED_FROM, "end": PRED_TO, "frames": [int(scene.frames[PRED_FROM]),
                       int(scene.frames[PRED_TO])], "times": [scene.times[PRED_FROM], scene.times[PRED_TO]]},
            "observer": observer, "targets": [scene.entity_record(target, PRED_FROM)],
            "series": {"positions": np.array(ends).tolist(), "displacement": displacement.tolist()},
        }  # fmt: skip


def _iou(a: list[int], b: list[int]) -> float:
    """Box IoU with the original's +1 pixel convention (the stand-in for the mask IoU of rel_dir_pred)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0
