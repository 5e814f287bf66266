"""Parity replicas of the two upstream rule decisions for DSR-Bench, so that every ``dsr`` result reports both
published evaluations side by side with the harness's own extractor (``accuracy_vlmevalkit``, ``accuracy_fork``).

These functions reproduce upstream code, quirks included; they are not the harness's extractor (that is
:mod:`.extraction`) and must not be "fixed". Each is checked against the upstream function itself, loaded from the
``ms-vlmeval==0.0.20`` wheel on PyPI (``tests/test_dsr.py``).

* :func:`vlmevalkit_choice`: open-compass/VLMEvalKit, ``vlmeval/dataset/utils/spatial_bench/matching_func.py``,
  ``can_match_option(prediction)`` as ``compute_mcq_score`` (``cal_scores.py``, the rule path of
  ``DSRBench.evaluate`` in ``vlmeval/dataset/dsrbench.py``) calls it: without ``choices``, so letters A-F count.
* :func:`fork_choice`: the authors' evaluation, TencentARC/DSR_Suite ``VLMEvalKit_mine`` (arXiv 2512.20557), which
  scores with VLMEvalKit's ``extract_characters_regex`` (``vlmeval/dataset/utils/videomme.py``) and counts an empty
  extraction as the letter ``Z``, always wrong.
"""

from __future__ import annotations

import re

# --- VLMEvalKit's can_match_option ------------------------------------------------------------------------------------

_VK_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")
_VK_ANSWER_OPEN = re.compile(r"<\s*answer\b[^>]*>\s*([A-Ja-j])", re.I)
_VK_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.I)
_VK_CLOSERS = "\\)\\]\\}）】"
_VK_BEFORE_TAG = {
    tag: re.compile(rf"(?<![A-Za-z])([A-F])\s*[{_VK_CLOSERS}]?\s*<\s*/\s*{tag}\s*>", re.I)
    for tag in ("answer", "think")
}
_VK_THINK_END = re.compile(r"</\s*think\s*>", re.I)
_VK_THINK_START = re.compile(r"<\s*think\s*>", re.I)
_VK_OPTION_LINE = re.compile(r"^[*_>\-\s]*(?:option|选项)\s+[A-J]\s*[:：]", re.I)
_VK_LONE_LETTER = re.compile(r"[*_`>（）\[\]【】()]*\s*([A-Fa-f])\s*[*_`（）\[\]【】()]*")
_VK_LABELLED_LINE = re.compile(r"\s*([A-F])\s*[.．:：)\]】、-]\s+", re.I)
_VK_TIGHT = ".,:;!?)\\]】》」』，。；、：）"
_VK_INLINE_TOKEN = re.compile(rf"(?<![A-Za-z])([A-F])(?=[*_`）\]}})]*(?:$|[\s{_VK_TIGHT}]))")
_VK_PHRASE = re.compile(
    r"(?:final\s*answer|the\s*answer\s*is|answer\s*is|answer|correct\s*answer|答案|最终答案|结论|所以|因此|我选择|我选|选择|选)"
    r"\s*[:：>＝=]?\s*[(\[{（【]?\s*([A-F])\s*[)\]}）】]?(?:\b|[.)、。])",
    re.I,
)
_VK_STANDALONE = re.compile(r"(?<![A-Za-z])([A-F])(?![A-Za-z])")


def _vk_from_lines(lines: list[str]) -> str | None:
    """Bottom-up over non-empty lines: a lone letter, a line labelled ``X.``, or one distinct inline capital."""
    for line in reversed([line.strip() for line in lines if line.strip()]):
        if _VK_OPTION_LINE.search(line):
            continue
        for pattern, method in ((_VK_LONE_LETTER, "fullmatch"), (_VK_LABELLED_LINE, "match")):
            found = getattr(pattern, method)(line)
            if found:
                return found.group(1).upper()
        tokens = set(_VK_INLINE_TOKEN.findall(line))
        if len(tokens) == 1:
            return tokens.pop()
    return None


def vlmevalkit_choice(response: str | None) -> str | None:
    """Parity replica of VLMEvalKit's ``can_match_option`` (``vlmeval/dataset/utils/spatial_bench/
    matching_func.py``) as DSR-Bench's rule scorer calls it: the letter (A-F) it reads from ``response``, or None
    where upstream returns ``False``.

    Upstream's cascade, first hit wins: an ``<answer>`` tag opened by a letter A-J (and closed somewhere after); a
    letter right before ``</answer>``, then ``</think>``, in the last 800 characters; the last 6 lines after the last
    ``</think>`` (else the last ``<think>``), then the last 6 lines of the last 800 characters, each read bottom-up
    (a lone letter, a line labelled ``X.``, one distinct inline capital; ``Option X:`` lines skipped); the first
    conclusion phrase ("answer is X", "答案 X", ...) anywhere; one distinct standalone capital A-F in the whole
    text. So "A person walks ..." is option A, and ``<answer>I think C</answer>`` is ``I``.
    """
    if not isinstance(response, str):
        return None
    text = _VK_ZERO_WIDTH.sub("", response.strip())
    for opening in _VK_ANSWER_OPEN.finditer(text):
        if _VK_ANSWER_CLOSE.search(text, opening.end()):
            return opening.group(1).upper()
    tail = text[-800:]
    for tag in ("answer", "think"):
        found = _VK_BEFORE_TAG[tag].search(tail)
        if found:
            return found.group(1).upper()
    ends, starts = list(_VK_THINK_END.finditer(text)), list(_VK_THINK_START.finditer(text))
    segment = text[(ends or starts)[-1].end() :].strip() if ends or starts else text
    for lines in (segment.splitlines()[-6:], tail.splitlines()[-6:]):
        letter = _vk_from_lines(lines)
        if letter:
            return letter
    found = _VK_PHRASE.search(text)
    if found:
        return found.group(1).upper()
    kept = "\n".join(line for line in text.splitlines() if not _VK_OPTION_LINE.search(line))
    tokens = set(_VK_STANDALONE.findall(kept))
    return tokens.pop() if len(tokens) == 1 else None


# --- the authors' fork: extract_characters_regex ----------------------------------------------------------------------

#: The prefixes ``extract_characters_regex`` removes, with the two pairs fused by missing commas in the original
#: (so "The best option is", "The correct option is", "Best answer:" and "Best option:" are never removed).
FORK_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
)  # fmt: skip


def fork_choice(response: str | None) -> str | None:
    """Parity replica of the decision of the authors' evaluation (TencentARC/DSR_Suite ``VLMEvalKit_mine``), which
    uses VLMEvalKit's ``extract_characters_regex`` (``vlmeval/dataset/utils/videomme.py``): the first capital A-D
    anywhere once the prefixes are removed, so "Best answer: C" reads the B of "Best".

    (Its "more than 10 words and no A-D gives ''" rule returns what the search would return anyway; an empty result
    goes to a fallback that always yields 'Z', i.e. wrong, so None here.)
    """
    text = (response or "").strip()
    for prefix in FORK_PREFIXES:
        text = text.replace(prefix, "")
    found = re.search("[ABCD]", text)
    return found.group() if found else None
