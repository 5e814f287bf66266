"""Blind baselines: models that answer a multiple-choice question from its text alone, never the video.

They measure how much of a benchmark can be solved without looking (the "blind ceiling"): a benchmark whose
distractors differ from true answers in length, or whose true answers repeat, is partly solvable blind. Every one
works on any multiple-choice benchmark (it reads the request's option texts and letters) and counts as blind on the
leaderboard:

* ``blind-shortest`` / ``blind-longest``: the option with the fewest / most items (numbered ``(k)`` items, else
  sentences) or characters (``unit``), :mod:`.length`;
* ``blind-prior``: per category (or question template), the answer text most often correct in a training split
  that you point it at, :mod:`.prior`.

``vdpm-harness audit BENCH`` runs them all and tests each category against chance (``docs/blind.md``). Any other model
runs blind with ``--model-arg blind=true`` (the harness removes the media from its requests).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_models(register):
    register(
        "blind-shortest",
        "vdpm_harness_plugins.models.blind.length:BlindShortest",
        description="Blind baseline: the option with the fewest items (or characters, unit=characters).",
    )
    register(
        "blind-longest",
        "vdpm_harness_plugins.models.blind.length:BlindLongest",
        description="Blind baseline: the option with the most items (or characters, unit=characters).",
    )
    register(
        "blind-prior",
        "vdpm_harness_plugins.models.blind.prior:BlindPrior",
        description="Blind baseline: per category, the answer most often correct in a training split "
        "(train_bench=ID, train_options={...}).",
    )
