"""RIFT stage 2 on RLlib: the RLModule that scores the frozen planner's candidates
(``CandidateScorerModule``) and its spec for ``rift_metadrive`` runs. The loss is the
``candidate_policy`` term over every candidate (regrl.agents.objectives)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from regrl.agents.models.planner import Planner, PlannerConfig
from regrl.trainers.traffic.planner_io import (
    check_planner_fits_scene,
    load_planner,
    planner_path,
    scene_tensors,
)

FROZEN_FOR_SCORES = ("traj_head.",)
"""Planner weights the candidate logits do not depend on: the trajectory head decodes the
candidates, which the env takes from its own frozen copy of the stage-1 planner."""


def trainable_filter(trainable: str):
    """Parameter-name predicate of the weights a fine-tune trains: ``head`` = RIFT's
    ``trainable_layers: ["planning_decoder.pi_head"]``; ``scorer`` = everything the logits
    depend on."""
    if trainable == "head":
        return lambda name: name.startswith("pi_head.")
    if trainable == "scorer":
        return lambda name: not name.startswith(FROZEN_FOR_SCORES)
    raise ValueError(f"model.trainable must be head or scorer, got {trainable!r}")


class CandidateScorerModule(TorchRLModule, ValueFunctionAPI):
    """The RIFT policy: logits over the G = R·M candidates of the frozen stage-1 planner.

    Only ``planner.pi_head`` is trainable (RIFT's ``trainable_layers``, docs/methods.md#rift-planner)
    unless ``trainable`` is ``scorer``: then every weight the logits depend on (all but the
    trajectory head). ``model_config``: ``planner`` (path of planner.pt, loaded at
    construction when present; a restored checkpoint overwrites every weight anyway),
    ``planner_config`` (its PlannerConfig as a dict), ``trainable`` (head | scorer) and
    ``greedy_rollout`` (execute the argmax candidate, as RIFT does; false samples from the
    categorical). RIFT has no critic: values are 0.
    """

    def setup(self) -> None:
        mc = dict(self.model_config or {})
        self.planner = Planner(PlannerConfig(**mc["planner_config"]))
        path = mc.get("planner")
        if path and Path(path).is_file():
            self.planner.load_state_dict(load_planner(path).state_dict())
        trains = trainable_filter(mc.get("trainable") or "head")
        for name, p in self.planner.named_parameters():
            p.requires_grad_(trains(name))
        self.greedy = bool(mc.get("greedy_rollout", True))

    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        logits = self.planner(scene_tensors(batch[Columns.OBS]), with_traj=False)["logits"]
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        out = self._forward(batch)
        if self.greedy:  # RIFT executes the highest-scoring candidate
            logits = out[Columns.ACTION_DIST_INPUTS]
            action = logits.argmax(-1)
            out[Columns.ACTIONS] = action
            out[Columns.ACTION_LOGP] = (
                torch.log_softmax(logits, -1).gather(-1, action[:, None]).squeeze(-1)
            )
        return out

    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None):
        return torch.zeros(batch[Columns.OBS].shape[0], device=batch[Columns.OBS].device)


def rift_module_spec(cfg):
    """RLModuleSpec of the candidate scorer for ``cfg`` (None in raw action mode: PPO's MLP)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    kw = dict(cfg.env.kwargs)
    if kw.get("action_mode", "candidate") != "candidate":
        return None
    if "planner" not in kw:
        raise ValueError(
            "env.kwargs.planner is required in candidate mode (stage-1 planner.pt "
            "or its run directory)"
        )
    path = planner_path(kw["planner"])
    planner = load_planner(path)
    check_planner_fits_scene(planner)
    return RLModuleSpec(
        module_class=CandidateScorerModule,
        model_config={
            "planner": str(path),
            "planner_config": asdict(planner.config),
            "trainable": cfg.model.trainable or "head",
            "greedy_rollout": True,
        },
    )
