"""Where the RIFT traffic wrapper's time goes (issue 25 item 4): CPU time per env step inside
the wrapper's main functions, in raw and in candidate mode, over ``--steps`` steps of
``traffic_env.py``'s loop (intersection, 2 CBVs, IDM ego and traffic, density 0.05, horizon
100, 36 candidates per CBV, resets excluded) after as many warm-up steps. Each function is
wrapped by a timer, so the times are inclusive (a function's line contains those of the
functions it calls) and each call pays the timer's own small cost; MetaDrive's step is timed
the same way. A profile, not a benchmark: the shares say where to look, the A/B
(``traffic_env_ab.py``) says what a change gains.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/traffic_env_profile.py [--steps 300]
[--against COMMIT]  (the env code of a git commit, exported as ``traffic_env_ab.py`` does)
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from traffic_env import CLOCK, time_metadrive_steps  # this folder: one MetaDrive step timer
from traffic_env_ab import export  # this folder: a commit's env code as a package

# (module, function) of the wrapper, by the package path under regrl.envs.traffic
TIMED = [
    ("env", "TrafficEnv._collect"),
    ("env", "TrafficEnv._attach_candidates"),
    ("env", "TrafficEnv._scenes"),
    ("env", "TrafficEnv._control"),
    ("env", "step_readings"),
    ("env", "TrafficEnv._step_metrics"),
    ("env", "TrafficEnv._rewards"),
    ("env", "score_candidates_batch"),
    ("env", "lane_following_candidates_batch"),
    ("features", "_fill_lanes_batch"),
    ("features", "_fill_states_batch"),
    ("scoring", "lane_offroad"),
    ("scoring", "lane_relations"),
    ("scoring", "_collisions"),
    ("scoring", "forecast_neighbors"),
    ("scoring", "_overlaps"),
    ("scoring", "candidate_kinematics"),
    ("scoring", "dense_reward"),
    ("scoring", "discounted_returns"),
    ("candidates", "_follow_lanes"),
]


def instrument(package: str, spent: collections.Counter) -> None:
    """Wrap each TIMED function of ``package`` (where it has it) by a CPU timer into
    ``spent``."""
    for module, name in TIMED:
        owner = importlib.import_module(f"{package}.{module}")
        *cls, attr = name.split(".")
        if cls:
            owner = getattr(owner, cls[0])
        if not hasattr(owner, attr):
            continue
        setattr(owner, attr, _timed(getattr(owner, attr), name, spent))


def _timed(fn, label: str, spent: collections.Counter):
    def timed(*args, **kwargs):
        t = CLOCK()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += CLOCK() - t

    return timed


def profile(package: str, spent: collections.Counter, mode: str, steps: int) -> tuple:
    """(MetaDrive step, wrapper code, {function: CPU s}) per step of ``steps`` timed steps of
    ``package``'s env (instrumented into ``spent``)."""
    env = importlib.import_module(package).parallel_env(
        num_cbv=2, action_mode=mode, num_modes=12, horizon=100, traffic_density=0.05
    )
    try:
        seed = 0
        env.reset(seed=seed)
        inside = time_metadrive_steps(env)
        act = np.array([0.0, 0.5], np.float32) if mode == "raw" else 11
        for _round in ("warm-up", "timed"):
            spent.clear()
            inside[0], resets, start = 0.0, 0.0, CLOCK()
            for _ in range(steps):
                if not env.agents:
                    seed, t = seed + 1, CLOCK()
                    env.reset(seed=seed)
                    resets += CLOCK() - t
                env.step({a: act for a in env.agents})
            total = CLOCK() - start - resets
        per_step = {k: v / steps for k, v in spent.items()}
        return inside[0] / steps, (total - inside[0]) / steps, per_step
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument(
        "--against", help="git commit whose env code to profile (default: this checkout)"
    )
    args = p.parse_args()
    spent: collections.Counter = collections.Counter()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        package = "regrl.envs.traffic"
        if args.against:
            sys.path.insert(0, tmp)
            package = export(args.against, Path(tmp))
        importlib.import_module(package + ".env")
        instrument(package, spent)
        results = {mode: profile(package, spent, mode, args.steps) for mode in ("raw", "candidate")}
    print(
        f"{args.against or 'this checkout'}: intersection, 2 CBVs, {args.steps} timed steps "
        f"after {args.steps} warm-up steps, "
        f"CPU time per step, inclusive; load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    for mode, (md, wrapper, per_step) in results.items():
        print(
            f"  {mode} mode: MetaDrive step {1e3 * md:.3f} ms, wrapper code around it "
            f"{1e3 * wrapper:.3f} ms (+{100 * wrapper / md:.1f}%, with the timers' cost)"
        )
        for name, sec in sorted(per_step.items(), key=lambda kv: -kv[1]):
            print(
                f"    {name:42s} {1e6 * sec:8.1f} us  ({100 * sec / wrapper:5.1f}% of the wrapper)"
            )


if __name__ == "__main__":
    main()
