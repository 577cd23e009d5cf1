"""Problems, the task base class, the task registry and demonstration data.

A task is a frozen dataclass of its settings (every field documented) with
``sample(rng) -> Problem``, ``reward(completion, problem) -> float`` and
``demonstration(problem) -> str``. Tasks are registered by name with :func:`register_task`
and built with :func:`get_task`.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from regrl.envs.text.extract import answers_match, extract_answer

ANSWER_FORMATS = ("answer", "boxed")


class TaskError(ValueError):
    """Bad task name, bad task settings, or a bad data file."""


class UnknownTaskError(TaskError, KeyError):
    """:func:`get_task` got a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Problem:
    """One task instance: the prompt shown to the model and the reference answer.

    ``meta`` holds what a verifier needs beyond the answer (e.g. Countdown's numbers and
    target) and what a demonstration is built from; plain Python values only, so a problem
    pickles and serialises to JSON.
    """

    prompt: str
    answer: str
    meta: Dict[str, Any] = field(default_factory=dict, compare=False)


_TASKS: Dict[str, type] = {}


def register_task(name: str) -> Callable[[type], type]:
    """Class decorator: make a task class available to :func:`get_task` as ``name``."""

    def deco(cls: type) -> type:
        if name in _TASKS:
            raise ValueError(f"text task {name!r} is already registered")
        _TASKS[name] = cls
        cls.name = name
        return cls

    return deco


def task_names() -> Tuple[str, ...]:
    return tuple(_TASKS)


def get_task(name: str, **kwargs: Any) -> "TextTask":
    """Build the registered task ``name`` with its settings ``kwargs``.

    Unknown names and unknown settings raise :class:`TaskError` naming the known ones.
    """
    cls = _TASKS.get(name)
    if cls is None:
        near = difflib.get_close_matches(str(name), list(_TASKS), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise UnknownTaskError(f"unknown text task {name!r}.{hint} Known: {', '.join(_TASKS)}")
    known = [f.name for f in fields(cls)]
    for key in kwargs:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise TaskError(
                f"text task {name!r}: unknown setting {key!r}{hint} (settings: {', '.join(known)})"
            )
    missing = [
        f.name
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in kwargs
    ]
    if missing:
        raise TaskError(f"text task {name!r} needs the setting(s): {', '.join(missing)}")
    return cls(**kwargs)


@dataclass(frozen=True)
class TextTask:
    """Common settings and the reward of every text task. Subclasses implement
    :meth:`_question` and :meth:`_worked`, and may override :meth:`check`."""

    prompt_template: str = "{question} {instruction}"
    """Prompt layout; ``{question}`` (required) is the task text, ``{instruction}`` says where
    to put the final answer."""
    answer_format: str = "answer"
    """``"answer"``: the final answer follows ``Answer:``; ``"boxed"``: it is in ``\\boxed{}``.
    Sets the instruction and the demonstrations; the reward accepts either form."""
    format_penalty: float = 0.0
    """Subtracted from the reward (giving ``-format_penalty``) when no answer can be extracted."""
    fallback_last_number: bool = True
    """Without a ``\\boxed{}`` or ``Answer:``, take the last number of the completion."""

    name = "text"  # set by register_task
    answer_noun = "answer"

    def __post_init__(self) -> None:
        if self.answer_format not in ANSWER_FORMATS:
            self._fail(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}")
        if not isinstance(self.format_penalty, (int, float)) or self.format_penalty < 0:
            self._fail(f"format_penalty must be a number >= 0, got {self.format_penalty!r}")
        _check_template(self.prompt_template, self._fail)

    def _fail(self, message: str) -> None:
        raise TaskError(f"text task {self.name!r}: {message}")

    @property
    def instruction(self) -> str:
        if self.answer_format == "boxed":
            return f"Put the final {self.answer_noun} in \\boxed{{}}."
        return f"Put the final {self.answer_noun} after 'Answer:'."

    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem; the same generator state gives the same problem."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample needs a numpy.random.Generator, got {type(rng).__name__}")
        question, answer, meta = self._question(rng)
        prompt = self.prompt_template.format(question=question, instruction=self.instruction)
        return Problem(prompt=prompt, answer=answer, meta=meta)

    def _question(self, rng: np.random.Generator) -> Tuple[str, str, Dict[str, Any]]:
        raise NotImplementedError

    def _worked(self, problem: Problem) -> str:
        """Reasoning text that leads to the answer (may be empty)."""
        return ""

    def demonstration(self, problem: Problem) -> str:
        """A correct worked completion in this task's answer format (SFT data)."""
        worked = self._worked(problem)
        if self.answer_format == "boxed":
            final = f"The final {self.answer_noun} is \\boxed{{{problem.answer}}}."
        else:
            final = f"Answer: {problem.answer}"
        return f"{worked}\n{final}" if worked else final

    def check(self, completion: str, problem: Problem) -> Optional[bool]:
        """True/False for a right/wrong answer, None when no answer can be extracted."""
        found = extract_answer(completion, self.fallback_last_number)
        return None if found is None else answers_match(found, problem.answer)

    def reward(
        self, completion: str, problem: Problem, format_penalty: Optional[float] = None
    ) -> float:
        """1.0 for a correct final answer, 0.0 for a wrong one, and ``-format_penalty`` (the
        argument, else the task setting) when no answer can be extracted."""
        ok = self.check(completion, problem)
        if ok is None:
            penalty = self.format_penalty if format_penalty is None else format_penalty
            return 0.0 - float(penalty)
        return 1.0 if ok else 0.0


def _check_template(template: str, fail: Callable[[str], None]) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        fail(f"prompt_template is not a valid format string: {exc}")
        return
    if "question" not in names:
        fail("prompt_template must contain {question}")
    extra = names - {"question", "instruction"}
    if extra:
        fail(
            f"prompt_template has unknown field(s) {sorted(extra)}; "
            "allowed: {question}, {instruction}"
        )


def demonstrations(task: "TextTask | str", n: int, seed: int) -> List[Dict[str, str]]:
    """``n`` problems with a correct worked completion each, deterministic per ``seed``:
    ``[{"prompt", "completion", "answer"}, ...]``. ``task`` is a task or a registered name."""
    if isinstance(task, str):
        task = get_task(task)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise TaskError(f"n must be an integer >= 0, got {n!r}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n)):
        p = task.sample(rng)
        out.append({"prompt": p.prompt, "completion": task.demonstration(p), "answer": p.answer})
    return out
