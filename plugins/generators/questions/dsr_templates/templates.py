"""The 12 DSR question templates: :class:`TemplateWriter` writes one question of a given type on a sampled scene.

The question strings, the type list and the draws follow the original template generator (TencentARC/DSR_Suite,
``data/qa_temp.py`` and ``data/template.py``; the paper, arXiv 2512.20557). An attempt draws a time window, an
observer and targets (the "camera coin": each slot becomes the camera with probability 0.5, the first camera ends
the draw), computes the quantity of its type in the observer's frame (frozen at ``t_obs`` for ``abs_*``, moving with
the observer for ``rel_*``) and describes it (:mod:`.describers`): a :class:`Draft`. A tracking failure is an object
not visible (or an agent without a known orientation) on a frame of the window, which truncates the window as in the
original. Every attempt that yields no question raises :class:`~.failures.Failure`.

The distractors come in two designs (``TemplateOptions.distractors``, ``docs/dsr_templates.md``):

* ``"original"``: descriptions of random series cut to a random length near the answer's (the original's rule), then
  the correct letter; their lengths and texts differ from true answers, so a blind baseline beats chance;
* ``"matched"`` (default): the answers of three more drafts of the same template drawn with the question's
  *setting* (window, observer and ``t_obs``) and their own targets. The four drafts are drawn alike, independently
  given the setting, and the whole set is rejected (and redrawn) unless the four answers differ and each covers the
  whole window; so the four options are exchangeable: whatever the question text does not say, nothing in the option
  texts (length, wording, how often a text is correct) tells the true answer from the others.
"""

from __future__ import annotations

from collections import Counter
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
    NOT_DISTINCT,
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


@dataclass(frozen=True)
class Setting:
    """What the four drafts of a matched question share: the window (``None`` for the prediction templates), the
    observer (:data:`~.sampling.CAMERA` or an object index) and ``t_obs`` (the abs templates)."""

    window: tuple[int, int] | None
    observer: Any
    k_obs: int | None = None


@dataclass
class Draft:
    """A question before its options: type, text, answer, provenance and the setting it was drawn in."""

    qtype: str
    question: str
    answer: Answer
    provenance: dict[str, Any]
    setting: Setting


