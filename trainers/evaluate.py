"""``regrl eval RUN_DIR``: evaluate the latest checkpoint, write eval.json + figures.

Environments may register their own evaluator (the SMARL closure comparison); the default
runs greedy episodes of the learned policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from regrl.files import write_text_atomic
from regrl.trainers.checkpoint import latest_checkpoint, module_checkpoint_path, read_state
from regrl.trainers.envs import env_entry, make_env
from regrl.trainers.kinds import load_run_config
from regrl.trainers.plugins import DOMAIN_PLUGINS, PluginRegistry
from regrl.trainers.run_files import EVAL_FILE, TB_DIR

# env name -> evaluator; the domain modules register theirs (smarl_turb2d: the closure
# comparison in regrl.trainers.turbulence.smarl; rift_metadrive: the RIFT metrics in
# regrl.trainers.traffic.evaluation),
# imported by name on the first lookup so that this core module imports no domain.
EVALUATOR_MODULES = DOMAIN_PLUGINS
EVALUATORS = PluginRegistry("evaluator", EVALUATOR_MODULES)


def apply_torch_threads(cfg) -> None:
    """``resources.torch_threads`` of a kind-rl config for this process (null keeps torch's
    default): the driver of a run and its evaluation."""
    if cfg.resources.torch_threads:
        torch.set_num_threads(cfg.resources.torch_threads)


def greedy_action(dist_inputs: torch.Tensor, space) -> np.ndarray:
    """Argmax for Discrete; the Gaussian mean, un-normalised from [−1, 1] to the Box bounds
    (RLlib normalises Box actions by default), for Box."""
    if hasattr(space, "n"):
        return dist_inputs.argmax(-1).cpu().numpy()
    mean = dist_inputs[..., : dist_inputs.shape[-1] // 2].cpu().numpy()
    low, high = space.low, space.high
    return low + (np.clip(mean, -1.0, 1.0) + 1.0) * (high - low) / 2.0


def rollout(module, env, episodes: int, seed: int) -> List[Dict[str, float]]:
    stats = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, length, done = 0.0, 0, False
        while not done:
            batch = {"obs": torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None]}
            with torch.no_grad():
                out = module.forward_inference(batch)
            action = greedy_action(out["action_dist_inputs"], env.action_space)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, length = total + float(reward), length + 1
            done = terminated or truncated
        stats.append({"return": total, "length": length})
    return stats


def load_module(ckpt: Path, module_id: str):
    # lazy: ray.rllib takes seconds; `regrl turbulence` imports this module at --help
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(module_checkpoint_path(ckpt, module_id))
    module.eval()
    return module


def evaluate(run_dir: Path, episodes: int | None = None) -> Dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, "rl")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to evaluate")
    apply_torch_threads(cfg)
    name = cfg.env.name
    fn: Callable[..., Dict[str, Any]] = (
        EVALUATORS.get(name) if name in EVALUATORS else evaluate_episodes
    )
    report = fn(run_dir=run_dir, cfg=cfg, ckpt=ckpt, episodes=episodes)
    report = {
        "run_dir": str(run_dir),
        "checkpoint": ckpt.name,
        "iteration": read_state(ckpt)["iteration"],
        **report,
    }
    write_text_atomic(run_dir / EVAL_FILE, json.dumps(report, indent=2))
    return report


def evaluate_policy_file(path: Path, out_dir: Path, episodes: int | None = None) -> Dict[str, Any]:
    """``regrl eval FILE.pt``: evaluate a policy file (``trainers/rllib/policy_file.py``) with
    its env's evaluator, without a run directory or training; writes eval.json into
    ``out_dir``. Evaluators take the module through their ``module`` argument."""
    import inspect

    from regrl.trainers.rllib.policy_file import load_policy

    module, cfg, prov = load_policy(path)
    name = cfg.env.name
    fn: Callable[..., Dict[str, Any]] = (
        EVALUATORS.get(name) if name in EVALUATORS else evaluate_episodes
    )
    if "module" not in inspect.signature(fn).parameters:
        raise FileNotFoundError(f"{name}'s evaluator needs a run directory, not a policy file")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    apply_torch_threads(cfg)
    report = fn(run_dir=out_dir, cfg=cfg, ckpt=None, episodes=episodes, module=module)
    report = {"policy_file": str(path), "provenance": prov, **report}
    write_text_atomic(out_dir / EVAL_FILE, json.dumps(report, indent=2, default=str))
    return report


def evaluate_episodes(*, run_dir: Path, cfg, ckpt: Path | None, episodes: int | None, module=None):
    module = module if module is not None else load_module(ckpt, env_entry(cfg.env.name).module_id)
    env = make_env(cfg.env.name, dict(cfg.env.kwargs))
    stats = rollout(module, env, episodes or cfg.eval.episodes, seed=10_000 + cfg.seed)
    env.close()
    returns = np.array([s["return"] for s in stats])
    return {
        "episodes": len(stats),
        "eval/return_mean": float(returns.mean()),
        "eval/return_std": float(returns.std()),
        "eval/return_min": float(returns.min()),
        "eval/return_max": float(returns.max()),
        "eval/length_mean": float(np.mean([s["length"] for s in stats])),
        "per_episode": stats,
        "figures": write_figures(run_dir, returns),
    }


def training_curve(run_dir: Path, tag: str = "env/episode_return_mean"):
    # lazy: only for figures
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return [], []
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def write_figures(run_dir: Path, returns: np.ndarray) -> List[str]:
    import matplotlib  # lazy: only for figures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use

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
