"""``dsr-synth``: DSR-Bench's 12 template categories on procedurally rendered scenes with exact answers.

Built on first use with no download, from the ``synth-scenes`` and ``dsr-templates`` generators, and evaluated by
the ``dsr`` benchmark; all three are created through the host by id (:mod:`.benchmark`).
"""

from vdpm_harness import hookimpl


@hookimpl
def register_benchmarks(register):
    register(
        "dsr-synth",
        "vdpm_harness_plugins.benchmarks.dsr_synth.benchmark:DSRSynth",
        description="DSR-Bench's 12 template categories on rendered scenes with exact answers; built locally on first "
        "use.",
    )
