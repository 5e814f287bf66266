"""Data parallel on the CPU: several processes under torchrun (gloo), dynamic chunk claiming, merged results equal
to a single process's, every sample computed once, and a kill -9 resumed with a different process count."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdpm_harness.distributed import WorkClaims
from vdpm_harness.store import PredictionStore

from .conftest import cli_env, run_cli

TORCHRUN = Path(sys.executable).with_name("torchrun")
#: the launcher comes with torch; the claims and the rank order below need neither
needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun (torch) is not installed")


def torchrun(n: int, *args: str, wait: bool = True, log: Path | None = None):
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={n}", "-m", "vdpm_harness", *args]
    env = cli_env(OMP_NUM_THREADS="1", COLUMNS="250")  # the summary table unwrapped
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def summary_counts(output: str, benchmark: str) -> dict[str, int]:
    """The ``new`` and ``reused`` cells of the benchmark's row in the run's summary table."""
    lines = output.splitlines()
    header = next(line for line in lines if "┃" in line and "reused" in line)
    row = next(line for line in lines if "│" in line and f" {benchmark} " in line)
    names = [cell.strip() for cell in header.strip().strip("┃").split("┃")]
    cells = [cell.strip() for cell in row.strip().strip("│").split("│")]
    return {name: int(cells[names.index(name)]) for name in ("new", "reused")}


def responses(folder: Path) -> dict[str, str]:
    return {p.sample_id: p.response for p in PredictionStore(folder).load().values()}


def test_claims_are_exclusive(tmp_path):
    a, b = WorkClaims(tmp_path, "launch1", 4), WorkClaims(tmp_path, "launch1", 4)
    assert a.claim(0) and not b.claim(0) and b.claim(1) and not a.claim(1)
    other = WorkClaims(tmp_path, "launch2", 4)
    assert other.claim(0)  # a new launch claims afresh
    a.clear()  # removes only its own launch's claims
    assert not (tmp_path / "claims" / "launch1").exists() and (tmp_path / "claims" / "launch2" / "0000000").exists()
    other.clear()
    assert not (tmp_path / "claims").exists()


@needs_torchrun
@pytest.mark.slow
def test_three_processes_equal_one(tmp_path):
    """Three processes compute what one does, each sample once; the summary counts each sample once, on a first run
    (new) and on a rerun (reused)."""
    args = ["run", "--model", "random", "--bench", "motion-basics", "--model-arg", "batch_size=2", "--seed", "3"]
    run_cli(*args, "--out", str(tmp_path / "one"))
    launch = torchrun(3, *args, "--out", str(tmp_path / "three"))
    # each sample counted once over the ranks (issue 17: "new 36, reused 36" for 36 samples)
    assert summary_counts(launch.stdout, "motion-basics") == {"new": 36, "reused": 0}
    again = torchrun(3, *args, "--out", str(tmp_path / "three"))
    assert summary_counts(again.stdout, "motion-basics") == {"new": 0, "reused": 36}  # each rank counted 36 before
    [one] = (tmp_path / "one").glob("random*/motion-basics")
    [three] = (tmp_path / "three").glob("random*/motion-basics")
    assert responses(three) == responses(one) and len(responses(one)) == 36
    assert {p.name for p in three.glob("predictions*.jsonl")} <= {f"predictions.rank{r}.jsonl" for r in range(3)}
    assert sum(len(p.read_text().splitlines()) for p in three.glob("predictions*.jsonl")) == 36  # no duplicates
    r1, r3 = (json.loads((f / "results.json").read_text()) for f in (one, three))
    assert r1["metrics"] == r3["metrics"] and r3["n_samples"] == 36
    assert not (three / "claims").exists()


@needs_torchrun
@pytest.mark.slow
def test_kill_one_launch_and_resume_with_another_process_count(tmp_path):
    out, log, data = tmp_path / "res", tmp_path / "computed.log", tmp_path / "videos"
    args = ["run", "--model", "echo", "--bench", "fixture-videos", "--out", str(out), "--decode-workers", "0",
            "--model-arg", "delay=0.3", "--model-arg", "batch_size=1", "--model-arg", f"log={log}",
            "--bench-arg", f"data_dir={data}", "--bench-arg", "broken=false", "--bench-arg", "n_videos=16"]  # fmt: skip
    proc = torchrun(3, *args, wait=False)
    deadline = time.time() + 180
    while time.time() < deadline:  # kill once 16 samples are stored and at least two ranks have taken work
        shards = [len(p.read_text().splitlines()) for p in out.rglob("predictions*.jsonl")]
        if sum(shards) >= 16 and sum(1 for n in shards if n) >= 2:
            break
        time.sleep(0.1)
    # kill -9 the launcher and every process of the launch (torchrun starts its workers in their own sessions)
    subprocess.run(["pkill", "-KILL", "-f", str(out)], check=False)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    [folder] = {p.parent for p in out.rglob("predictions.rank*.jsonl")}
    # with a slow model the ranks share the work (dynamic claiming)
    assert len([p for p in folder.glob("predictions.rank*.jsonl") if p.stat().st_size]) >= 2
    stored_before = {p.sample_id for p in PredictionStore(folder).load().values()}
    assert 16 <= len(stored_before) < 48
    computed_before = len(log.read_text().splitlines())

    torchrun(2, *args)
    final = PredictionStore(folder).load()
    assert len(final) == 48 and all(p.status == "ok" for p in final.values())
    lines = [json.loads(x) for p in folder.glob("predictions*.jsonl") for x in p.read_text().splitlines() if x.strip()]
    complete = [x for x in lines if x["status"] == "ok"]
    assert len({x["key"] for x in complete}) == 48
    recomputed = log.read_text().splitlines()[computed_before:]
    assert not set(recomputed) & stored_before  # nothing stored was computed again
    assert len(recomputed) == len(set(recomputed)) == 48 - len(stored_before)  # each missing sample once
    assert json.loads((folder / "results.json").read_text())["n_samples"] == 48


@pytest.mark.parametrize("main", [True, False])
def test_rank_0_reads_samples_before_the_other_ranks(host, tmp_path, main):
    """Rank 0 reads (builds) a benchmark's samples, then every rank meets at a barrier, then the others read them;
    a failure on rank 0 is raised only after its barrier, so no rank is left waiting."""
    from vdpm_harness.config import build_config
    from vdpm_harness.pipeline import Runner

    events = []

    class FakeDist:
        is_main, active = main, True

        def barrier(self):
            events.append("barrier")

    class Bench:
        id, fail = "b", False

        def samples(self):
            events.append("read")
            if self.fail:
                raise OSError("data folder unreadable")
            return ["s1", "s2", "s3"]

    runner = Runner(build_config(models="random", benches="motion-basics", out=str(tmp_path), limit=2), host)
    runner.dist = FakeDist()
    assert runner.samples(Bench()) == ["s1", "s2"] and runner.samples(Bench()) == ["s1", "s2"]  # read once
    assert events == (["read", "barrier"] if main else ["barrier", "read"])
    events.clear()
    broken = Bench()
    broken.id, broken.fail = "c", True
    with pytest.raises(OSError, match="unreadable"):
        runner.samples(broken)
    assert events == (["read", "barrier"] if main else ["barrier", "read"])
