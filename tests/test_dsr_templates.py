"""The DSR template generator (``dsr-templates``): describers on reference outputs of the original functions (the
template generator of TencentARC/DSR_Suite, ``data/qa_temp.py``; arXiv 2512.20557), each template on hand-built
tracks whose answer follows from the geometry by hand, distractor properties, determinism, yield
statistics, the output layouts and the command line.

Scenes use a world in metres with z up and 32 frames at 10 fps, so the 32 sampled frames are the track's frames and
frame k is shown as ``k/10`` seconds. The camera of most scenes stands at (0, -6, 1.5) looking along +y: image right
is world +x, its self frame has forward = +y, left = -x, up = +z. An agent's yaw is the angle of its facing direction
from world +x towards +y; its left is ``up x forward``.
"""

import csv
import json
import math
from collections import Counter

import numpy as np
import pytest

from vdpm_harness.geometry import look_at
from vdpm_harness.plugins import get_host
from vdpm_harness.scene import ObjectTrack, SceneTrack
from vdpm_harness.video import probe, write_video
from vdpm_harness_plugins.generators.questions.dsr_templates import failures
from vdpm_harness_plugins.generators.questions.dsr_templates import qa as dsr_qa
from vdpm_harness_plugins.generators.questions.dsr_templates.describers import (
    DescriberError,
    describe_dir,
    describe_dist_runs,
    describe_spd_comp,
    direction_text,
    n_items,
    truncate_items,
)
from vdpm_harness_plugins.generators.questions.dsr_templates.failures import Failure
from vdpm_harness_plugins.generators.questions.dsr_templates.generator import DSRTemplates
from vdpm_harness_plugins.generators.questions.dsr_templates.options import TemplateOptions
from vdpm_harness_plugins.generators.questions.dsr_templates.qa import generate_video
from vdpm_harness_plugins.generators.questions.dsr_templates.sampling import SampledScene
from vdpm_harness_plugins.generators.questions.dsr_templates.templates import (
    QUESTION_TYPES,
    TEMPLATES,
    Answer,
    Draft,
    Setting,
    TemplateWriter,
)

from .conftest import run_cli

T, FPS = 32, 10.0
#: The original's design: random distractors (whose draws the scripted writers below pin) and per-step speeds.
ORIGINAL = {"distractors": "original", "speed_unit": "step"}
K = np.array([[200.0, 0, 160], [0, 200.0, 120], [0, 0, 1]])
CAMERA_POSE = look_at([0, -6, 1.5], [0, 0, 1.5])


# --- scene building -------------------------------------------------------------------------------------------------


