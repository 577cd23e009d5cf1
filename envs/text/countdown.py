"""Countdown: reach a target with + - * / and parentheses, each given number at most once.

The completion's expression is read by :mod:`regrl.envs.text.expr` (never ``eval``) and computed
with exact fractions, so ``(7/3)*3`` reaches 7 but no float rounding can fake a hit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from regrl.envs.text.base import Problem, TextTask, register_task
from regrl.envs.text.expr import ExprError, evaluate_postfix, to_postfix, tokenize
from regrl.envs.text.extract import after_marker, last_boxed, tail

MAX_TRIES = 2_000


@register_task("countdown")
@dataclass(frozen=True, kw_only=True)
class Countdown(TextTask):
    """Reach the target from the given numbers with + - * / and parentheses."""

    n_numbers: int = 4
    """How many numbers are given."""
    min_number: int = 1
    """Smallest given number."""
    max_number: int = 99
    """Largest given number."""
    min_target: int = 10
    """Smallest target."""
    max_target: int = 100
    """Largest target."""
    use_all: bool = False
    """True: a solution must use every given number (exactly once)."""
    question_template: str = (
        "Using the numbers {numbers}, make {target} with + - * / and "
        "parentheses, using each number at most once."
    )
    """Question text; fields ``{numbers}`` (comma-separated) and ``{target}``."""

    answer_noun = "expression"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_numbers, int) or not 2 <= self.n_numbers <= 8:
            self._fail(f"n_numbers must be an integer in 2..8, got {self.n_numbers!r}")
        bounds = (self.min_number, self.max_number, self.min_target, self.max_target)
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            self._fail(
                f"min_number, max_number, min_target and max_target must be integers, "
                f"got {', '.join(repr(b)[:40] for b in bounds)}"
            )
        if not 0 <= self.min_number <= self.max_number < 10**6:
            self._fail(
                f"need 0 <= min_number <= max_number < 10**6, "
                f"got {self.min_number}, {self.max_number}"
            )
        if not 0 <= self.max_target or not self.min_target <= self.max_target:
            self._fail(
                f"need min_target <= max_target and max_target >= 0 (every intermediate "
                f"result is >= 0), got {self.min_target}, {self.max_target}"
            )
        reach = max(self.max_number, 2) ** self.n_numbers
        if self.min_target > reach:
            self._fail(
                f"min_target {self.min_target} cannot be reached: {self.n_numbers} numbers "
                f"<= {self.max_number} combine to at most {reach}"
            )
        try:
            self.question_template.format(numbers="1, 2", target=3)
        except (KeyError, IndexError, ValueError) as exc:
            self._fail(f"question_template must use only {{numbers}}, {{target}}: {exc!r}")

    def _question(self, rng: np.random.Generator) -> Tuple[str, str, Dict[str, Any]]:
        for _ in range(MAX_TRIES):
            numbers = [
                int(x)
                for x in rng.integers(self.min_number, self.max_number + 1, size=self.n_numbers)
            ]
            value, expr, steps = _random_solution(numbers, rng)
            if self.min_target <= value <= self.max_target and value not in numbers:
                question = self.question_template.format(
                    numbers=", ".join(map(str, numbers)), target=value
                )
                return question, expr, {"numbers": numbers, "target": value, "steps": steps}
        self._fail(
            f"no problem with a target in {self.min_target}..{self.max_target} found "
            f"in {MAX_TRIES} tries; widen the number or target range"
        )

    def _worked(self, problem: Problem) -> str:
        return " ".join(problem.meta.get("steps", ()))

    def check(self, completion: str, problem: Problem) -> Optional[bool]:
        """None when no expression can be read, else whether it reaches the target using
        only the given numbers (each at most once; all of them if ``use_all``)."""
        numbers, target = _numbers_target(problem)
        text = tail(completion)
        span = last_boxed(text)
        if span is None:
            span = after_marker(text)
        if span is None and self.fallback_last_number:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            span = lines[-1] if lines else None
        if span is None:
            return None
        try:
            tokens = tokenize(span.split("=", 1)[0].strip().strip("*`$").strip())
            postfix = to_postfix(tokens)
        except ExprError:
            return None
        used = Counter(t for t in tokens if isinstance(t, int))
        # the number multiset is checked before any arithmetic, so no huge value is computed
        if used - Counter(numbers) or (self.use_all and used != Counter(numbers)):
            return False
        try:
            return evaluate_postfix(postfix) == target
        except ExprError:  # division by zero
            return False


def _numbers_target(problem: Problem) -> Tuple[List[int], int]:
    try:
        numbers = [int(x) for x in problem.meta["numbers"]]
        return numbers, int(problem.meta["target"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            "a countdown problem needs meta['numbers'] (ints) and "
            "meta['target'] (int); build it with task.sample()"
        ) from None


def _random_solution(numbers: List[int], rng: np.random.Generator) -> Tuple[int, str, List[str]]:
    """Combine all ``numbers`` in random order with random operators, keeping every
    intermediate result a non-negative integer (which makes tidy worked steps): the larger
    operand goes first, and ``/`` is drawn only when it divides exactly.
    Returns ``(value, expression, steps)``."""
    items = [(n, str(n), True) for n in numbers]  # (value, text, is_atom)
    steps = []
    while len(items) > 1:
        i, j = (int(k) for k in rng.choice(len(items), size=2, replace=False))
        if items[i][0] < items[j][0]:
            i, j = j, i
        (a, ta, atom_a), (b, tb, atom_b) = items[i], items[j]
        ops = "+-*/" if b != 0 and a % b == 0 else "+-*"
        op = ops[int(rng.integers(len(ops)))]
        value = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a // b
        steps.append(f"{a} {op} {b} = {value}.")
        text = f"{_wrap(ta, atom_a)} {op} {_wrap(tb, atom_b)}"
        items = [it for k, it in enumerate(items) if k not in (i, j)] + [(value, text, False)]
    return items[0][0], items[0][1], steps


def _wrap(text: str, atom: bool) -> str:
    return text if atom else f"({text})"
