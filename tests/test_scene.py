"""SceneTrack: save/load round trip, validation errors naming the field, version check."""

import numpy as np
import pytest

from vdpm_harness.geometry import look_at
from vdpm_harness.scene import ObjectTrack, SceneTrack, SceneTrackError


def make_track(t=5):
    poses = np.stack([look_at([0, -5 + 0.1 * i, 1.5], [0, 0, 0.5]) for i in range(t)])
    walker = ObjectTrack(
        label="person", is_agent=True, object_id="o1",
        centroids=np.stack([[0.2 * i, 0, 0.9] for i in range(t)]),
        orientations=np.repeat(np.eye(3)[None], t, axis=0), boxes=np.tile([10, 20, 30, 60.0], (t, 1)),
        visible=np.ones(t, bool),
    )  # fmt: skip
    ball = ObjectTrack(label="ball", is_agent=False, object_id="o2", centroids=np.zeros((t, 3)),
                       boxes=np.full((t, 4), np.nan), visible=np.zeros(t, bool))  # fmt: skip
    k = np.array([[200.0, 0, 160], [0, 200.0, 120], [0, 0, 1]])
    return SceneTrack(timestamps=np.arange(t) / 10, camera_to_world=poses, intrinsics=k, image_size=(320, 240),
                      objects=[walker, ball], video="v.mp4", fps=10.0, meta={"seed": 3})  # fmt: skip


def test_round_trip(tmp_path):
    track = make_track()
    loaded = SceneTrack.load(track.save(tmp_path / "t.npz"))
    assert track.save(tmp_path / "again.npz").read_bytes() == (tmp_path / "t.npz").read_bytes()  # same bytes
    assert loaded.image_size == (320, 240) and loaded.video == "v.mp4" and loaded.meta == {"seed": 3}
    np.testing.assert_array_equal(loaded.camera_to_world, track.camera_to_world)
    assert [o.label for o in loaded.objects] == ["person", "ball"] and loaded.objects[1].orientations is None
    np.testing.assert_array_equal(loaded.objects[0].centroids, track.objects[0].centroids)
    np.testing.assert_array_equal(loaded.objects[0].facing(2), [1, 0, 0])
    assert np.isnan(loaded.objects[1].boxes).all() and not loaded.objects[1].visible.any()


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda t: setattr(t, "timestamps", t.timestamps[::-1]), "timestamps must increase"),
        (lambda t: setattr(t.objects[0], "centroids", np.zeros((3, 3))), r"objects\[0\] \(person\).centroids"),
        (lambda t: setattr(t.objects[0], "orientations", None), "is an agent but has no orientations"),
        (lambda t: t.camera_to_world.__setitem__((0, 0, 0), 3.0), "not orthonormal"),
        (lambda t: setattr(t.objects[1], "object_id", "o1"), "duplicate object_id"),
    ],
)
def test_validation_names_the_field(corrupt, message):
    track = make_track()
    corrupt(track)
    with pytest.raises(SceneTrackError, match=message):
        track.validate()


def test_bad_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SceneTrackError, match="junk.npz: not a readable SceneTrack file"):
        SceneTrack.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(SceneTrackError, match="no header"):
        SceneTrack.load(tmp_path / "other.npz")