def heading(yaw_degrees: float) -> np.ndarray:
    """Object-to-world rotation of an upright object facing yaw (columns: forward, left, up)."""
    a = math.radians(yaw_degrees)
    forward = np.array([math.cos(a), math.sin(a), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    return np.stack([forward, np.cross(up, forward), up], axis=1)


def obj(oid, positions, agent=False, yaw=None, box=(100, 80, 140, 160), visible=None, label=None):
    """An object; ``positions`` (T, 3) or a function of the frame; ``yaw`` a number or a function of the frame."""
    centroids = np.array([positions(k) for k in range(T)] if callable(positions) else positions, float)
    boxes = np.array([box(k) if callable(box) else box for k in range(T)], float)
    orientations = None
    if agent:
        orientations = np.stack([heading(yaw(k) if callable(yaw) else yaw) for k in range(T)])
    shown = np.ones(T, bool) if visible is None else np.array([visible(k) for k in range(T)])
    return ObjectTrack(label=label or oid, is_agent=agent, object_id=oid, centroids=centroids, boxes=boxes,
                       visible=shown, orientations=orientations)  # fmt: skip


def scene(*objects, poses=None) -> SceneTrack:
    poses = np.stack([poses(k) for k in range(T)]) if callable(poses) else np.repeat(CAMERA_POSE[None], T, axis=0)
    return SceneTrack(timestamps=np.arange(T) / FPS, camera_to_world=poses, intrinsics=K, image_size=(1280, 720),
                      objects=list(objects), fps=FPS).validate()  # fmt: skip


class PinnedWriter(TemplateWriter):
    """A writer whose random draws are scripted, so one configuration of a template can be checked by hand."""

    def __init__(self, track, window=(0, 29), k_obs=0, camera_observer=True, coin=(True, False), target_camera=False,
                 picks=(), options=None):  # fmt: skip
        options = options or TemplateOptions(**ORIGINAL)
        super().__init__(SampledScene(track, options.scale), np.random.default_rng(0), options)
        self.script = dict(window=window, k_obs=k_obs, camera_observer=camera_observer, coin=list(coin),
                           target_camera=target_camera)  # fmt: skip
        self.picks = [list(p) for p in picks]
        self.index = {o.object_id: i for i, o in enumerate(track.objects)}

    def window(self):
        return self.script["window"]

    def observer_frame(self):
        return self.script["k_obs"]

    def draws_camera_observer(self):
        return self.script["camera_observer"]

    def camera_coin(self, n):
        return (self.script["coin"] + [False] * n)[:n]

    def target_is_camera(self):
        return self.script["target_camera"]

    def pick(self, candidates, n):
        wanted = [self.index[oid] for oid in self.picks.pop(0)]
        assert len(wanted) == n and set(wanted) <= set(candidates), (wanted, candidates)
        return wanted


def ask(track, qtype, **script):
    qa = PinnedWriter(track, **script).write(qtype)
    # the answer is the option at the correct letter, and no distractor repeats it
    assert qa.options[qa.correct] == qa.answer
    assert len(set(qa.options.values())) == 4
    return qa


# --- describers: reference outputs of the original functions ------------------------------------------------------


def test_describe_dist_runs_reference_outputs():
    """Two reference outputs of the original ``describe_dist_runs``."""
    assert describe_dist_runs([1, 1.05, 1.1, 1.5, 2, 2.1, 2, 1, 0.5]) == (
        "(1) Keep nearly constant and then become larger. (2) Become larger. "
        "(3) Keep nearly constant and then become smaller. (4) Become smaller."
    )
    assert describe_dist_runs([1, 0.7, 0.4, 0.05, 0.06, 0.5]) == (
        "(1) Become smaller. (2) Keep nearly constant and then become larger."
    )


def test_describe_dist_runs_zero_values_are_repaired_not_dropped():
    """The original divides by zero (a RuntimeWarning that drops the question) on a zero sample, even where its own
    "both below 0.1" test applies; here 0/0 is steady and x/0 is a ratio of infinity (docs/dsr_templates.md)."""
    assert describe_dist_runs([0, 0, 0, 0]) == "(1) Keep nearly constant."
    assert describe_dist_runs([0, 1, 2]) == "(1) Become larger."
    assert describe_dist_runs([0, 0, 0, 0, 0.5, 0.5]) == (
        "(1) Keep nearly constant and then become larger. (2) Keep nearly constant."
    )


def test_describe_spd_comp_reference_and_single_runs():
    """A reference output of the original ``describe_spd_comp``, and the three single-run texts ("The latter is
    always faster." has no "(1)")."""
    assert describe_spd_comp([1, 1, 0.05, 0.05], [0.5, 1, 0.05, 0.5]) == (
        "(1) The former is faster. (2) Nearly the same. (3) The latter is faster."
    )
    assert describe_spd_comp([2, 2], [1, 1]) == "(1) The former is always faster."
    assert describe_spd_comp([1, 0.05], [1.1, 0.01]) == "(1) Their speed is nearly the same."
    assert describe_spd_comp([1, 1], [2, 2]) == "The latter is always faster."
    assert describe_spd_comp([1, 1], [2, 2], number_every_item=True) == "(1) The latter is always faster."


def test_describe_dir_reference_and_worked_examples():
    """A reference output of the original ``describe_dir``, the option strings of the worked examples below and the
    26 possible codes."""
    assert (
        describe_dir([[1, 0.5, 0], [1, 0.6, 0.1], [-1, 0.2, 0], [0, 0, -1]]) == "(1) Front|Left. (2) Behind. (3) Below."
    )
    assert describe_dir([[1, -1, 0], [0, -1, 0]]) == "(1) Front|Right. (2) Right."
    assert describe_dir([[-1, 1, 0]]) == "(1) Behind|Left."
    codes = {f"{x}{y}{z}" for x in "012" for y in "012" for z in "012"} - {"111"}
    texts = {direction_text(c) for c in codes}
    assert len(texts) == 26 and "" not in texts and direction_text("210") == "Front|Below"
    with pytest.raises(DescriberError, match="no direction"):
        describe_dir([[0, 0, 0]])


def test_distractor_length_rule():
    """The original's distractor length: with W items available and an answer of L items, the kept length is
    uniform over [1 if W <= L-3 else max(1, L-3), min(L+3, W)]."""
    rng = np.random.default_rng(0)
    ten = " ".join(f"({k}) Become larger." for k in range(1, 11))
    for answer_items, expected in [(1, range(1, 5)), (6, range(3, 10)), (14, range(1, 11))]:
        lengths = {n_items(truncate_items(ten, answer_items, rng)) for _ in range(400)}
        assert lengths == set(expected), answer_items


def test_question_strings_and_descriptors():
    """A worked example of the abs_dir template, built and a box given in floats (truncated to ints)."""
    person = obj("person", np.zeros((T, 3)), agent=True, yaw=-90, box=(412.7, 130.2, 598.9, 702.5))
    dog = obj("dog", np.ones((T, 3)), box=(80, 400, 260, 610))
    s = SampledScene(scene(person, dog))
    question = TEMPLATES["abs_dir"].format(2.3, 9.8, s.descriptor(0, 3, "plain"), 5.1, "camera",
                                           s.descriptor(1, 3, "initial"))  # fmt: skip
    assert question == (
        "Between 2.3s and 9.8s, from the perspective of person with bounding box coordinates [412,130,598,702] at "
        "5.1s, how does the direction of camera to dog with initial bounding box coordinates [80,400,260,610] change?"
    )
    assert s.descriptor(1, 29, "final") == "dog with final bounding box coordinates [80,400,260,610]"
    assert len(TEMPLATES) == 12 and list(TEMPLATES) == sorted(TEMPLATES, key=QUESTION_TYPES.index)


def test_boxes_are_clamped_not_wrapped():
    """The original casts boxes to uint32, so -3 becomes 4294967293; here they are clamped to the image first."""
    s = SampledScene(scene(obj("ball", np.ones((T, 3)), box=(-3.2, -1, 1300.5, 800))))
    assert s.boxes[0][0] == [0, 0, 1280, 720]


def test_orient_anything_angles_are_derived_from_the_rotation():
    """Orient Anything's angles as the original reads them: azimuth 0 faces the camera, 270 faces image right; the
    agent frame rebuilt from the angles maps the agent's forward axis back to its world direction."""
    person = obj("person", [[0, 2, 0.9]] * T, agent=True, yaw=lambda k: -90 if k < 16 else 0)
    s = SampledScene(scene(person))
    np.testing.assert_allclose(s.angles[0][0], (0, 0, 0), atol=1e-9)
    np.testing.assert_allclose(s.angles[0][20], (0, 270, 0), atol=1e-9)
    ends = s.facing_points(0, 20)
    np.testing.assert_allclose(ends[1] - ends[0], [1, 0, 0], atol=1e-9)  # world +x is camera +x here


# --- scenes with known answers ------------------------------------------------------------------------------------


def car_scene():
    """A car driving along world +x (image right) at 0.2 m/frame and a person standing at (2, 0) facing the camera
    (so the person's left is world +x)."""
    car = obj("car", lambda k: [-2 + 0.2 * k, 3, 0.5], box=lambda k: (100 + 2 * k, 80, 140 + 2 * k, 160))
    person = obj("person", [[2, 0, 0.9]] * T, agent=True, yaw=-90, box=(200, 90, 220, 150))
    return scene(car, person)


def test_abs_dir_pred_object_moving_right():
    """Frames 29 -> 31: the car moves along the camera's x axis: "Right" for the camera, "Left" for the person facing
    the camera. The target is described by its box on frame 29."""
    track = car_scene()
    qa = ask(track, "abs_dir_pred", camera_observer=True, k_obs=10, target_camera=False, picks=[["car"]])
    assert qa.answer == "(1) Right."
    assert qa.question == ("From the perspective of camera at 1.0s, predict the moving direction of car with final "
                           "bounding box coordinates [158,80,198,160]")  # fmt: skip
    qa = ask(track, "abs_dir_pred", camera_observer=False, k_obs=5, target_camera=False,
             picks=[["person"], ["car"]])  # fmt: skip
    assert qa.answer == "(1) Left."
    assert qa.question.startswith("From the perspective of person with bounding box coordinates [200,90,220,150] at "
                                  "0.5s, predict")  # fmt: skip
    assert qa.provenance["observer"]["angles"] == pytest.approx([0, 0, 0], abs=1e-9)


def test_rel_dir_pred_in_an_agents_frame_and_the_same_entity():
    """The person (facing the camera) sees the car move to its left; camera observing camera is skipped; a static
    camera has no direction of motion (the original's division by zero)."""
    track = car_scene()
    qa = ask(track, "rel_dir_pred", camera_observer=False, target_camera=False, picks=[["car"], ["person"]])
    assert qa.answer == "(1) Left."
    assert qa.question == (
        "Following the perspective of person with final bounding box coordinates [200,90,220,150], "
        "predict the moving direction of car with final bounding box coordinates [158,80,198,160]"
    )
    with pytest.raises(Failure) as failure:
        PinnedWriter(track, camera_observer=True, target_camera=True, picks=[["car"]]).write("rel_dir_pred")
    assert failure.value.reason == failures.SAME_ENTITY
    with pytest.raises(Failure) as failure:
        PinnedWriter(track, camera_observer=True, target_camera=True, picks=[["car"]]).write("abs_dir_pred")
    assert failure.value.reason == failures.DEGENERATE


def test_spec_prediction_example():
    """A worked example: a car coming towards the camera and moving to its left, box [10,220,300,400] on frame
    29 -> "(1) Behind|Left."."""
    car = obj("car", lambda k: [2 - 0.2 * k, 12 - 0.2 * k, 0.5], box=(10, 220, 300, 400))
    person = obj("person", [[-3, 3, 0.9]] * T, agent=True, yaw=-90)
    qa = ask(scene(car, person), "rel_dir_pred", camera_observer=True, target_camera=False, picks=[["car"]])
    assert qa.question == ("Following the perspective of camera, predict the moving direction of car with final "
                           "bounding box coordinates [10,220,300,400]")  # fmt: skip
    assert qa.answer == "(1) Behind|Left."


def pan_scene():
    """A camera at (0, 0, 1.5) turning left by 3 degrees per frame (from looking along +y), a box 3 m ahead of its
    first view and a person to the side."""

    def pose(k):
        a = math.radians(3 * k)
        return look_at([0, 0, 1.5], [-math.sin(a), math.cos(a), 1.5])

    box = obj("box", [[0, 3, 1.5]] * T)
    person = obj("person", [[-3, 3, 0.9]] * T, agent=True, yaw=-90)
    return scene(box, person, poses=pose)


def test_rel_dir_follows_a_turning_camera():
    """Box minus camera in the camera's self frame at frame k is (cos 3k, -sin 3k): Front while sin < 0.3 (k <= 5),
    Front|Right while cos > 0.3 too (k <= 24), then Right (dead zone 0.3)."""
    qa = ask(pan_scene(), "rel_dir", window=(0, 29), camera_observer=True, coin=(False, True),
             picks=[["box", "person"]])  # fmt: skip
    assert qa.answer == "(1) Front. (2) Front|Right. (3) Right."
    assert qa.question == ("Between 0.0s and 2.9s, following the perspective of camera, how does the direction of box "
                           "with initial bounding box coordinates [100,80,140,160] to camera change?")  # fmt: skip


def test_abs_dir_is_frozen_at_the_observer_time():
    """Same scene, abs: the camera only turns, so box minus camera is one world vector, seen in the frame of t_obs:
    Front at frame 0, Front|Right at frame 10 (30 degrees: (0.87, -0.5))."""
    track = pan_scene()
    for k_obs, expected in [(0, "(1) Front."), (10, "(1) Front|Right.")]:
        qa = ask(track, "abs_dir", window=(0, 29), k_obs=k_obs, camera_observer=True, coin=(False, True),
                 picks=[["box", "person"]])  # fmt: skip
        assert qa.answer == expected
        assert f"from the perspective of camera at {k_obs / 10:.1f}s," in qa.question


def approach_scene():
    """The camera drives towards a box at 0.3 m/frame: distance 10 - 0.3k."""
    box = obj("box", [[0, 0, 1.5]] * T)
    person = obj("person", [[-3, 0, 0.9]] * T, agent=True, yaw=-90, box=(20, 90, 40, 150))
    return scene(box, person, poses=lambda k: look_at([0, -10 + 0.3 * k, 1.5], [0, 1, 1.5]))


def test_distance_with_a_moving_camera():
    """Frames 0-10: d = 10, 9.7, ..., 7.0. d/d0 first drops below 0.8 at frame 7 (7.9): "keep constant then smaller";
    the next run starts at 7.9 and stays within 20% to the end. abs and rel give the same numbers (distances do not
    depend on the frame)."""
    expected = "(1) Keep nearly constant and then become smaller. (2) Keep nearly constant."
    track = approach_scene()
    qa = ask(track, "abs_dis", window=(0, 10), k_obs=20, coin=(True, False), picks=[["person", "box"]])
    assert qa.answer == expected
    np.testing.assert_allclose(qa.provenance["series"]["distances"], 10 - 0.3 * np.arange(11))
    qa = ask(track, "rel_dis", window=(0, 10), camera_observer=False, coin=(True, False),
             picks=[["person"], ["person", "box"]])  # fmt: skip
    assert qa.answer == expected
    assert qa.question == ("Between 0.0s and 1.0s, following the perspective of person with initial bounding box "
                           "coordinates [20,90,40,150], how does the distance between camera and box with initial "
                           "bounding box coordinates [100,80,140,160] change?")  # fmt: skip


def test_abs_speed_of_a_moving_camera():
    """The camera moves 0.3 m per frame in every fixed frame: "Keep nearly constant"."""
    qa = ask(approach_scene(), "abs_spd", window=(2, 12), k_obs=0, target_camera=True, picks=[["person"]])
    assert qa.answer == "(1) Keep nearly constant."
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], [0.3] * 10)


