"""SMARL environment throughput: a bare loop over the PettingZoo env vs the same env sampled
through an RLlib EnvRunner (with the shared-policy RLModule), measured in the same run, for one
LES per env and for S LES stepped as one batch by one env (``env.kwargs.sims``). The unit is
the simulation-decision: one decision of the 16 agents of one LES (S per env step), so the
ratios against S = 1 in the same run are the gain in experience per core-second.

``--dt``: the LES time step (default the reference's 5·10⁻⁴); the env then takes SMARL's
decision interval in steps of it (``steps_per_action`` unset: 2 steps per decision at 2.5·10⁻³),
so the rates say how much experience per core-second a longer step buys.

Run: .venv/bin/python benchmarks/turbulence_env_overhead.py [--steps 200] [--sims 1,4,8]
         [--reference PATH] [--dt 2.5e-3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def bare_loop(env_kwargs: dict, steps: int) -> float:
    from regrl.envs.turbulence import parallel_env

    env = parallel_env(**env_kwargs)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start, done = time.perf_counter(), 0
    while done < steps:
        if not env.agents:
            env.reset()
        env.step({a: rng.uniform(-0.05, 0.05, 1).astype(np.float32) for a in env.agents})
        done += 1
    return steps / (time.perf_counter() - start)


def env_runner(env_kwargs: dict, steps: int) -> float:
    from regrl.trainers.config import load_config
    from regrl.trainers.rllib.algo import build_algorithm_config

    cfg = load_config("configs/smarl_turb2d.yaml", ["resources.num_env_runners=0"])
    cfg = type(cfg)(**{**cfg.__dict__, "env": type(cfg.env)(cfg.env.name, env_kwargs)})
    algo = build_algorithm_config(cfg).build_algo()
    runner = algo.env_runner
    runner.sample(num_timesteps=20)  # warm-up
    start = time.perf_counter()
    runner.sample(num_timesteps=steps)
    rate = steps / (time.perf_counter() - start)
    algo.stop()
    return rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200, help="environment steps (decisions)")
    p.add_argument("--reference", default=None, help="reference .npz (default: packaged)")
    p.add_argument("--sims", default="1,4,8", help="LES per env, comma-separated")
    p.add_argument("--dt", type=float, default=None, help="LES time step (default the reference's)")
    args = p.parse_args()
    from regrl.envs.turbulence.env import resolve_steps_per_action
    from regrl.envs.turbulence.reference import load_reference

    try:
        per_decision = resolve_steps_per_action(
            None, args.dt, load_reference(args.reference).provenance["spec"]
        )
    except ValueError as exc:
        raise SystemExit(f"error: --dt: {exc}") from None
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(
        f"SMARL env, 16 agents per LES, {per_decision} solver steps per decision"
        f"{f' of dt {args.dt:g}' if args.dt else ''}, {args.steps} env steps; "
        f"rates in simulation-decisions/s (wall clock; load avg {os.getloadavg()[0]:.2f} "
        f"(1 min) on {os.cpu_count()} cores)"
    )
    print("| LES per env | bare loop | x S=1 | RLlib EnvRunner | x S=1 | EnvRunner / bare |")
    print("|---|---|---|---|---|---|")
    first = None
    for sims in [int(x) for x in args.sims.split(",")]:
        kw = {"episode_actions": 50, "steps_per_action": per_decision, "sims": sims}
        if args.dt:
            kw["dt"] = args.dt
        if args.reference:
            kw["reference"] = args.reference
        bare = sims * bare_loop(kw, args.steps)
        rllib = sims * env_runner(kw, args.steps)
        first = first or (bare, rllib)
        print(
            f"| {sims} | {bare:.1f} | {bare / first[0]:.2f} | {rllib:.1f} | "
            f"{rllib / first[1]:.2f} | {rllib / bare:.2f} |",
            flush=True,
        )
    print(f"load avg at the end {os.getloadavg()[0]:.2f} (1 min)")
    ray.shutdown()


if __name__ == "__main__":
    main()
