"""SMARL with RLlib's SAC on the new API stack (SACConfig, its own SAC learner, multi-agent
episode replay), on the same env and budget as configs/smarl_demo.yaml's PPO: 16 agents sharing
one policy, 100-decision episodes, C_s² ∈ [0, 2·0.17²], [128, 128] networks, 6 × 800 decisions.

Why a script and not ``regrl train``: regrl's RL kind builds a PPOConfig whose RegrlLearner sums
the objective terms of the config (clipped surrogates, value, KL); none of them is SAC's twin-Q,
entropy-tuned actor or temperature loss, so SAC runs with RLlib's stock SAC learner here. SMARL's
own learner, V-RACER, is off-policy too (an actor-critic with experience replay), which is why
the issue asks for this comparison.

Each seed's final module is saved as ``OUT/seed{k}/shared`` next to ``OUT/seed{k}/sac.json``
(env kwargs, seed, settings, training metrics); ``benchmarks/turbulence_seeds.py --arm
SAC=OUT/seed0,...`` evaluates them like the PPO runs (the deterministic action of SAC's
tanh-squashed Gaussian is tanh(mean)).
Run: nice -n 5 .venv/bin/python benchmarks/smarl_sac.py --seeds 0 1 2 --out runs/smarl_sac
``--config configs/smarl_hyper.yaml --decisions 16000`` trains on the two-term family with the
paired reward instead, at that config's PPO budget (20 × 800 decisions).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "smarl_demo.yaml"


def demo_env_kwargs(config: Path = DEMO_CONFIG) -> dict:
    """The PPO arm's env (``config``, by default configs/smarl_demo.yaml), read from the config
    so the two cannot drift apart; one solver thread per env, as ``resources.torch_threads``
    gives the PPO run."""
    from regrl.trainers.config import load_config

    cfg = load_config(config)
    return {**dict(cfg.env.kwargs), "torch_threads": cfg.resources.torch_threads or 1}


def sac_config(seed: int, hidden, fragment: int, batch: int, warmup: int, config=DEMO_CONFIG):
    from ray.rllib.algorithms.sac import SACConfig

    import regrl.trainers.turbulence.plugin  # noqa: F401  registers smarl_turb2d
    from regrl.trainers.rllib.algo import rllib_env_id

    return (
        SACConfig()
        .environment(env=rllib_env_id("smarl_turb2d"), env_config=demo_env_kwargs(config))
        .env_runners(num_env_runners=0, rollout_fragment_length=fragment)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda aid, *a, **kw: "shared")
        .rl_module(model_config={"fcnet_hiddens": list(hidden), "fcnet_activation": "tanh"})
        .training(
            train_batch_size_per_learner=batch,
            num_steps_sampled_before_learning_starts=warmup,
            replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 100_000},
        )
        .debugging(seed=seed, log_level="ERROR")
    )


def train_seed(seed: int, args) -> dict:
    cfg = sac_config(seed, args.hidden, args.fragment, args.batch, args.warmup, args.config)
    algo = cfg.build_algo()
    start, history = time.time(), []
    steps = 0
    while steps < args.decisions:
        result = algo.train()
        runners = result.get("env_runners", {})
        steps = int(runners.get("num_env_steps_sampled_lifetime", steps + args.fragment))
        ret = runners.get("episode_return_mean")
        if ret is not None:
            history.append({"env_steps": steps, "episode_return_mean": float(ret)})
    out = Path(args.out) / f"seed{seed}"
    algo.get_module("shared").save_to_path(str((out / "shared").resolve()))
    learner = result.get("learners", {}).get("shared", {})
    info = {
        "seed": seed,
        "env_kwargs": demo_env_kwargs(args.config),
        "config": str(args.config),
        "algorithm": "RLlib SAC (new API stack), stock SAC learner",
        "decisions": steps,
        "seconds": time.time() - start,
        "settings": vars(args) | {"out": str(args.out)},
        "final": {k: float(v) for k, v in learner.items() if isinstance(v, (int, float))},
        "episode_returns": history,
    }
    (out / "sac.json").write_text(json.dumps(info, indent=2, default=str))
    algo.stop()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--decisions", type=int, default=4800, help="PPO demo: 6 x 800")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--fragment", type=int, default=10, help="decisions per train() call")
    parser.add_argument("--batch", type=int, default=256, help="agent steps per SAC update")
    parser.add_argument("--warmup", type=int, default=200, help="decisions before learning")
    parser.add_argument("--out", default="runs/smarl_sac")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEMO_CONFIG,
        help="the PPO config whose env SAC trains on (e.g. configs/smarl_hyper.yaml: the "
        "two-term family with the paired reward; set --decisions to its PPO budget)",
    )
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for seed in args.seeds:
        info = train_seed(seed, args)
        last = info["episode_returns"][-1] if info["episode_returns"] else {}
        print(
            f"seed {seed}: {info['decisions']} decisions in {info['seconds']:.0f} s, "
            f"last episode_return_mean {last.get('episode_return_mean')}",
            flush=True,
        )


if __name__ == "__main__":
    main()