def slowing_scene():
    """A dog walking along +x whose step shrinks by 0.7 per frame (1, 0.7, 0.49, ...), a person and a box standing."""
    dog = obj("dog", lambda k: [-3 + sum(0.7**j for j in range(k)), 2, 0.5], agent=True, yaw=0)
    person = obj("person", [[2, 0, 0.9]] * T, agent=True, yaw=-90)
    box = obj("box", [[-2, 4, 0.3]] * T)
    return scene(dog, person, box)


def test_speed_of_a_decelerating_object():
    """Speeds 1, .7, .49, .343, .24 over frames 0-5: consecutive ratios 0.7 < 0.8 -> "Become smaller". Over frames
    0-10 the speed falls below 0.1 at sample 7 (0.082): the run ends there and the rest is near zero."""
    track = slowing_scene()
    qa = ask(track, "abs_spd", window=(0, 5), target_camera=False, picks=[["dog"]])
    assert qa.answer == "(1) Become smaller."
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], 0.7 ** np.arange(5))
    qa = ask(track, "abs_spd", window=(0, 10), target_camera=False, picks=[["dog"]])
    assert qa.answer == "(1) Become smaller. (2) Keep nearly constant."
    qa = ask(track, "rel_spd", window=(0, 5), coin=(True, False), picks=[["person", "dog"]])
    assert qa.answer == "(1) Become smaller."
    assert "following the perspective of camera, how does the speed of dog with" in qa.question


