"""DSR-Bench's two official prompt layouts and frame settings, character for character.

* ``"vlmevalkit"``: upstream VLMEvalKit, ``DSRBench.build_prompt`` in ``vlmeval/dataset/dsrbench.py``: the
  instruction :data:`PRE_PROMPT` (``FRAMES_TMPL_NOSUB``), the video, then :func:`question_text`.
* ``"dsr_fork"``: the authors' evaluation, TencentARC/DSR_Suite ``VLMEvalKit_mine`` (``vlmeval/dataset/
  spatial_reasoning.py``; paper: arXiv 2512.20557): an empty text, the video, the same instruction, then the same
  question text.

``tests/test_dsr.py`` compares :data:`PRE_PROMPT` with ``FRAMES_TMPL_NOSUB`` read from the ms-vlmeval 0.0.20 wheel.
"""

from __future__ import annotations

from vdpm_harness import FramePolicy, TextPart, VideoPart

#: VLMEvalKit's ``DSRBench.FRAMES_TMPL_NOSUB``, the instruction of both layouts.
PRE_PROMPT = (
    "\nThese are the frames of a video. Select the best answer to the following multiple-choice question based on "
    "the video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
)
#: VLMEvalKit's named variants (``vlmeval/dataset/video_dataset_config.py``); ``32frame`` is what the authors ran.
#: Frame counts are spread with rounded ``linspace`` (qwen-vl-utils, which samples for the Qwen models of both
#: evaluations).
FRAME_PRESETS = {
    "32frame": FramePolicy(nframes=32),
    "64frame": FramePolicy(nframes=64),
    "30frame": FramePolicy(nframes=30),
    "1fps": FramePolicy(fps=1.0),
}
DEFAULT_PRESET = "32frame"


def question_text(question: str, options: list[str]) -> str:
    """``"Question: {question}\\n{option}\\n...\\nAnswer: "`` (trailing space): the question part of both layouts;
    the options are the table's strings, which carry their letters."""
    return f"Question: {question}\n" + "\n".join(options) + "\nAnswer: "


def prompt_content(layout: str, video: VideoPart, question: str, options: list[str]) -> list:
    """The parts of the one user message of ``layout`` (``"vlmevalkit"`` or ``"dsr_fork"``)."""
    text = TextPart(text=question_text(question, options))
    if layout == "vlmevalkit":
        return [TextPart(text=PRE_PROMPT), video, text]
    if layout == "dsr_fork":
        return [TextPart(text=""), video, TextPart(text=PRE_PROMPT), text]
    raise ValueError(f"unknown DSR-Bench prompt layout {layout!r}; expected 'vlmevalkit' or 'dsr_fork'")
