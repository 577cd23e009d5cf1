"""RIFT traffic env throughput: the PettingZoo wrapper vs a bare MetaDrive loop over the same
scenario (same MetaDrive class and config, K+1 controlled vehicles, IDM ego, IDM traffic),
measured in the same run. MetaDrive allows one engine per process, so the loops run one after
another; each is repeated ``--rounds`` times alternately and the best round counts (robust to
other load on the machine). Rates are per second of this process's CPU time.

Lines: bare MetaDrive with a null observation (what the wrapper builds on) and with its stock
lidar observation; the wrapper in raw mode (scene features, metrics, reward) and in candidate
mode (plus candidate generation and RIFT scoring of R·M candidates per CBV per step).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/traffic_env.py [--steps 300] [--num-cbv 2]
[--against COMMIT]  (the env code of a git commit instead of this checkout's, for a
before/after pair of runs)
Goals (issue 25 item 4): raw mode <= 15 % over the bare (null-observation) loop, candidate
mode <= 2x raw mode. On a loaded machine the separate loops' rates drift by tens of percent
between rounds; the last line (wrapper code vs MetaDrive's step inside the same raw-mode loop)
is the load-robust view of the wrapper's own code; the line before it splits the
candidate-mode loop the same way (its MetaDrive step differs from raw mode's: the CBVs drive
other paths). The separate loops' rates include the resets (about 0.1 CPU-s each; in 300
steps of seeds 0-2 the candidate-mode loop resets 3 times, the raw-mode loop twice). The
wrapper's engine skips MetaDrive's reward and cost (``backend.lean_scenario_class``), which
the bare loop still computes, so its MetaDrive step is cheaper than the bare loop's.

One engine per process: MetaDrive keeps its engine in a class attribute
(``BaseEngine.singleton``, a panda3d ``ShowBase``) that every object reaches through
``get_engine()``; ``initialize_engine`` raises ``PermissionError: There should be only one
BaseEngine instance in one process``, and a second env's ``reset`` silently adopts the first
env's engine (``lazy_init`` returns early) and fails (0.4.3: ``AssertionError: Agents: 0 !=
Num_agents: 2``). Several traffic envs therefore need several processes (env runners).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# CPU time of this process: on a shared, overloaded machine wall time mostly measures the
# other processes; MetaDrive and the wrapper are single-threaded Python + Bullet.
CLOCK = time.process_time


def time_metadrive_steps(env) -> list:
    """Wrap the wrapper's MetaDrive engine step (``env._md.step``) so that the CPU time spent
    inside it adds up in the returned one-element list: the wrapper's own cost per step is the
    loop's time minus that."""
    md_step, inside = env._md.step, [0.0]

    def timed_step(*args, **kwargs):
        t = CLOCK()
        try:
            return md_step(*args, **kwargs)
        finally:
            inside[0] += CLOCK() - t

    env._md.step = timed_step
    return inside


def bare_loop(num_cbv: int, steps: int, stock_obs: bool, **kw) -> float:
    from metadrive.policy.idm_policy import IDMPolicy

    from regrl.envs.traffic import backend

    cfg = backend.metadrive_config(
        "intersection", num_cbv + 1, kw["traffic_density"], 0, 100, None, False, None
    )
    if not stock_obs:
        cfg["agent_observation"] = backend.null_observation_class()
    env = backend.scenario_class("intersection")(cfg)
    ego_name = f"agent{num_cbv}"

    def reset(seed):
        with backend.offline_engine_start(False):
            env.reset(seed=seed)
        ego = env.agents[ego_name]
        env.engine.add_policy(ego.id, IDMPolicy, ego, seed)

    try:
        seed = 0
        reset(seed)
        done, start, t = 0, CLOCK(), 0
        while done < steps:
            if t >= kw["horizon"] or not any(a != ego_name for a in env.agents):
                seed, t = seed + 1, 0
                reset(seed)
            env.step({a: np.array([0.0, 0.5], np.float32) for a in env.agents})
            done, t = done + 1, t + 1
        return steps / (CLOCK() - start)
    finally:
        env.close()


def wrapper_loop(
    num_cbv: int, steps: int, mode: str, split: dict = None, stock: bool = False, **kw
) -> float:
    """Steps per CPU-second of the wrapper; ``split`` (if given) receives the CPU seconds per
    step spent inside MetaDrive's own ``step`` and in the wrapper's code around it (resets
    excluded): a same-loop measure of the overhead, robust to load shared with other jobs.
    ``stock``: the engine computes MetaDrive's own reward and cost as before issue 25."""
    from regrl.envs.traffic import backend, parallel_env

    lean = backend.lean_scenario_class
    if stock:
        backend.lean_scenario_class = backend.scenario_class
    try:
        return _wrapper_loop(parallel_env, num_cbv, steps, mode, split, **kw)
    finally:
        backend.lean_scenario_class = lean