def test_speed_comparisons():
    """The dog moves, the person and the box stand: the former (dog) is always faster; in the person's frame the box
    (former) stands and the dog (latter) moves: "The latter is always faster." without "(1)" as in the original."""
    track = slowing_scene()
    qa = ask(track, "abs_spd_comp", window=(0, 5), coin=(False, False), picks=[["dog", "person"]])
    assert qa.answer == "(1) The former is always faster."
    qa = ask(track, "rel_spd_comp", window=(0, 5), coin=(False, False, False), picks=[["person", "box", "dog"]])
    assert qa.answer == "The latter is always faster."
    assert qa.question.startswith("Between 0.0s and 0.5s, following the perspective of person with initial bounding")
    numbered = ask(track, "rel_spd_comp", window=(0, 5), coin=(False, False, False), picks=[["person", "box", "dog"]],
                   options=TemplateOptions(number_every_item=True, **ORIGINAL))  # fmt: skip
    assert numbered.answer == "(1) The latter is always faster."


def test_rel_speed_needs_an_agent_as_detection_zero():
    """rel_spd draws its observer from all objects and drops the question when detection 0 is not an agent, even
    when the camera observes (as the original)."""
    with pytest.raises(Failure) as failure:
        PinnedWriter(slowing_scene(), window=(0, 5), coin=(True, False), picks=[["box", "dog"]]).write("rel_spd")
    assert failure.value.reason == failures.NOT_AGENT


def turn_scene():
    """A person at (0, 2) facing the camera, turning to its left by 7 degrees per frame from frame 10 to 22 (then
    facing world +x); a dog at (4, 2) facing +x; a box at (-4, 2)."""
    phi = lambda k: min(90, max(0, 7 * (k - 9)))  # noqa: E731
    person = obj("person", [[0, 2, 0.9]] * T, agent=True, yaw=lambda k: -90 + phi(k), box=(150, 60, 170, 140))
    dog = obj("dog", [[4, 2, 0.9]] * T, agent=True, yaw=0, box=(250, 100, 290, 130))
    box = obj("box", [[-4, 2, 0.9]] * T)
    return scene(person, dog, box)


def test_orientation_of_an_agent_facing_the_camera_then_turning():
    """Facing (sin phi, -cos phi) in the camera's self frame is (-cos phi, -sin phi): Behind up to frame 11 (14 deg),
    Behind|Right to frame 19 (70 deg), Right from frame 20 (77 deg)."""
    qa = ask(turn_scene(), "abs_ori", window=(0, 29), k_obs=0, target_camera=False, picks=[["person"]])
    assert qa.answer == "(1) Behind. (2) Behind|Right. (3) Right."


def test_orientation_in_another_agents_frame():
    """The dog faces +x (its left is +y): the person's facing (sin phi, -cos phi) is Right, then Front|Right, then
    Front; the camera's optical axis (+y) is Left for the dog."""
    track = turn_scene()
    qa = ask(track, "rel_ori", window=(0, 29), coin=(False, False), picks=[["dog", "person"]])
    assert qa.answer == "(1) Right. (2) Front|Right. (3) Front."
    qa = ask(track, "rel_ori", window=(0, 29), coin=(False, True), picks=[["dog", "person"]])
    assert qa.answer == "(1) Left."
    assert qa.question.endswith("how does the orientation of camera change?")


def test_direction_in_a_turning_agents_frame():
    """Camera minus person is (0, -8, 0.6): in the person's frame (8 cos phi, -8 sin phi, 0.6) / 8.02, so Front,
    Front|Right, Right as the person turns (rel); frozen at frame 25 (facing +x) it is Right throughout (abs)."""
    track = turn_scene()
    qa = ask(track, "rel_dir", window=(0, 29), camera_observer=False, coin=(True, False),
             picks=[["person"], ["dog", "person"]])  # fmt: skip
    assert qa.answer == "(1) Front. (2) Front|Right. (3) Right."
    qa = ask(track, "abs_dir", window=(0, 29), k_obs=25, camera_observer=False, coin=(True, False),
             picks=[["person"], ["dog", "person"]])  # fmt: skip
    assert qa.answer == "(1) Right."
    assert qa.question == (
        "Between 0.0s and 2.9s, from the perspective of person with bounding box coordinates [150,60,170,140] at 2.5s, "
        "how does the direction of camera to person with initial bounding box coordinates [150,60,170,140] change?"
    )
    assert qa.provenance["observer"]["angles"] == pytest.approx([0, 270, 0], abs=1e-9)


def test_rel_speed_includes_the_observers_rotation():
    """The box stands 4 m from the person; while the person turns 7 deg/frame the box moves 2*4*sin(3.5 deg) = 0.488
    per frame in its frame. Frames 5-15: four zero speeds, then 0.488 (the original would divide 0 by 0 here)."""
    qa = ask(turn_scene(), "rel_spd", window=(5, 15), coin=(False, False), picks=[["person", "box"]])
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], [0] * 4 + [8 * math.sin(math.radians(3.5))] * 6,
                               atol=1e-9)  # fmt: skip
    assert qa.answer == "(1) Keep nearly constant and then become larger. (2) Keep nearly constant."


