"""A/B of the RIFT traffic wrapper's code in one process: the env code of a git commit
(``--against``, exported from git into a temporary package) and this checkout's take turns
on one MetaDrive engine every ``--block`` steps of one continuous run, so both meet the same
load (issue 25 item 4).

The loop is ``traffic_env.py``'s raw-mode loop (intersection, 2 CBVs, IDM ego and traffic,
density 0.05, horizon 100, seeds 0, 1, … one after another, resets excluded), or with
``--mode candidate`` its candidate-mode loop (36 candidates per CBV, the built-in lane-following
candidates scored by RIFT's dense reward, the last index chosen); per block, the
CPU time of the wrapper's code around MetaDrive's ``step`` and of that step, per step. A
block of each version makes a pair (the order alternates); the report gives the median of
each version, the per-step difference (mean with its 95 % Student t interval over pairs,
and the median), the new/old ratio, and the load average at the start and the end. MetaDrive
keeps one engine per process, so the versions share it: the old class is swapped in with its
own state histories and lane caches, which stay between its blocks (as the new one's do).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/traffic_env_ab.py --against b1d8eba
[--mode candidate]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from traffic_env import CLOCK, time_metadrive_steps  # this folder: one MetaDrive step timer

ROOT = Path(__file__).resolve().parents[1]


def export(commit: str, where: Path) -> str:
    """``envs/traffic`` of ``commit`` as package ``traffic_<commit>`` under ``where``."""
    name = f"traffic_{commit}"
    files = subprocess.run(
        ["git", "ls-tree", "--name-only", commit, "envs/traffic/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    (where / name).mkdir()
    for path in (f for f in files if f.endswith(".py")):
        text = subprocess.run(
            ["git", "show", f"{commit}:{path}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (where / name / Path(path).name).write_text(text.replace("regrl.envs.traffic", name))
    return name


class Alternation:
    """One env whose class (and histories and lane caches) is swapped per block."""

    def __init__(self, versions: dict, mode: str = "raw"):
        from regrl.envs.traffic import parallel_env

        self.env = parallel_env(
            num_cbv=2, action_mode=mode, num_modes=12, horizon=100, traffic_density=0.05
        )
        self.env.reset(seed=0)
        self.home = type(self.env)
        self.seed = 0
        self.inside = time_metadrive_steps(self.env)
        self.state = {
            k: (mod.env.TrafficEnv, mod.features.Histories(), {}) for k, mod in versions.items()
        }
        self.act = np.array([0.0, 0.5], np.float32) if mode == "raw" else 11

    def block(self, version: str, steps: int) -> tuple:
        """(wrapper, MetaDrive) CPU seconds per step over ``steps`` steps of ``version``."""
        env = self.env
        env.__class__, env._hist, env._lane_caches = self.state[version]
        if env.agents:
            env._lanes = env._lane_cache(env._network)
        self.inside[0], done, resets, start = 0.0, 0, 0.0, CLOCK()
        while done < steps:
            if not env.agents:
                self.seed, t = self.seed + 1, CLOCK()
                env.reset(seed=self.seed)
                resets += CLOCK() - t
            env.step({a: self.act for a in env.agents})
            done += 1
        total = CLOCK() - start
        return (total - resets - self.inside[0]) / steps, self.inside[0] / steps

    def close(self) -> None:
        self.env.__class__ = self.home  # the engine belongs to this checkout's backend
        self.env.close()


def interval(x: list) -> tuple:
    from scipy import stats

    x = np.asarray(x, float)
    return x.mean(), stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--against", required=True, help="git commit of the old code")
    p.add_argument("--pairs", type=int, default=150)
    p.add_argument("--block", type=int, default=20, help="steps per block")
    p.add_argument("--mode", choices=("raw", "candidate"), default="raw")
    args = p.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        name = export(args.against, Path(tmp))
        old = importlib.import_module(name)
        from regrl.envs import traffic as new

        for mod in (old, new):
            importlib.import_module(mod.__name__ + ".env")
        alt = Alternation({"old": old, "new": new}, args.mode)
        try:
            for version in ("old", "new", "old", "new"):  # warm-up: caches, first visits
                alt.block(version, args.block)
            res = {"old": [], "new": []}
            for i in range(args.pairs):
                for version in ("old", "new") if i % 2 == 0 else ("new", "old"):
                    res[version].append(alt.block(version, args.block))
        finally:
            alt.close()
    report(args, res, load0, os.getloadavg()[0])


def report(args, res: dict, load0: float, load1: float) -> None:
    print(
        f"{args.mode} mode, intersection, 2 CBVs: {args.against} (old) vs this checkout (new), "
        f"{args.pairs} pairs of {args.block}-step blocks alternated in one process, CPU time; "
        f"load average {load0:.1f} at the start, {load1:.1f} at the end"
    )
    for version in ("old", "new"):
        wrapper = [1e3 * w for w, _ in res[version]]
        md = [1e3 * m for _, m in res[version]]
        print(
            f"  {version}: wrapper code {statistics.median(wrapper):.3f} ms per step, MetaDrive "
            f"step {statistics.median(md):.3f} ms (medians); wrapper / MetaDrive over all "
            f"blocks +{100 * sum(wrapper) / sum(md):.1f}%"
        )
    diff = [1e6 * (n[0] - o[0]) for o, n in zip(res["old"], res["new"])]
    ratio = [n[0] / o[0] for o, n in zip(res["old"], res["new"])]
    (dm, dh), (rm, rh) = interval(diff), interval(ratio)
    print(
        f"  new - old wrapper code per step: {dm:+.1f} +- {dh:.1f} us (mean, 95% t over "
        f"{len(diff)} pairs), median {statistics.median(diff):+.1f} us"
    )
    print(
        f"  new / old wrapper code: {rm:.3f} +- {rh:.3f} (mean), median "
        f"{statistics.median(ratio):.3f}"
    )


if __name__ == "__main__":
    main()
