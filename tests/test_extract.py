"""The multiple-choice rule extractor on the failure modes reported against other harnesses.

References: lmms-eval #1434 (a regex took "T" from "The correct answer is (B)"; fixed by restricting to valid
letters and taking the last declared answer), lm-eval #2237 ("answer is (A)" scored 0), VLMEvalKit's
``can_match_option`` cascade (benchmarks.md A.4), which reads "A person walks ..." as option A.
"""

import pytest

from vdpm_harness.extract import extract_choice

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
        ("Therefore, the final answer is: B", "B"),  # VLM4D's CoT format (benchmarks.md B.3)
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
