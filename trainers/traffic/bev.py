"""Bird's-eye-view snapshots of RIFT policies on one held-out scenario (MetaDrive's top-down
renderer, headless)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.evaluation import Policy


def _topdown(env, camera: Dict[str, tuple]) -> Optional[np.ndarray]:
    # MetaDrive's pygame top-down renderer works headless (SDL dummy driver); the camera is
    # fixed at the CBVs' centroid of the first frame so that all rows show the same area
    md, vehicles = getattr(env, "_md", None), getattr(env, "_vehicle", None)
    if md is None or not vehicles:
        return None
    if "xy" not in camera:
        camera["xy"] = tuple(float(c) for c in np.mean([v.position for v in vehicles.values()], 0))
    return md.render(
        mode="top_down",
        window=False,
        screen_size=(500, 500),
        film_size=(1600, 1600),
        scaling=4,
        camera_position=camera["xy"],
        num_stack=1,
    )


def bev_snapshots(
    env_kwargs: Dict[str, Any],
    policies: Dict[str, Policy],
    path: Path,
    *,
    steps=(10, 40, 80),
    seed: int = 0,
    env_seed: int = 1000,
    env_overrides: Optional[Dict[str, Dict[str, Any]]] = None,
    camera_xy: Optional[Tuple[float, float]] = None,
) -> List[str]:
    """Top-down frames of one held-out scenario, one row per policy; [] if unavailable.
    ``env_overrides[name]`` updates ``env_kwargs`` for that row (e.g. raw mode with IDM CBVs);
    a policy with ``reads_info`` gets each agent's info (``BestReturnPolicy``); the camera is
    fixed at ``camera_xy`` or at the CBVs' centroid in the first row's first frame."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    frames: Dict[str, List[Tuple[int, np.ndarray]]] = {}
    camera: Dict[str, tuple] = {} if camera_xy is None else {"xy": tuple(camera_xy)}
    for name, policy in policies.items():
        kw = dict(env_kwargs, **(env_overrides or {}).get(name, {}), seed=env_seed)
        env = make_rift_env(**kw)
        reads_info = getattr(policy, "reads_info", False)
        try:
            obs, infos = env.reset(seed=seed)
            frames[name] = []
            for t in range(1, max(steps) + 1):
                if not env.agents:
                    break
                names = [a for a in env.agents if a in obs]
                batch = np.stack([obs[a] for a in names])
                acts = policy(batch, [infos[a] for a in names]) if reads_info else policy(batch)
                obs, _, _, _, infos = env.step({a: acts[i] for i, a in enumerate(names)})
                if t in steps:
                    img = _topdown(env, camera)
                    if img is None:
                        return []
                    frames[name].append((t, img))
        finally:
            env.close()
    return _write_frames(frames, path)


def _write_frames(frames: Dict[str, List[Tuple[int, np.ndarray]]], path: Path) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max((len(f) for f in frames.values()), default=0)
    if not cols:
        return []
    fig, axes = plt.subplots(
        len(frames), cols, figsize=(3.2 * cols, 3.2 * len(frames)), squeeze=False
    )
    for row, (name, fs) in zip(axes, frames.items()):
        for ax in row:
            ax.axis("off")
        for ax, (t, img) in zip(row, fs):
            ax.imshow(img)
            ax.set_title(f"{name}, t = {t * 0.1:.1f} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [str(path)]
