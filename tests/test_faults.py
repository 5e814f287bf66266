"""Runs under faults, as issue 17 found them: a user's folder given as a data folder, two runs on one results folder,
records of an unknown schema, rescoring an unfinished run, another dataset revision in the same results folder,
Ctrl-C during inference (decode workers busy, API requests in flight), files left by a kill, a full disk and a
read-only results folder. Each test says what the harness did before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdpm_harness.config import build_config
from vdpm_harness.pipeline import Runner
from vdpm_harness.scoring import PairRefused, rescore
from vdpm_harness.store import PredictionStore

from .chat_server import ChatServer, Hang
from .conftest import ROOT, cli_env, run_cli


def run(host, out: Path, models: str, benches: str, **kw):
    return Runner(build_config(models=models, benches=benches, out=str(out), **kw), host).run()


def start_cli(*args: str, **popen) -> subprocess.Popen:
    """``vdpm-harness ARGS`` in its own process group (as a shell starts a job), output captured."""
    return subprocess.Popen([sys.executable, "-m", "vdpm_harness", *args], env=cli_env(COLUMNS="200"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)  # fmt: skip


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{proc.stdout.read()}\n{proc.stderr.read()}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.rglob("predictions*.jsonl"))


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc), e.g. a run's forkserver and decode workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    from vdpm_harness.prefetch import _process_gone

    return not _process_gone(pid)


# --- data loss ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--model", "random", "--bench", "dsr-synth", "--bench-arg", "data_dir=d", "--bench-arg", "n_videos=2"],
        ["run", "--model", "random", "--bench", "motion-basics", "--bench-arg", "data_dir=d", "--bench-arg",
         "n_videos=2"],
        ["data", "pull", "dsr-synth", "--to", "d", "--bench-arg", "n_videos=2"],
    ],
    ids=["dsr-synth", "motion-basics", "data-pull"],
)  # fmt: skip
def test_a_users_folder_is_never_deleted(tmp_path, command):
    """The issue's repro (``mkdir d; echo x > d/IMPORTANT.txt; vdpm-harness run --model random --bench dsr-synth
    --bench-arg data_dir=d --bench-arg n_videos=2``, the same with motion-basics and ``data pull dsr-synth --to d``):
    before the fix ``d`` was deleted with everything in it and the command exited 0. Now it is refused, named, and
    left exactly as it was."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "IMPORTANT.txt").write_text("x\n")
    extra = ["--out", str(tmp_path / "res")] if command[0] == "run" else []
    proc = run_cli(*command, *extra, check=False, cwd=tmp_path)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "d already exists and holds files that vdpm-harness did not create (IMPORTANT.txt)" in output
    assert "Traceback" not in output
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["IMPORTANT.txt"]
    assert (tmp_path / "d" / "IMPORTANT.txt").read_text() == "x\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.")]  # no staging folder left


@pytest.mark.slow
def test_a_folder_the_harness_built_is_rebuilt(tmp_path):
    """The other side of the contract: ``data pull`` into a folder it built before (its marker lists every file)
    replaces it, so a pull can be repeated."""
    for n_videos in (1, 2):
        run_cli("data", "pull", "dsr-synth", "--to", str(tmp_path / "d"), "--bench-arg", f"n_videos={n_videos}",
                "--bench-arg", "qa_per_video=2")  # fmt: skip
        if n_videos == 1:
            assert not (tmp_path / "d" / "scene_0001.mp4").exists()
    assert (tmp_path / "d" / "scene_0001.mp4").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


