"""Base classes of the kinds of plugin: models, benchmarks, generators, judges, reporters, and the perception
stages (detectors, trackers, reconstructors, orientation estimators).

A plugin class declares its options as a nested pydantic ``Options`` model (unknown keys are rejected, so a typo in
a config file is an error, not a silent default) and is constructed as ``PluginClass(options)``. Construction must be
cheap: heavy work (loading weights, reading data) happens in ``load()`` or on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .records import Extraction, Prediction, Request, Response, Sample, Score, Strict, stable_hash

if TYPE_CHECKING:  # pragma: no cover
    from .distributed import Distributed
    from .generation import ItemFiles, ItemResults
    from .leaderboard import Leaderboard
    from .video import DecodedVideo


class Plugin(ABC):  # noqa: B024 - the kinds below declare the abstract methods
    """Common base: an id (set by the registry), validated options.

    The methods a kind requires are abstract, so a plugin that lacks one fails when it is created (naming the
    method), never in the middle of a run."""

    class Options(Strict):
        pass

    id: str = ""

    #: set by the host that created this object: kind, id, plugin name, distribution and its version
    registration: dict[str, Any] | None = None

    def __init__(self, options: Options | dict | None = None):
        if options is None:
            options = {}
        if isinstance(options, dict):
            options = self.Options.model_validate(options)
        self.options = options
        self.components: list[Plugin] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    def create_plugin(self, kind: str, name: str, options: dict[str, Any] | None = None) -> Plugin:
        """Create another registered plugin by kind (``"models"``, ``"benchmarks"``, ``"generators"``, ...), id and
        options, through the host that created this one; the one way for a plugin to use another.

        The created plugin becomes a component of this one: the run record lists the id, version and options of
        every component (:meth:`provenance`). Callable from ``__init__`` (after ``super().__init__``).
        """
        component = self.plugin_host().create(kind, name, options)
        self.__dict__.setdefault("components", []).append(component)
        return component

    def plugin_host(self):
        """The :class:`~vdpm_harness.plugins.Host` that created this plugin (the process-wide one otherwise)."""
        from .plugins import creating_host, get_host

        return getattr(self, "host", None) or creating_host() or get_host()

    def provenance(self) -> dict[str, Any]:
        """What made this object, for the run record: kind, id, version, options (secrets masked), the plugin and
        distribution that registered it, and the same for every plugin it created (``components``)."""
        from .config import mask_secrets

        cls = type(self)
        record = {
            **(self.registration or {"id": self.id}),
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "version": getattr(self, "version", None),
            "options": self.options.model_dump(mode="json"),
            "components": [component.provenance() for component in getattr(self, "components", [])],
        }
        return mask_secrets(record)


@dataclass
class JudgePrompt:
    """A judge request: chat messages (OpenAI format) and, optionally, a JSON schema for structured output."""

    messages: list[dict[str, Any]]
    response_schema: dict[str, Any] | None = None


@dataclass
class ImportedResponse:
    sample_id: str
    response: str | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportedRun:
    """Responses of one model read from external files: ``label`` names the model on the leaderboard.

    ``benchmark_options`` records the benchmark settings the responses were produced with (e.g. the prompt variant
    of a published run) where they differ from the importing benchmark's options.
    """

    label: str
    source: str
    responses: list[ImportedResponse]
    details: dict[str, Any] = field(default_factory=dict)
    benchmark_options: dict[str, Any] = field(default_factory=dict)


# --- models -------------------------------------------------------------------------------------------------------


@dataclass
class PreparedRequest:
    """A request with its media decoded by the harness, handed to ``Model.generate``.

    ``videos`` holds one :class:`vdpm_harness.video.DecodedVideo` per video part of the request, in order (empty for
    models that declare ``needs_frames = False`` and for blind runs). ``seed`` is a per-sample seed derived from the
    run seed and the sample's result key, so sampling models are reproducible regardless of batch order.
    ``category`` is the sample's category (what a prior over categories, such as ``blind-prior``, groups by).
    """

    request: Request
    key: str
    seed: int
    videos: list[DecodedVideo] = field(default_factory=list)
    category: str | None = None


class Model(Plugin):
    """A model plugin answers prepared requests, in batches of at most ``batch_size``.

    Every model runs blind with the option ``blind=true`` (``--model-arg blind=true``), whatever its own options: the
    harness takes that option before the model is created (:func:`vdpm_harness.pipeline.create_model`; a model whose
    ``Options`` declares ``blind`` keeps it), removes the video and image parts from the model's requests (the same
    prompt without the media), decodes nothing, and records the run as blind (a result key, label and leaderboard row
    of its own).
    """

    #: Whether the harness must decode video frames for this model (False for text-only baselines).
    needs_frames: ClassVar[bool] = True
    #: True for a model that never looks at media (the blind baselines): its runs count as blind on the leaderboard.
    text_only: ClassVar[bool] = False
    #: Options that do not change outputs (excluded from the fingerprint, so changing them keeps stored results).
    runtime_options: ClassVar[frozenset[str]] = frozenset({"batch_size", "device", "num_workers", "concurrency"})
    #: Set by the harness for a run with ``blind=true``: this run answers from the text alone.
    run_blind: bool = False

    @property
    def blind(self) -> bool:
        """Whether this model answers without the media: a text-only baseline, or a run with ``blind=true``."""
        return self.text_only or self.run_blind

    @property
    def batch_size(self) -> int:
        return int(getattr(self.options, "batch_size", 1) or 1)

    def output_options(self, options: Strict | None = None) -> dict[str, Any]:
        """The options that can change outputs: all but runtime options and secrets (rotating an API key must not
        invalidate stored results)."""
        from .config import is_secret_key

        dumped = (options or self.options).model_dump(mode="json", exclude=set(self.runtime_options))
        return {k: v for k, v in dumped.items() if not is_secret_key(k)}

    def fingerprint_data(self) -> dict[str, Any]:
        """What identifies this model's outputs: id, revision and output-relevant options."""
        return {"id": self.id, "revision": self.revision(), "options": self.output_options()}

    def fingerprint(self) -> str:
        data = self.fingerprint_data()
        if self.run_blind:  # a blind run never shares its results with the run that sees the video
            data = {**data, "blind": True}
        return stable_hash(data)

    def revision(self) -> str | None:
        """The weights' revision (hub commit, checkpoint hash), if known."""
        return None

    def describe(self) -> dict[str, Any]:
        """Facts recorded in the run record (dtype, attention implementation, devices, ...)."""
        return {}

    def load(self) -> None:
        """Load weights. Called once before the first ``generate``."""

    @abstractmethod
    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        """Return one :class:`Response` per prepared request, in order.

        A failure on one sample is returned as ``Response(error=...)``; raising fails the whole batch, which the
        harness then records as an error for each of its samples.
        """
        raise NotImplementedError

    def stage(self, batch: list[PreparedRequest]) -> Any:
        """CPU-side preparation of a batch (tokenising, building tensors, starting host-to-device copies).

        The harness calls it on a helper thread for the *next* batch while ``generate_staged`` runs the current one,
        so a model whose batches spend time on the CPU keeps the GPU fed. It must not touch state that
        ``generate_staged`` mutates. The default hands the batch through unchanged."""
        return batch

    def generate_staged(self, staged: Any) -> list[Response]:
        """Generate for what ``stage`` returned; the default calls :meth:`generate` on the batch."""
        return self.generate(staged)

    def prefix_key(self, request: Request) -> str | None:
        """A key shared by requests whose prompts begin with the same prefix holding their media (several questions
        about one video), for a model that computes such a prefix once for all of them; ``None`` (the default): no
        grouping. The harness plans requests with the same key next to each other and keeps them in one batch where
        they fit (:func:`vdpm_harness.planning.group_by_prefix`); results and their keys do not depend on it."""
        return None

    def close(self) -> None:
        """Release resources (GPU memory, connections)."""


