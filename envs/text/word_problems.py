"""Templated grade-school word problems with integer answers and worked solutions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from regrl.envs.text.base import Problem, TextTask, register_task

NAMES = (
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Jia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
)
ITEMS = ("apples", "books", "marbles", "stickers", "pencils", "cookies", "shells", "stamps")

# A template returns (question, worked steps, answer) from an integer drawer ``r(lo, hi)``.
Template = Callable[[Callable[[int, int], int], str, str], Tuple[str, List[str], int]]


def _buy_give(r, name, item):
    a, b = r(5, 60), r(2, 40)
    c = r(1, a + b)
    return (
        f"{name} has {a} {item}. {name} buys {b} more and then gives away {c}. "
        f"How many {item} does {name} have now?",
        [f"{a} + {b} = {a + b}.", f"{a + b} - {c} = {a + b - c}."],
        a + b - c,
    )


def _boxes(r, name, item):
    boxes, per = r(2, 12), r(3, 25)
    return (
        f"{name} packs {per} {item} into each of {boxes} boxes. "
        f"How many {item} are packed in total?",
        [f"{boxes} * {per} = {boxes * per}."],
        boxes * per,
    )


def _share(r, name, item):
    friends, each = r(2, 9), r(2, 15)
    total = friends * each
    return (
        f"{name} shares {total} {item} equally among {friends} friends. "
        f"How many {item} does each friend get?",
        [f"{total} / {friends} = {each}."],
        each,
    )


def _speed(r, name, item):
    speed, hours = r(20, 90), r(2, 8)
    return (
        f"A train travels at {speed} km per hour for {hours} hours. "
        f"How many kilometres does it travel?",
        [f"{speed} * {hours} = {speed * hours}."],
        speed * hours,
    )


def _change(r, name, item):
    price, qty = r(2, 20), r(2, 9)
    cost = price * qty
    paid = (cost // 10 + r(1, 5)) * 10
    return (
        f"{name} buys {qty} notebooks at {price} dollars each and pays with {paid} dollars. "
        f"How many dollars of change does {name} get?",
        [f"{qty} * {price} = {cost}.", f"{paid} - {cost} = {paid - cost}."],
        paid - cost,
    )


def _ages(r, name, item):
    age, gap, years = r(5, 40), r(2, 30), r(2, 20)
    return (
        f"{name} is {age} years old. {name}'s aunt is {gap} years older. "
        f"How old will the aunt be in {years} years?",
        [f"{age} + {gap} = {age + gap}.", f"{age + gap} + {years} = {age + gap + years}."],
        age + gap + years,
    )


def _rows(r, name, item):
    rows, per, removed = r(3, 15), r(3, 15), r(1, 9)
    total = rows * per
    removed = min(removed, total)
    return (
        f"A garden has {rows} rows of {per} tulips. {name} picks {removed} tulips. "
        f"How many tulips are left?",
        [f"{rows} * {per} = {total}.", f"{total} - {removed} = {total - removed}."],
        total - removed,
    )


def _weekly(r, name, item):
    per_day, days, spent = r(2, 30), r(3, 7), r(1, 20)
    saved = per_day * days
    spent = min(spent, saved)
    return (
        f"{name} saves {per_day} dollars a day for {days} days and then spends {spent} "
        f"dollars. How many dollars does {name} have left?",
        [f"{per_day} * {days} = {saved}.", f"{saved} - {spent} = {saved - spent}."],
        saved - spent,
    )


TEMPLATES: Dict[str, Template] = {
    "buy_give": _buy_give,
    "boxes": _boxes,
    "share": _share,
    "speed": _speed,
    "change": _change,
    "ages": _ages,
    "rows": _rows,
    "weekly": _weekly,
}


@register_task("word_problems")
@dataclass(frozen=True, kw_only=True)
class WordProblems(TextTask):
    """Templated one- and two-step word problems (add, subtract, multiply, divide)."""

    templates: Tuple[str, ...] = tuple(TEMPLATES)
    """Which templates to draw from (uniformly); names: buy_give, boxes, share, speed, change,
    ages, rows, weekly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.templates, str) or not self.templates:
            self._fail(f"templates must be a non-empty list of names, got {self.templates!r}")
        unknown = [t for t in self.templates if t not in TEMPLATES]
        if unknown:
            self._fail(f"unknown template(s) {unknown}; known: {', '.join(TEMPLATES)}")
        object.__setattr__(self, "templates", tuple(self.templates))  # lists from YAML

    def _question(self, rng: np.random.Generator) -> Tuple[str, str, Dict[str, Any]]:
        def r(lo: int, hi: int) -> int:
            return int(rng.integers(lo, hi + 1))

        kind = self.templates[int(rng.integers(len(self.templates)))]
        name, item = NAMES[r(0, len(NAMES) - 1)], ITEMS[r(0, len(ITEMS) - 1)]
        question, steps, answer = TEMPLATES[kind](r, name, item)
        return question, str(answer), {"template": kind, "steps": steps}

    def _worked(self, problem: Problem) -> str:
        return " ".join(problem.meta.get("steps", ()))
