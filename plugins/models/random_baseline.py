"""The ``random`` baseline: a seeded uniform choice among the answer options. Needs no weights and no frames.

Its expected accuracy is 1/k on k-option questions, which makes it the floor every leaderboard should show. Each
answer is drawn from a generator seeded by the run seed and the sample's result key, so the choice of a sample never
depends on batch size, order, resume or the number of processes.
"""

from __future__ import annotations

import random

from pydantic import Field

from vdpm_harness import Model, PreparedRequest, Response, Strict, hookimpl


class RandomModel(Model):
    needs_frames = False

    class Options(Strict):
        batch_size: int = Field(default=256, ge=1)

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        responses = []
        for prepared in batch:
            choices = prepared.request.choices
            if not choices:
                responses.append(
                    Response(sample_id=prepared.request.sample_id, error="the random baseline needs answer choices")
                )
                continue
            responses.append(
                Response(sample_id=prepared.request.sample_id, text=random.Random(prepared.seed).choice(choices))
            )
        return responses


@hookimpl
def register_models(register):
    register(
        "random",
        RandomModel,
        aliases=("random-choice",),
        description="Seeded uniform choice among the options (a chance-level floor; no download).",
    )
