"""Answer extraction and exact numeric comparison for verifiable text tasks.

Everything here is safe on hostile completions: nothing is evaluated, only the last
:data:`TAIL_CHARS` characters of a completion are read (so a 10 MB completion costs the same
as a short one), numbers longer than :data:`MAX_DIGITS` digits or with exponents beyond
:data:`MAX_EXPONENT` are rejected instead of computed, and brace matching is a linear scan
(no recursion, so nesting depth cannot raise ``RecursionError``).
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from typing import Optional

TAIL_CHARS = 4096
"""Only the last this-many characters of a completion are searched for the answer: the final
answer is at the end, and the bound keeps verification time independent of length."""

MAX_DIGITS = 1000
"""Longest number (in digits, all parts together) that is parsed; longer ones are rejected."""

MAX_EXPONENT = 30
"""Largest |exponent| accepted in scientific notation (``1e999999`` is rejected, not computed)."""

# Separators and signs that are not ASCII but mean the ASCII character in a number.
_CHAR_MAP = str.maketrans(
    {
        "\x00": None,  # NUL bytes are dropped so they cannot split or hide a number
        "\u2212": "-",
        "\uff0d": "-",
        "\ufe63": "-",  # minus sign, full-width/small hyphen-minus
        "\uff0b": "+",
        "\u066b": ".",
        "\uff0e": ".",  # Arabic decimal separator, full-width full stop
        "\u066c": ",",
        "\uff0c": ",",  # Arabic thousands separator, full-width comma
        "\uff1a": ":",  # full-width colon (``Answer：``)
        "\uff5b": "{",
        "\uff5d": "}",
    }
)
_GROUP_SEP = ",\u00a0\u2009\u202f "  # thousands separators: comma, (no-break/thin) spaces

_BOXED_RE = re.compile(r"\\boxed\s*\{|[{}]")
_NONSPACE_RE = re.compile(r"\S")
_MARKER_RE = re.compile(r"answer\**\s*:", re.IGNORECASE)
# A number: digit groups of three split by one separator, or a plain digit run; then an
# optional decimal part, then an optional "/denominator" or exponent.
_NUM_BODY = r"(?:\d{1,3}(?:[" + _GROUP_SEP + r"]\d{3})+|\d+)(?:\.\d+)?"
# Not preceded by a letter/digit/point ("x2", "v1.5" are no numbers); a unit may follow ("5km").
_NUM_RE = re.compile(r"(?<![\w.])" + _NUM_BODY + r"(?:/\d+|[eE][+-]?\d+)?(?!\d)")
_FULL_RE = re.compile(r"([+-]?)(\d[\d" + _GROUP_SEP + r"]*|)(?:\.(\d+))?(?:[eE]([+-]?\d+))?")
_GROUPED_RE = re.compile(r"\d{1,3}(?:([" + _GROUP_SEP + r"])\d{3})*")
_FRAC_RE = re.compile(r"([+-]?[^/]+)/([+-]?[^/]+)")
_LATEX_FRAC_RE = re.compile(r"([+-]?)\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


def normalize(text: str) -> str:
    """Unicode decimal digits (Arabic-Indic, full-width, Devanagari, ...) become ASCII digits;
    Unicode minus signs and separators become their ASCII forms; NUL bytes are removed.

    ``unicodedata.decimal`` is used rather than ``digit`` so that superscripts (``10²``) and
    circled digits are not read as ordinary digits.
    """
    text = text.translate(_CHAR_MAP)
    if text.isascii():
        return text
    out = []
    for ch in text:
        d = unicodedata.decimal(ch, None) if not ch.isascii() else None
        out.append(str(d) if d is not None else ch)
    return "".join(out)


def tail(text: str) -> str:
    """The normalised last :data:`TAIL_CHARS` characters of ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"completion must be a str, got {type(text).__name__}")
    return normalize(text[-TAIL_CHARS:])


def last_boxed(text: str) -> Optional[str]:
    """Content of the last complete ``\\boxed{...}`` (braces inside may nest), else None.

    One left-to-right pass with an explicit stack; of nested boxes the outermost one wins
    (it closes last), a box that is never closed is ignored, and a box that is the whole
    content of another box is unwrapped (``\\boxed{\\boxed{5}}`` -> ``5``).
    """
    stack = []  # (box token start or -1 for a plain brace, content start) per open brace
    boxes = {}  # box token start -> (content start, closing brace index)
    last = None
    for m in _BOXED_RE.finditer(text):
        tok = m.group()
        if tok == "}":
            if stack:
                box_start, content_start = stack.pop()
                if box_start >= 0:
                    boxes[box_start] = last = (content_start, m.start())
        else:
            stack.append((m.start() if tok != "{" else -1, m.end()))
    if last is None:
        return None
    start, end = last
    while True:  # each step moves into a box found above: linear in len(text)
        first = _NONSPACE_RE.search(text, start, end)  # no copy of the content per step
        box = boxes.get(first.start()) if first is not None else None
        if box is None or text[box[1] + 1 : end].strip():
            return text[start:end].strip()
        start, end = box


