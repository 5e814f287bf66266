"""The released VLM4D question files, checked against their sha256, and what the official code derives from them.

Source: ``ShijieZhou-UCLA/VLM4D`` at commit ``23f2680``, ``data/real_mc.json`` (1,371 questions on 600 videos) and
``data/synthetic_mc.json`` (445 questions on 400 videos), shipped in this package's ``data/`` folder (MIT, see
``data/LICENSE.md``). Each file is a JSON list of records with the keys ``id`` (``"validation_<n>"``, from 1 in
*each* file), ``video`` (the Hugging Face URL of the clip), ``question_type`` (always ``"multiple-choice"``),
``question``, ``choices`` (``{"A": ..., "D": ...}``; counting questions have int values) and ``answer`` (the *text* of
the correct choice, not its letter). Real ``validation_633`` is the one record whose answer matches two choices (C and
D are both "away from the camera").

Categories, as ``acc_final_statistics.py`` computes them: real questions with id <= 922 are exo-centric (ids 1-795 on
DAVIS clips, 796-922 on YouTube-VOS), the rest ego-centric (Ego4D); a synthetic question whose answer is "no" or starts
with "no " is a false-positive probe (45 of them), the other 400 are directional.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DATA_FOLDER = Path(__file__).with_name("data")
#: The released question files and their sha256 (``ShijieZhou-UCLA/VLM4D`` at ``23f2680``, ``data/``).
QUESTION_FILES = {
    "real": ("real_mc.json", "069e14c02998ec9bf3e825b784259d45e0bd0f7273b43a1fe0c12311b286a4e4"),
    "synthetic": ("synthetic_mc.json", "630da16f4b27bfb8281e43f2feb4c7c483cf1e37e15941bb280c3bffe3553700"),
}
SPLITS = ("real", "synthetic")
#: Real ids up to this one are exo-centric (DAVIS, YouTube-VOS); the rest are Ego4D (``acc_final_statistics.py``).
EXO_MAX_ID = 922


def load_questions(split: str, folder: Path = DATA_FOLDER) -> list[dict]:
    """The released question records of ``split``, after checking the file's sha256 against the released one."""
    name, expected = QUESTION_FILES[split]
    path = Path(folder) / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the VLM4D question file ({exc}); reinstall vdpm-harness") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(
            f"{path}: sha256 {digest} differs from the released VLM4D {name} ({expected}): the file is corrupt or "
            "modified; restore it from ShijieZhou-UCLA/VLM4D data/ or reinstall vdpm-harness"
        )
    return json.loads(data)


def is_fp(answer: Any) -> bool:
    """The official false-positive rule (``acc_final_statistics.py``): the answer is "no" or starts with "no "."""
    text = str(answer).strip().lower()
    return text == "no" or text.startswith("no ")


def gold_letters(choices: dict[str, Any], answer: Any) -> list[str]:
    """Letters whose choice equals the answer text, compared as lower-cased strings (two for real validation_633)."""
    return [k for k, v in choices.items() if str(v).lower() == str(answer).lower()]


def video_path(url: str) -> str:
    """A record's Hugging Face URL -> the video's path inside the dataset (``videos_real/davis/x.mp4``)."""
    marker = "/resolve/main/"
    if marker not in url:
        raise ValueError(f"unexpected VLM4D video URL {url!r} (no '{marker}')")
    return url.split(marker, 1)[1]


def category_of(split: str, record: dict) -> str:
    """``real_exo``, ``real_ego``, ``syn_fp`` or ``syn_directional``."""
    if split == "real":
        return "real_exo" if int(record["id"].split("_")[-1]) <= EXO_MAX_ID else "real_ego"
    return "syn_fp" if is_fp(record["answer"]) else "syn_directional"
