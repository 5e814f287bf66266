"""The example third-party plugin (examples/vdpm-harness-example) is installed with pip and runs end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install`` the example into its own folder (offline: no build isolation, no dependency resolution)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(ROOT / "examples" / "vdpm-harness-example")],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(target))
    return target, env


def test_example_is_discovered_after_install(installed):
    _, env = installed
    data = json.loads(run_cli("plugins", "--json", env=env).stdout)
    [example] = [p for p in data["plugins"] if p["name"] == "example"]
    assert example["distribution"] == "vdpm-harness-example" and example["version"] == "0.1.0"
    assert example["hooks"] == ["register_benchmarks", "register_models"]
    assert "longest-option" in data["registered"]["models"] and "solid-color" in data["registered"]["benchmarks"]


def test_example_runs_end_to_end_through_the_cli(installed, tmp_path):
    _, env = installed
    out = tmp_path / "res"
    run_cli("run", "--model", "longest-option,random", "--bench", "solid-colour", "--out", str(out), env=env)
    result = json.loads((out / "longest-option" / "solid-color" / "results.json").read_text())
    # the longest option is always "Yellow", the answer of one clip in six
    assert result["n_samples"] == 6 and result["metrics"]["accuracy"]["value"] == pytest.approx(100 / 6)
    assert result["categories"]["Yellow"]["accuracy"]["value"] == 100.0
    md = (out / "leaderboard.md").read_text()
    assert "longest-option" in md and "random" in md
    assert Path(out / "leaderboard.xlsx").is_file()