def uneven_scene():
    """90 frames at 15 fps, as the synthetic videos: the 32 sampled frames round(linspace(0, 89, 32)) are 3 frames
    apart, sometimes 2 (0, 3, 6, 9, 11, 14, ...). A car drives along +x at 1.5 m/s, a dog starts from rest along +x
    at 1 m/s^2 (x = 0.5 t^2), a person stands; the camera stands."""
    n, fps = 90, 15.0
    t = np.arange(n) / fps

    def track(oid, x, agent=False):
        centroids = np.column_stack([x, np.full(n, 3.0), np.full(n, 0.5)])
        orientations = np.stack([heading(0)] * n) if agent else None
        return ObjectTrack(label=oid, is_agent=agent, object_id=oid, centroids=centroids,
                           boxes=np.tile([100.0, 80, 140, 160], (n, 1)), visible=np.ones(n, bool),
                           orientations=orientations)  # fmt: skip

    objects = [track("car", -3 + 1.5 * t, agent=True), track("dog", -3 + 0.5 * t**2, agent=True),
               track("person", np.full(n, 2.0), agent=True)]  # fmt: skip
    return SceneTrack(timestamps=t, camera_to_world=np.repeat(CAMERA_POSE[None], n, axis=0), intrinsics=K,
                      image_size=(1280, 720), objects=objects, fps=fps).validate()  # fmt: skip


def test_speeds_are_measured_per_second_of_the_timestamps():
    """Sampled frames 0-10 are 0, 3, 6, 9, 11, 14, ..., 29: per sampled step the car covers 0.3 m, but 0.2 m across
    the 2-frame gap (9 -> 11), so the original's per-step speeds dip by a third there and its describer reads a change
    that never happened; per second the speed is 1.5 m/s throughout. The dog's speed per second between sampled times
    t1, t2 is (x2 - x1) / (t2 - t1) = (t1 + t2) / 2."""
    track = uneven_scene()
    frames = np.round(np.linspace(0, 89, 32)).astype(int)
    assert frames[:11].tolist() == [0, 3, 6, 9, 11, 14, 17, 20, 23, 26, 29]
    script = dict(window=(0, 10), k_obs=0, target_camera=False)
    per_step = ask(track, "abs_spd", picks=[["car"]], **script)
    np.testing.assert_allclose(per_step.provenance["series"]["speeds"], [0.3] * 3 + [0.2] + [0.3] * 6)
    assert per_step.answer == ("(1) Keep nearly constant and then become smaller. (2) Become larger. (3) Keep nearly "
                               "constant.")  # fmt: skip
    fair = TemplateOptions(distractors="original")  # speeds per second (the default unit)
    qa = ask(track, "abs_spd", picks=[["car"]], options=fair, **script)
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], [1.5] * 10)
    assert qa.answer == "(1) Keep nearly constant."
    # the dog over sampled frames 10-20: 2.03, 2.20, 2.37 m/s stay within 20% of 2.03, 2.57 leaves it; 2.57, 2.77,
    # 2.97 stay within 20% of 2.57, 3.17 leaves it; 3.17 ... 3.73 stay within 20% of 3.17 to the end
    t = frames / 15.0
    by_hand = (t[10:20] + t[11:21]) / 2
    np.testing.assert_allclose(by_hand[[0, 3, 6, 9]], [61 / 30, 77 / 30, 95 / 30, 112 / 30])
    qa = ask(track, "abs_spd", picks=[["dog"]], options=fair, **{**script, "window": (10, 20)})
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], by_hand)
    assert qa.answer == ("(1) Keep nearly constant and then become larger. (2) Keep nearly constant and then become "
                         "larger. (3) Keep nearly constant.")  # fmt: skip
    # rel_spd in the standing camera's frame: the same speeds
    qa = ask(track, "rel_spd", window=(10, 20), coin=(True, False), picks=[["person", "dog"]], options=fair)
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], by_hand)
    # "near zero" keeps its meaning: small per mean sampled step (89/15 s over 31 steps), i.e. 0.1 * 31 / 5.93 m/s
    writer = PinnedWriter(track, options=fair)
    assert writer.speed_scale == pytest.approx(31 / (89 / 15))
    assert PinnedWriter(track).speed_scale == 1.0


def test_speed_comparisons_per_second():
    """The car (1.5 m/s) against the dog ((t1 + t2) / 2 m/s) over sampled frames 0-10 (0 to 1.93 s): the car is
    more than 1.2 times faster up to the interval ending at 1.33 s (1.5 / 1.233 = 1.22), within 20% on the next two
    (1.5 / 1.433, 1.5 / 1.633), and the dog more than 1.2 times faster on the last (1.833 / 1.5 = 1.22)."""
    track = uneven_scene()
    fair = TemplateOptions(distractors="original")
    qa = ask(track, "abs_spd_comp", window=(0, 10), coin=(False, False), picks=[["car", "dog"]], options=fair)
    t = np.round(np.linspace(0, 89, 32))[:11] / 15.0
    dog = (t[:-1] + t[1:]) / 2
    np.testing.assert_allclose(qa.provenance["series"]["speeds"], [[1.5] * 10, dog])
    signs = [1 if 1.5 / d > 1.2 else -1 if 1.5 / d < 1 / 1.2 else 0 for d in dog]
    assert signs == [1] * 7 + [0] * 2 + [-1]
    assert qa.answer == "(1) The former is faster. (2) Nearly the same. (3) The latter is faster."


def test_a_lost_object_truncates_the_window():
    """The box disappears from frame 8: a window 0-20 ends at 7 (0.7s: the original truncates at a tracking
    failure); a window from frame 6 keeps only 2 frames and fails."""
    box = obj("box", [[0, 3, 0.5]] * T, visible=lambda k: k < 8)
    person = obj("person", [[2, 0, 0.9]] * T, agent=True, yaw=-90)
    track = scene(box, person)
    qa = ask(track, "abs_dis", window=(0, 20), coin=(True, False), picks=[["person", "box"]])
    assert qa.question.startswith("Between 0.0s and 0.7s,")
    assert qa.provenance["window"] == {"start": 0, "end": 7, "requested_end": 20, "truncated": True,
                                       "frames": list(range(8)), "times": [k / 10 for k in range(8)]}  # fmt: skip
    with pytest.raises(Failure) as failure:
        PinnedWriter(track, window=(6, 20), coin=(True, False), picks=[["person", "box"]]).write("abs_dis")
    assert failure.value.reason == failures.LOST