# --- benchmarks ---------------------------------------------------------------------------------------------------


class Benchmark(Plugin):
    """A benchmark plugin: samples, the request for each, and how to read and score a response."""

    #: Bump whenever samples, prompts or scoring change: it is part of every result key.
    version: ClassVar[str] = "1"
    #: Categories in reporting order (for per-category tables).
    categories: ClassVar[list[str]] = []
    #: The headline metric in ``BenchmarkResult.metrics``.
    primary_metric: ClassVar[str] = "accuracy"

    @abstractmethod
    def samples(self) -> Iterable[Sample]:
        raise NotImplementedError

    @abstractmethod
    def build_request(self, sample: Sample) -> Request:
        raise NotImplementedError

    def dataset_revision(self) -> str | None:
        """A checksum or revision of the data on disk, recorded in the run."""
        return None

    @abstractmethod
    def extract(self, sample: Sample, response: str) -> Extraction:
        """Read the answer out of a raw response with rules. Unparsed answers have ``parsed=False``."""
        raise NotImplementedError

    def judge_prompt(self, sample: Sample, response: str) -> JudgePrompt:
        """The messages an LLM judge gets for one response (the benchmark's official judge prompt)."""
        raise NotImplementedError(f"benchmark '{self.id}' defines no judge prompt")

    def parse_judgement(self, sample: Sample, reply: str) -> Extraction:
        """Turn a judge's raw reply into an :class:`Extraction` (``parsed=False`` for a malformed reply)."""
        raise NotImplementedError(f"benchmark '{self.id}' defines no judge prompt")

    # data management: ``vdpm-harness data pull|verify BENCH``

    def pull(self, to: Path) -> None:
        """Download the benchmark's data into ``to`` (the only place a benchmark touches the network)."""
        raise NotImplementedError(f"benchmark '{self.id}' has no download")

    def verify(self) -> list[str]:
        """Problems with the local data (missing files, checksum mismatches), each naming the file; [] if none."""
        return []

    # ``vdpm-harness import BENCH PATH``

    def import_predictions(self, path: Path) -> Iterable[ImportedRun]:
        """Read someone else's output files (e.g. a paper's released responses) as runs of the harness."""
        raise NotImplementedError(f"benchmark '{self.id}' cannot import predictions")

    @abstractmethod
    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        """Per-sample ``(correct, metrics)``."""
        raise NotImplementedError

    def aggregate(self, scores: list[Score]) -> tuple[dict, dict]:
        """Aggregate per-sample scores into ``(metrics, categories)`` of :class:`MetricValue`.

        The default reports accuracy (errors and unparsed answers count as wrong) with 95% CIs clustered by video,
        overall and per category.
        """
        from .stats import summarize_accuracy

        return summarize_accuracy(scores, self.categories)