def _wrapper_loop(parallel_env, num_cbv: int, steps: int, mode: str, split, **kw) -> float:
    env = parallel_env(
        num_cbv=num_cbv,
        action_mode=mode,
        num_modes=kw["num_modes"],
        horizon=kw["horizon"],
        traffic_density=kw["traffic_density"],
    )
    try:
        seed = 0
        env.reset(seed=seed)
        inside = time_metadrive_steps(env)
        # the action is built once: building it is the benchmark's work, not the wrapper's
        act = np.array([0.0, 0.5], np.float32) if mode == "raw" else kw["num_modes"] - 1
        done, start, resets = 0, CLOCK(), 0.0
        while done < steps:
            if not env.agents:
                seed, t = seed + 1, CLOCK()
                env.reset(seed=seed)
                resets += CLOCK() - t
            env.step({a: act for a in env.agents})
            done += 1
        total = CLOCK() - start
        if split is not None:
            split.update(metadrive=inside[0] / steps, wrapper=(total - resets - inside[0]) / steps)
        return steps / total
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300, help="env steps per measurement")
    p.add_argument("--num-cbv", type=int, default=2)
    p.add_argument("--num-modes", type=int, default=12, help="M (candidates per CBV: 3·M)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--against", help="git commit whose env code to run (default: this checkout)")
    args = p.parse_args()
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            use_commit(args.against, Path(tmp))
            measure(args)
    else:
        measure(args)


def use_commit(commit: str, where: Path) -> None:
    """Make ``regrl.envs.traffic`` the env code of ``commit`` (exported as
    ``traffic_env_ab.py`` does) for the loops of this process."""
    from traffic_env_ab import export  # this folder

    sys.path.insert(0, str(where))
    name = export(commit, where)
    for module in ("backend", "env"):  # attributes of the package, as the loops import them
        importlib.import_module(f"{name}.{module}")
    sys.modules["regrl.envs.traffic"] = importlib.import_module(name)


def measure(args) -> None:
    kw = dict(horizon=100, traffic_density=0.05, num_modes=args.num_modes)
    load0 = os.getloadavg()[0]
    split: dict = {}
    split_cand: dict = {}
    runs = {
        "bare MetaDrive, null observation": lambda: bare_loop(
            args.num_cbv, args.steps, False, **kw
        ),
        "bare MetaDrive, stock lidar observation": lambda: bare_loop(
            args.num_cbv, args.steps, True, **kw
        ),
        "wrapper, raw actions, MetaDrive's reward kept": lambda: wrapper_loop(
            args.num_cbv, args.steps, "raw", stock=True, **kw
        ),
        "wrapper, raw actions": lambda: wrapper_loop(args.num_cbv, args.steps, "raw", split, **kw),
        f"wrapper, candidate mode ({3 * args.num_modes} candidates/CBV)": lambda: wrapper_loop(
            args.num_cbv, args.steps, "candidate", split_cand, **kw
        ),
    }
    best = {k: 0.0 for k in runs}
    shares, cand_shares = [], []
    for _ in range(args.rounds):
        for name, fn in runs.items():
            split.clear()
            split_cand.clear()
            best[name] = max(best[name], fn())
            if split:
                shares.append((split["wrapper"] / split["metadrive"], dict(split)))
            if split_cand:
                cand_shares.append(
                    (split_cand["wrapper"] / split_cand["metadrive"], dict(split_cand))
                )
    base = best["bare MetaDrive, null observation"]
    print(
        f"{args.against or 'this checkout'}: intersection, {args.num_cbv} CBVs + IDM ego + IDM "
        f"traffic, {args.steps} steps (0.1 s each), best of {args.rounds} rounds; load average "
        f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    for name, rate in best.items():
        print(
            f"  {name:50s} {rate:8.1f} steps/CPU-s   x{rate / base:5.2f} of bare "
            f"(overhead {100 * (base / rate - 1):+.0f}%)"
        )
    raw, cand = (best[k] for k in list(runs)[3:])
    print(f"  candidate mode costs x{raw / cand:.2f} the raw-mode step (goal <= 2)")
    share, cpu = min(shares, key=lambda s: s[0])
    cand_share, cand_cpu = min(cand_shares, key=lambda s: s[0])
    print(
        f"  candidate mode, same loop (best round): MetaDrive step "
        f"{1e3 * cand_cpu['metadrive']:.2f} ms, wrapper code around it "
        f"{1e3 * cand_cpu['wrapper']:.2f} ms per step (+{100 * cand_share:.1f}%)"
    )
    print(
        f"  raw mode, same loop (best round): MetaDrive step {1e3 * cpu['metadrive']:.2f} ms, "
        f"wrapper code around it {1e3 * cpu['wrapper']:.2f} ms per step "
        f"(+{100 * share:.1f}% of MetaDrive's step)"
    )


if __name__ == "__main__":
    main()