def test_original_record_layout():
    """The original's qa_pairs.json record: Type, Question, the three wrong letters in A-D order, the correct
    letter, Correct."""
    qa = ask(car_scene(), "abs_dir_pred", camera_observer=True, target_camera=False, picks=[["car"]])
    record = qa.record()
    wrong = [letter for letter in "ABCD" if letter != qa.correct]
    assert list(record) == ["Type", "Question", *wrong, qa.correct, "Correct"]
    assert record["Correct"] == qa.correct and record[qa.correct] == qa.answer and record["Type"] == "abs_dir_pred"


# --- properties over random scenes ------------------------------------------------------------------------------------


def random_track(seed: int, n_frames: int = 40) -> SceneTrack:
    """A random scene: a drifting, slowly turning camera; 2-5 objects (one agent at least) on random curved paths,
    with random visibility gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / n_frames
    start, drift, turn = rng.uniform(-1, 1, 2), rng.uniform(-0.5, 0.5, 2), rng.uniform(-40, 40)

    def pose(k):
        eye = np.array([*(start + drift * t[k]), 1.5]) + [0, -6, 0]
        a = math.radians(turn * t[k])
        return look_at(eye, eye + [-math.sin(a), math.cos(a), 0])

    objects = []
    for i in range(int(rng.integers(2, 6))):
        p0, v, curve = rng.uniform(-3, 3, 2), rng.uniform(-2, 2, 2), rng.uniform(-3, 3, 2)
        path = p0 + v * t[:, None] + curve * t[:, None] ** 2
        centroids = np.column_stack([path, np.full(n_frames, 0.5)])
        heading_deg = np.degrees(np.arctan2(*np.gradient(path, axis=0).T[::-1]))
        agent = i == 0 or rng.random() < 0.4
        gap = rng.integers(0, n_frames, 2) if rng.random() < 0.5 else (0, 0)
        visible = ~((np.arange(n_frames) >= min(gap)) & (np.arange(n_frames) < max(gap)))
        box = np.tile(rng.integers(0, 300, 4).astype(float), (n_frames, 1))
        objects.append(ObjectTrack(
            label=["person", "dog", "car", "ball", "box"][i], is_agent=agent, object_id=f"o{i}", centroids=centroids,
            boxes=box, visible=visible, orientations=np.stack([heading(h) for h in heading_deg]) if agent else None,
        ))  # fmt: skip
    poses = np.stack([pose(k) for k in range(n_frames)])
    return SceneTrack(timestamps=np.arange(n_frames) / 8.0, camera_to_world=poses, intrinsics=K,
                      image_size=(320, 240), objects=objects).validate()  # fmt: skip


@pytest.mark.parametrize("options", [TemplateOptions(**ORIGINAL), TemplateOptions(spd_distractors="positive",
                                     number_every_item=True, scale="median_depth", **ORIGINAL)])  # fmt: skip
def test_options_are_unique_and_distractors_never_equal_the_answer(options):
    """The original design, over 40 random scenes x 30 attempts: four distinct options, the answer at the correct
    letter, every distractor different from it; prediction options are single items, the others keep at most L+3
    items."""
    produced = Counter()
    for seed in range(40):
        result = generate_video(random_track(seed), np.random.default_rng(seed), 30, options)
        for qa in result.qas:
            produced[qa.qtype] += 1
            values = [qa.options[letter] for letter in "ABCD"]
            assert len(set(values)) == 4, values
            assert qa.options[qa.correct] == qa.answer and values.count(qa.answer) == 1
            for text in values:
                assert text.endswith(".") and n_items(text) >= 1
                if qa.qtype.endswith("_pred"):
                    assert n_items(text) == 1
                else:
                    assert n_items(text) <= n_items(qa.answer) + 3
    assert set(produced) == set(QUESTION_TYPES), produced


def described(series: dict, speed_scale: float) -> str:
    """The answer a provenance series describes, with the default thresholds (speeds: near zero scaled)."""
    if "distances" in series:
        return describe_dist_runs(series["distances"])
    if "vectors" in series:
        return describe_dir(series["vectors"])
    if "displacement" in series:
        return describe_dir([series["displacement"]])
    speeds = series["speeds"]
    if isinstance(speeds[0], list):
        return describe_spd_comp(speeds[0], speeds[1], small=0.1 * speed_scale)
    return describe_dist_runs(speeds, small=0.1 * speed_scale)


@pytest.mark.slow
@pytest.mark.parametrize("share", ["window", "window_observer"])
def test_matched_options_are_true_answers_of_the_same_window(share):
    """The default design, over 20 random scenes x 30 attempts: each distractor is the answer of another draft of the
    template, over the question's window (never truncated) and, with matched_share="window_observer", in the
    question's observer frame; the four are distinct and the answer sits at the correct letter."""
    options = TemplateOptions(matched_share=share)
    produced = Counter()
    for seed in range(20):
        track = random_track(seed)
        scale = 31 / (track.timestamps[39] - track.timestamps[0])  # 40 frames: the 32 sampled span all of them
        for qa in generate_video(track, np.random.default_rng(seed), 30, options).qas:
            produced[qa.qtype] += 1
            prov = qa.provenance
            assert prov["design"] == {"distractors": "matched", "share": share, "speed_unit": "second"}
            assert qa.options[qa.correct] == qa.answer == described(prov["series"], scale)
            wrong = [qa.options[letter] for letter in "ABCD" if letter != qa.correct]
            sources = prov["distractor_sources"]
            assert [source["answer"] for source in sources] == wrong and len({qa.answer, *wrong}) == 4
            for source in sources:
                assert described(source["series"], scale) == source["answer"]
                assert len(next(iter(source["series"].values()))) == len(next(iter(prov["series"].values())))
                if share == "window_observer":
                    assert source["observer"] == prov["observer"]
            if not qa.qtype.endswith("_pred"):
                assert not prov["window"]["truncated"]
    assert len(produced) >= 10, produced