# --- judges, reporters, generators ---------------------------------------------------------------------------------


class Judge(Plugin):
    """Reads the answer out of a free-form response with a model instead of rules."""

    version: ClassVar[str] = "1"

    @property
    def tag(self) -> str:
        """Scoring path written into every scored record, e.g. ``judge:gpt-4o-mini@1``."""
        return f"judge:{self.id}@{self.version}"

    def describe(self) -> dict[str, Any]:
        """Facts recorded in the run record (endpoint, judge model, sampling settings; never secrets)."""
        return {}

    def info(self) -> dict[str, Any]:
        """The run record's ``judge`` entry: id, version, options (secrets masked) and ``describe()``."""
        from .config import mask_secrets

        return mask_secrets({"id": self.id, "version": self.version, "options": self.options.model_dump(mode="json"),
                             **self.describe()})  # fmt: skip

    @abstractmethod
    def judge(self, benchmark: Benchmark, items: list[tuple[Sample, Prediction]]) -> list[Extraction]:
        """Return one :class:`Extraction` per ``(sample, prediction)``, with ``method = self.tag``.

        An LLM judge asks ``benchmark.judge_prompt(sample, prediction.response)`` and reads the reply with
        ``benchmark.parse_judgement``; ``prediction.meta`` holds what came with imported responses.
        """
        raise NotImplementedError


