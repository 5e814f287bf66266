"""``openai-chat``: any model behind an OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, ...).

The harness decodes the frames (the benchmark's :class:`~vdpm_harness.records.FramePolicy`, logged per sample); each
video part of a request becomes that many ``image_url`` parts holding base64 JPEG data URIs, in place of the video
and in message order, text parts stay text. This is VLM4D's layout for its API models (frames before the question in
one user message, no ``detail`` key, JPEG quality 95 as ``cv2.imencode`` writes by default; VLM4D's inference script
for API models).
With ``send_video = true`` the mp4 itself goes as one ``video_url`` data URI instead, for servers that sample frames
themselves (vLLM); the frame policy is then not applied by the harness.

Decoding follows the request: ``temperature`` (0.0, greedy, unless the benchmark says otherwise), ``max_tokens`` from
``max_new_tokens``, ``top_p``/``top_k`` when set, and ``generation.extra`` passed through as request fields.

Usage::

    export OPENAI_API_KEY=...
    vdpm-harness run --model openai-chat --model-arg model=gpt-4o-2024-08-06 --bench vlm4d
    vdpm-harness run --model openai-chat --model-arg base_url=http://localhost:8000/v1 \\
        --model-arg model=Qwen/Qwen2.5-VL-7B-Instruct --model-arg api_key=EMPTY --bench dsr

Transport options (concurrency, retries, timeout, cache, prices, key) do not change the result key; the endpoint,
the model name and the image settings do. The model id the server reports in its replies is recorded per sample in
``usage["model"]`` and returned by ``revision()`` once a reply has been seen.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vdpm_harness import (
    DEFAULT_BASE_URL,
    TRANSPORT_OPTIONS,
    ApiOptions,
    ChatClient,
    ImagePart,
    Model,
    PreparedRequest,
    Response,
    TextPart,
    VideoPart,
    hookimpl,
)


def jpeg_data_uri(frame, quality: int) -> str:
    """An RGB uint8 ``(H, W, 3)`` frame as a ``data:image/jpeg;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_data_uri(path: str, fallback_type: str) -> str:
    """A media file as a base64 data URI (its type guessed from the extension)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"media file not found: {path}")
    kind = mimetypes.guess_type(file.name)[0] or fallback_type
    return f"data:{kind};base64," + base64.b64encode(file.read_bytes()).decode("ascii")


class OpenAIChat(Model):
    """A chat-completions endpoint as a model; a batch of requests is sent concurrently."""

    needs_frames = True
    runtime_options = Model.runtime_options | TRANSPORT_OPTIONS

    class Options(ApiOptions):
        model: str = Field(description="the model name the endpoint serves")
        base_url: str = DEFAULT_BASE_URL
        batch_size: int = Field(default=32, ge=1, description="requests handed over at once (sent concurrently)")
        jpeg_quality: int = Field(default=95, ge=1, le=100)
        image_detail: Literal["low", "high", "auto"] | None = None
        send_video: bool = False
        system_prompt: str | None = None

    def __init__(self, options=None):
        super().__init__(options)
        self.needs_frames = not self.options.send_video
        self.client: ChatClient | None = None
        self.served_model: str | None = None  # the model id the server reported in its first reply

    def fingerprint_data(self) -> dict[str, Any]:
        """Id and output options, not ``revision()``: the served model id is only known after a reply, and a key
        that changed with it would orphan stored results. The requested ``model`` name identifies the outputs."""
        return {"id": self.id, "options": self.output_options()}

    def load(self) -> None:
        self.client = ChatClient(self.id or "openai-chat", self.options)  # a missing key fails here, clearly

    def revision(self) -> str | None:
        return self.served_model

    def describe(self) -> dict[str, Any]:
        options = self.options
        return {
            "base_url": options.base_url.rstrip("/"),
            "concurrency": options.concurrency,
            "max_retries": options.max_retries,
            "timeout": options.timeout,
            "visual_input": "video_url (mp4)" if options.send_video else f"image_url JPEG q{options.jpeg_quality}",
            "cache": str(self.client.cache.path) if self.client and self.client.cache else None,
        }

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    # -- requests ----------------------------------------------------------------------------------------------------

    def _content(self, part, video) -> list[dict[str, Any]]:
        """The OpenAI content parts for one request part (``video``: its decoded frames, when they were needed)."""
        if isinstance(part, TextPart):
            return [{"type": "text", "text": part.text}]
        if isinstance(part, ImagePart):
            return [self._image(file_data_uri(part.image, "image/jpeg"))]
        if part.frames.blind:
            return []
        if self.options.send_video:
            return [{"type": "video_url", "video_url": {"url": file_data_uri(part.video, "video/mp4")}}]
        if video is None:
            raise ValueError(f"no decoded frames were handed over for {part.video}")
        return [self._image(jpeg_data_uri(frame, self.options.jpeg_quality)) for frame in video.frames]

    def _image(self, url: str) -> dict[str, Any]:
        image_url = {"url": url}
        if self.options.image_detail:
            image_url["detail"] = self.options.image_detail
        return {"type": "image_url", "image_url": image_url}

    def payload(self, prepared: PreparedRequest) -> dict[str, Any]:
        """The chat-completions request body for one prepared request."""
        request = prepared.request
        messages: list[dict[str, Any]] = []
        if self.options.system_prompt:
            messages.append({"role": "system", "content": self.options.system_prompt})
        n_video = 0
        for message in request.messages:
            content = []
            for part in message.content:
                video = None
                if isinstance(part, VideoPart):
                    video = prepared.videos[n_video] if n_video < len(prepared.videos) else None
                    n_video += 1
                content += self._content(part, video)
            if len(content) == 1 and content[0]["type"] == "text":
                content = content[0]["text"]  # a plain string: what every server accepts for text-only turns
            messages.append({"role": message.role, "content": content})
        generation = request.generation
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": messages,
            "temperature": generation.temperature,
            "max_tokens": generation.max_new_tokens,
        }
        if generation.top_p is not None:
            body["top_p"] = generation.top_p
        if generation.top_k is not None:
            body["top_k"] = generation.top_k
        body.update(generation.extra)
        return body

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        if self.client is None:
            self.load()
        payloads: dict[int, dict] = {}
        responses: list[Response | None] = [None] * len(batch)
        for i, prepared in enumerate(batch):
            try:
                payloads[i] = self.payload(prepared)
            except (OSError, ValueError) as exc:
                responses[i] = Response(sample_id=prepared.request.sample_id, error=f"{type(exc).__name__}: {exc}")
        replies = self.client.complete_many(list(payloads.values()))
        for i, reply in zip(payloads, replies):
            sample_id = batch[i].request.sample_id
            usage = {**reply.usage, "model": reply.model}
            self.served_model = self.served_model or reply.model
            responses[i] = Response(sample_id=sample_id, text=reply.text, error=reply.error, usage=usage)
        return responses


@hookimpl
def register_models(register):
    register(
        "openai-chat",
        OpenAIChat,
        aliases=("openai",),
        description="Any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang); frames as base64 JPEG images.",
    )
