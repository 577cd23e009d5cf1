"""``regrl text ...``: verifiable text tasks (SFT demonstration files, sample problems)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from trainers.checks import ConfigError


def add_cli(sub) -> None:
    text = sub.add_parser("text", help="verifiable text tasks for RLVR (demos, samples)")
    tsub = text.add_subparsers(dest="action", required=True)
    demos = tsub.add_parser("demos", help="write N problems with correct worked completions "
                            "as JSONL {prompt, completion, answer} (SFT data)")
    _task_args(demos)
    demos.add_argument("--n", type=int, default=1000, help="number of problems (default 1000)")
    demos.add_argument("--out", required=True, help="output .jsonl file")
    demos.set_defaults(handler=_demos)
    sample = tsub.add_parser("sample", help="print a few problems, answers and demonstrations")
    _task_args(sample)
    sample.add_argument("--n", type=int, default=3, help="number of problems (default 3)")
    sample.set_defaults(handler=_sample)


def _task_args(p) -> None:
    p.add_argument("--task", required=True,
                   help="task name: arithmetic, countdown, word_problems, jsonl")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                   help="task setting, e.g. --kw digits=3 --kw path=data.jsonl; VALUE is read "
                        "as JSON when it parses, else as a string (repeatable)")


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


def _build(args):
    from envs.text import TaskError, get_task

    if args.n < 0:
        raise ConfigError(f"--n must be >= 0, got {args.n}")
    try:
        return get_task(args.task, **_task_kwargs(args.kw))
    except TaskError as exc:
        raise ConfigError(str(exc)) from None


def _demos(args) -> int:
    from envs.text import TaskError, demonstrations

    task = _build(args)
    try:
        rows = demonstrations(task, args.n, args.seed)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out)  # a reader never sees a half-written file
    print(f"wrote {len(rows)} {args.task} demonstrations (seed {args.seed}) to {out}")
    return 0


def _sample(args) -> int:
    from envs.text import demonstrations

    for i, row in enumerate(demonstrations(_build(args), args.n, args.seed)):
        print(f"--- {i}\nprompt: {row['prompt']}\nanswer: {row['answer']}\n"
              f"demonstration:\n{row['completion']}")
    return 0
