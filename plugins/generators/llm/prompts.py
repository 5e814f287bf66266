"""The prompts of the LLM generators, read from ``prompts.json`` beside this module (shipped with the package).

``caption_motion``, ``caption_classes``, ``video_filter`` (with ``video_categories``) and ``freeform`` are the user
messages of the DSR Suite's curation and free-form scripts, character for character (TencentARC/DSR_Suite, commit
``1bfe8e3``: ``data/deepseek_motion.py``, ``data/deepseek_agent.py``, ``data/gemini_motion.py``,
``data/qa_nontemp.py``; arXiv 2512.20557), their f-string fields given names; ``system`` is the system message the
three DeepSeek scripts send. ``freeform_verify`` is this project's (the original has no verification pass).

Every prompt is recorded in the outputs with the sha256 of its template, so a changed prompt file is visible in the
data it made.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPT_FILE = Path(__file__).with_name("prompts.json")


@dataclass(frozen=True)
class Prompt:
    """One template: ``render(**fields)`` fills exactly its named fields (a missing or extra field is an error)."""

    name: str
    template: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()

    @property
    def fields(self) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(self.template) if field is not None}

    def render(self, **values) -> str:
        if set(values) != self.fields:
            raise KeyError(f"prompt {self.name} takes {sorted(self.fields)}, got {sorted(values)}")
        return self.template.format(**values)

    def record(self) -> dict[str, str]:
        """What the outputs record of the prompt: its name, file and hash."""
        return {"name": self.name, "file": PROMPT_FILE.name, "sha256": self.sha256}


@cache
def prompt_file() -> dict:
    return json.loads(PROMPT_FILE.read_text(encoding="utf-8"))


def prompt(name: str) -> Prompt:
    return Prompt(name, prompt_file()[name])


def system_message() -> str:
    """The system message of the original's requests."""
    return prompt_file()["system"]


def video_categories() -> list[str]:
    """The six video categories of the video-level filter, in the original's order."""
    return list(prompt_file()["video_categories"])
