"""The eval-free expression reader (envs/text/expr.py) against a Fraction reference."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regrl.envs.text.expr import MAX_DEPTH, MAX_TOKENS, ExprError, parse_expression, tokenize
from tests.scaling import assert_flat


@pytest.mark.parametrize(
    "text, value, numbers",
    [
        ("(3+5)*7", Fraction(56), [3, 5, 7]),
        ("3+5*7", Fraction(38), [3, 5, 7]),  # * binds tighter than +
        ("20-5-3", Fraction(12), [20, 5, 3]),  # left associative
        ("48/4/2", Fraction(6), [48, 4, 2]),
        ("7/3*3", Fraction(7), [7, 3, 3]),  # exact: no float rounding
        ("1/3+1/6", Fraction(1, 2), [1, 3, 1, 6]),
        ("((((2))))", Fraction(2), [2]),
        ("[4 + 4] × 2 ÷ 4", Fraction(4), [4, 4, 2, 4]),
        ("\\left(6 \\times 2\\right) \\div 3 \\cdot 5", Fraction(20), [6, 2, 3, 5]),
        ("１２ + ٣", Fraction(15), [12, 3]),
        ("  8  ", Fraction(8), [8]),
    ],
)
def test_pinned_values(text, value, numbers):
    assert parse_expression(text) == (value, numbers)


@pytest.mark.parametrize(
    "text, message",
    [
        ("2**3", "powers"),
        ("2^3", "powers"),
        ("9**9**9", "powers"),
        ("-3+5", "needs a number"),
        ("3+", "ends early"),
        ("(3+5", "unclosed"),
        ("3+5)", "unexpected"),
        ("()", "unexpected"),
        ("3 4", "missing operator"),
        ("3(4)", "missing operator"),
        ("", "empty"),
        ("x+1", "unexpected character"),
        ("4/0", "division by zero"),
        ("4/(2-2)", "division by zero"),
        ("__import__('os')", "unexpected character"),
        ("1e999999", "unexpected character"),
        ("3.5+1", "unexpected character"),
    ],
)
def test_rejects(text, message):
    with pytest.raises(ExprError, match=message):
        parse_expression(text)


def test_depth_and_length_caps():
    ok = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    assert parse_expression(ok)[0] == 1
    with pytest.raises(ExprError, match="nested deeper"):
        parse_expression("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExprError, match="tokens"):
        parse_expression("+".join(["1"] * MAX_TOKENS))
    with pytest.raises(ExprError, match="longer than"):
        tokenize("(" * 10**6)
    with pytest.raises(ExprError, match="digits"):
        tokenize("9" * 2000)


def _refused(text):
    with pytest.raises(ExprError):
        parse_expression(text)


def test_hostile_inputs_are_refused():
    for text in ["(" * 4000, "9" * 4000, "\x00" * 4000, "9**9**9**9"]:
        _refused(text)
    assert parse_expression("9*" * 127 + "9")[0] == 9**128  # the longest product allowed


# Hostile inputs of n and 2n characters: the caps (characters, tokens, digits) make the cost of
# refusing them independent of n, where a parser without them normalises, tokenises or
# multiplies out the whole text.
HOSTILE = {
    "parentheses": lambda n: "(" * n,
    "digits": lambda n: "9" * n,
    "products": lambda n: "9*" * (n // 2) + "9",
    "nul": lambda n: "\x00" * n,
    "powers": lambda n: "9**" * (n // 3) + "9",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_input_cost_does_not_grow_with_its_length(kind):
    make = HOSTILE[kind]
    assert_flat(_refused, make(200_000), make(400_000))


# ---- random trees: the parser must agree with a Fraction evaluation of the tree -------------


def _trees():
    leaf = st.integers(min_value=0, max_value=999)
    return st.recursive(
        leaf, lambda kids: st.tuples(st.sampled_from("+-*/"), kids, kids), max_leaves=12
    )


def _reference(tree):
    """Exact value of a tree, or None when it divides by zero."""
    if isinstance(tree, int):
        return Fraction(tree)
    op, left, right = tree
    a, b = _reference(left), _reference(right)
    if a is None or b is None or (op == "/" and b == 0):
        return None
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b


def _render(tree, draw_spaces):
    if isinstance(tree, int):
        return str(tree)
    op, left, right = tree
    sp = " " if draw_spaces else ""
    return f"({_render(left, draw_spaces)}{sp}{op}{sp}{_render(right, draw_spaces)})"


def _leaves(tree):
    return [tree] if isinstance(tree, int) else _leaves(tree[1]) + _leaves(tree[2])


@settings(max_examples=300, deadline=None)
@given(_trees(), st.booleans())
def test_random_trees_match_reference(tree, spaces):
    text = _render(tree, spaces)
    expected = _reference(tree)
    if expected is None:
        with pytest.raises(ExprError, match="division by zero"):
            parse_expression(text)
    else:
        assert parse_expression(text) == (expected, _leaves(tree))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()[]{}0123456789+-*/^ x.", max_size=120))
def test_random_strings_never_crash(text):
    try:
        value, numbers = parse_expression(text)
    except ExprError:
        return
    assert isinstance(value, Fraction) and all(isinstance(n, int) for n in numbers)
