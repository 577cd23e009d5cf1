"""The ``rift_metadrive`` environment: the RIFT traffic env whose candidate trajectories come
from the frozen stage-1 planner (``candidate_fn``); raw action mode needs no planner."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from regrl.agents.models.planner import Planner
from regrl.trainers.traffic.planner_io import (
    check_planner_fits_scene,
    load_planner,
    planner_path,
    scene_tensors,
)


def make_candidate_fn(planner: Planner) -> Callable[[np.ndarray], np.ndarray]:
    """``candidate_fn(obs [K, OBS_DIM]) -> traj [K, G, T, 2]`` of the frozen planner."""
    planner.eval()

    def candidate_fn(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return planner(scene_tensors(obs))["traj"].numpy()

    return candidate_fn


def make_rift_env(planner: Optional[str] = None, **kwargs):
    """Env factory of ``rift_metadrive``: in candidate mode the stage-1 ``planner`` (file or
    run dir) proposes the candidates; raw mode (PPO from scratch) needs no planner."""
    from regrl.envs.traffic import parallel_env

    if kwargs.get("action_mode", "candidate") == "candidate":
        if planner is None:
            raise ValueError(
                "rift_metadrive in candidate mode needs env.kwargs.planner: a "
                "stage-1 planner checkpoint (planner.pt or its run directory)"
            )
        model = load_planner(planner_path(planner))
        check_planner_fits_scene(model)
        kwargs["candidate_fn"] = make_candidate_fn(model)
        kwargs.setdefault("num_modes", model.config.num_modes)
        if kwargs["num_modes"] != model.config.num_modes:
            raise ValueError(
                f"env.kwargs.num_modes={kwargs['num_modes']} but the planner has "
                f"{model.config.num_modes} modes"
            )
    return parallel_env(**kwargs)
