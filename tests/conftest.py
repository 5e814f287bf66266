"""Shared fixtures: an isolated cache, a plugin host with the fixture plugin, and a CLI runner; the test markers.

Markers (registered in pyproject.toml): ``slow`` runs by default (``-m "not slow"`` leaves it out), ``gpu`` is
skipped without a CUDA device, ``network`` (a test that downloads a pinned reference from PyPI, such as VLMEvalKit's
scoring code) runs by default, as PyPI is reachable wherever the project is set up, and is skipped with
``VDPM_OFFLINE=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: torch and transformers are installed (the model tests need them; the rest of the suite does not)
HAS_TORCH = all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch and transformers")
FIXTURE_DIR = Path(__file__).resolve().parent / "plugin_fixture"
sys.path.insert(0, str(FIXTURE_DIR))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not _cuda_available():
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
    if os.environ.get("VDPM_OFFLINE") == "1":
        for item in items:
            if "network" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="downloads a reference from PyPI; VDPM_OFFLINE=1 is set"))


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """Benchmarks built on first use go to a temporary cache shared by the session."""
    cache = tmp_path_factory.mktemp("vdpm-cache")
    os.environ["VDPM_CACHE"] = str(cache)
    # no test may reach a model hub: checkpoints are local folders or hand-made hub caches
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield cache


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    """``vdpm-harness models make-tiny DIR --seed 0`` through the command line, once per session: the tiny
    random-weight Qwen2.5-VL checkpoint (folder, printed summary)."""
    folder = tmp_path_factory.mktemp("qwen") / "tiny"
    proc = run_cli("models", "make-tiny", str(folder), "--seed", "0")
    return folder, json.loads(proc.stdout)


@pytest.fixture(scope="session")
def tiny_gsm(tmp_path_factory):
    """``vdpm-harness models make-tiny DIR --gsm`` through the command line, once per session: the tiny random-weight
    GSM checkpoint (folder, printed summary). Tests read it; one that changes a checkpoint copies it first."""
    folder = tmp_path_factory.mktemp("gsm") / "tiny"
    proc = run_cli("models", "make-tiny", str(folder), "--gsm")
    return folder, json.loads(proc.stdout)


@pytest.fixture
def host():
    """A fresh plugin host: the entry points of this environment, the fixture plugin among them (its dist-info
    is on ``sys.path``, so it is discovered exactly like an installed third-party plugin)."""
    from vdpm_harness import plugins

    plugins.reset_host()
    h = plugins.get_host()
    assert "fixture" in h.plugins, h.broken
    yield h
    plugins.reset_host()


#: Two clips of different sizes and timing: 40 frames at 8 fps (5 s, 192x144) and 60 at 20 fps (3 s, 320x240).
CLIPS = {"a.mp4": (40, 144, 192, 8.0), "b.mp4": (60, 240, 320, 20.0)}


def write_clips(folder: Path, rng) -> dict[str, str]:
    """:data:`CLIPS` of random pixels drawn from ``rng`` written into ``folder``: ``{name: path}``."""
    from vdpm_harness.video import write_video

    for name, (n, h, w, fps) in CLIPS.items():
        write_video(folder / name, rng.integers(0, 256, (n, h, w, 3), dtype="uint8"), fps)
    return {name: str(folder / name) for name in CLIPS}


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: the fixture plugin installed (on PYTHONPATH), the session cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURE_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict | None = None, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m vdpm_harness ARGS`` as a user would, capturing output."""
    proc = subprocess.run(
        [sys.executable, "-m", "vdpm_harness", *args],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vdpm-harness {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