class Reporter(Plugin):
    """Writes a view of the leaderboard (markdown, xlsx, ...) into a results folder."""

    @abstractmethod
    def write(self, leaderboard: Leaderboard, out_dir: Path) -> list[Path]:
        raise NotImplementedError


class Generator(Plugin):
    """Turns videos or scenes into data (QA records, videos). ``vdpm-harness generate ID`` runs it.

    ``run`` is the one call a caller makes. A generator whose work splits into independent items subclasses
    :class:`ItemGenerator` instead and is then resumable and shares its items across processes under ``torchrun``.
    Files in ``out`` that the generator does not write are never deleted or overwritten."""

    #: Bump whenever the data generated for the same options and seed changes; callers record it with the data.
    version: ClassVar[str] = "1"

    @abstractmethod
    def run(self, out: Path, seed: int = 0) -> dict[str, Any]:
        """Generate into ``out``; return summary statistics (counts, yields) that the CLI prints."""
        raise NotImplementedError


class ItemGenerator(Generator):
    """A generator made of independent work items, driven by :func:`vdpm_harness.generation.generate`.

    ``items`` names the work (stable ids, in output order); ``produce`` makes one item: it writes the item's files
    through :class:`~vdpm_harness.generation.ItemFiles` (temporary names, renamed when complete) and returns a JSON
    record of everything the final files need; ``combine`` writes the final files from the records of the finished
    items, in item order, and returns the statistics. Each item draws its randomness from ``(seed, item)`` alone, so
    the output does not depend on which process produced which item or on an interruption: a rerun skips the items
    whose record exists and writes exactly the bytes of an uninterrupted run.
    """

    @abstractmethod
    def items(self, seed: int) -> list[str]:
        """The ids of the work items (unique, usable in messages), in the order of the output."""
        raise NotImplementedError

    @abstractmethod
    def produce(self, item: str, seed: int, files: ItemFiles) -> dict[str, Any]:
        """Make one item: write its files with ``files`` and return its record (JSON-serialisable). Raising fails
        this item only: it is reported by id and retried by the next run."""
        raise NotImplementedError

    @abstractmethod
    def combine(self, out: Path, seed: int, results: ItemResults) -> dict[str, Any]:
        """Write the final files into ``out`` (atomically) from ``results.records`` (the finished items' records,
        read back from disk, in item order; ``results.failures`` names the failed items) and return the statistics
        that ``run`` returns."""
        raise NotImplementedError

    def empty(self, stats: dict[str, Any]) -> str | None:
        """Why the combined output holds nothing (the run then fails with this message), or None."""
        return None

    def run(self, out: Path, seed: int = 0, *, dist: Distributed | None = None) -> dict[str, Any]:
        """Produce the missing items and combine them (see :mod:`vdpm_harness.generation`). ``dist``, from
        :meth:`Distributed.from_env <vdpm_harness.distributed.Distributed.from_env>`, shares the items between the
        processes of a ``torchrun`` launch; without it the run is one process, whatever the environment."""
        from .generation import generate

        return generate(self, Path(out), seed, dist=dist)


class MCQBenchmark(Benchmark):
    """A multiple-choice benchmark: ``Sample.options`` are the choices, ``Sample.answer`` the gold letter.

    Extraction uses the rule extractor of :mod:`vdpm_harness.extract` restricted to the sample's valid letters;
    a sample scores 1 when the extracted letter equals the gold letter, else 0 (unparsed included).
    """

    @staticmethod
    def letters(sample: Sample) -> list[str]:
        return [chr(ord("A") + i) for i in range(len(sample.options))]

    def mcq_request(self, sample: Sample, messages: list, generation=None) -> Request:
        """A request for ``sample`` with its letters as ``choices`` and its option texts as ``options``."""
        extra = {"generation": generation} if generation is not None else {}
        return Request(sample_id=sample.sample_id, messages=messages, choices=self.letters(sample),
                       options=sample.options, **extra)  # fmt: skip

    def extract(self, sample: Sample, response: str) -> Extraction:
        from .extract import extract_choice

        return extract_choice(response, self.letters(sample), sample.options)

    def score(self, sample: Sample, extraction: Extraction) -> tuple[float | None, dict[str, float]]:
        return (1.0 if extraction.parsed and extraction.answer == sample.answer else 0.0), {}


