"""User problems from a JSONL file: one ``{"prompt": ..., "answer": ...}`` object per line.

An optional ``"completion"`` on a line is used as that problem's demonstration; other keys are
ignored. Blank lines are skipped. A bad line raises :class:`TaskError` naming ``file:line``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from envs.text.base import Problem, TaskError, TextTask, register_task


class MissingFileError(TaskError, FileNotFoundError):
    """The JSONL file does not exist (caught as either a task error or a missing file)."""


@register_task("jsonl")
@dataclass(frozen=True, kw_only=True)
class JsonlTask(TextTask):
    """Problems read from a JSONL file of {"prompt", "answer"} objects."""

    path: str
    """The JSONL file."""
    prompt_template: str = "{question}"
    """Prompt layout; by default the file's prompt is used unchanged (``{instruction}`` adds
    the answer-format instruction)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "records", tuple(read_problems(self.path)))

    def __len__(self) -> int:
        return len(self.records)

    def _question(self, rng: np.random.Generator) -> Tuple[str, str, Dict[str, Any]]:
        prompt, answer, meta = self.records[int(rng.integers(len(self.records)))]
        return prompt, answer, dict(meta)

    def _worked(self, problem: Problem) -> str:
        return ""

    def demonstration(self, problem: Problem) -> str:
        """The line's own ``completion`` when it has one, else the bare final answer."""
        given = problem.meta.get("completion")
        return given if given is not None else super().demonstration(problem)


def read_problems(path: "str | Path") -> List[Tuple[str, str, Dict[str, Any]]]:
    """``[(prompt, answer, meta), ...]`` of a JSONL file, checking every line."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such JSONL file")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                out.append(_record(line, f"{path}:{lineno}"))
    if not out:
        raise TaskError(f"{path}: no problems (the file has no non-blank lines)")
    return out


def _record(line: str, where: str) -> Tuple[str, str, Dict[str, Any]]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("prompt", "answer"):
        if key not in obj:
            raise TaskError(f"{where}: missing key {key!r} (keys: {', '.join(obj) or 'none'})")
    prompt, answer = obj["prompt"], obj["answer"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise TaskError(f"{where}: 'prompt' must be a non-empty string, got {prompt!r:.60}")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise TaskError(f"{where}: 'answer' must be a string or a number, got {answer!r:.60}")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise TaskError(f"{where}: 'answer' must be finite, got {answer!r}")
    if isinstance(answer, str) and not answer.strip():
        raise TaskError(f"{where}: 'answer' is empty")
    meta: Dict[str, Any] = {"source": where}
    completion = obj.get("completion")
    if completion is not None:
        if not isinstance(completion, str):
            raise TaskError(f"{where}: 'completion' must be a string, got {completion!r:.60}")
        meta["completion"] = completion
    return prompt, str(answer).strip(), meta
