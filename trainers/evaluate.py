"""``regrl eval RUN_DIR``: roll out the latest checkpoint greedily, write eval.json + figures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from trainers.checkpoint import latest_checkpoint, module_checkpoint_path, read_state
from trainers.envs import make_env
from trainers.run import TB_DIR, load_run_config

MODULE_ID = "default_policy"


def greedy_action(dist_inputs: torch.Tensor, discrete: bool) -> np.ndarray:
    if discrete:
        return dist_inputs.argmax(-1).cpu().numpy()
    return dist_inputs[..., : dist_inputs.shape[-1] // 2].cpu().numpy()  # the mean


def rollout(module, env, episodes: int, seed: int) -> List[Dict[str, float]]:
    discrete = hasattr(env.action_space, "n")
    stats = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, length, done = 0.0, 0, False
        while not done:
            batch = {"obs": torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None]}
            with torch.no_grad():
                out = module.forward_inference(batch)
            action = greedy_action(out["action_dist_inputs"], discrete)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, length = total + float(reward), length + 1
            done = terminated or truncated
        stats.append({"return": total, "length": length})
    return stats


def evaluate(run_dir: Path, episodes: int | None = None) -> Dict[str, Any]:
    from ray.rllib.core.rl_module.rl_module import RLModule

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to evaluate")
    module = RLModule.from_checkpoint(module_checkpoint_path(ckpt, MODULE_ID))
    module.eval()
    env = make_env(cfg.env.name, dict(cfg.env.kwargs))
    stats = rollout(module, env, episodes or cfg.eval.episodes, seed=10_000 + cfg.seed)
    env.close()
    returns = np.array([s["return"] for s in stats])
    report = {
        "run_dir": str(run_dir), "checkpoint": ckpt.name,
        "iteration": read_state(ckpt)["iteration"], "episodes": len(stats),
        "eval/return_mean": float(returns.mean()), "eval/return_std": float(returns.std()),
        "eval/return_min": float(returns.min()), "eval/return_max": float(returns.max()),
        "eval/length_mean": float(np.mean([s["length"] for s in stats])),
        "per_episode": stats,
    }
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    report["figures"] = write_figures(run_dir, returns)
    return report


def training_curve(run_dir: Path, tag: str = "env/episode_return_mean"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return [], []
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def write_figures(run_dir: Path, returns: np.ndarray) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps, values = training_curve(run_dir)
    ax1.plot(steps, values, marker=".")
    ax1.set(xlabel="iteration", ylabel="episode return (mean)", title="training")
    ax2.hist(returns, bins=min(20, max(5, len(returns))))
    ax2.set(xlabel="return", ylabel="episodes", title=f"eval ({len(returns)} episodes)")
    fig.tight_layout()
    path = run_dir / "eval.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [str(path)]
