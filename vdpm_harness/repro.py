"""What reproduces a run: package versions, git revision, platform, command line. Secrets never enter it."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import redact

TRACKED_PACKAGES = (
    "vdpm-harness", "pluggy", "pydantic", "numpy", "av", "decord2", "pillow", "openpyxl",
    "torch", "torchvision", "transformers", "tokenizers", "accelerate", "openai", "pycocoevalcap",
)  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change results (read from metadata: nothing is imported)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding the harness, if it runs from one."""
    path = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def cpu_model() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` on Linux), for benchmark reports and run records."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def environment_record(secrets: set[str]) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "packages": package_versions(),
        "git": git_revision(),
        "argv": [redact(arg, secrets) for arg in sys.argv],
    }
