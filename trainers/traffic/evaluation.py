"""RIFT's evaluation (docs/methods.md#rift-metrics): rollouts of a policy on held-out
scenarios in seed blocks, the policies evaluated (the scorer's argmax, a module's greedy action,
the best-return reference) and ``regrl eval`` for ``rift_metadrive`` runs."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from regrl.envs.traffic.metrics import summarise
from regrl.files import write_text_atomic
from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.planner_io import load_planner, planner_path, scene_tensors
from regrl.trainers.traffic.tables import markdown_table, mean_std, write_bars

# env_seed: MetaDrive start seed of the evaluation scenarios (training and demos use 0-99,
# so 1000 holds them out); seed: first scenario index (block b runs the next ones)
EVAL_DEFAULTS = {
    "episodes": 6,
    "blocks": 3,
    "demos": "data/traffic_demos.npz",
    "seed": 0,
    "env_seed": 1000,
}
Policy = Callable[[np.ndarray], np.ndarray]  # obs [K, OBS_DIM] -> actions [K] or [K, 2]
EVAL_TORCH_THREADS = 1  # evaluation runs K <= a few CBVs per call: one thread is enough


def scorer_policy(score: Callable[[Dict[str, torch.Tensor]], torch.Tensor]) -> Policy:
    """Execute the highest-scoring candidate (RIFT's rollout rule)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return score(scene_tensors(obs)).argmax(-1).numpy()

    return policy


class BestReturnPolicy:
    """Execute the candidate with the highest RIFT return (the dense reward of each candidate
    over 4 s under the neighbour forecast, computed by the env; ``candidate_returns`` in the
    info): the choice a scorer would make if it had learned RIFT's own ranking perfectly, a
    reference for what fine-tuning the scoring head can reach. Needs candidate mode; the
    rollout hands it each agent's info (``reads_info``)."""

    reads_info = True

    def __call__(self, obs: np.ndarray, infos: List[Dict[str, Any]]) -> np.ndarray:
        best = []
        for info in infos:
            if "candidate_returns" not in info:
                raise ValueError("BestReturnPolicy needs candidate mode (candidate_returns)")
            valid = np.asarray(info["candidate_valid"], bool)
            best.append(int(np.argmax(np.where(valid, info["candidate_returns"], -np.inf))))
        return np.asarray(best)


def module_policy(module, action_space) -> Policy:
    from ray.rllib.core.columns import Columns

    from regrl.trainers.evaluate import greedy_action

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
        return greedy_action(out[Columns.ACTION_DIST_INPUTS], action_space)

    return policy


def rollout(env, policy: Policy, episodes: int, seed: int) -> Dict[str, Any]:
    """Run ``episodes`` episodes; per-step CBV samples and per-episode aggregates. A policy
    with ``reads_info = True`` is called as ``policy(obs, infos)`` with each agent's info."""
    steps: Dict[str, List[float]] = {
        k: [] for k in ("speed", "acc", "collision", "offroad", "uncomfortable", "progress_m")
    }
    per_episode: List[Dict[str, float]] = []
    reads_info = getattr(policy, "reads_info", False)
    for ep in range(episodes):
        obs, infos = env.reset(seed=seed + ep)
        last: Dict[str, float] = {}
        while env.agents:
            names = [a for a in env.agents if a in obs]
            batch = np.stack([obs[a] for a in names])
            acts = policy(batch, [infos[a] for a in names]) if reads_info else policy(batch)
            obs, _, _, _, infos = env.step({a: acts[i] for i, a in enumerate(names)})
            for info in infos.values():
                m = info.get("metrics", {})
                for k in steps:
                    if k in m:
                        steps[k].append(float(m[k]))
                if "cpk" in m:
                    last = {k: float(v) for k, v in m.items() if np.isscalar(v)}
        per_episode.append(last)
    return {"steps": {k: np.asarray(v) for k, v in steps.items()}, "episodes": per_episode}


def demo_speeds(path) -> Optional[np.ndarray]:
    p = Path(path)
    if not p.is_file():
        return None
    with np.load(p) as d:
        return np.asarray(d["speed"], float).ravel() if "speed" in d.files else None


@contextlib.contextmanager
def fixed_torch_threads(n: int = EVAL_TORCH_THREADS):
    """Run the block with ``n`` torch intra-op threads, restoring the caller's setting after.
    The planner's float results (and so the candidates, the tracked motion and every metric
    bit) may depend on how a reduction is split over threads; ``regrl eval`` took the run's
    ``torch_threads`` while a script calling ``compare_runs`` kept torch's default (one per
    core), so one checkpoint could be evaluated under different thread counts."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_policy(
    env_kwargs: Dict[str, Any],
    policy: Policy,
    opts: Dict[str, Any],
    say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """``blocks`` evaluation seeds x ``episodes // blocks`` episodes -> metrics per block;
    bit-identical for the same policy, env settings and options (fixed torch threads, every
    episode reset with its own seed; nothing reads the clock)."""
    with fixed_torch_threads():
        return _evaluate_blocks(env_kwargs, policy, opts, say)


def _evaluate_blocks(
    env_kwargs: Dict[str, Any], policy: Policy, opts: Dict[str, Any], say: Callable[[str], None]
) -> Dict[str, Any]:
    env = make_rift_env(**dict(env_kwargs, seed=int(opts["env_seed"])))
    demo = demo_speeds(opts["demos"])
    blocks, per = int(opts["blocks"]), max(1, int(opts["episodes"]) // int(opts["blocks"]))
    rows = []
    try:
        for b in range(blocks):
            start = time.time()
            # consecutive seeds: the env maps seed -> scenario seed % num_scenarios
            roll = rollout(env, policy, per, seed=int(opts["seed"]) + per * b)
            rows.append(summarise(roll, demo))
            say(
                f"eval block {b + 1}/{blocks}: {per} episodes, {time.time() - start:.0f} s, "
                f"RP {rows[-1]['rp']:.0f} m, CPK {rows[-1]['cpk']:.1f}"
            )
    finally:
        env.close()
    return {
        "blocks": rows,
        "mean": mean_std(rows)[0],
        "std": mean_std(rows)[1],
        "demo_speed_samples": 0 if demo is None else int(len(demo)),
    }


def eval_options(cfg_eval_kwargs: Dict[str, Any], episodes: Optional[int]) -> Dict[str, Any]:
    opts = dict(EVAL_DEFAULTS, **cfg_eval_kwargs)
    unknown = sorted(set(opts) - set(EVAL_DEFAULTS))
    if unknown:
        raise ValueError(
            f"eval.kwargs {unknown} unknown for rift_metadrive; valid: {sorted(EVAL_DEFAULTS)}"
        )
    if episodes:
        opts["episodes"] = int(episodes)
    opts["blocks"] = max(1, min(int(opts["blocks"]), int(opts["episodes"])))
    return opts


def run_policy(run_dir: Path, cfg, ckpt: Path) -> Policy:
    """The greedy policy of an RL run: argmax candidate, or the Gaussian mean in raw mode."""
    from regrl.trainers.evaluate import load_module

    module = load_module(ckpt, "cbv")
    if dict(cfg.env.kwargs).get("action_mode", "candidate") == "candidate":
        return scorer_policy(lambda s: module.planner(s, with_traj=False)["logits"])
    from gymnasium.spaces import Box

    return module_policy(module, Box(-1.0, 1.0, (2,), np.float32))


def method_name(cfg) -> str:
    """Label of a run in tables: IL only / PPO / GRPO+KL / demo-KL / RIFT (from its terms),
    with " (scorer trainable)" when ``model.trainable`` is ``scorer``."""
    if dict(cfg.env.kwargs).get("action_mode", "candidate") == "raw":
        return "PPO (raw actions)"
    suffix = " (scorer trainable)" if cfg.model.trainable == "scorer" else ""
    for t in cfg.objective.terms:
        if t.name == "candidate_policy":
            p = t.params
            if p.kl_coeff > 0:
                return ("demo-KL" if p.kl == "demo" else "GRPO+KL") + suffix
            return ("RIFT" if p.dual_clip else "RIFT w/o dual clip") + suffix
    return cfg.name


def evaluate_run(*, run_dir: Path, cfg, ckpt: Path, episodes: Optional[int]) -> Dict[str, Any]:
    """``regrl eval`` for rift_metadrive: RIFT's CBV metrics of the latest checkpoint."""
    opts = eval_options(dict(cfg.eval.kwargs), episodes)
    result = evaluate_policy(dict(cfg.env.kwargs), run_policy(run_dir, cfg, ckpt), opts)
    row = dict(result, method=method_name(cfg), run_dir=str(run_dir))
    table = markdown_table([row])
    write_text_atomic(Path(run_dir) / "eval.md", table + "\n")
    figures = write_bars(Path(run_dir) / "eval_traffic.png", [row])
    return {
        **result,
        "method": row["method"],
        "options": opts,
        "table": "eval.md",
        "figures": figures,
    }


def evaluate_planner_run(
    run_dir: Path, env_kwargs: Dict[str, Any], opts: Dict[str, Any]
) -> Dict[str, Any]:
    """IL-only baseline: the stage-1 planner's own scores pick the candidate."""
    path = planner_path(run_dir)
    planner = load_planner(path)
    planner.eval()
    kw = dict(env_kwargs, planner=str(path), action_mode="candidate")
    result = evaluate_policy(
        kw, scorer_policy(lambda s: planner(s, with_traj=False)["logits"]), opts
    )
    return dict(result, method="IL only", run_dir=str(run_dir))