# --- perception: the stages that turn a video into a SceneTrack ----------------------------------------------------
#
# The four kinds below are the stages of the ``video-tracks`` generator (open-vocabulary detection, video object
# tracking, 3D reconstruction, orientation), after the DSR Suite's data pipeline (TencentARC/DSR_Suite,
# ``data/qa_temp.py`` and ``data/qa_utils.py``; arXiv 2512.20557). Every stage receives the same :class:`Clip`;
# pixel coordinates are those of the clip's frames (column ``u`` covers ``[u, u + 1)``), cameras are OpenCV
# (x right, y down, z forward) as in :mod:`vdpm_harness.geometry`.


@dataclass
class Clip:
    """The frames of one video that the perception stages see, and where they come from.

    ``frames`` ``(T, H, W, 3)`` uint8 RGB at the video's resolution; ``indices`` their frame numbers in the video,
    ``timestamps`` their times in seconds; ``video`` the source file (a ground-truth stage reads the scene beside
    it); ``fps`` the video's native rate.
    """

    frames: Any
    indices: Any
    timestamps: Any
    video: Path | None = None
    fps: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Detection:
    """One detected object: ``box`` ``(x0, y0, x1, y1)`` in pixels, ``score`` in [0, 1], the ``phrase`` it matched.

    ``truth_id`` is set only by ground-truth detectors (the id of the object in the scene's own track)."""

    box: tuple[float, float, float, float]
    score: float
    phrase: str
    truth_id: str | None = None


@dataclass
class Tracks:
    """Objects followed through a clip: ``masks`` ``(N, T, H, W)`` bool and ``boxes`` ``(N, T, 4)`` pixel boxes
    (NaN on frames where an object is not seen). :meth:`from_masks` derives the boxes from the masks."""

    masks: Any
    boxes: Any

    @classmethod
    def from_masks(cls, masks) -> Tracks:
        """Boxes of every non-empty mask: ``(x_min, y_min, x_max + 1, y_max + 1)``, the pixels' outer edges."""
        import numpy as np

        masks = np.asarray(masks, bool)
        n, t = masks.shape[:2]
        boxes = np.full((n, t, 4), np.nan)
        rows, cols = masks.any(axis=3), masks.any(axis=2)  # (N, T, H), (N, T, W)
        seen = rows.any(axis=2)
        if seen.any():
            height, width = masks.shape[2:]
            top = np.argmax(rows, axis=2)
            bottom = height - np.argmax(rows[..., ::-1], axis=2)
            left = np.argmax(cols, axis=2)
            right = width - np.argmax(cols[..., ::-1], axis=2)
            boxes[seen] = np.stack([left, top, right, bottom], axis=-1)[seen]
        return cls(masks=masks, boxes=boxes)

    @property
    def seen(self):
        """``(N, T)``: the object is seen (its box is known)."""
        import numpy as np

        return np.isfinite(self.boxes).all(axis=2)


