"""The stage-1 planner as the RIFT modules load and feed it: checkpoint loading with one clear
error, the planner shape of the traffic scene layout, and flat observations -> planner tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from regrl.agents.models.planner import Planner, PlannerConfig
from regrl.agents.models.planner import load_planner as _load_planner_file
from regrl.trainers.traffic.names import PLANNER_FILE


def load_planner(path, map_location: str = "cpu") -> Planner:
    """A stage-1 planner checkpoint (``weights_only`` load); a truncated, foreign or crafted
    file is one CheckpointError naming it (one ``error:`` line in the CLI), not a traceback."""
    from regrl.trainers.checkpoint import LOAD_ERRORS, CheckpointError, load_error_reason

    try:
        return _load_planner_file(path, map_location=map_location)
    except (*LOAD_ERRORS, KeyError) as exc:  # KeyError: a torch file without a planner's keys
        raise CheckpointError(
            f"{path}: not a readable planner checkpoint ({load_error_reason(exc)})"
        ) from None


def scene_planner_config(num_modes: int, dim: int) -> PlannerConfig:
    """A planner whose input/output sizes match the environment's scene layout."""
    from regrl.envs.traffic import scene

    return PlannerConfig(
        hist_steps=scene.H,
        num_neighbors=scene.N,
        num_lanes=scene.R,
        lane_points=scene.P,
        horizon=scene.T,
        num_modes=num_modes,
        dim=dim,
    )


def scene_tensors(obs: Any) -> Dict[str, torch.Tensor]:
    """Flat observations [..., OBS_DIM] (numpy or torch) -> the planner's dict of tensors."""
    from regrl.envs.traffic.scene import unflatten

    return unflatten(
        torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs, dtype=torch.float32)
    )


def planner_path(path) -> Path:
    """A planner checkpoint file, or a stage-1 run dir holding planner.pt."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        p = p / PLANNER_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"no stage-1 planner at {path} (expected a {PLANNER_FILE} file "
            "or a run directory of the planner pre-training)"
        )
    return p


def check_planner_fits_scene(planner: Planner) -> None:
    c, want = planner.config, scene_planner_config(planner.config.num_modes, planner.config.dim)
    if c != want:
        raise ValueError(f"planner config {c} does not match the traffic scene layout {want}")
