"""A safe arithmetic-expression reader: tokenizer + shunting-yard parser, exact Fractions.

Accepts integers, ``+ - * /`` (also ``×``, ``÷``, ``·``, LaTeX ``\\times``, ``\\div``,
``\\cdot``) and parentheses (``( )``, ``[ ]``, LaTeX ``\\left( \\right)``). Nothing is
evaluated by Python's ``eval``; the parser is iterative (no recursion), powers (``**``, ``^``)
are rejected, and tokens, nesting depth and number lengths are capped, so any string is read
in time linear in its (bounded) length.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import List, Tuple, Union

from regrl.envs.text.extract import MAX_DIGITS, normalize

MAX_TOKENS = 256
"""Longest expression read, in tokens."""
MAX_DEPTH = 64
"""Deepest parenthesis nesting accepted."""
MAX_CHARS = 4096

_LATEX = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("×", "*"),
    ("·", "*"),
    ("⋅", "*"),
    ("÷", "/"),
    ("[", "("),
    ("]", ")"),
    ("\\(", ""),
    ("\\)", ""),
    ("{", "("),
    ("}", ")"),
)
_TOKEN_RE = re.compile(r"\s*(?:(\d+)|(\*\*|[-+*/()^]))")
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}

Token = Union[int, str]


class ExprError(ValueError):
    """The text is not a valid expression (the message says why and where)."""


def tokenize(text: str) -> List[Token]:
    """Integers become ``int`` tokens, operators and parentheses one-character strings."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression longer than {MAX_CHARS} characters")
    s = normalize(text)
    for src, dst in _LATEX:
        s = s.replace(src, dst)
    tokens: List[Token] = []
    pos, end = 0, len(s.rstrip())
    while pos < end:
        m = _TOKEN_RE.match(s, pos)
        if m is None:
            raise ExprError(f"unexpected character {s[pos:].lstrip()[:1]!r} at {pos}")
        digits, op = m.groups()
        if op in ("**", "^"):
            raise ExprError("powers are not allowed")
        if digits is not None and len(digits) > MAX_DIGITS:
            raise ExprError(f"number longer than {MAX_DIGITS} digits")
        tokens.append(int(digits) if digits is not None else op)
        if len(tokens) > MAX_TOKENS:
            raise ExprError(f"expression longer than {MAX_TOKENS} tokens")
        pos = m.end()
    if not tokens:
        raise ExprError("empty expression")
    return tokens


def to_postfix(tokens: List[Token]) -> List[Token]:
    """Shunting-yard with a grammar check: operands and binary operators must alternate,
    parentheses must balance and nest at most :data:`MAX_DEPTH` deep. No unary minus."""
    out: List[Token] = []
    stack: List[str] = []
    expect_operand, depth = True, 0
    for tok in tokens:
        if isinstance(tok, int) or tok == "(":
            if not expect_operand:
                raise ExprError(f"missing operator before {tok!r}")
            if tok == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ExprError(f"parentheses nested deeper than {MAX_DEPTH}")
                stack.append(tok)
            else:
                out.append(tok)
                expect_operand = False
        elif tok == ")":
            if expect_operand or depth == 0:
                raise ExprError("unexpected ')'")
            while stack[-1] != "(":
                out.append(stack.pop())
            stack.pop()
            depth -= 1
        else:
            if expect_operand:
                raise ExprError(f"operator {tok!r} needs a number before it")
            while stack and stack[-1] != "(" and _PREC[stack[-1]] >= _PREC[tok]:
                out.append(stack.pop())
            stack.append(tok)
            expect_operand = True
    if expect_operand or depth:
        raise ExprError("expression ends early" if expect_operand else "unclosed '('")
    return out + stack[::-1]


def evaluate_postfix(postfix: List[Token]) -> Fraction:
    """Exact value of a postfix expression from :func:`to_postfix`."""
    values: List[Fraction] = []
    for tok in postfix:
        if isinstance(tok, int):
            values.append(Fraction(tok))
            continue
        b, a = values.pop(), values.pop()
        if tok == "/" and b == 0:
            raise ExprError("division by zero")
        values.append(
            a + b if tok == "+" else a - b if tok == "-" else a * b if tok == "*" else a / b
        )
    return values[0]


def parse_expression(text: str) -> Tuple[Fraction, List[int]]:
    """``(value, numbers used in order of appearance)`` of an expression, or :class:`ExprError`."""
    tokens = tokenize(text)
    postfix = to_postfix(tokens)
    return evaluate_postfix(postfix), [t for t in tokens if isinstance(t, int)]