def after_marker(text: str) -> Optional[str]:
    """What follows the last ``Answer:`` (any case, markdown bold allowed) up to the end of its
    line (or the next non-empty line when the marker ends its line), without decoration."""
    last = None
    for last in _MARKER_RE.finditer(text):  # noqa: B007 (keeps the last match)
        pass
    if last is None:
        return None
    rest = text[last.end() :].lstrip()
    span = rest.split("\n", 1)[0]
    return strip_decoration(span)


def strip_decoration(span: str) -> str:
    """Remove markdown/LaTeX wrapping and a sentence-final full stop from an answer span."""
    span = span.strip().strip("*`$ \t").strip()
    if span.endswith(".") and not span[:-1].endswith("."):
        span = span[:-1].rstrip()
    return span


def last_number(text: str) -> Optional[str]:
    """The last number-looking token in ``text`` (with its sign when the ``-`` is a sign and
    not a binary minus), or None."""
    last = None
    for last in _NUM_RE.finditer(text):  # noqa: B007 (keeps the last match)
        pass
    if last is None:
        return None
    start = last.start()
    if start >= 1 and text[start - 1] in "+-":
        before = text[start - 2] if start >= 2 else " "
        if not (before.isalnum() or before in ")]}"):
            start -= 1
    return text[start : last.end()]


def extract_answer(completion: str, fallback_last_number: bool = True) -> Optional[str]:
    """The final answer of a completion: the last ``\\boxed{...}``; else what follows the last
    ``Answer:``; else (if ``fallback_last_number``) the last number. None when nothing is found.

    Only the last :data:`TAIL_CHARS` characters are read.
    """
    text = tail(completion)
    found = last_boxed(text)
    if found is None:
        found = after_marker(text)
    if found is None and fallback_last_number:
        found = last_number(text)
    return found


def _to_int(digits: str) -> Optional[int]:
    return int(digits) if digits and len(digits) <= MAX_DIGITS else None


def _ungroup(intpart: str) -> Optional[str]:
    """``"1,234,567"`` -> ``"1234567"``; None for malformed grouping like ``"12,34"``."""
    if intpart.isdigit():
        return intpart
    m = _GROUPED_RE.fullmatch(intpart)
    if m is None:
        return None
    seps = {c for c in intpart if not c.isdigit()}
    return intpart.translate({ord(c): None for c in seps}) if len(seps) == 1 else None


def _parse_decimal(s: str) -> Optional[Fraction]:
    m = _FULL_RE.fullmatch(s)
    if m is None or not (m.group(2) or m.group(3)):
        return None
    sign, intpart, frac, exp = m.groups()
    intpart = _ungroup(intpart) if intpart else "0"
    frac = frac or ""
    if intpart is None or len(intpart) + len(frac) > MAX_DIGITS:
        return None
    value = Fraction(int(intpart + frac), 10 ** len(frac))
    if exp is not None:
        e = int(exp) if len(exp) <= 6 else MAX_EXPONENT + 1
        if abs(e) > MAX_EXPONENT:
            return None
        value *= Fraction(10) ** e
    return -value if sign == "-" else value


def parse_number(text: str) -> Optional[Fraction]:
    """Parse one number exactly: integers (``1,234`` and ``1 234`` grouping allowed),
    decimals, ``a/b`` and ``\\frac{a}{b}`` fractions, bounded scientific notation.

    Returns a :class:`~fractions.Fraction`, or None when ``text`` is not exactly one number
    (or is too long, has a huge exponent or a zero denominator).
    """
    s = strip_decoration(normalize(text)) if len(text) <= 4 * MAX_DIGITS else ""
    if not s:
        return None
    m = _LATEX_FRAC_RE.fullmatch(s)
    if m is not None:
        num, den = parse_number(m.group(2)), parse_number(m.group(3))
        if num is None or not den:
            return None
        return -(num / den) if m.group(1) == "-" else num / den
    m = _FRAC_RE.fullmatch(s)
    if m is not None:
        num, den = _parse_decimal(m.group(1).strip()), _parse_decimal(m.group(2).strip())
        return num / den if num is not None and den else None
    return _parse_decimal(s)


def answers_match(candidate: Optional[str], reference: str) -> bool:
    """Exact comparison of an extracted answer with the reference answer.

    A numeric reference is compared as a :class:`~fractions.Fraction` (``0.5 == 1/2``,
    ``1,000 == 1000``; never a float tolerance): the whole candidate must be a number, or the
    last number in it is taken (``"42 apples"``). Other references compare as text, ignoring
    case, surrounding space and repeated spaces.
    """
    if candidate is None:
        return False
    ref = parse_number(reference)
    if ref is None:
        return _norm_text(candidate) == _norm_text(reference)
    got = parse_number(candidate)
    if got is None:
        token = last_number(normalize(candidate[-TAIL_CHARS:]))
        got = parse_number(token) if token is not None else None
    return got is not None and got == ref


def _norm_text(s: str) -> str:
    return " ".join(strip_decoration(normalize(s[-TAIL_CHARS:])).casefold().split())
