"""Answer extraction and exact comparison (envs/text/extract.py), including hostile input."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regrl.envs.text import TAIL_CHARS, answers_match, extract_answer, parse_number
from regrl.envs.text.extract import MAX_DIGITS, last_boxed, normalize
from tests.scaling import assert_flat, assert_linear


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the result is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{{1}+{2}}", "{1}+{2}"),  # nested braces kept whole
        ("\\boxed{7} then \\boxed{9}", "9"),  # the last box wins
        ("\\boxed{\\boxed{5}}", "5"),  # a box in a box is unwrapped
        ("\\boxed{ \\boxed{1}+\\boxed{2} }", "\\boxed{1}+\\boxed{2}"),  # ...only when it is all
        ("\\boxed{3} and an open \\boxed{4", "3"),  # unclosed box ignored
        ("\\boxed{12}\nAnswer: 13", "12"),  # a box outranks the marker
        ("Answer: 1,234.", "1,234"),
        ("**Answer:** 77", "77"),
        ("answer : -3", "-3"),
        ("Answer:\n\n  99 apples", "99 apples"),  # marker at line end: next line
        ("Answer: 5\nthen Answer: 6", "6"),
        ("I think 12 plus 30 makes 42", "42"),  # last number fallback
        ("37+85=122", "122"),
        ("it is -5", "-5"),
        ("3-5", "5"),  # binary minus is no sign
        ("about 1 000 000 people", "1 000 000"),
        ("x=0.75", "0.75"),
        ("it went 360km far", "360"),  # a unit may follow a number
        ("version v2 of x3", None),  # a number glued after letters is none
        ("half is 1/2", "1/2"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_pinned(text, expected):
    assert extract_answer(text) == expected


def test_extract_without_fallback_needs_a_marker():
    assert extract_answer("the sum is 42", fallback_last_number=False) is None
    assert extract_answer("Answer: 42", fallback_last_number=False) == "42"


@pytest.mark.parametrize(
    "text, value",
    [
        ("42", Fraction(42)),
        ("-42", Fraction(-42)),
        ("+7", Fraction(7)),
        ("1,234", Fraction(1234)),
        ("1 234 567", Fraction(1234567)),
        ("1\u202f234", Fraction(1234)),
        ("0.5", Fraction(1, 2)),
        (".25", Fraction(1, 4)),
        ("3.000", Fraction(3)),
        ("1,234.5", Fraction(2469, 2)),
        ("3/4", Fraction(3, 4)),
        ("-6/8", Fraction(-3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{1}{3}", Fraction(-1, 3)),
        ("2.5e3", Fraction(2500)),
        ("1e-2", Fraction(1, 100)),
        ("$12$", Fraction(12)),
        ("٤٢", Fraction(42)),  # Arabic-Indic digits
        ("１２３", Fraction(123)),  # full-width digits
        ("४२", Fraction(42)),  # Devanagari digits
        ("\u2212" + "8", Fraction(-8)),  # Unicode minus sign
        ("3٫5", Fraction(7, 2)),  # Arabic decimal separator
    ],
)
def test_parse_number_exact(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "12,34",
        "1,23,456",
        "1,234 567",
        "abc",
        "",
        "-",
        ".",
        "1/0",
        "\\frac{1}{0}",
        "1e999999",
        "9**9**9",
        "1e31",
        "2²",
        "1" * (MAX_DIGITS + 1),
        "1.2.3",
    ],
)
def test_parse_number_rejects(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "candidate, reference, ok",
    [
        ("122", "122", True),
        ("0122", "122", True),
        ("122.0", "122", True),
        ("1/2", "0.5", True),
        ("1,000", "1000", True),
        ("42 apples", "42", True),
        ("x = 42", "42", True),
        ("121", "122", False),
        ("122.0000001", "122", False),
        ("-122", "122", False),
        ("0.3333333333", "1/3", False),  # exact, never a float tolerance
        ("Paris", "paris", True),
        ("  New   York. ", "new york", True),
        ("Rome", "Paris", False),
        (None, "1", False),
        ("banana", "1", False),
    ],
)
def test_answers_match(candidate, reference, ok):
    assert answers_match(candidate, reference) is ok


def test_normalize_digits_but_not_superscripts():
    assert normalize("٠١٢٣٤٥٦٧٨٩") == "0123456789"
    assert normalize("a\x00b") == "ab"
    assert normalize("10²") == "10²"


def test_nul_bytes_do_not_hide_or_split_numbers():
    assert extract_answer("Answer: 4\x002") == "42"
    assert extract_answer("\x00" * 10_000) is None


# ---- hostile input: bounded time, nothing computed ---------------------------------------
# Costs are compared between inputs of n and 2n characters (tests/scaling.py), never against
# fixed seconds: only the tail is read, so a completion's length costs nothing; exponents and
# digit runs beyond the caps are refused, not computed; brace matching is one linear pass.

JUNK = "{[(" * 1000 + "9" * 5000 + "\\boxed{" * 100 + "٣"  # ~10 kB of hostile text


def _extract_and_match(text):
    found = extract_answer(text)
    return answers_match(found, "17") if found is not None else False


def test_ten_megabyte_completion():
    junk = JUNK * 1200  # ~10 MB
    text = junk + "\nAnswer: 17"
    assert len(text) > 10_000_000
    assert extract_answer(text) == "17"
    assert answers_match(extract_answer(text), "17")
    found = extract_answer(junk)
    assert found is None or isinstance(found, str)


@pytest.mark.parametrize("answer", ["\nAnswer: 17", ""])
def test_completion_length_costs_nothing(answer):
    assert_flat(_extract_and_match, JUNK * 500 + answer, JUNK * 1000 + answer)


def test_only_the_tail_is_read():
    text = "Answer: 5\n" + "x" * TAIL_CHARS
    assert extract_answer(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Answer: 9**9**9",
        "Answer: 9^9^9",
        "Answer: 1e999999",
        "Answer: 10e9999999999999",
        "\\boxed{1e99999}",
    ],
)
def test_huge_powers_are_not_computed(text):
    assert not answers_match(extract_answer(text), "1")


@pytest.mark.parametrize("form", ["Answer: 1e{}", "Answer: 3.5e{}", "\\boxed{{7e{}}}"])
def test_exponent_size_costs_nothing(form):
    """A computed 10**e costs more than twice as much for 2e; a refused one costs the same."""
    assert_flat(_extract_and_match, form.format(100_000), form.format(200_000))


def test_huge_integers_are_capped():
    big = "7" * 4000
    assert parse_number(big) is None
    assert not answers_match("Answer: " + big, "7")
    assert parse_number("7" * MAX_DIGITS) == int("7" * MAX_DIGITS)


def test_long_integers_cost_nothing():
    """A digit run longer than the tail is cut to the tail and refused by the length cut; a
    matcher reading the whole candidate scans all of it."""
    assert_flat(
        lambda t: answers_match(t, "7"), "Answer: " + "7" * 100_000, "Answer: " + "7" * 200_000
    )


def test_deeply_nested_braces():
    deep = "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}"
    assert last_boxed(deep) == "{" * 3000 + "1" + "}" * 3000
    assert extract_answer("{" * 5000) is None
    assert extract_answer("\\boxed{" * 2000) is None
    nested_boxes = "\\boxed{" * 580 + "1" + "}" * 580  # fills the tail window
    assert last_boxed(nested_boxes) == "1"


def test_nested_boxes_cost_linear_time():
    """Unwrapping k nested boxes is one pass; a search that rescans each box's content is
    quadratic in k."""

    def nested(k):
        return "\\boxed{" * k + "1" + "}" * k

    assert_linear(last_boxed, nested(1000), nested(2000))


def test_rejects_non_string():
    with pytest.raises(TypeError, match="str"):
        extract_answer(b"Answer: 1")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises(text):
    found = extract_answer(text)
    assert found is None or isinstance(found, str)
    answers_match(found, "12")
    answers_match(found, "word")
    parse_number(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["{", "}", "\\boxed{", "7", " ", "Answer:", "\n", "-"]), max_size=200)
)
def test_random_brackets_never_raise(parts):
    text = "".join(parts)
    found = extract_answer(text)
    assert found is None or isinstance(found, str)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["Answer: {}", "\\boxed{{{}}}", "so it is {}.", "**Answer**: {} units"]),
)
def test_integer_round_trip(n, template):
    assert answers_match(extract_answer(template.format(n)), str(n))
    assert answers_match(extract_answer(template.format(f"{n:,}")), str(n))
    assert not answers_match(extract_answer(template.format(n + 1)), str(n))


@settings(max_examples=100, deadline=None)
@given(st.fractions(max_denominator=1000))
def test_fraction_round_trip(q):
    assert parse_number(f"{q.numerator}/{q.denominator}") == q
    assert parse_number(f"\\frac{{{q.numerator}}}{{{q.denominator}}}") == q