@dataclass
class Reconstruction:
    """Per-frame 3D of a clip: ``local_points`` ``(T, h, w, 3)`` in each frame's camera (OpenCV), ``valid``
    ``(T, h, w)`` bool, ``camera_to_world`` ``(T, 4, 4)`` OpenCV camera-to-world poses and, when known,
    ``intrinsics`` ``(3, 3)`` for the clip's frame size. ``(h, w)`` may be a processing size smaller than the
    frames. ``scale`` is ``"normalized"`` (an arbitrary per-video scale, as Pi3's) or ``"metric"``."""

    local_points: Any
    valid: Any
    camera_to_world: Any
    intrinsics: Any = None
    scale: str = "normalized"

    def at_size(self, width: int, height: int):
        """``(points (T, height, width, 3), valid (T, height, width))`` resampled by nearest neighbour, as DSR
        resizes Pi3's outputs to the frames (``torch.nn.functional.interpolate``'s default ``nearest``: source index
        ``floor(i * h / height)``)."""
        import numpy as np

        h, w = self.valid.shape[1:]
        rows = np.minimum((np.arange(height) * h / height).astype(int), h - 1)
        cols = np.minimum((np.arange(width) * w / width).astype(int), w - 1)
        return self.local_points[:, rows][:, :, cols], self.valid[:, rows][:, :, cols]


@dataclass
class Orientation:
    """Orient Anything's angles of one object in one frame's camera, in degrees (azimuth 0 = facing the camera, 90 =
    facing image-left, 180 = facing away; see :func:`vdpm_harness.geometry.agent_rotation`), and the confidence that
    the object has a meaningful front."""

    azimuth: float
    polar: float
    rotation: float
    confidence: float

    def facing(self):
        """The unit direction the object faces, in camera coordinates (DSR's facing vector)."""
        from .geometry import facing_vector

        return facing_vector(self.polar, self.azimuth, self.rotation)


class Detector(Plugin):
    """Finds the objects named by phrases in frames of a clip (open-vocabulary detection)."""

    @abstractmethod
    def detect(self, clip: Clip, frames: list[int], phrases: list[str]) -> list[list[Detection]]:
        """The detections of each frame in ``frames`` (indices into the clip), each labelled with one of
        ``phrases``; all frames in one call, so a model can batch them."""
        raise NotImplementedError


class Tracker(Plugin):
    """Follows boxed objects through a clip (video object segmentation); also segments boxes in one image."""

    @abstractmethod
    def track(self, clip: Clip, frame: int, boxes) -> Tracks:
        """Track the objects boxed ``(N, 4)`` on clip frame ``frame`` through every frame of the clip (before
        ``frame`` by propagating backwards); object ``i`` of the result is box ``i``."""
        raise NotImplementedError

    def segment(self, image, boxes):
        """Masks ``(N, H, W)`` of the boxed objects in one ``(H, W, 3)`` image (by default: a one-frame track)."""
        import numpy as np

        clip = Clip(frames=np.asarray(image)[None], indices=np.zeros(1, int), timestamps=np.zeros(1))
        return self.track(clip, 0, boxes).masks[:, 0]


class Reconstructor(Plugin):
    """Recovers per-frame 3D points and camera poses of a clip, and places segmented objects in 3D."""

    @abstractmethod
    def reconstruct(self, clip: Clip) -> Reconstruction:
        raise NotImplementedError

    def locate(self, clip: Clip, reconstruction: Reconstruction, tracks: Tracks):
        """Object positions ``(N, T, 3)`` in each frame's camera: by default DSR's rule (``extract_obj_center`` of
        TencentARC/DSR_Suite ``data/qa_utils.py``), the mean of the points under the object's mask and the
        reconstruction's valid pixels, at the frames' resolution; NaN where that set is empty."""
        import numpy as np

        width, height = clip.size
        points, valid = reconstruction.at_size(width, height)
        n, t = tracks.masks.shape[:2]
        positions = np.full((n, t, 3), np.nan)
        for k in range(t):
            for i in range(n):
                keep = tracks.masks[i, k] & valid[k]
                if keep.any():
                    positions[i, k] = points[k][keep].astype(np.float64).mean(axis=0)
        return positions


class OrientationEstimator(Plugin):
    """Estimates which way segmented objects face (Orient Anything's angles) in frames of a clip."""

    @abstractmethod
    def estimate(self, clip: Clip, requests: list[tuple[int, Any]]) -> list[Orientation]:
        """One :class:`Orientation` per ``(frame, mask)`` request (``mask`` ``(H, W)`` bool on that clip frame);
        all in one call, so a model can batch them."""
        raise NotImplementedError
