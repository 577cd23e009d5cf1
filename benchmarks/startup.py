"""Start-up time of the CLI against the bare interpreter, measured in the same run.

Each command runs as a fresh process, as users run it; the rounds are interleaved so that a
busy machine slows every command alike. Per command: median and minimum wall time, the
median minus the bare interpreter's (``python -c pass``), and which heavy packages the
process imported (torch, ray, ray.rllib; read from ``python -X importtime``).
Goal (issue 23 item 5): ``regrl --help`` at most 0.5 s above the bare interpreter, and
``regrl --help`` / ``regrl validate CONFIG`` importing neither ray nor ray.rllib.

Run: .venv/bin/python benchmarks/startup.py [--rounds 5] [--configs configs/a.yaml ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "ray.rllib")
GOAL_HELP_S = 0.5
DEFAULT_CONFIGS = (
    "configs/cartpole_ppo.yaml",  # kind rl
    "configs/offline_digits.yaml",  # kind offline
    "configs/rlvr_tiny_grpo.yaml",  # kind rlvr
    "configs/sft_arith.yaml",  # kind sft
    "configs/rift_pretrain.yaml",  # kind planner
)
CLI = [sys.executable, "-m", "regrl.trainers.cli"]


def commands(configs: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """(label, argv) of every command timed; the bare interpreter first."""
    cmds = [("python -c pass", [sys.executable, "-c", "pass"])]
    cmds.append(("regrl --help", CLI + ["--help"]))
    cmds += [(f"regrl validate {c}", CLI + ["validate", c]) for c in configs]
    return cmds


def wall_time(argv: List[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=_env())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def heavy_imports(argv: List[str]) -> List[str]:
    """Which of HEAVY the command imports (``-X importtime`` lists every module imported)."""
    if argv[1:3] == ["-c", "pass"]:
        return []
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    return [m for m in HEAVY if m in names]


def _env() -> Dict[str, str]:
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def main(argv: Sequence[str] = ()) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument(
        "--configs",
        nargs="*",
        default=list(DEFAULT_CONFIGS),
        help="validated configs (none: --help only)",
    )
    args = p.parse_args(argv or None)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    cmds = commands(args.configs)
    times: Dict[str, List[float]] = {label: [] for label, _ in cmds}
    for _label, cmd in cmds:  # warm the file cache once, untimed
        wall_time(cmd)
    for _ in range(args.rounds):
        for label, cmd in cmds:
            times[label].append(wall_time(cmd))
    bare = statistics.median(times[cmds[0][0]])
    print(f"start-up, {args.rounds} interleaved rounds, {sys.executable}")
    print("| command | median s | min s | median − bare s | imports |")
    print("|---|---|---|---|---|")
    for label, cmd in cmds:
        med = statistics.median(times[label])
        heavy = ", ".join(heavy_imports(cmd)) or "—"
        print(f"| `{label}` | {med:.3f} | {min(times[label]):.3f} | {med - bare:+.3f} | {heavy} |")
    help_over = statistics.median(times["regrl --help"]) - bare
    verdict = "met" if help_over <= GOAL_HELP_S else "missed"
    print(f"goal: regrl --help <= {GOAL_HELP_S} s above the bare interpreter: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
