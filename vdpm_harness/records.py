"""Typed, versioned, JSON-serializable records: the vocabulary shared by the core and every plugin.

Every record is a pydantic model that rejects unknown fields and carries ``schema_version``, so a record written by
one release of vdpm-harness is either read correctly by the next or refused with a clear error.

The flow of records through a run::

    Sample --benchmark.build_request--> Request --harness decodes media--> PreparedRequest
        --model.generate--> Response --store--> Prediction --benchmark.extract/score--> Score --aggregate--> results
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1
#: The schema versions this release reads. A record of any other version is refused, never guessed at.
READABLE_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})


class SchemaVersionError(ValueError):
    """A stored record has a schema version this release cannot read; the message names the file (and line)."""


def schema_problem(exc: ValidationError) -> str | None:
    """The message of ``exc``'s error about a ``schema_version`` field (of the record or a nested one), if any."""
    for error in exc.errors():
        if error["loc"] and error["loc"][-1] == "schema_version":
            return error["msg"].removeprefix("Value error, ")
    return None


def read_record(cls: type[BaseModel], text: str | bytes, source: str | os.PathLike) -> Any:
    """``cls`` validated from JSON ``text``; a record of an unknown schema version raises
    :class:`SchemaVersionError` naming ``source`` (other validation errors are raised unchanged)."""
    try:
        return cls.model_validate_json(text)
    except ValidationError as exc:
        problem = schema_problem(exc)
        if problem:
            raise SchemaVersionError(f"{source}: {problem}") from None
        raise


