"""Multi-digit arithmetic: ``Compute 37+85.``, exact integer answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

from regrl.envs.text.base import Problem, TextTask, register_task

MAX_TASK_DIGITS = 100  # operands stay far below the verifier's digit cap


@register_task("arithmetic")
@dataclass(frozen=True, kw_only=True)
class Arithmetic(TextTask):
    """Two-operand integer addition, subtraction and multiplication."""

    digits: int = 2
    """Digits of each operand (operands are uniform over the ``digits``-digit integers)."""
    max_digits: int = 0
    """If > ``digits``, each operand's digit count is drawn uniformly from
    ``digits..max_digits``."""
    ops: str = "+-*"
    """Operators to draw from (uniformly), any of ``+``, ``-``, ``*``."""
    allow_negative: bool = True
    """False orders subtraction operands so that results are never negative."""
    question_template: str = "Compute {a}{op}{b}."
    """Question text; fields ``{a}``, ``{op}``, ``{b}``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.digits, int) or not 1 <= self.digits <= MAX_TASK_DIGITS:
            self._fail(f"digits must be an integer in 1..{MAX_TASK_DIGITS}, got {self.digits!r}")
        if not isinstance(self.max_digits, int) or self.max_digits > MAX_TASK_DIGITS:
            self._fail(
                f"max_digits must be an integer <= {MAX_TASK_DIGITS}, got {self.max_digits!r}"
            )
        if not self.ops or not isinstance(self.ops, str) or set(self.ops) - set("+-*"):
            self._fail(f"ops must be a non-empty string of '+', '-', '*', got {self.ops!r}")
        try:
            self.question_template.format(a=1, op="+", b=2)
        except (KeyError, IndexError, ValueError) as exc:
            self._fail(f"question_template must use only {{a}}, {{op}}, {{b}}: {exc!r}")

    def _operand(self, rng: np.random.Generator) -> int:
        d = self.digits
        if self.max_digits > d:
            d = int(rng.integers(d, self.max_digits + 1))
        lo = 0 if d == 1 else 10 ** (d - 1)
        # rng.integers is limited to int64, so wide operands are built from 9-digit chunks
        if d <= 18:
            return int(rng.integers(lo, 10**d))
        while True:
            chunks = [int(rng.integers(0, 10**9)) for _ in range((d + 8) // 9)]
            value = int("".join(f"{c:09d}" for c in chunks)[-d:])
            if value >= lo:
                return value

    def _question(self, rng: np.random.Generator) -> Tuple[str, str, Dict[str, Any]]:
        a, b = self._operand(rng), self._operand(rng)
        op = self.ops[int(rng.integers(len(self.ops)))]
        if op == "-" and not self.allow_negative and b > a:
            a, b = b, a
        value = a + b if op == "+" else a - b if op == "-" else a * b
        question = self.question_template.format(a=a, op=op, b=b)
        return question, str(value), {"a": a, "op": op, "b": b}

    def _worked(self, problem: Problem) -> str:
        a, op, b = problem.meta["a"], problem.meta["op"], problem.meta["b"]
        if op != "*" or b < 10:
            return f"{a} {op} {b} = {problem.answer}."
        # long multiplication: one partial product per nonzero digit of b
        parts = [(int(ch) * 10**i) for i, ch in enumerate(reversed(str(b))) if ch != "0"][::-1]
        split = " + ".join(f"{a} * {p}" for p in parts)
        partial = " + ".join(str(a * p) for p in parts)
        if len(parts) == 1:
            return f"{a} * {b} = {partial} = {problem.answer}."
        return f"{a} * {b} = {split} = {partial} = {problem.answer}."