# --- concurrent writers ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_stops_naming_the_first(tmp_path):
    """Two runs on one ``--out``: the second stops with a message naming the first (pid, host), and the first
    finishes with every sample once (issue 17: each computed every sample, and one's torn-tail repair truncated the
    other's records)."""
    out, data = tmp_path / "res", tmp_path / "videos"
    args = ["run", "--model", "echo", "--bench", "fixture-videos", "--out", str(out), "--decode-workers", "0",
            "--model-arg", "delay=0.1", "--model-arg", "batch_size=1", "--bench-arg", f"data_dir={data}",
            "--bench-arg", "broken=false", "--bench-arg", "n_videos=20"]  # fmt: skip
    first = start_cli(*args)
    try:
        wait_for(lambda: stored(out) >= 3, 120, "the first run's first predictions", first)
        second = run_cli(*args, check=False)
        assert first.poll() is None, "the first run should still be running"
        assert second.returncode == 1
        assert f"is in use by another vdpm-harness process (run, pid {first.pid} on host" in second.stderr
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    [folder] = {p.parent for p in out.rglob("predictions*.jsonl")}
    keys = [json.loads(line)["key"] for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 60
    assert json.loads((folder / "results.json").read_text())["n_samples"] == 60


# --- schema versions, rescoring -------------------------------------------------------------------------------------


def fixture_run(host, tmp_path: Path, n_videos: int = 4) -> Path:
    data = tmp_path / "videos"
    run(host, tmp_path / "res", "echo", "fixture-videos",
        bench_args=(f"data_dir={data}", "broken=false", f"n_videos={n_videos}"))  # fmt: skip
    [folder] = [p.parent for p in (tmp_path / "res").rglob("run.json")]
    return folder


@pytest.mark.slow
def test_records_of_an_unknown_schema_are_refused(host, tmp_path):
    """A prediction edited to ``schema_version: 99`` (issue 17: accepted as is) makes ``rescore`` fail with a message
    naming the file and line, and ``run`` refuse the pair; a ``run.json`` of schema 99 is refused the same way."""
    folder = fixture_run(host, tmp_path)
    store = folder / "predictions.jsonl"
    lines = store.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["schema_version"] = 99
    lines[2] = json.dumps(edited)
    store.write_text("\n".join(lines) + "\n")
    results = (folder / "results.json").read_bytes()
    proc = run_cli("rescore", str(folder), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{store}:3: Prediction of schema_version 99" in proc.stderr
    assert (folder / "results.json").read_bytes() == results
    [outcome] = run(host, tmp_path / "res", "echo", "fixture-videos",
                    bench_args=(f"data_dir={tmp_path / 'videos'}", "broken=false"))  # fmt: skip
    assert outcome.result is None and f"{store}:3:" in outcome.error and "schema_version 99" in outcome.error

    store.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    record = json.loads((folder / "run.json").read_text())
    record["schema_version"] = 99
    (folder / "run.json").write_text(json.dumps(record))
    proc = run_cli("rescore", str(folder), check=False)
    assert proc.returncode == 1 and f"{folder / 'run.json'}: RunRecord of schema_version 99" in proc.stderr


@pytest.mark.slow
def test_rescoring_an_unfinished_run_says_so(host, tmp_path):
    """``rescore`` of a run that stored 5 of its 12 samples warns, prints ``n=5 of 12, INCOMPLETE`` and writes
    ``complete: false`` with ``n_expected: 12`` (issue 17: a normal-looking result over the subset, no warning)."""
    folder = fixture_run(host, tmp_path)
    store = folder / "predictions.jsonl"
    store.write_text("".join(store.read_text().splitlines(keepends=True)[:5]))
    proc = run_cli("rescore", str(folder))
    assert "n=5 of 12, INCOMPLETE" in proc.stdout
    assert "predictions for only 5 of the 12 samples of this run" in proc.stderr
    result = json.loads((folder / "results.json").read_text())
    assert result["complete"] is False and result["n_expected"] == 12 and result["n_samples"] == 5
    store.unlink()
    run(host, tmp_path / "res", "echo", "fixture-videos",
        bench_args=(f"data_dir={tmp_path / 'videos'}", "broken=false"))  # fmt: skip
    result = json.loads((folder / "results.json").read_text())
    assert result["complete"] is True and result["n_expected"] == result["n_samples"] == 12


def test_a_failed_rescore_changes_neither_file(host, tmp_path, monkeypatch):
    """A rescore that fails after scoring (here the aggregation raises) leaves ``scores.jsonl`` and ``results.json``
    as they were (issue 17: ``scores.jsonl`` was rewritten while ``results.json`` kept the old result); one without a
    prediction of the run's model is refused."""
    folder = fixture_run(host, tmp_path)
    before = {name: (folder / name).read_bytes() for name in ("scores.jsonl", "results.json")}
    benchmark = host.create("benchmarks", "fixture-videos", {"data_dir": str(tmp_path / "videos")})

    def boom(self, scores):
        raise RuntimeError("aggregation failed")

    monkeypatch.setattr(type(benchmark), "aggregate", boom)
    with pytest.raises(RuntimeError, match="aggregation failed"):
        rescore(host, folder, "last-letter")  # the judge changes every extraction's method: new scores.jsonl
    assert {name: (folder / name).read_bytes() for name in before} == before
    monkeypatch.undo()
    record = json.loads((folder / "run.json").read_text())
    record["model"]["fingerprint"] = "another model"
    (folder / "run.json").write_text(json.dumps(record))
    with pytest.raises(PairRefused, match="no stored prediction of the model echo"):
        rescore(host, folder)
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_another_dataset_revision_never_replaces_a_row(host, tmp_path):
    """motion-basics built with another seed into another folder, run into the same results folder: refused with
    both revisions and folders named, the stored results untouched (issue 17: the leaderboard row was silently
    replaced, and the old responses reused for the new questions)."""
    out = tmp_path / "res"
    [first] = run(host, out, "random", "motion-basics", bench_args=(f"data_dir={tmp_path / 'a'}", "n_videos=2"))
    folder = out / "random" / "motion-basics"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    [second] = run(host, out, "random", "motion-basics",
                   bench_args=(f"data_dir={tmp_path / 'b'}", "n_videos=2", "seed=5"))  # fmt: skip
    assert second.result is None
    revision = first.result.run.benchmark["dataset_revision"]
    assert f"holds results of motion-basics on dataset revision {revision} in {tmp_path / 'a'}" in second.error
    assert f"in {tmp_path / 'b'}: they would be mixed with or replace those results" in second.error
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    [again] = run(host, out, "random", "motion-basics", bench_args=(f"data_dir={tmp_path / 'a'}", "n_videos=2"))
    assert again.result is not None and again.counts == {"reused": 6}  # the same data resumes as before


# --- Ctrl-C ---------------------------------------------------------------------------------------------------------


def interrupt(proc: subprocess.Popen, limit: float = 5.0) -> tuple[float, str]:
    """Ctrl-C as a terminal sends it (SIGINT to the process group); the seconds until the run exits, its stderr."""
    start = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=limit + 15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"still running {limit + 15:.0f} s after Ctrl-C:\n{err[-3000:]}") from None
    return time.time() - start, err


@pytest.mark.slow
def test_ctrl_c_during_inference_stops_at_once(tmp_path):
    """Ctrl-C while the model works and decode workers have frames ready: the run exits within 5 s with code 130 and
    a message, leaves no worker process, and the store reads back and resumes (issue 17: Ctrl-C hung in 5 of 17
    trials; before the fix the run ended with "Aborted!", code 1 and the workers' tracebacks)."""
    out, data = tmp_path / "res", tmp_path / "videos"
    config = tmp_path / "run.yaml"
    config.write_text(f"out: {out}\nprefetch: 16\ndecode_workers: 2\n")
    args = ["run", "--config", str(config), "--model", "echo", "--bench", "fixture-videos", "--model-arg",
            "delay=0.2", "--model-arg", "batch_size=1", "--bench-arg", f"data_dir={data}", "--bench-arg",
            "broken=false", "--bench-arg", "n_videos=30"]  # fmt: skip
    proc = start_cli(*args)
    wait_for(lambda: stored(out) >= 4, 120, "the first predictions", proc)
    workers = descendants(proc.pid)
    assert workers, "the run should have decode worker processes"
    seconds, err = interrupt(proc)
    assert seconds < 5, f"exited {seconds:.1f} s after Ctrl-C"
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-3000:]
    wait_for(lambda: not any(running(pid) for pid in workers), 10, "the workers to end")
    [folder] = {p.parent for p in out.rglob("predictions.jsonl")}
    done = len(PredictionStore(folder).load())
    assert 4 <= done < 90
    proc = run_cli(*args)
    assert len(PredictionStore(folder).load()) == 90


