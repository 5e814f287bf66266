"""The video attached to the video-level filter's request.

The original sends nothing: its request is the placeholder ``response = "YOUR_REQUEST_FUNCTION"`` and the video
bytes never leave the machine (TencentARC/DSR_Suite, ``data/gemini_motion.py``). Here the video goes with the
prompt, in one of two forms:

* ``frames``: ``frames`` frames spread uniformly over the video (the core's decoder, ``round(linspace)``), resized to
  at most ``max_pixels`` pixels, each a base64 JPEG ``image_url`` part, before the text: what every vision endpoint
  takes (OpenAI, Gemini's OpenAI-compatible endpoint, vLLM, SGLang);
* ``video``: the file itself as one ``video_url`` data URI, for endpoints that sample a video themselves (vLLM).

The records keep what was sent (frame indices and size, or the file's size) and the request's sha256, never the
bytes.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path

from vdpm_harness import FramePolicy, decode


def jpeg_uri(frame, quality: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def video_parts(path: Path, mode: str, frames: int, max_pixels: int | None, quality: int) -> tuple[list, dict]:
    """The content parts that carry the video, and what was sent (frame indices or the file's size)."""
    if mode == "video":
        kind = mimetypes.guess_type(path.name)[0] or "video/mp4"
        data = path.read_bytes()
        uri = f"data:{kind};base64," + base64.b64encode(data).decode("ascii")
        return [{"type": "video_url", "video_url": {"url": uri}}], {"sent": "video", "bytes": len(data)}
    decoded = decode(path, FramePolicy(nframes=frames, max_pixels=max_pixels))
    parts = [{"type": "image_url", "image_url": {"url": jpeg_uri(frame, quality)}} for frame in decoded.frames]
    size = [int(decoded.frames.shape[2]), int(decoded.frames.shape[1])] if len(decoded.frames) else None
    return parts, {"sent": "frames", "frame_indices": [int(i) for i in decoded.indices], "size": size}