class ScriptedPool(TemplateWriter):
    """Drafts whose answers follow a script (a, a, b, c, b, d, ...): what write_matched does with the pool."""

    SCRIPT = ["a", "a", "b", "c", "b", "d", "e"]

    def __init__(self, seed):
        super().__init__(SampledScene(car_scene()), np.random.default_rng(seed), TemplateOptions())
        self.calls = 0

    def valid_draft(self, qtype, setting):
        text = self.SCRIPT[self.calls]
        self.calls += 1
        answer = Answer(text, lambda *_: text, "dist", 1)
        return Draft(qtype, f"question {self.calls}", answer, {"targets": [], "observer": {}, "series": {}},
                     Setting((0, 5), "camera"))  # fmt: skip


def test_matched_answer_is_drawn_uniformly_among_the_four_found():
    """The pool stops at four distinct answers (a, b, c, d after six drafts; e is never drawn); the answer is each of
    them about a quarter of the time, the question a draft that found it, and the letter uniform as well."""
    answers, letters = Counter(), Counter()
    for seed in range(400):
        writer = ScriptedPool(seed)
        qa = writer.write("rel_dis")
        assert writer.calls == 6 and set(qa.options.values()) == {"a", "b", "c", "d"}
        number = int(qa.question.split()[1])
        assert writer.SCRIPT[number - 1] == qa.answer  # the question is a draft whose answer it is
        answers[qa.answer] += 1
        letters[qa.correct] += 1
    assert set(answers) == set("abcd") and all(70 <= n <= 130 for n in answers.values()), answers
    assert all(70 <= n <= 130 for n in letters.values()), letters


def test_a_setting_without_four_distinct_answers_gives_no_question():
    """A standing camera and standing objects: every distance keeps constant, so no rel_dis question can be fair."""
    box = obj("box", [[0, 3, 0.5]] * T)
    person = obj("person", [[2, 0, 0.9]] * T, agent=True, yaw=-90)
    cone = obj("cone", [[-2, 4, 0.3]] * T)
    writer = TemplateWriter(SampledScene(scene(box, person, cone)), np.random.default_rng(0), TemplateOptions())
    with pytest.raises(Failure) as failure:
        writer.write("rel_dis")
    assert failure.value.reason == failures.NOT_DISTINCT


def test_generation_is_deterministic():
    """Same track and seed: the same questions, options, letters and provenance; another seed: other questions."""
    track = random_track(3)
    runs = [generate_video(track, np.random.default_rng(seed), 40, TemplateOptions()) for seed in (5, 5, 6)]
    dumps = [json.dumps([(qa.record(), qa.provenance) for qa in r.qas], sort_keys=True) for r in runs]
    assert dumps[0] == dumps[1] and dumps[0] != dumps[2]


def test_type_weights_follow_the_inverse_frequency_rule():
    """prob_cal: w = (sum of counts + 12) / (count + 1); with 3 rel_dis and 1 abs_dis among 4 successes."""
    counts = dict.fromkeys(QUESTION_TYPES, 0) | {"rel_dis": 3, "abs_dis": 1}
    weights = dsr_qa.type_weights(counts)
    raw = np.array([16 / (counts[t] + 1) for t in QUESTION_TYPES])
    np.testing.assert_allclose(weights, raw / raw.sum())
    assert weights[QUESTION_TYPES.index("rel_dis")] == pytest.approx(weights[0]) and weights[0] < weights[3]


def test_video_level_skips():
    """Fewer than 32 frames: "repeat frame" in the original; no agent: the original skips the video."""
    short = random_track(1, n_frames=20)
    assert generate_video(short, np.random.default_rng(0), 5, TemplateOptions()).skipped == failures.VIDEO_TOO_SHORT
    track = random_track(1)
    for o in track.objects:
        o.is_agent, o.orientations = False, None
    result = generate_video(track, np.random.default_rng(0), 5, TemplateOptions())
    assert result.skipped == failures.NO_AGENT_CLASSES and not result.attempted


def test_ambiguity_margin_rejects_answers_near_a_threshold():
    """Approach scene, frames 0-7: d7/d0 = 0.79 is "then become smaller" under the 0.8 threshold but "constant" under
    0.78 (margin 0.1 moves the ratio tolerance to 0.18..0.22): rejected with the margin, kept without. Frames 0-5
    (d5/d0 = 0.85) stay "(1) Keep nearly constant." under every perturbed threshold."""
    script = dict(coin=(True, False), picks=[["person", "box"]])
    qa = ask(approach_scene(), "abs_dis", window=(0, 7), **script)
    assert qa.answer == "(1) Keep nearly constant and then become smaller."
    options = TemplateOptions(ambiguity_margin=0.1, **ORIGINAL)
    with pytest.raises(Failure) as failure:
        PinnedWriter(approach_scene(), window=(0, 7), options=options, **script).write("abs_dis")
    assert failure.value.reason == failures.AMBIGUOUS
    qa = ask(approach_scene(), "abs_dis", window=(0, 5), options=options, **script)
    assert qa.answer == "(1) Keep nearly constant."


# --- the generator: files, statistics, command line -----------------------------------------------------------------


