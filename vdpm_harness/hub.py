"""A Hugging Face dataset downloaded for ``vdpm-harness data pull``, with one explanation for every way it fails.

Benchmarks and trainers call :func:`download_dataset` from their ``pull``: ``huggingface_hub``'s
``snapshot_download(repo_type="dataset")`` into the folder given. A missing ``huggingface_hub`` (the ``hub`` extra) and
any hub or network failure (offline, ``HF_HUB_OFFLINE=1``, a firewall, a refused or unknown repository) become a
``RuntimeError`` that names what was downloaded, from where, into which folder, the cause, and what to do without the
hub (the caller's ``offline_hint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def download_dataset(repo_id: str, to: Path, *, what: str, offline_hint: str,
                     allow_patterns: Sequence[str] | None = None, quiet: bool = False) -> None:  # fmt: skip
    """``repo_id``'s files (those matching ``allow_patterns``, else all) into ``to``. ``what`` names the download in
    messages ("the VLM4D videos"); ``offline_hint`` ends the failure message; ``quiet`` turns the hub's per-file
    progress bars off for the call (for a caller that shows progress of its own)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError as exc:
        raise RuntimeError(f"downloading {what} needs huggingface_hub: pip install 'vdpm-harness[hub]'") from exc
    restore = quiet and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=allow_patterns, local_dir=to)
    except Exception as exc:  # noqa: BLE001 - any hub or network failure gets the same explanation
        raise RuntimeError(
            f"could not download {what} from https://huggingface.co/datasets/{repo_id} into {to}: "
            f"{type(exc).__name__}: {exc}\nWithout access to the hub (offline, HF_HUB_OFFLINE=1, a firewall), "
            f"{offline_hint}"
        ) from exc
    finally:
        if restore:
            enable_progress_bars()