class Strict(BaseModel):
    """Base of every record and of the parts nested in them: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class Record(Strict):
    """Base of the top-level records: JSON round trip and a schema version."""

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, value: int) -> int:
        if value not in READABLE_SCHEMA_VERSIONS:
            known = ", ".join(map(str, sorted(READABLE_SCHEMA_VERSIONS)))
            raise ValueError(
                f"{cls.__name__} of schema_version {value}, which this release of vdpm-harness does not know (it "
                f"reads version {known}): written by another release? Read it with the release that wrote it"
            )
        return value

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str):
        return cls.model_validate_json(text)


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace), truncated to ``length`` hex digits."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


class FramePolicy(Strict):
    """How frames are taken from a video: a frame count or a rate with a cap, and pixel limits.

    Exactly one of ``nframes`` and ``fps`` is set.

    * ``nframes``: that many frames spread uniformly over the whole video. ``sampler`` chooses the rounding of
      ``linspace(0, total - 1, nframes)``: ``"round"`` (qwen-vl-utils and the DSR generator) or ``"floor"``
      (VLMEvalKit's ``np.linspace(..., dtype=int)``).
    * ``fps``: frames at that rate (VLMEvalKit's rule ``int(i * native_fps / fps)``), at most ``max_frames`` of
      them (spread uniformly over the whole video when the cap binds) and at least ``min_frames``.
    * ``min_pixels`` / ``max_pixels``: the frame area after resizing, aspect ratio kept; sides are rounded to a
      multiple of ``size_multiple`` (28 for Qwen2.5-VL). ``None`` keeps the native size.
    * ``nframes = 0`` means a blind (text-only) run: no frames are decoded.
    """

    nframes: int | None = Field(default=None, ge=0)
    fps: float | None = Field(default=None, gt=0)
    max_frames: int | None = Field(default=None, ge=1)
    min_frames: int = Field(default=1, ge=1)
    sampler: Literal["round", "floor"] = "round"
    min_pixels: int | None = Field(default=None, ge=1)
    max_pixels: int | None = Field(default=None, ge=1)
    size_multiple: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_mode(self):
        if (self.nframes is None) == (self.fps is None):
            raise ValueError("a FramePolicy sets exactly one of 'nframes' and 'fps'")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels exceeds max_pixels")
        return self

    @property
    def blind(self) -> bool:
        return self.nframes == 0

    def describe(self) -> str:
        mode = f"{self.nframes} frames" if self.nframes is not None else f"{self.fps:g} fps"
        if self.fps is not None and self.max_frames:
            mode += f" (max {self.max_frames})"
        if self.max_pixels:
            mode += f", <= {self.max_pixels} px"
        return mode


class TextPart(Strict):
    type: Literal["text"] = "text"
    text: str


class VideoPart(Strict):
    """A video file; the harness decodes it with ``frames`` (the benchmark's policy unless the run overrides it)."""

    type: Literal["video"] = "video"
    video: str
    frames: FramePolicy


class ImagePart(Strict):
    type: Literal["image"] = "image"
    image: str


ContentPart = Annotated[TextPart | VideoPart | ImagePart, Field(discriminator="type")]


class Message(Strict):
    role: Literal["system", "user", "assistant"] = "user"
    content: list[ContentPart]


class Sample(Record):
    """One benchmark item as the benchmark loaded it.

    ``video_id`` is the cluster for confidence intervals (several questions per clip). ``answer`` is the gold answer
    (an option letter for multiple choice, a reference text or list of texts otherwise). ``meta`` is free-form,
    JSON-serializable, and copied to the prediction.
    """

    sample_id: str
    video_id: str
    category: str | None = None
    question: str = ""
    options: list[str] = Field(default_factory=list)
    answer: Any = None
    media: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class GenerationSettings(Strict):
    """Decoding settings of a request. Part of the result key, so changing them never reuses old responses."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Request(Record):
    """What a benchmark asks a model: chat messages with content parts.

    For multiple-choice questions ``choices`` holds the valid answers (option letters) and ``options`` the option
    texts, for baselines and constrained decoding; neither is shown to the model unless the messages contain it.
    """

    sample_id: str
    messages: list[Message]
    choices: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)

    def prompt_hash(self) -> str:
        """Hash of the messages: text, frame policies and media file *names*.

        Media are named by basename, not full path, so moving a data folder keeps the stored results valid (the
        sample id is part of the result key as well).
        """
        dumped = [m.model_dump(mode="json") for m in self.messages]
        for message in dumped:
            for part in message["content"]:
                for field in ("video", "image"):
                    if field in part:
                        part[field] = os.path.basename(part[field])
        return stable_hash(dumped)

    def video_parts(self) -> list[VideoPart]:
        return [p for m in self.messages for p in m.content if isinstance(p, VideoPart)]

    def text(self) -> str:
        """All text parts joined, in order: what a text-only model sees."""
        return "".join(p.text for m in self.messages for p in m.content if isinstance(p, TextPart))


class Response(Record):
    """A model's answer to one request. ``error`` set means the model failed on this sample (the run goes on)."""

    sample_id: str
    text: str | None = None
    error: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None


class Prediction(Record):
    """One line of the append-only store: a response with everything needed to score and reproduce it.

    ``meta`` carries what came with an imported response (e.g. the official judge's verdict of a published run).
    """

    key: str
    sample_id: str
    video_id: str
    category: str | None = None
    benchmark: str
    benchmark_version: str
    model: str
    model_fingerprint: str
    prompt_hash: str
    frame_indices: list[list[int]] | None = None
    generation: GenerationSettings
    status: Literal["ok", "error"]
    response: str | None = None
    error: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None
    created: str
    meta: dict[str, Any] = Field(default_factory=dict)


class Extraction(Strict):
    """The answer read out of a response, and how: ``method`` is a rule id (``rules:<name>``) or a judge id.

    ``error`` is set when a judge failed to give a verdict at all (an HTTP error after its retries, a timeout, a reply
    that is empty or not the JSON asked for): the sample is then reported as an error (``Score.status == "error"``,
    counted in ``n_errors``; in the accuracy it counts as wrong, as every error does), not scored as a wrong answer,
    and ``rescore`` asks the judge again. A verdict that the benchmark reads as no valid answer is ``parsed=False``
    without ``error``: a wrong answer."""

    answer: Any = None
    parsed: bool
    method: str
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class Score(Record):
    """Per-sample score: ``correct`` in [0, 1] for accuracy benchmarks, ``metrics`` for anything else."""

    sample_id: str
    video_id: str
    category: str | None = None
    status: Literal["ok", "error"]
    correct: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    extraction: Extraction | None = None
    gold: Any = None
    response: str | None = None
    error: str | None = None


class MetricValue(Strict):
    """An aggregate with its uncertainty: ``value`` in percent for accuracies, 95% CI from clustered errors.

    ``interval`` names how ``ci_low``/``ci_high`` were computed (:func:`vdpm_harness.stats.clustered_mean`):
    ``"wilson"`` for a proportion (Wilson score interval on the effective sample size n/deff), ``"wald"`` for any
    other mean (value ± 1.96 clustered SE); ``None`` without an interval or in results written before the field.
    ``kind`` is ``"proportion"`` for the percentage of samples that scored 1 (accuracy-type, 0-100, comparable across
    benchmarks) and ``"mean"`` for any other mean (BLEU, CIDEr, a judge's 1-5 score); ``None`` in older results.
    """

    value: float
    n: int
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_clusters: int | None = None
    interval: Literal["wilson", "wald"] | None = None
    kind: Literal["proportion", "mean"] | None = None


class RunRecord(Record):
    """What reproduces one (model, benchmark) pair; written to ``run.json`` and copied into ``results.json``.

    ``model`` holds the id, label, options (secrets masked), fingerprint, revision and load details; ``benchmark``
    its id, version, options, frame-policy override and dataset revision; ``environment`` package versions, git
    revision, platform and the command line (secrets redacted); ``config`` the resolved run configuration.
    """

    started: str
    finished: str | None = None
    rescored: str | None = None
    seed: int
    limit: int | None = None
    model: dict[str, Any]
    benchmark: dict[str, Any]
    judge: dict[str, Any] | None = None
    decoder: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)


class BenchmarkResult(Record):
    """What one (model, benchmark) pair scored. ``primary`` names the headline metric in ``metrics``."""

    model: str
    benchmark: str
    benchmark_version: str
    primary: str
    metrics: dict[str, MetricValue]
    categories: dict[str, dict[str, MetricValue]] = Field(default_factory=dict)
    category_order: list[str] = Field(default_factory=list)
    n_samples: int
    n_errors: int
    unparsed_rate: float | None = None
    scoring: str
    #: False when the metrics cover only part of the run's samples: ``rescore`` of a run that did not finish scores
    #: the samples it has predictions for (``n_samples``) out of the ``n_expected`` the run covers, and says so.
    complete: bool = True
    #: How many samples the run covers (None in files written before this field existed).
    n_expected: int | None = None
    #: The most frequent reasons of the errors (model, video, benchmark or judge failures), each with its count,
    #: most frequent first (:func:`vdpm_harness.stats.error_reasons`; secrets are redacted when errors are recorded).
    error_reasons: dict[str, int] = Field(default_factory=dict)
    run: RunRecord | None = None
