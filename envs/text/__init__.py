"""Verifiable text tasks for RLVR: generated problems with exact, eval-free verifiers.

    from regrl.envs.text import get_task, demonstrations, TASK_NAMES
    task = get_task("arithmetic", digits=3)
    problem = task.sample(numpy.random.default_rng(0))   # Problem(prompt, answer, meta)
    task.reward(completion, problem)                      # 1.0 right, 0.0 wrong
    task.demonstration(problem)                           # a correct worked completion

Answers are read from ``\\boxed{...}``, else ``Answer: ...``, else the last number, in the
last :data:`~regrl.envs.text.extract.TAIL_CHARS` characters of a completion, and compared exactly.
"""

from regrl.envs.text import arithmetic, countdown, jsonl, word_problems  # noqa: F401  (register tasks)
from regrl.envs.text.base import (
    Problem,
    TaskError,
    TextTask,
    UnknownTaskError,
    demonstrations,
    get_task,
    register_task,
    task_names,
)
from regrl.envs.text.extract import TAIL_CHARS, answers_match, extract_answer, parse_number

TASK_NAMES = task_names()
"""Names accepted by :func:`get_task`."""

__all__ = [
    "Problem",
    "TaskError",
    "TextTask",
    "UnknownTaskError",
    "TASK_NAMES",
    "TAIL_CHARS",
    "answers_match",
    "demonstrations",
    "extract_answer",
    "get_task",
    "parse_number",
    "register_task",
]
