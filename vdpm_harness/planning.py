"""Planning a (model, benchmark) pair: one :class:`WorkItem` per sample, with its request, frame policy and result
key; a video's questions kept together so that a model can share their prompt prefix (:func:`group_by_prefix`,
:func:`opens_batch`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .interfaces import Benchmark, Model
from .records import (
    FramePolicy,
    Request,
    Sample,
    TextPart,
    stable_hash,
)  # fmt: skip
from .store import (
    result_key,
)


@dataclass
class WorkItem:
    """One sample planned for inference: its request, result key and frame indices (or why it cannot run)."""

    sample: Sample
    request: Request
    key: str
    frame_indices: list[list[int]] | None
    error: str | None = None
    #: ``Model.prefix_key`` of the request: items with the same key are planned next to each other and batched
    #: together where they fit (:func:`group_by_prefix`, :func:`opens_batch`).
    prefix: str | None = None


def with_frames(request: Request, policy: FramePolicy | None) -> Request:
    """The request with every video part's frame policy replaced (an explicit, recorded run override)."""
    if policy is None:
        return request
    request = request.model_copy(deep=True)
    for part in request.video_parts():
        part.frames = policy
    return request


def text_only(request: Request) -> Request:
    """The request without its video and image parts (what a blind model gets: the same prompt without the media);
    a message left with no content is dropped."""
    request = request.model_copy(deep=True)
    for message in request.messages:
        message.content = [part for part in message.content if isinstance(part, TextPart)]
    request.messages = [message for message in request.messages if message.content]
    return request


def sample_seed(run_seed: int, key: str) -> int:
    """A per-sample seed that does not depend on batch order, shard or resume."""
    return int(stable_hash([run_seed, key], 8), 16)


def plan(benchmark: Benchmark, model: Model, samples: list[Sample], frames: FramePolicy | None) -> list[WorkItem]:
    """Build each request and its result key. A video that cannot be probed makes the sample an error item. A blind
    model's requests lose their media (:func:`text_only`): nothing is probed or decoded."""
    from .video import VideoError, frame_indices, probe

    fingerprint = model.fingerprint()
    infos: dict[str, Any] = {}
    items = []
    for sample in samples:
        try:
            request = with_frames(benchmark.build_request(sample), frames)
        except Exception as exc:  # noqa: BLE001 - one sample the benchmark cannot ask is that sample's error
            request = Request(sample_id=sample.sample_id, messages=[])
            key = result_key(fingerprint, benchmark.id, benchmark.version, sample.sample_id, "unbuilt", None,
                             request.generation)  # fmt: skip
            error = f"the benchmark could not build the request: {error_text(exc)}"
            items.append(WorkItem(sample, request, key, None, error))
            continue
        if model.blind:
            request = text_only(request)
        indices: list[list[int]] | None = []
        error = choice_problem(sample, request)
        for part in request.video_parts():
            if part.frames.blind:
                indices.append([])
                continue
            if error is not None:
                indices = None
                break
            try:
                if part.video not in infos:
                    infos[part.video] = probe(part.video)
                indices.append(frame_indices(part.frames, infos[part.video]))
            except VideoError as exc:
                error, indices = f"video error: {exc}", None
                break
        key = result_key(
            fingerprint, benchmark.id, benchmark.version, sample.sample_id, request.prompt_hash(), indices,
            request.generation,
        )  # fmt: skip
        items.append(WorkItem(sample, request, key, indices, error))
    return group_by_prefix(model, items)


def group_by_prefix(model: Model, items: list[WorkItem]) -> list[WorkItem]:
    """The items with each one's ``prefix`` set to ``model.prefix_key`` of its request, those sharing a key moved
    next to the first of them (a stable order: groups by their first item, items in order within a group), so that
    a model that encodes a shared prompt prefix once (several questions about one video) finds them in one batch.
    Without keys (the default of ``Model.prefix_key``) the order is unchanged. Result keys do not depend on it."""
    groups: dict[Any, list[WorkItem]] = {}
    for item in items:
        if item.error is None:
            item.prefix = model.prefix_key(item.request)
        groups.setdefault(object() if item.prefix is None else item.prefix, []).append(item)
    return [item for group in groups.values() for item in group]


def opens_batch(batch: list[WorkItem], item: WorkItem, group_sizes: Counter, batch_size: int) -> bool:
    """Whether ``item`` should start a new batch rather than join ``batch``: it begins another prefix group
    (:func:`group_by_prefix`) of ``group_sizes[item.prefix]`` pending items that would not fit in the room left but
    fits in a batch of its own. A group larger than a batch fills the current one and goes on in the next."""
    if not batch or item.prefix is None or item.prefix == batch[-1].prefix:
        return False
    size = group_sizes[item.prefix]
    return len(batch) + size > batch_size and size <= batch_size


def choice_problem(sample: Sample, request: Request) -> str | None:
    """Why a multiple-choice request cannot be asked, naming the sample, or ``None``: answer choices must be distinct,
    and single-character ones letters or digits, so a question with more than 26 options (lettered past Z as
    ``[ \\ ] ^``) is refused."""
    odd = [choice for choice in request.choices if len(choice) == 1 and not choice.isalnum()]
    if odd:
        return (f"sample {sample.sample_id} has {len(request.choices)} options, but answer letters run from A to Z: "
                f"at most 26 options can be asked (the letters past Z would be {' '.join(odd)})")  # fmt: skip
    repeated = sorted({choice for choice in request.choices if request.choices.count(choice) > 1})
    if repeated:
        return f"sample {sample.sample_id} repeats the answer choices {', '.join(repeated)}"
    return None


def error_text(exc: BaseException) -> str:
    """An exception as ``Type: message`` (for error records)."""
    return f"{type(exc).__name__}: {exc}"