def write_tracks(folder, seeds, **overrides):
    """Save random tracks with tiny videos (32x32, one frame per track frame) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        track = random_track(seed, **overrides)
        frames = np.full((track.n_frames, 32, 32, 3), 40 + seed, np.uint8)
        frames[:, :, :, 0] = np.arange(track.n_frames)[:, None, None] * 5 % 255
        write_video(folder / f"scene_{seed:04d}.mp4", frames, 8.0)
        track.video = f"scene_{seed:04d}.mp4"
        track.meta = {"seed": seed}
        track.save(folder / f"scene_{seed:04d}.npz")
    return folder


def read_tsv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_yield_statistics_are_counted_and_reported(tmp_path, capsys):
    tracks = write_tracks(tmp_path / "tracks", [1, 2])
    write_tracks(tmp_path / "tracks", [3], n_frames=20)  # too short
    (tmp_path / "tracks" / "scene_0009.npz").write_bytes(b"corrupt")
    orphan = random_track(4)
    orphan.video = "missing.mp4"
    orphan.save(tracks / "scene_0004.npz")
    stats = DSRTemplates({"tracks": str(tracks), "qa_per_video": 25}).run(tmp_path / "out", seed=1)
    assert stats["videos"] == 3 and stats["videos_skipped"] == {failures.VIDEO_TOO_SHORT: 1}
    assert any("scene_0009.npz: not a readable SceneTrack file" in e for e in stats["errors"])
    assert any("missing.mp4: video missing" in e for e in stats["errors"])
    rows = stats["per_template"]
    assert sum(r["attempted"] for r in rows.values()) == 50 == stats["attempted"]
    assert sum(r["produced"] for r in rows.values()) == stats["questions"] > 0
    for row in rows.values():
        assert row["attempted"] == row["produced"] + sum(row["failures"].values())
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == {k: v for k, v in stats.items() if k != "out"}
    printed = capsys.readouterr().err
    assert "attempted" in printed and all(t in printed for t in QUESTION_TYPES)
    assert f"videos skipped ({failures.VIDEO_TOO_SHORT}): 1" in printed
    assert len(read_tsv(tmp_path / "out" / "DSRBench.tsv")) == stats["questions"]
    # the original's qa_pairs.json has a key for every processed video, none for a skipped one
    assert set(json.loads((tmp_path / "out" / "qa_pairs.json").read_text())) == {"scene_0001", "scene_0002"}


def test_outputs_are_identical_for_the_same_tracks_and_seed(tmp_path):
    tracks = write_tracks(tmp_path / "tracks", [5, 6])
    names = ["DSRBench.tsv", "train_qas.json", "qa_pairs.json", "provenance.jsonl", "stats.json"]
    outs = {}
    for name, seed in [("a", 2), ("b", 2), ("c", 3)]:
        DSRTemplates({"tracks": str(tracks), "qa_per_video": 15}).run(tmp_path / name, seed=seed)
        outs[name] = [(tmp_path / name / n).read_bytes() for n in names]
    assert outs["a"] == outs["b"] and outs["a"][0] != outs["c"][0]


def test_layouts_and_the_dsr_plugin_reads_the_tsv(tmp_path):
    """The command line writes the DSR-Bench TSV (read by the dsr plugin with layout=vlmevalkit), the training
    conversations of the DSR Suite's qa_json_gen.py, the original records and the provenance, all describing the
    same questions."""
    tracks = write_tracks(tmp_path / "tracks", [7, 8])
    out = tmp_path / "out"
    proc = run_cli("generate", "dsr-templates", "--tracks", str(tracks), "--qa-per-video", "20", "--out", str(out),
                   "--seed", "4")  # fmt: skip
    stats = json.loads(proc.stdout)
    rows = read_tsv(out / "DSRBench.tsv")
    assert list(rows[0]) == ["index", "video", "question", "options", "answer", "task_type"]
    assert len(rows) == stats["questions"] > 0 and [r["index"] for r in rows] == [str(i) for i in range(len(rows))]
    bench = get_host().create("benchmarks", "dsr", {"data_dir": str(out), "layout": "vlmevalkit"})
    samples = list(bench.samples())
    assert len(samples) == len(rows)
    assert [p for p in bench.verify() if "differs from the published" not in p] == []  # every video is there
    training = json.loads((out / "train_qas.json").read_text())
    originals = json.loads((out / "qa_pairs.json").read_text())
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    flat = [(video, record) for video, records in originals.items() for record in records]
    assert len(training) == len(flat) == len(provenance) == len(samples)
    for sample, row, conversation, (video, record), prov in zip(samples, rows, training, flat, provenance):
        options = json.loads(row["options"])
        assert sample.options == options and [o[:3] for o in options] == ["A. ", "B. ", "C. ", "D. "]
        assert sample.answer == row["answer"] == record["Correct"] == prov["correct"]
        assert sample.category == row["task_type"] == record["Type"] == prov["type"]
        assert options["ABCD".index(sample.answer)][3:] == prov["answer"] == record[record["Correct"]]
        assert conversation["video"] == row["video"] == f"{video}.mp4" == prov["video"]
        human = conversation["conversations"][0]["value"]
        assert human == f"<video>\n{record['Question']}\nOptions:\n" + "\n".join(
            f"{letter} {record[letter]}" for letter in "ABCD"
        )
        assert conversation["conversations"][1] == {"from": "gpt", "value": record["Correct"]}
        assert prov["scene_seed"] in (7, 8) and len(prov["sampled_frames"]) == 32
        assert prov["thresholds"] == {"ratio_epsilon": 0.2, "small": 0.1, "direction_epsilon": 0.3, "scale": 1.0}
    request = bench.build_request(samples[0])
    assert request.text().startswith("\nThese are the frames of a video.") and request.choices == list("ABCD")


def test_trim_future_cuts_the_prediction_clips(tmp_path):
    """With trim_future the prediction questions show a clip that ends at sampled frame 29 (D10)."""
    tracks = write_tracks(tmp_path / "tracks", [11])
    out = tmp_path / "out"
    DSRTemplates({"tracks": str(tracks), "qa_per_video": 40, "trim_future": True}).run(out, seed=0)
    rows = read_tsv(out / "DSRBench.tsv")
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    pred = [(r, p) for r, p in zip(rows, provenance) if r["task_type"].endswith("_pred")]
    assert pred and any(not r["task_type"].endswith("_pred") for r in rows)
    last = provenance[0]["sampled_frames"][29]
    for row, prov in pred:
        assert row["video"] == f"scene_0011_until_f{last}.mp4"
        assert prov["video_end_s"] == pytest.approx(last / 8.0)
    assert probe(out / f"scene_0011_until_f{last}.mp4").num_frames == last + 1
    assert all(r["video"] == "scene_0011.mp4" for r in rows if not r["task_type"].endswith("_pred"))


def test_a_track_showing_an_earlier_tracks_video_is_an_error(tmp_path):
    """Two tracks naming the same video: the first (in file order) owns it, the second is reported, not written."""
    tracks = write_tracks(tmp_path / "tracks", [1, 2])
    (tracks / "scene_0003.npz").write_bytes((tracks / "scene_0001.npz").read_bytes())  # its video: scene_0001.mp4
    stats = DSRTemplates({"tracks": str(tracks), "qa_per_video": 10}).run(tmp_path / "out", seed=0)
    assert stats["videos"] == 2 and len(stats["errors"]) == 1
    assert "scene_0003.npz: video id 'scene_0001' repeats an earlier track (scene_0001.npz)" in stats["errors"][0]
    assert set(json.loads((tmp_path / "out" / "qa_pairs.json").read_text())) == {"scene_0001", "scene_0002"}