@pytest.mark.slow
def test_ctrl_c_with_api_requests_in_flight(tmp_path):
    """Ctrl-C while requests to an OpenAI-compatible server are in flight (a server that never answers; the client's
    default timeout is 120 s with 5 retries): the run exits within 5 s with code 130 (issue 17: 80 s with
    ``timeout=10``, about 12 minutes with the defaults)."""
    out, data = tmp_path / "res", tmp_path / "videos"
    with ChatServer(responder=lambda body: Hang(600)) as server:
        proc = start_cli(
            "run", "--model", "openai-chat", "--model-arg", "model=never", "--model-arg", f"base_url={server.url}",
            "--model-arg", "api_key=EMPTY", "--model-arg", "cache=false", "--model-arg", "batch_size=4",
            "--bench", "fixture-videos", "--bench-arg", f"data_dir={data}", "--bench-arg", "broken=false",
            "--out", str(out), "--decode-workers", "0",
        )  # fmt: skip
        wait_for(lambda: server.in_flight >= 4, 120, "requests in flight", proc)
        seconds, err = interrupt(proc)
    assert seconds < 5, f"exited {seconds:.1f} s after Ctrl-C"
    assert proc.returncode == 130 and "interrupted" in err, err[-3000:]
    [folder] = [p.parent for p in out.rglob("run.json")]
    assert PredictionStore(folder).load() == {}  # readable, and nothing was answered


