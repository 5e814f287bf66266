"""An example vdpm-harness plugin: the ``longest-option`` model and the ``solid-color`` benchmark.

Everything a plugin needs is here: ``hookimpl`` functions named after the hooks, classes deriving from the harness's
base classes with a pydantic ``Options`` model, and a lazy factory string so listing plugins imports nothing heavy.
"""

from vdpm_harness import hookimpl


@hookimpl
def register_models(register):
    register(
        "longest-option",
        "vdpm_example.models:LongestOption",  # lazy: imported only when the model is selected
        description="Text-only baseline: always answers the longest option.",
    )


@hookimpl
def register_benchmarks(register):
    register(
        "solid-color",
        "vdpm_example.benchmarks:SolidColor",
        aliases=("solid-colour",),
        description="Six one-colour clips: which colour fills the video?",
    )
