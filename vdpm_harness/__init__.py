"""vdpm-harness: an evaluation-first harness for dynamic spatial (4D) reasoning in videos.

This module is the public plugin API. A plugin, built-in or third-party, imports only from here (and from its own
package); a test walks the imports of the built-in plugins and fails when one reaches into a core module::

    from vdpm_harness import MCQBenchmark, Request, Sample, hookimpl

Names load on first use (PEP 562), so importing the package stays cheap: ``vdpm-harness plugins`` and ``list``
never import torch, PyAV or pydantic models they do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

#: public name -> the core module that defines it
_EXPORTS: dict[str, str] = {
    # base classes of the plugin kinds, and what their methods take and return
    **dict.fromkeys(
        [
            "Plugin",
            "Model",
            "Benchmark",
            "MCQBenchmark",
            "Judge",
            "Reporter",
            "Generator",
            "ItemGenerator",
            "PreparedRequest",
            "JudgePrompt",
            "ImportedResponse",
            "ImportedRun",
            "Detector",
            "Tracker",
            "Reconstructor",
            "OrientationEstimator",
            "Clip",
            "Detection",
            "Tracks",
            "Reconstruction",
            "Orientation",
        ],
        "interfaces",
    ),  # fmt: skip
    # records (typed, versioned JSON)
    **dict.fromkeys(
        [
            "Strict",
            "Sample",
            "Request",
            "Message",
            "TextPart",
            "VideoPart",
            "ImagePart",
            "FramePolicy",
            "GenerationSettings",
            "Response",
            "Prediction",
            "Extraction",
            "Score",
            "MetricValue",
            "BenchmarkResult",
            "stable_hash",
        ],
        "records",
    ),  # fmt: skip
    # the host: plugins by kind and id
    **dict.fromkeys(["Host", "Entry", "PluginError", "get_host", "KINDS"], "plugins"),
    # scenes, geometry and video
    **dict.fromkeys(["SceneTrack", "ObjectTrack", "SceneTrackError", "SampledFrames", "TooFewFrames"], "scene"),
    **dict.fromkeys(["DecodedVideo", "VideoInfo", "VideoError", "decode", "probe", "write_video"], "video"),
    # answers, statistics, reports
    **dict.fromkeys(["extract_choice", "ChoiceRules", "option_text", "visible_text"], "extract"),
    **dict.fromkeys(["clustered_mean", "summarize_accuracy", "UNCATEGORIZED"], "stats"),
    **dict.fromkeys(["Leaderboard", "Column", "Failed", "format_metric", "REGENERATE_COMMAND"], "leaderboard"),
    **dict.fromkeys(["interval_note", "MEAN_HEADER", "MEAN_NOTE", "BLIND_NOTE"], "leaderboard"),
    # files: atomic writes, checksummed data folders, the cache
    **dict.fromkeys(
        ["write_atomic", "file_digest", "building", "checksum_problems", "cache_root", "safe_unzip"], "store"
    ),
    # processes and the OpenAI-compatible client shared by LLM-backed plugins
    **dict.fromkeys(["local_rank"], "distributed"),
    **dict.fromkeys(["ItemFiles", "ItemResults", "GenerationError"], "generation"),
    # options typed as text (a plugin passing command-line arguments on to the plugins it creates)
    **dict.fromkeys(["CommandLineOptions"], "config"),
    # secrets: credentials inside URLs masked in text a plugin writes down (an error naming its endpoint)
    **dict.fromkeys(["mask_url_credentials"], "config"),
    **dict.fromkeys(["ChatClient", "ApiOptions", "DEFAULT_BASE_URL", "TRANSPORT_OPTIONS", "resolve_api_key"], "llm"),
}
#: public modules: ``from vdpm_harness import geometry`` (``dinov2``: the DINOv2 encoder's key map; ``hub``: a
#: Hugging Face dataset downloaded for ``data pull``)
_MODULES = ("dinov2", "geometry", "hub", "video")

__all__ = ["hookimpl", "__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vdpm_harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from . import dinov2, geometry, video  # noqa: F401
    from .config import CommandLineOptions, mask_url_credentials  # noqa: F401
    from .distributed import local_rank  # noqa: F401
    from .extract import ChoiceRules, extract_choice, option_text, visible_text  # noqa: F401
    from .generation import GenerationError, ItemFiles, ItemResults  # noqa: F401
    from .interfaces import (  # noqa: F401
        Benchmark,
        Clip,
        Detection,
        Detector,
        Generator,
        ImportedResponse,
        ImportedRun,
        ItemGenerator,
        Judge,
        JudgePrompt,
        MCQBenchmark,
        Model,
        Orientation,
        OrientationEstimator,
        Plugin,
        PreparedRequest,
        Reconstruction,
        Reconstructor,
        Reporter,
        Tracker,
        Tracks,
    )
    from .leaderboard import (  # noqa: F401
        BLIND_NOTE,
        MEAN_HEADER,
        MEAN_NOTE,
        REGENERATE_COMMAND,
        Column,
        Failed,
        Leaderboard,
        format_metric,
        interval_note,
    )
    from .llm import DEFAULT_BASE_URL, TRANSPORT_OPTIONS, ApiOptions, ChatClient, resolve_api_key  # noqa: F401
    from .plugins import KINDS, Entry, Host, PluginError, get_host  # noqa: F401
    from .records import (  # noqa: F401
        BenchmarkResult,
        Extraction,
        FramePolicy,
        GenerationSettings,
        ImagePart,
        Message,
        MetricValue,
        Prediction,
        Request,
        Response,
        Sample,
        Score,
        Strict,
        TextPart,
        VideoPart,
        stable_hash,
    )
    from .scene import ObjectTrack, SampledFrames, SceneTrack, SceneTrackError, TooFewFrames  # noqa: F401
    from .stats import UNCATEGORIZED, clustered_mean, summarize_accuracy  # noqa: F401
    from .store import building, cache_root, checksum_problems, file_digest, safe_unzip, write_atomic  # noqa: F401
    from .video import DecodedVideo, VideoError, VideoInfo, decode, probe, write_video  # noqa: F401
