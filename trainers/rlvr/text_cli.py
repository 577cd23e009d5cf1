"""``regrl text ...``: verifiable text tasks (SFT demonstration files, sample problems)."""

from __future__ import annotations

import json
from pathlib import Path

from regrl.files import atomic_output
from regrl.trainers.checks import ConfigError

MAX_DEMOS = 1_000_000
"""Most rows `regrl text demos` writes (they are built in memory first)."""
MAX_SAMPLES = 1_000
"""Most problems `regrl text sample` prints."""


def add_cli(sub) -> None:
    text = sub.add_parser("text", help="verifiable text tasks for RLVR (demos, samples)")
    tsub = text.add_subparsers(dest="action", required=True)
    demos = tsub.add_parser(
        "demos",
        help="write N problems with correct worked completions "
        "as JSONL {prompt, completion, answer} (SFT data)",
    )
    _task_args(demos)
    demos.add_argument("--n", type=int, default=1000, help="number of problems (default 1000)")
    demos.add_argument("--out", required=True, help="output .jsonl file")
    demos.set_defaults(handler=_demos)
    sample = tsub.add_parser("sample", help="print a few problems, answers and demonstrations")
    _task_args(sample)
    sample.add_argument("--n", type=int, default=3, help="number of problems (default 3)")
    sample.set_defaults(handler=_sample)


def _task_args(p) -> None:
    p.add_argument(
        "--task", required=True, help="task name: arithmetic, countdown, word_problems, jsonl"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--kw",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task setting, e.g. --kw digits=3 --kw path=data.jsonl; VALUE is read "
        "as JSON when it parses, else as a string (repeatable)",
    )


def _task_kwargs(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kw {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _rows(args, max_n: int):
    """The task's demonstrations for ``args``; every bad setting is a ConfigError."""
    from regrl.envs.text import TaskError, demonstrations, get_task

    if not 0 <= args.n <= max_n:
        raise ConfigError(f"--n must be >= 0 and <= {max_n}, got {args.n}")
    if args.seed < 0:  # numpy seeds are non-negative
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    try:
        return demonstrations(get_task(args.task, **_task_kwargs(args.kw)), args.n, args.seed)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a .jsonl file path")
    if out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"--out {out}: {out.parent} is not a directory")


def write_jsonl_atomic(out: Path, rows) -> None:
    """Write ``rows`` to a temporary file beside ``out`` that replaces it only when complete,
    so a reader never sees a half-written file; the temporary file never outlives a failure."""
    with atomic_output(out, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _demos(args) -> int:
    out = Path(args.out)
    _check_out(out)
    rows = _rows(args, MAX_DEMOS)
    try:
        write_jsonl_atomic(out, rows)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {len(rows)} {args.task} demonstrations (seed {args.seed}) to {out}")
    return 0


def _sample(args) -> int:
    for i, row in enumerate(_rows(args, MAX_SAMPLES)):
        print(
            f"--- {i}\nprompt: {row['prompt']}\nanswer: {row['answer']}\n"
            f"demonstration:\n{row['completion']}"
        )
    return 0
