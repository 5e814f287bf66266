"""``blind-prior``: per category (or question template), the answer text most often correct in a training split.

It learns, from the samples of a benchmark you point it at (``train_bench`` with ``train_options``), how often each
answer text was the correct one within each group of questions, and answers with the option whose text was most
often correct in the question's group. Ties fall to the option text most often correct over all groups, then to the
letter most often correct in the group, then to a seeded draw. Groups are the samples' categories
(``group_by="category"``) or question templates (``group_by="template"``: the prompt with its option texts removed
and every number replaced by ``#``, so the questions of one template that differ only by times and coordinates share
a group while different object names do not).

With ``holdout="video"`` the training split is the evaluated benchmark itself, and each question is answered from
the other videos' questions alone (leave-one-video-out, matched by sample id): the honest prior of a benchmark that
has no training split.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from vdpm_harness import Model, PreparedRequest, Request, Response, Strict, option_text

from .choosing import Ties, choose

ALL = "*"  # the group of every question
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def answer_key(option: str) -> str:
    """An option's text as the prior compares it: letter prefix removed, case and spacing folded."""
    return " ".join(option_text(option).split()).casefold()


def template_key(request: Request) -> str:
    """The question's template: the prompt's text without its options, every number replaced by ``#``."""
    text = request.text()
    for option in sorted(request.options, key=len, reverse=True):
        text = text.replace(option, " ").replace(option_text(option), " ")
    return " ".join(_NUMBER.sub("#", text).split())


def group_of(request: Request, category: str | None, group_by: str) -> str:
    if group_by == "template":
        return template_key(request)
    return category if category is not None else ALL


class BlindPrior(Model):
    """The answer most often correct in the question's group of a training split (see the module docstring)."""

    needs_frames = False
    text_only = True

    class Options(Strict):
        train_bench: str = Field(description="The benchmark whose samples train the prior (id or alias).")
        train_options: dict[str, Any] = Field(default_factory=dict, description="Its options.")
        group_by: Literal["category", "template"] = Field(default="category", description="Questions that share a "
                                                          "prior: same category, or same template.")  # fmt: skip
        holdout: Literal["none", "video"] = Field(
            default="none", description="'video': the training split is the evaluated benchmark; each question is "
            "answered from the other videos' questions.",
        )  # fmt: skip
        ties: Ties = "random"
        batch_size: int = Field(default=256, ge=1)

    def __init__(self, options=None):
        super().__init__(options)
        self.correct: Counter = Counter()  # (group, answer text) -> times correct
        self.letters: Counter = Counter()  # (group, letter) -> times correct
        self.by_video: dict[str, Counter] = {}  # video -> its own (group, text) and ("letter", group, letter) counts
        self.video_of: dict[str, str] = {}  # training sample id -> video
        self.n_train = 0

    def load(self) -> None:
        if self.n_train:
            return
        o = self.options
        bench = self.create_plugin("benchmarks", o.train_bench, o.train_options)
        for sample in bench.samples():
            letters = [chr(ord("A") + i) for i in range(len(sample.options))]
            if sample.answer not in letters:  # not a multiple-choice sample
                continue
            request = bench.build_request(sample)
            text = answer_key(sample.options[letters.index(sample.answer)])
            own = self.by_video.setdefault(sample.video_id, Counter())
            for group in {group_of(request, sample.category, o.group_by), ALL}:
                for key in ((group, text), ("letter", group, sample.answer)):
                    own[key] += 1
                self.correct[(group, text)] += 1
                self.letters[(group, sample.answer)] += 1
            self.video_of[sample.sample_id] = sample.video_id
            self.n_train += 1
        if not self.n_train:
            raise ValueError(f"blind-prior: '{o.train_bench}' has no multiple-choice sample to learn from")

    def describe(self) -> dict[str, Any]:
        return {"train_samples": self.n_train}

    def scores(self, prepared: PreparedRequest) -> list[tuple[int, int, int]]:
        """Per option: (times its text was correct in the group, over all groups, times its letter was correct in
        the group), less the question's own video's counts under ``holdout="video"``."""
        request = prepared.request
        own: Counter = Counter()
        if self.options.holdout == "video" and request.sample_id in self.video_of:
            own = self.by_video[self.video_of[request.sample_id]]
        group = group_of(request, prepared.category, self.options.group_by)
        scores = []
        for letter, option in zip(request.choices, request.options):
            text = answer_key(option)
            scores.append((self.correct[(group, text)] - own[(group, text)],
                           self.correct[(ALL, text)] - own[(ALL, text)],
                           self.letters[(group, letter)] - own[("letter", group, letter)]))  # fmt: skip
        return scores

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        if not self.n_train:
            self.load()
        return [choose(p, self.scores(p), self.options.ties) for p in batch]
