"""The options that change the questions: :class:`TemplateOptions`.

Two defaults depart from the original, because the original's choices make the questions partly answerable without
the video (``docs/dsr_templates.md``): the distractors are ``"matched"`` (``"original"`` restores the original's
random series, for parity with released data) and speeds are measured per second (``speed_unit="step"`` restores the
original's per-sampled-step speeds). Every other default reproduces the original.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vdpm_harness import Strict

from .describers import DIRECTION_EPSILON, RATIO_EPSILON, SMALL


class TemplateOptions(Strict):
    """What changes the questions (``docs/dsr_templates.md`` lists each with the original behaviour)."""

    distractors: Literal["matched", "original"] = Field(
        default="matched", description="'matched': the answers of three more drafts of the template in the question's "
        "window and observer frame (no blind advantage); 'original': descriptions of random series, as the original.",
    )  # fmt: skip
    speed_unit: Literal["second", "step"] = Field(
        default="second", description="Speeds per second of the track's timestamps, or per sampled step (the "
        "original; uneven frame gaps then change the answers).",
    )  # fmt: skip
    matched_share: Literal["window", "window_observer"] = Field(
        default="window", description="What the drafts of a matched question share: the window, or also the "
        "observer and t_obs.",
    )  # fmt: skip
    matched_pool: int = Field(default=30, ge=3, description="Most drafts drawn in one setting to find four distinct "
                              "answers.")  # fmt: skip
    matched_tries: int = Field(default=8, ge=1, description="Settings tried per matched question.")

    ratio_epsilon: float = Field(default=RATIO_EPSILON, gt=0, lt=1, description="Ratio tolerance of the speed and "
                                 "distance describers (0.2: +-20%).")  # fmt: skip
    small: float = Field(default=SMALL, ge=0, description="'Near zero' distance or speed, in scene units after "
                         "'scale' (per second for speeds with speed_unit='second'; 0.1 Pi3 units in the "
                         "original).")  # fmt: skip
    direction_epsilon: float = Field(default=DIRECTION_EPSILON, gt=0, lt=1,
                                     description="Dead zone of the direction codes (0.3).")  # fmt: skip
    scale: Literal["none", "median_depth"] = Field(
        default="none", description="Divide all positions by the median object depth of the video, so 'small' is "
        "scale-free (the original uses raw Pi3 units: 'none').")  # fmt: skip
    spd_distractors: Literal["original", "positive"] = Field(
        default="original", description="rel_spd distractor series: U(-1,1) as the original or U(0,2)."
    )
    number_every_item: bool = Field(default=False, description="Write '(1) The latter is always faster.' (the "
                                    "original omits the '(1)').")  # fmt: skip
    exclude_observer: bool = Field(default=False, description="Never pick the observer agent as a target (the "
                                   "original only checks this for rel_dir_pred).")  # fmt: skip
    ambiguity_margin: float = Field(default=0.0, ge=0, lt=1, description="Reject answers that change when every "
                                    "threshold moves by this fraction (0: off, as the original).")  # fmt: skip
    min_pred_motion: float = Field(default=0.0, ge=0, description="Reject prediction questions whose target moves "
                                   "less than this between frames 29 and 31 (0: off, as the original).")  # fmt: skip
    max_answer_items: int = Field(default=15, ge=1, description="Longest answer kept (15).")
    distractor_tries: int = Field(default=1000, ge=1, description="Random draws per distractor before giving up "
                                  "(the original loops forever).")  # fmt: skip
