"""User problems from a JSONL file: one ``{"prompt": ..., "answer": ...}`` object per line.

An optional ``"completion"`` on a line is used as that problem's demonstration; other keys are
ignored. Blank lines are skipped. A bad line (not UTF-8, not JSON, nested too deeply, a value
too long, a missing or mistyped key) raises :class:`TaskError` naming ``file:line``; an error
never quotes more than :data:`MAX_QUOTE` characters of the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from regrl.envs.text.base import Problem, TaskError, TextTask, register_task

MAX_PROMPT_CHARS = 8192
"""Longest prompt accepted (the RLVR prompts are a few hundred tokens; a longer one is a data
error, and would be tokenised and padded into every batch it lands in)."""
MAX_ANSWER_CHARS = 1024
"""Longest reference answer (answers are numbers or short expressions)."""
MAX_COMPLETION_CHARS = 16384
"""Longest demonstration completion."""
MAX_LINE_BYTES = 1 << 20
"""Longest line read at all (other keys are ignored but still parsed), so a huge line is
refused before it is decoded."""
MAX_QUOTE = 200
"""Characters of a bad value quoted in an error message."""


def _clip(text: str) -> str:
    """``text`` cut to :data:`MAX_QUOTE` characters (errors never echo a whole value)."""
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "..."


def _quote(value: Any) -> str:
    return _clip(repr(value))


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
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 2), b""), 1):
            line = _decode(raw, f"{path}:{lineno}")
            if line.strip():
                out.append(_record(line, f"{path}:{lineno}"))
    if not out:
        raise TaskError(f"{path}: no problems (the file has no non-blank lines)")
    return out


def _decode(raw: bytes, where: str) -> str:
    """One line of the file as text: at most :data:`MAX_LINE_BYTES` bytes of UTF-8."""
    if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        raise TaskError(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(
            f"{where}: not valid UTF-8 (byte {raw[exc.start]:#04x} at byte "
            f"{exc.start + 1} of the line)"
        ) from None


def _parse(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise TaskError(f"{where}: not valid JSON: {_clip(str(exc))}") from None
    except RecursionError:  # json's C scanner recurses once per nesting level
        raise TaskError(f"{where}: JSON nested too deeply") from None


def _check_size(where: str, key: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise TaskError(
            f"{where}: {key!r} is {len(value)} characters long; at most {limit} "
            f"are allowed (starts {_quote(value[:60])})"
        )


def _record(line: str, where: str) -> Tuple[str, str, Dict[str, Any]]:
    obj = _parse(line, where)
    if not isinstance(obj, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("prompt", "answer"):
        if key not in obj:
            raise TaskError(
                f"{where}: missing key {key!r} (keys: {_clip(', '.join(obj)) or 'none'})"
            )
    prompt, answer = obj["prompt"], obj["answer"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise TaskError(f"{where}: 'prompt' must be a non-empty string, got {_quote(prompt)}")
    _check_size(where, "prompt", prompt, MAX_PROMPT_CHARS)
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise TaskError(f"{where}: 'answer' must be a string or a number, got {_quote(answer)}")
    _check_size(where, "answer", str(answer), MAX_ANSWER_CHARS)
    if isinstance(answer, float) and not math.isfinite(answer):
        raise TaskError(f"{where}: 'answer' must be finite, got {answer!r}")
    if isinstance(answer, str) and not answer.strip():
        raise TaskError(f"{where}: 'answer' is empty")
    meta: Dict[str, Any] = {"source": where}
    completion = obj.get("completion")
    if completion is not None:
        if not isinstance(completion, str):
            raise TaskError(f"{where}: 'completion' must be a string, got {_quote(completion)}")
        _check_size(where, "completion", completion, MAX_COMPLETION_CHARS)
        meta["completion"] = completion
    return prompt, str(answer).strip(), meta
