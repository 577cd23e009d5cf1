"""SMARL environment throughput: a bare loop over the PettingZoo env vs the same env sampled
through an RLlib EnvRunner (with the shared-policy RLModule), measured in the same run.

Run: .venv/bin/python benchmarks/turbulence_env_overhead.py [--steps 200] [--reference PATH]
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
    args = p.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    kw = {"episode_actions": 50, "steps_per_action": 10}
    if args.reference:
        kw["reference"] = args.reference
    bare = bare_loop(kw, args.steps)
    rllib = env_runner(kw, args.steps)
    print(f"SMARL env, 16 agents, 10 solver steps per decision, {args.steps} decisions")
    print(f"  bare loop          {bare:8.1f} decisions/s")
    print(
        f"  RLlib EnvRunner    {rllib:8.1f} decisions/s   ratio x{rllib / bare:.2f} "
        f"(overhead {100 * (1 - rllib / bare):.0f}%)"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