class TemplateWriter:
    """Writes questions of one sampled scene; all randomness comes from ``rng``."""

    def __init__(self, scene: SampledScene, rng: np.random.Generator, options: TemplateOptions):
        self.scene = scene
        self.rng = rng
        self.options = options
        self.agents_with_cam = [CAMERA, *scene.agent_labels]
        self.windows = [(s, e) for s in range(N_QUESTION_FRAMES) for e in range(s + MIN_WINDOW_GAP, N_QUESTION_FRAMES)]
        #: what "near zero" (``small``) is multiplied by for speeds: per second, the original's threshold per sampled
        #: step becomes ``small`` per mean step (1 / its duration), so only the uneven gaps stop mattering
        self._cache: dict[tuple, Any] = {}  # entity positions in observer frames, computed once per writer
        self.speed_scale = 1.0
        if options.speed_unit == "second":
            self.speed_scale = (len(scene.seconds) - 1) / (scene.seconds[-1] - scene.seconds[0])

    def write(self, qtype: str) -> QA:
        """One question of ``qtype`` with the distractors of ``options.distractors``."""
        if self.options.distractors == "original":
            return self.finish(self.draft(qtype))
        return self.write_matched(qtype)

    def draft(self, qtype: str, setting: Setting | None = None) -> Draft:
        """A draft of ``qtype``: drawn freely, or in ``setting`` (then the objects must be tracked over the whole
        window, which is never truncated)."""
        return getattr(self, qtype)(setting)

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

    # --- entities seen from observers (each exact call computed once: the drafts of matched questions repeat them) ---

    def _once(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = compute()
        return value

    def frozen_point(self, observer, k_obs: int, entity, k: int) -> np.ndarray:
        """``entity``'s position at frame ``k`` in the observer's frame frozen at ``k_obs``."""
        scene = self.scene
        return self._once(("frozen", observer, k_obs, entity, k),
                          lambda: scene.frozen(observer, k_obs, scene.point(entity, k), k))  # fmt: skip

    def frozen_points(self, observer, k_obs: int, entities: tuple, k: int) -> np.ndarray:
        """The positions of ``entities`` at frame ``k`` (stacked) in the observer's frame frozen at ``k_obs``."""
        scene = self.scene
        stacked = lambda: np.stack([scene.point(t, k) for t in entities])  # noqa: E731
        return self._once(("frozen", observer, k_obs, entities, k), lambda: scene.frozen(observer, k_obs, stacked(), k))

    def view_point(self, observer, k: int, entity) -> np.ndarray:
        """``entity``'s position at frame ``k`` in the observer's frame at ``k``."""
        scene = self.scene
        return self._once(("view", observer, k, entity), lambda: scene.view(observer, k, scene.point(entity, k)))

    def view_points(self, observer, k: int, entities: tuple) -> np.ndarray:
        """The positions of ``entities`` at frame ``k`` (stacked) in the observer's frame at ``k``."""
        scene = self.scene
        return self._once(("view", observer, k, entities),
                          lambda: scene.view(observer, k, np.stack([scene.point(t, k) for t in entities])))  # fmt: skip

    def frozen_facing(self, observer, k_obs: int, entity, k: int) -> np.ndarray:
        scene = self.scene
        return self._once(("frozen-facing", observer, k_obs, entity, k),
                          lambda: scene.frozen(observer, k_obs, scene.facing_points(entity, k), k))  # fmt: skip

    def view_facing(self, observer, k: int, entity) -> np.ndarray:
        scene = self.scene
        return self._once(("view-facing", observer, k, entity),
                          lambda: scene.view(observer, k, scene.facing_points(entity, k)))  # fmt: skip

    # --- shared steps ---

    def check_window(self, s: int, e: int, end: int, speeds: bool) -> None:
        """dir, dis and ori need 4 frames; spd and spd_comp 4 speed samples (5 frames). A matched question's drafts
        need their whole window ``[s, e]`` (the four options describe the same times, which the question shows)."""
        have = end - s if speeds else end - s + 1
        if have < 4:
            raise Failure(LOST, f"{have} {'speed samples' if speeds else 'frames'} left")
        if end != e and self.options.distractors == "matched":
            raise Failure(LOST, f"lost after frame {end} of the window {s}-{e}")

    def describe(self, kind: str, series, n: int, distractors: str | None = None, speeds: bool = False) -> Answer:
        """Describe ``series`` (``dist``: one scalar series, ``comp``: two, ``dir``: vectors) with the thresholds;
        the near-zero threshold of speeds (``speeds``, and every ``comp``) is scaled by :attr:`speed_scale`."""
        o = self.options
        scale = self.speed_scale if speeds or kind == "comp" else 1.0

        def redescribe(eps: float, small: float, dir_eps: float) -> str:
            small = small * scale
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

    def finish(self, draft: Draft) -> QA:
        """The original's options: random distractors (:meth:`distractors`), then the correct letter."""
        pred = draft.qtype.endswith("_pred")
        self.check_answer(draft.answer, limit_items=not pred)
        wrong = self.distractors(draft.answer, pred)
        return self.assemble(draft, wrong)

    def assemble(self, draft: Draft, wrong: list[str]) -> QA:
        """The QA of ``draft`` with the three ``wrong`` texts around the correct letter (drawn here)."""
        correct = self.correct_letter()
        others = iter(wrong)
        options = {letter: draft.answer.text if letter == correct else next(others) for letter in LETTERS}
        o = self.options
        provenance = draft.provenance
        provenance.update(
            type=draft.qtype, question=draft.question, answer=draft.answer.text, correct=correct, options=options,
            thresholds={"ratio_epsilon": o.ratio_epsilon, "small": o.small, "direction_epsilon": o.direction_epsilon,
                        "scale": self.scene.scale},
        )  # fmt: skip
        return QA(draft.qtype, draft.question, draft.answer.text, options, correct, provenance)

    # --- matched distractors: the answers of the same template in the question's setting ---

    def valid_draft(self, qtype: str, setting: Setting | None) -> Draft:
        draft = self.draft(qtype, setting)
        self.check_answer(draft.answer, limit_items=not qtype.endswith("_pred"))
        return draft

    def write_matched(self, qtype: str) -> QA:
        """A question whose four options are four distinct true answers of the template in one setting of this video,
        the correct one drawn uniformly among them (see the module docstring).

        A free draft draws the setting (its window; with ``matched_share="window_observer"`` also its observer and
        ``t_obs``); more drafts in that setting are drawn until four distinct answers are found (at most
        ``matched_pool`` of them). One of the four, drawn uniformly, is the answer, and the question is one of the
        drafts that found it (drawn uniformly); the other three are the distractors. A setting with fewer than four
        distinct answers is dropped and another drawn, up to ``matched_tries``; the failure reported is then the most
        frequent one."""
        o, rng = self.options, self.rng
        failures: Counter = Counter()
        for _ in range(o.matched_tries):
            try:
                first = self.valid_draft(qtype, None)
            except Failure as failure:
                failures[failure.reason] += 1
                continue
            shared = first.setting
            setting = shared if o.matched_share == "window_observer" else Setting(shared.window, None)
            pool: dict[str, list[Draft]] = {first.answer.text: [first]}
            for _ in range(o.matched_pool):
                if len(pool) == 4:
                    break
                try:
                    draft = self.valid_draft(qtype, setting)
                except Failure as failure:
                    failures[failure.reason] += 1
                    continue
                pool.setdefault(draft.answer.text, []).append(draft)
            if len(pool) < 4:
                failures[NOT_DISTINCT] += 1
                continue
            texts = list(pool)  # in the order they were found
            answer = texts.pop(int(rng.integers(4)))
            question = pool[answer][int(rng.integers(len(pool[answer])))]
            question.provenance["distractor_sources"] = [
                {"answer": text, "observer": pool[text][0].provenance["observer"],
                 "targets": pool[text][0].provenance["targets"], "series": pool[text][0].provenance["series"]}
                for text in texts
            ]  # fmt: skip
            question.provenance["design"] = {"distractors": "matched", "share": o.matched_share,
                                             "speed_unit": o.speed_unit}  # fmt: skip
            return self.assemble(question, texts)
        reason, _ = failures.most_common(1)[0] if failures else (EXHAUSTED, 0)
        raise Failure(reason, f"no four distinct answers in {o.matched_tries} settings ({dict(failures)})")

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

    def speeds(self, positions: list[np.ndarray], s: int) -> np.ndarray:
        """Speeds between consecutive sampled frames from ``s`` on: distance per second of the track's timestamps
        (``speed_unit="second"``), or per sampled step as the original (``"step"``), which the uneven gaps of
        ``round(linspace(...))`` sampling make jump (2 or 3 frames apart: a third more distance for the same speed)."""
        p = np.asarray(positions)
        distances = np.linalg.norm(p[1:] - p[:-1], axis=1)
        if self.options.speed_unit == "step":
            return distances
        seconds = np.asarray(self.scene.seconds[s : s + len(p)])
        return distances / np.diff(seconds)

    # --- the abs templates: the observer frame is frozen at t_obs ---

    def _abs_start(self, setting: Setting | None):
        if setting is not None and setting.observer is not None:
            return setting.observer, setting.k_obs, *setting.window
        observer, k_obs = self.abs_observer()
        s, e = setting.window if setting is not None else self.window()
        return observer, k_obs, s, e

    def _abs_question(self, qtype: str, s: int, end: int, observer, k_obs: int, *targets: str) -> str:
        scene = self.scene
        return TEMPLATES[qtype].format(scene.times[s], scene.times[end], scene.descriptor(observer, k_obs, "plain"),
                                       scene.times[k_obs], *targets)  # fmt: skip

    def _two_targets(self, k: int, exclude) -> list:
        slots = self.camera_coin(2)
        found = self.detect(k, 2, agents_only=False, exclude=exclude)
        return [CAMERA if camera else obj for camera, obj in zip(slots, found)]

    def abs_dis(self, setting: Setting | None = None) -> Draft:
        observer, k_obs, s, e = self._abs_start(setting)
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, e, end, speeds=False)
        distances = self._distances(targets, s, end)
        answer = self.describe("dist", distances, len(distances))
        question = self._abs_question("abs_dis", s, end, observer, k_obs,
                                      *(self.scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), targets, distances=distances.tolist()
        )
        return Draft("abs_dis", question, answer, provenance, Setting((s, e), observer, k_obs))

    def _distances(self, targets: list, s: int, end: int) -> np.ndarray:
        """Distance between the two targets per frame (frame-invariant: abs and rel compute the same numbers)."""
        a, b = targets
        return np.array([float(np.linalg.norm(self.scene.point(a, k) - self.scene.point(b, k)))
                         for k in range(s, end + 1)])  # fmt: skip

    def abs_dir(self, setting: Setting | None = None) -> Draft:
        observer, k_obs, s, e = self._abs_start(setting)
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, e, end, speeds=False)
        scene = self.scene
        vectors = [self.frozen_points(observer, k_obs, tuple(targets), k) for k in range(s, end + 1)]
        vectors = np.array([v[0] - v[1] for v in vectors])
        answer = self.describe("dir", vectors, len(vectors))
        question = self._abs_question("abs_dir", s, end, observer, k_obs,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), targets, vectors=vectors.tolist()
        )
        return Draft("abs_dir", question, answer, provenance, Setting((s, e), observer, k_obs))

    def abs_ori(self, setting: Setting | None = None) -> Draft:
        observer, k_obs, s, e = self._abs_start(setting)
        camera = self.target_is_camera()
        found = self.detect(s, 1, agents_only=True, exclude=self.excluded(observer))
        target = CAMERA if camera else found[0]
        end = self.tracked_end(s, e, [target], [target])
        self.check_window(s, e, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            ends = self.frozen_facing(observer, k_obs, target, k)
            vectors.append(ends[1] - ends[0])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._abs_question("abs_ori", s, end, observer, k_obs, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, k_obs, False), [target], vectors=vectors.tolist()
        )
        return Draft("abs_ori", question, answer, provenance, Setting((s, e), observer, k_obs))

    def abs_spd(self, setting: Setting | None = None) -> Draft:
        observer, k_obs, s, e = self._abs_start(setting)
        camera = self.target_is_camera()
        found = self.detect(s, 1, agents_only=True, exclude=self.excluded(observer))
        target = CAMERA if camera else found[0]
        end = self.tracked_end(s, e, [target])
        self.check_window(s, e, end, speeds=True)
        scene = self.scene
        positions = [self.frozen_point(observer, k_obs, target, k) for k in range(s, end + 1)]
        speeds = self.speeds(positions, s)
        answer = self.describe("dist", speeds, len(speeds), distractors="abs_spd", speeds=True)
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
        return Draft("abs_spd", question, answer, provenance, Setting((s, e), observer, k_obs))

    def abs_spd_comp(self, setting: Setting | None = None) -> Draft:
        observer, k_obs, s, e = self._abs_start(setting)
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, e, end, speeds=True)
        scene = self.scene
        tracks = [[self.frozen_point(observer, k_obs, t, k) for k in range(s, end + 1)] for t in targets]
        speeds = [self.speeds(p, s) for p in tracks]
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
        return Draft("abs_spd_comp", question, answer, provenance, Setting((s, e), observer, k_obs))

    # --- the rel templates: the observer frame moves with the observer ---

    def _rel_question(self, qtype: str, s: int, end: int, observer, *targets: str) -> str:
        scene = self.scene
        return TEMPLATES[qtype].format(scene.times[s], scene.times[end], scene.descriptor(observer, s, "initial"),
                                       *targets)  # fmt: skip

    def _rel_observer(self, s: int):
        """Camera, or an agent detected on the window's first frame (rel_dis, rel_dir)."""
        return CAMERA if self.draws_camera_observer() else self.detect(s, 1, agents_only=True)[0]

    def _rel_start(self, setting: Setting | None) -> tuple[int, int, Any]:
        """rel_dis, rel_dir: the window, then the observer (both given by ``setting``)."""
        s, e = setting.window if setting is not None else self.window()
        if setting is not None and setting.observer is not None:
            return s, e, setting.observer
        return s, e, self._rel_observer(s)

    def rel_dis(self, setting: Setting | None = None) -> Draft:
        s, e, observer = self._rel_start(setting)  # the observer is named only: it plays no part in the distances
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, targets)
        self.check_window(s, e, end, speeds=False)
        distances = self._distances(targets, s, end)
        answer = self.describe("dist", distances, len(distances))
        question = self._rel_question("rel_dis", s, end, observer,
                                      *(self.scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), targets, distances=distances.tolist()
        )
        return Draft("rel_dis", question, answer, provenance, Setting((s, e), observer))

    def rel_dir(self, setting: Setting | None = None) -> Draft:
        s, e, observer = self._rel_start(setting)
        targets = self._two_targets(s, self.excluded(observer))
        end = self.tracked_end(s, e, [*targets, observer], [observer])
        self.check_window(s, e, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            seen = self.view_points(observer, k, tuple(targets))
            vectors.append(seen[0] - seen[1])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._rel_question("rel_dir", s, end, observer,
                                      *(scene.descriptor(t, s, "initial") for t in targets))  # fmt: skip
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), targets, vectors=vectors.tolist()
        )
        return Draft("rel_dir", question, answer, provenance, Setting((s, e), observer))

    def _rel_slots(self, n: int, setting: Setting | None, agents_only: bool) -> tuple[int, int, Any, list]:
        """rel_ori, rel_spd, rel_spd_comp: the window, then slot 0 of an n-slot camera coin is the observer.
        Detections are drawn for every slot: agents for rel_ori; all objects for the speeds, whose detection 0 must
        be an agent even when the camera observes (as in the original).

        In a given setting the targets are drawn as the free draw draws them given its observer: after a camera
        observer the coin has ended and detection 0 is drawn (and checked) all the same; after an agent observer
        (detection 0) the coin goes on for the other slots and the other detections exclude it."""
        if setting is None or setting.observer is None:
            s, e = setting.window if setting is not None else self.window()
            slots = self.camera_coin(n)
            found = self.detect(s, n, agents_only=agents_only)
        else:
            (s, e), observer = setting.window, setting.observer
            if observer == CAMERA:
                slots = [True] + [False] * (n - 1)
                found = self.detect(s, n, agents_only=agents_only)
            else:
                slots = [False, *self.camera_coin(n - 1)]
                found = [observer, *self.detect(s, n - 1, agents_only=agents_only, exclude=(observer,))]
        if not self.scene.objects[found[0]].is_agent:
            raise Failure(NOT_AGENT, self.scene.objects[found[0]].label)
        entities = [CAMERA if camera else obj for camera, obj in zip(slots, found)]
        return s, e, entities[0], entities[1:]

    def rel_ori(self, setting: Setting | None = None) -> Draft:
        s, e, observer, (target,) = self._rel_slots(2, setting, agents_only=True)
        end = self.tracked_end(s, e, [observer, target], [observer, target])
        self.check_window(s, e, end, speeds=False)
        scene = self.scene
        vectors = []
        for k in range(s, end + 1):
            ends = self.view_facing(observer, k, target)
            vectors.append(ends[1] - ends[0])
        vectors = np.array(vectors)
        answer = self.describe("dir", vectors, len(vectors))
        question = self._rel_question("rel_ori", s, end, observer, scene.descriptor(target, s, "initial"))
        provenance = self._provenance(
            s, e, end, self.observer_record(observer, s, True), [target], vectors=vectors.tolist()
        )
        return Draft("rel_ori", question, answer, provenance, Setting((s, e), observer))

    def rel_spd(self, setting: Setting | None = None) -> Draft:
        s, e, observer, (target,) = self._rel_slots(2, setting, agents_only=False)
        end = self.tracked_end(s, e, [observer, target], [observer])
        self.check_window(s, e, end, speeds=True)
        scene = self.scene
        positions = [self.view_point(observer, k, target) for k in range(s, end + 1)]
        speeds = self.speeds(positions, s)
        answer = self.describe("dist", speeds, len(speeds), distractors="rel_spd", speeds=True)
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
        return Draft("rel_spd", question, answer, provenance, Setting((s, e), observer))

    def rel_spd_comp(self, setting: Setting | None = None) -> Draft:
        s, e, observer, targets = self._rel_slots(3, setting, agents_only=False)
        end = self.tracked_end(s, e, [observer, *targets], [observer])
        self.check_window(s, e, end, speeds=True)
        scene = self.scene
        tracks = [[self.view_point(observer, k, t) for k in range(s, end + 1)] for t in targets]
        speeds = [self.speeds(p, s) for p in tracks]
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
        return Draft("rel_spd_comp", question, answer, provenance, Setting((s, e), observer))

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

    def abs_dir_pred(self, setting: Setting | None = None) -> Draft:
        shared = setting is not None and setting.observer is not None
        observer, k_obs = (setting.observer, setting.k_obs) if shared else self.abs_observer()
        target = self._future_target(self.excluded(observer))
        scene = self.scene
        ends = [scene.frozen(observer, k_obs, scene.point(target, k), k) for k in (PRED_FROM, PRED_TO)]
        displacement = ends[1] - ends[0]
        answer = self._pred_answer(displacement)
        question = TEMPLATES["abs_dir_pred"].format(scene.descriptor(observer, k_obs, "plain"), scene.times[k_obs],
                                                    scene.descriptor(target, PRED_FROM, "final"))  # fmt: skip
        provenance = self._pred_provenance(self.observer_record(observer, k_obs, False), target, ends, displacement)
        return Draft("abs_dir_pred", question, answer, provenance, Setting(None, observer, k_obs))

    def rel_dir_pred(self, setting: Setting | None = None) -> Draft:
        """The free draw: camera or not, the target, then an agent observer; in a given setting only the target is
        drawn, and checked against the observer as in the free draw."""
        shared = setting is not None and setting.observer is not None
        camera_observer = setting.observer == CAMERA if shared else self.draws_camera_observer()
        target = self._future_target()
        scene = self.scene
        observer = CAMERA
        if shared:
            observer = setting.observer
        elif not camera_observer:
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
        return Draft("rel_dir_pred", question, answer, provenance, Setting(None, observer))

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
