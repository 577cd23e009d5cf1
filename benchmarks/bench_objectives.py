"""Objective kernels vs baselines measured in the same run; prints speed ratios.

baseline 1: group advantages by a Python loop over groups (how RIFT's code does it)
baseline 2: RLlib 2.60's numpy GAE (`compute_value_targets`), row by row
Run: make bench   (or .venv/bin/python benchmarks/bench_objectives.py)
"""

from __future__ import annotations

import time

import numpy as np
import torch
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from regrl.agents.objectives import gae, group_advantages


def best_of(fn, repeat=5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def loop_group_advantages(rewards: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.zeros_like(rewards)
    for g in np.unique(groups):
        idx = groups == g
        r = rewards[idx]
        out[idx] = (r - r.mean()) / (r.std(ddof=1) + 1e-6) if len(r) > 1 else 0.0
    return out


def bench_group(n_prompts=4096, group=8) -> None:
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 2, n_prompts * group).astype(np.float64)
    groups = np.repeat(np.arange(n_prompts), group)
    t_r, t_g = torch.from_numpy(rewards), torch.from_numpy(groups)
    ours = group_advantages(t_r, t_g).numpy()
    base = loop_group_advantages(rewards, groups)
    assert np.allclose(ours, base, atol=1e-9), "implementations disagree"
    t_base = best_of(lambda: loop_group_advantages(rewards, groups), 3)
    t_ours = best_of(lambda: group_advantages(t_r, t_g))
    print(
        f"group_advantages  N={n_prompts * group:>7} G={group}: loop {t_base * 1e3:8.2f} ms"
        f"  ours {t_ours * 1e3:7.2f} ms  speed-up x{t_base / t_ours:6.1f}"
    )


def bench_gae(batch: int, horizon: int) -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=(batch, horizon)).astype(np.float32)
    v = rng.normal(size=(batch, horizon + 1)).astype(np.float32)
    term = (rng.random((batch, horizon)) < 0.01).astype(np.float32)
    trunc = np.zeros_like(term)
    trunc[:, -1] = 1.0  # each row is a chunk: bootstrap from its last value

    def rllib():
        out = []
        for b in range(batch):  # RLlib appends the bootstrap step to each episode chunk
            vals = v[b]
            rew = np.append(r[b], 0.0).astype(np.float32)
            te, tr = np.append(term[b], 0.0), np.append(trunc[b], 0.0)
            out.append(compute_value_targets(vals, rew, te, tr, gamma=0.99, lambda_=0.95)[:-1])
        return np.stack(out)

    tr_, tv = torch.from_numpy(r), torch.from_numpy(v)
    args = (tr_, tv[:, :-1], tv[:, 1:], torch.from_numpy(term), torch.from_numpy(trunc))
    ours = lambda: gae(*args, gamma=0.99, lam=0.95)  # noqa: E731
    assert np.allclose(ours()[1].numpy(), rllib(), atol=1e-4), "implementations disagree"
    t_base, t_ours = best_of(rllib, 3), best_of(ours, 3)
    print(
        f"gae  B={batch:>4} T={horizon:>5}: rllib-numpy {t_base * 1e3:8.2f} ms"
        f"  ours {t_ours * 1e3:8.2f} ms  speed-up x{t_base / t_ours:6.2f}"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread")
    bench_group()
    bench_gae(batch=1, horizon=2000)  # one env, a 2000-step train batch (CartPole config)
    bench_gae(batch=64, horizon=256)  # 64 vectorised envs / agents
    bench_gae(batch=1024, horizon=64)  # many agents, short chunks (turbulence-like)