# --- files left by a kill, permissions, full and read-only disks ----------------------------------------------------


def test_temporaries_of_a_killed_run_are_removed_and_files_are_readable(tmp_path):
    """Temporary files that a killed run left (named with its host and pid) are removed by the next run of that
    folder; what the harness did not name stays; written files get the umask's mode, 0644 here (issue 17: temporary
    files were left after a kill, and atomically written files were 0600)."""
    from vdpm_harness import store

    out = tmp_path / "res"
    run_cli("run", "--model", "random", "--bench", "motion-basics", "--out", str(out), "--limit", "3")
    folder = out / "random" / "motion-basics"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # fmt: skip
    left = [folder / f".results.json.vdpm-tmp-{store._HOST}-{dead}-a1b2c3d4.tmp",
            out / f".leaderboard.md.vdpm-tmp-{store._HOST}-{dead}-e5f6g7h8.tmp"]  # fmt: skip
    users = folder / ".results.json.my-copy.tmp"
    for path in (*left, users):
        path.write_text("partial")
    umask = os.umask(0o022)
    try:
        run_cli("run", "--model", "random", "--bench", "motion-basics", "--out", str(out), "--limit", "3")
    finally:
        os.umask(umask)
    assert not any(path.exists() for path in left) and users.exists()
    for path in (folder / "results.json", folder / "scores.jsonl", folder / "run.json", out / "leaderboard.md"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged mount namespaces (unshare -rm)")


@needs_mounts
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_results_folder_is_a_clear_error(tmp_path, fault):
    """``--out`` on a full tmpfs, and on a read-only one (mounted in a private mount namespace): the run fails with a
    message naming the folder and saying why, and so does ``leaderboard`` (issue 17: raw tracebacks; before the fix
    the run said ``OSError: [Errno 28] No space left on device`` without a file, and ``leaderboard`` a traceback)."""
    out = tmp_path / "res"
    out.mkdir()
    setup = {
        "full": f"mount -t tmpfs -o size=64k tmpfs {out} && (dd if=/dev/zero of={out}/filler bs=4k count=100 || true)",
        "read-only": f"mount -t tmpfs tmpfs {out} && mount -o remount,ro {out}",
    }[fault]
    command = f"{setup} 2>/dev/null && exec {sys.executable} -m vdpm_harness run --model random --bench motion-basics "
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command + f"--limit 3 --out {out}"], env=cli_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output
    reason = "is full (No space left on device)" if fault == "full" else "is on a read-only file system"
    assert f"cannot write {out}/random/motion-basics/" in output and reason in output, output
    assert "write to another folder (--out)" in output
    # the leaderboard, written by reporter plugins (the fixture's writes with its own open): no traceback either
    command = f"{setup} 2>/dev/null && exec {sys.executable} -m vdpm_harness leaderboard --results {out}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command], env=cli_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot write {out}/leaderboard." in proc.stderr and reason in proc.stderr, proc.stderr
