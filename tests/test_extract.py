"""The multiple-choice rule extractor on the failure modes reported against other harnesses.

References: lmms-eval #1434 (a regex took "T" from "The correct answer is (B)"; fixed by restricting to valid
letters and taking the last declared answer), lm-eval #2237 ("answer is (A)" scored 0), VLMEvalKit's
``can_match_option`` cascade (``vlmeval/dataset/utils/spatial_bench/matching_func.py``), which reads "A person
walks ..." as option A.
"""

from dataclasses import replace

import pytest

from vdpm_harness.extract import CORE_RULES, extract_choice

LETTERS = ["A", "B", "C", "D"]
OPTIONS = ["A. Left", "B. Right", "C. Up", "D. Down"]


@pytest.mark.parametrize(
    "response, expected",
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        ("B. Right", "B"),
        ("The correct answer is (B).", "B"),  # lmms-eval #1434: not "T"
        ("Based on the frames, the answer is (A)", "A"),
        ("Answer: C", "C"),
        ("Therefore, the final answer is: B", "B"),  # VLM4D's CoT prompt format (arXiv 2508.02095)
        ("the answer is - d.", "D"),
        ("answer is (a)", "A"),
        ("I think it is A, but looking again the final answer is C.", "C"),  # last declaration wins
        ("<think>Maybe A? No, B moves.</think>\nC", "C"),  # after the reasoning block
        ("<think>long reasoning about A and B</think><answer>D</answer>", "D"),
        ("reasoning <answer>B</answer> then <answer>C</answer>", "C"),
        ("**B**", "B"),
        ("Option B is correct.", "B"),
        ("The answer is B. Option A is wrong.", "B"),  # a declaration outranks a later mention of an option
        ("Option C is ruled out by the frames; I choose option D.", "D"),
        ("The red disc moves right, so B.", "B"),
        ("Right", "B"),  # the text of exactly one option
        ("right.", "B"),
        ("\u200bA\u200b", "A"),
        ("b", "B"),  # a lone letter in any case
        ("(c)", "C"),
        ("d.", "D"),
        ("İİİ reasoning with characters whose lower case is longer</think>B", "B"),
    ],
)
def test_parsed(response, expected):
    extraction = extract_choice(response, LETTERS, OPTIONS)
    assert extraction.parsed and extraction.answer == expected, extraction


@pytest.mark.parametrize(
    "response, rule",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("<think>still thinking about A", "unclosed_think"),
        ("A person walks to the left of the car.", "no_letter"),  # an article, not option A
        ("It could be A or B.", "ambiguous_letters"),
        ("E", "no_letter"),  # not a valid letter here
        ("I cannot tell from these frames.", "no_letter"),
    ],
)
def test_unparsed_never_guesses(response, rule):
    extraction = extract_choice(response, LETTERS, OPTIONS)
    assert not extraction.parsed and extraction.answer is None
    assert extraction.detail["rule"] == rule


def test_valid_letters_restrict_matches():
    assert extract_choice("E", list("ABCDE")).answer == "E"
    assert extract_choice("The answer is E", LETTERS).parsed is False


def test_method_is_recorded():
    assert extract_choice("A", LETTERS).method == "rules:mcq@1"


@pytest.mark.parametrize(
    "setting, response, core, configured",
    [
        ({"spaced_tags": True}, "< answer >B< /answer > C", (None, "ambiguous_letters"), ("B", "bare_letter")),
        ({"drop_restated_options": True}, "A. Left\nB. Right\nC. Up\nD. Down", ("D", "line"), (None, "no_letter")),
        ({"bare_letter_is_final": True}, "E", (None, "no_letter"), (None, "bare_letter")),
        ({"mention": None}, "Option B is right, option A is wrong.", ("A", "mentioned"), (None, "ambiguous_letters")),
        ({"declaration": r"\bpick\s*"}, "The answer is B, I pick C", ("C", "declared"), ("C", "declared")),
        ({"declaration": r"\bpick\s*"}, "The answer is B", ("B", "declared"), ("B", "unique_letter")),
        ({"articles_after_declarations": True}, "The answer is a person walking", ("A", "declared"),
         (None, "no_letter")),
        ({"bare_letter": r"`(?P<x>[A-Za-z])`"}, "`c`", (None, "no_letter"), ("C", "bare_letter")),
    ],
)  # fmt: skip
def test_each_setting_changes_its_own_step(setting, response, core, configured):
    """The ladder's settings, one at a time, against the core's rules on the same response."""
    for rules, (answer, rule) in ((CORE_RULES, core), (replace(CORE_RULES, **setting), configured)):
        extraction = extract_choice(response, LETTERS, OPTIONS, rules)
        assert (extraction.answer, extraction.detail["rule"]) == (answer, rule), (rules, extraction)


def test_the_method_is_the_settings():
    assert extract_choice("B", LETTERS, rules=replace(CORE_RULES, method="rules:other@2")).method == "rules:other@2"


def test_an_empty_answer_matches_no_option_text():
    """An option whose text is empty (or punctuation only) is not the answer of an empty answer block."""
    extraction = extract_choice("<answer>...</answer>", LETTERS, ["A. Left", "B. ...", "C. Up", "D. Down"])
    assert not extraction.parsed and extraction.detail["rule"] == "no_letter"
