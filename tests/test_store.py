"""The append-only store: torn lines after a kill, latest-wins with ok never replaced by error, shards, keys."""

import os

import pytest

from vdpm_harness.records import GenerationSettings, Prediction
from vdpm_harness.store import PredictionStore, result_key, write_atomic


def pred(key, status="ok", sample="s", text="A"):
    return Prediction(
        key=key,
        sample_id=sample,
        video_id="v",
        benchmark="b",
        benchmark_version="1",
        model="m",
        model_fingerprint="f",
        prompt_hash="p",
        generation=GenerationSettings(),
        status=status,
        response=text if status == "ok" else None,
        error=None if status == "ok" else "boom",
        created="t",
    )


def test_torn_last_line_is_ignored_then_cut(tmp_path, caplog):
    store = PredictionStore(tmp_path)
    store.append([pred("k1"), pred("k2")])
    with open(store.path, "ab") as handle:  # what kill -9 in the middle of a write leaves behind
        handle.write(pred("k3").model_dump_json().encode()[:40])
    assert set(store.load()) == {"k1", "k2"}
    assert "incomplete last line" in caplog.text
    store.append([pred("k3")])
    lines = store.path.read_text().splitlines()
    assert len(lines) == 3 and set(store.load()) == {"k1", "k2", "k3"}


def test_latest_wins_but_ok_is_never_replaced_by_error(tmp_path):
    store = PredictionStore(tmp_path)
    store.append([pred("a", "error"), pred("b", "ok", text="A")])
    store.append([pred("a", "ok", text="B"), pred("b", "error")])
    store.append([pred("b", "ok", text="C")])
    current = store.load()
    assert current["a"].response == "B" and current["b"].response == "C"


def test_shards_are_read_together(tmp_path):
    PredictionStore(tmp_path, shard="rank0").append([pred("x")])
    PredictionStore(tmp_path, shard="rank1").append([pred("y")])
    PredictionStore(tmp_path).append([pred("z")])
    assert set(PredictionStore(tmp_path).load()) == {"x", "y", "z"}


def test_malformed_middle_line_is_skipped_with_its_location(tmp_path, caplog):
    store = PredictionStore(tmp_path)
    store.append([pred("a")])
    with open(store.path, "a") as handle:
        handle.write('{"not": "a prediction"}\n')
    store.append([pred("b")])
    assert set(store.load()) == {"a", "b"}
    assert f"{store.path}:2" in caplog.text


def test_result_key_changes_with_every_component():
    base = dict(
        model_fingerprint="m",
        benchmark="b",
        benchmark_version="1",
        sample_id="s",
        prompt_hash="p",
        frame_indices=[[0, 5, 9]],
        generation=GenerationSettings(),
    )
    key = result_key(**base)
    assert key == result_key(**base) and len(key) == 32
    variants = [
        {"model_fingerprint": "m2"},
        {"benchmark": "b2"},
        {"benchmark_version": "2"},
        {"sample_id": "s2"},
        {"prompt_hash": "p2"},
        {"frame_indices": [[0, 5, 8]]},
        {"generation": GenerationSettings(max_new_tokens=7)},
    ]
    assert len({result_key(**{**base, **v}) for v in variants} | {key}) == len(variants) + 1


def test_write_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "x" / "results.json"
    write_atomic(path, "old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    assert not any(name.endswith(".tmp") for name in os.listdir(path.parent))


def test_building_replaces_a_folder_at_once_or_not_at_all(tmp_path):
    """``building``: the new content appears in one rename; a build that raises leaves the old folder as it was and
    no staging folder behind."""
    from vdpm_harness.store import building, checksum_problems, file_digest

    folder = tmp_path / "data"
    with building(folder) as staging:
        (staging / "a.txt").write_text("one")
        assert not folder.exists()
    assert (folder / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError, match="render failed"), building(folder) as staging:
        (staging / "a.txt").write_text("two")
        raise RuntimeError("render failed")
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and (folder / "a.txt").read_text() == "one"
    with building(folder) as staging:
        (staging / "b.txt").write_text("three")
    assert [p.name for p in folder.iterdir()] == ["b.txt"]
    files = {"b.txt": file_digest(folder / "b.txt"), "gone.txt": "0" * 64}
    assert checksum_problems(folder, files, "rebuild") == [
        f"{folder / 'gone.txt'}: missing or checksum mismatch; rebuild"
    ]
