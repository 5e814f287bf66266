"""The 4D-Bench data: download from the Hugging Face dataset ``vxuanz/4D-Bench`` and its layout.

The official repository (``WenxuanZhu1103/4D-Bench``, commit ``f40f49a``) ships no data; its README has the dataset
downloaded and unzipped into ``4D_Object_Question_Answering/data/`` (``4d_qa.json``, ``4d_object_multi_view_videos/``)
and ``4D_Object_Captioning/data/`` (``human_annotations.csv``, ``4d_object_multi_view_videos/``). Each object (an
Objaverse-XL uid) has a folder of renders on a white background, ``<uid>/view_<k>_rgb_white_bg.mp4``. The dataset is
for academic research only, licensed as a whole under ODC-By v1.0 like Objaverse-XL.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

HF_DATASET = "vxuanz/4D-Bench"
PULL_HINT = "download it with `vdpm-harness data pull {bench} --to DIR` and pass --bench-arg data_dir=DIR"


def pull_dataset(to: Path) -> None:
    """Download the Hugging Face dataset ``vxuanz/4D-Bench`` into ``to`` and unpack its zip archives in place."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise RuntimeError("downloading 4D-Bench needs huggingface_hub: pip install 'vdpm-harness[hub]'") from exc
    to.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id=HF_DATASET, repo_type="dataset", local_dir=to)
    except Exception as exc:  # noqa: BLE001 - offline, refused, not found: one clear message, the cause attached
        raise RuntimeError(
            f"cannot download the Hugging Face dataset {HF_DATASET} into {to}: {type(exc).__name__}: {exc}\n"
            "The Hugging Face hub must be reachable for `data pull` (runs never need it); alternatively copy the "
            "dataset there by other means and check it with `vdpm-harness data verify`."
        ) from exc
    for archive in sorted(to.rglob("*.zip")):
        marker = archive.with_name(f".{archive.name}.extracted")
        if not marker.exists():
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(archive.parent)
            marker.touch()


def short_sha256(path: Path) -> str | None:
    """The first 16 hex digits of the file's sha256 (the dataset revision), or ``None`` when it is missing."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None
