"""vdpm-harness: an evaluation-first harness for dynamic spatial (4D) reasoning in videos.

Plugins import ``hookimpl`` from here::

    from vdpm_harness import hookimpl
"""

from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
