"""RIFT traffic env throughput: the PettingZoo wrapper vs a bare MetaDrive loop over the same
scenario (same MetaDrive class and config, K+1 controlled vehicles, IDM ego, IDM traffic),
measured in the same run. MetaDrive allows one engine per process, so the loops run one after
another; each is repeated ``--rounds`` times alternately and the best round counts (robust to
other load on the machine). Rates are per second of this process's CPU time.

Lines: bare MetaDrive with a null observation (what the wrapper builds on) and with its stock
lidar observation; the wrapper in raw mode (scene features, metrics, reward) and in candidate
mode (plus candidate generation and RIFT scoring of R·M candidates per CBV per step).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/traffic_env.py [--steps 300] [--num-cbv 2]
Goal: raw-mode overhead <= 15 % over the bare (null-observation) loop. On a loaded machine the
separate loops' rates drift by tens of percent between rounds; the last line (wrapper code vs
MetaDrive's step inside the same raw-mode loop) is the load-robust view of the same overhead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# CPU time of this process: on a shared, overloaded machine wall time mostly measures the
# other processes; MetaDrive and the wrapper are single-threaded Python + Bullet.
CLOCK = time.process_time


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


def wrapper_loop(num_cbv: int, steps: int, mode: str, split: dict = None, **kw) -> float:
    """Steps per CPU-second of the wrapper; ``split`` (if given) receives the CPU seconds per
    step spent inside MetaDrive's own ``step`` and in the wrapper's code around it (resets
    excluded): a same-loop measure of the overhead, robust to load shared with other jobs."""
    from regrl.envs.traffic import parallel_env

    env = parallel_env(
        num_cbv=num_cbv,
        action_mode=mode,
        num_modes=kw["num_modes"],
        horizon=kw["horizon"],
        traffic_density=kw["traffic_density"],
    )
    inside = [0.0]
    try:
        seed = 0
        env.reset(seed=seed)
        md_step = env._md.step

        def timed_step(*args, **kwargs):
            t = CLOCK()
            try:
                return md_step(*args, **kwargs)
            finally:
                inside[0] += CLOCK() - t

        env._md.step = timed_step
        done, start, resets = 0, CLOCK(), 0.0
        while done < steps:
            if not env.agents:
                seed, t = seed + 1, CLOCK()
                env.reset(seed=seed)
                resets += CLOCK() - t
            act = np.array([0.0, 0.5], np.float32) if mode == "raw" else kw["num_modes"] - 1
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
    args = p.parse_args()
    kw = dict(horizon=100, traffic_density=0.05, num_modes=args.num_modes)
    split: dict = {}
    runs = {
        "bare MetaDrive, null observation": lambda: bare_loop(
            args.num_cbv, args.steps, False, **kw
        ),
        "bare MetaDrive, stock lidar observation": lambda: bare_loop(
            args.num_cbv, args.steps, True, **kw
        ),
        "wrapper, raw actions": lambda: wrapper_loop(args.num_cbv, args.steps, "raw", split, **kw),
        f"wrapper, candidate mode ({3 * args.num_modes} candidates/CBV)": lambda: wrapper_loop(
            args.num_cbv, args.steps, "candidate", **kw
        ),
    }
    best = {k: 0.0 for k in runs}
    shares = []
    for _ in range(args.rounds):
        for name, fn in runs.items():
            split.clear()
            best[name] = max(best[name], fn())
            if split:
                shares.append((split["wrapper"] / split["metadrive"], dict(split)))
    base = best["bare MetaDrive, null observation"]
    print(
        f"intersection, {args.num_cbv} CBVs + IDM ego + IDM traffic, {args.steps} steps "
        f"(0.1 s each), best of {args.rounds} rounds"
    )
    for name, rate in best.items():
        print(
            f"  {name:48s} {rate:8.1f} steps/CPU-s   x{rate / base:5.2f} of bare "
            f"(overhead {100 * (base / rate - 1):+.0f}%)"
        )
    share, cpu = min(shares, key=lambda s: s[0])
    print(
        f"  raw mode, same loop (best round): MetaDrive step {1e3 * cpu['metadrive']:.2f} ms, "
        f"wrapper code around it {1e3 * cpu['wrapper']:.2f} ms per step "
        f"(+{100 * share:.0f}% of MetaDrive's step)"
    )


if __name__ == "__main__":
    main()
