"""Learner connector that writes advantages and value targets with ``regrl.agents.objectives``.

Replaces RLlib's stock ``GeneralAdvantageEstimation`` (same batch layout: it runs after
``AddOneTsToEpisodesAndTruncate``, which appends one bootstrap step to every episode chunk
and marks it in ``loss_mask``), so the GAE the learner trains on is our tested ``gae`` and
the group-relative (GRPO) estimator is available to any environment that reports group ids.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.numpy import convert_to_numpy

from regrl.agents.objectives import gae, group_advantages
from regrl.trainers.rllib.data_parallel import GROUP_ID_KEY, all_reduce_sum

CANDIDATE_RETURNS_KEY = "candidate_returns"  # step info: [G] return of every candidate
CANDIDATE_VALID_KEY = "candidate_valid"  # step info: [G] bool, candidate exists
CANDIDATE_ADVANTAGES = "candidate_advantages"  # batch column [N, G] written below
CANDIDATE_VALID = "candidate_valid"  # batch column [N, G] bool


def _as_tensor(x: Any, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(convert_to_numpy(x)), dtype=dtype, device=device)


def episode_group_advantages(
    returns: List[float],
    group_keys: List[Any],
    lens: List[int],
    std: Optional[str],
    device: torch.device,
) -> torch.Tensor:
    """Group-relative advantage of each episode, repeated over its ``lens[i]`` batch rows."""
    codes = {k: i for i, k in enumerate(dict.fromkeys(group_keys))}
    ids = torch.tensor([codes[k] for k in group_keys], device=device)
    adv = group_advantages(torch.tensor(returns, dtype=torch.float32, device=device), ids, std=std)
    return torch.repeat_interleave(adv, torch.tensor(lens, device=device))


def normalize(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(A - mean) / max(std, 1e-4)`` with the mean and population std of the valid
    advantages of the whole train batch: summed over the learners' shards when there are
    several (:func:`regrl.trainers.rllib.data_parallel.all_reduce_sum`)."""
    valid = advantages[mask].double()
    n, total, squares = all_reduce_sum(
        torch.stack([valid.new_tensor(len(valid)), valid.sum(), (valid**2).sum()])
    )
    mean = total / n.clamp_min(1)
    std = (squares / n.clamp_min(1) - mean**2).clamp_min(0).sqrt()
    return ((advantages - mean.to(advantages)) / std.to(advantages).clamp_min(1e-4)).to(
        advantages.dtype
    )


class RegrlAdvantages(ConnectorV2):
    """Compute ``advantages`` and ``value_targets`` per module (GAE or group-relative)."""

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        gamma: float,
        lam: float,
        estimator: str = "gae",
        group_std: Optional[str] = "unbiased",
        normalize: bool = True,
        **kwargs,
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.gamma, self.lam = gamma, lam
        self.estimator, self.group_std, self.normalize = estimator, group_std, normalize

    def __call__(
        self,
        *,
        rl_module,
        batch: Dict[str, Any],
        episodes,
        explore=None,
        shared_data=None,
        **kwargs,
    ):
        sa_episodes = list(
            self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
        )
        for module_id, module in rl_module.items():
            module = module.unwrapped()  # a DDP wrapper on learner actors (num_learners >= 1)
            if module_id not in batch or not isinstance(module, ValueFunctionAPI):
                continue
            if module.is_stateful():
                raise NotImplementedError("RegrlAdvantages supports stateless modules only")
            eps = [e for e in sa_episodes if e.module_id in (None, module_id)]
            self._write(batch[module_id], module, eps)
        return batch

    def _write(self, mbatch: Dict[str, Any], module, eps) -> None:
        with torch.no_grad():
            values = module.compute_values(mbatch).detach().float()
        device = values.device
        rewards = _as_tensor(mbatch[Columns.REWARDS], device)
        terminateds = _as_tensor(mbatch[Columns.TERMINATEDS], device)
        truncateds = _as_tensor(mbatch[Columns.TRUNCATEDS], device)
        next_values = torch.cat([values[1:], values.new_zeros(1)])  # [-1] is a masked phantom
        advantages, targets = gae(
            rewards, values, next_values, terminateds, truncateds, gamma=self.gamma, lam=self.lam
        )
        mask = _as_tensor(
            mbatch.get(Columns.LOSS_MASK, np.ones(len(values))), device, dtype=torch.bool
        )
        if self.estimator == "group":
            advantages = self._group(eps, rewards, mask, device)
        elif self.normalize:
            advantages = normalize(advantages, mask)
        mbatch[Postprocessing.ADVANTAGES] = advantages * mask
        mbatch[Postprocessing.VALUE_TARGETS] = targets

    def _group(self, eps, rewards, mask, device) -> torch.Tensor:
        lens = [len(e) for e in eps]
        keys, returns, start = [], [], 0
        for e, n in zip(eps, lens):
            info = e.get_infos(0) or {}
            if GROUP_ID_KEY not in info:
                raise ValueError(
                    "advantages.estimator=group needs the environment to put "
                    f"'{GROUP_ID_KEY}' into its reset info; episode {e.id_} has "
                    f"info keys {sorted(info)}"
                )
            keys.append(info[GROUP_ID_KEY])
            returns.append(float((rewards[start : start + n] * mask[start : start + n]).sum()))
            start += n
        if start != len(rewards):
            raise RuntimeError(f"episode lengths {sum(lens)} != batch rows {len(rewards)}")
        return episode_group_advantages(returns, keys, lens, self.group_std, device)


def candidate_group_advantages(
    returns: torch.Tensor, valid: torch.Tensor, *, eps: float = 1e-5
) -> torch.Tensor:
    """RIFT's group-relative advantage over the candidates of each state (docs/methods.md#rift-advantage):
    ``(R_g - mean_g R) / (std_g R + 1e-5)`` with the population std over the valid candidates
    of one row of returns [N, G]; invalid entries get 0."""
    rows = torch.arange(returns.shape[0], device=returns.device)[:, None].expand_as(returns)
    adv = torch.zeros_like(returns)
    adv[valid] = group_advantages(returns[valid], rows[valid], eps=eps, std="population")
    return adv


def _episode_candidates(episode, n_rows: int, n_real: int) -> Tuple[np.ndarray, np.ndarray]:
    """Returns [n_rows, G] and valid [n_rows, G] of one episode chunk: the environment puts
    the returns of the candidates offered at observation t into the info returned with it
    (reset info for t = 0), so row t reads info t."""
    returns, valid = [], []
    for t in range(n_real):
        info = episode.get_infos(t) or {}
        if CANDIDATE_RETURNS_KEY not in info:
            raise ValueError(
                f"the candidate_policy term needs '{CANDIDATE_RETURNS_KEY}' and "
                f"'{CANDIDATE_VALID_KEY}' in every step info (an environment in "
                f"candidate action mode); got info keys {sorted(info)}"
            )
        returns.append(np.asarray(info[CANDIDATE_RETURNS_KEY], np.float32))
        valid.append(np.asarray(info.get(CANDIDATE_VALID_KEY, np.ones_like(returns[-1])), bool))
    g = returns[0].shape[-1] if returns else 0
    for _ in range(n_rows - n_real):  # the bootstrap step AddOneTsToEpisodes appended
        returns.append(np.zeros(g, np.float32))
        valid.append(np.zeros(g, bool))
    return np.stack(returns), np.stack(valid)


class CandidateAdvantages(ConnectorV2):
    """Per-candidate group advantages [N, G] from the environment's candidate returns.

    Writes ``candidate_advantages`` / ``candidate_valid`` for the candidate_policy term, the
    executed candidate's advantage as ``advantages`` (for metrics) and zero value targets
    (RIFT has no critic)."""

    def __init__(
        self, input_observation_space=None, input_action_space=None, *, eps: float = 1e-5, **kwargs
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.eps = eps

    def __call__(
        self,
        *,
        rl_module,
        batch: Dict[str, Any],
        episodes,
        explore=None,
        shared_data=None,
        **kwargs,
    ):
        sa_episodes = list(
            self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
        )
        for module_id in list(batch.keys()):
            eps = [e for e in sa_episodes if e.module_id in (None, module_id)]
            self._write(batch[module_id], eps)
        return batch

    def _write(self, mbatch: Dict[str, Any], eps) -> None:
        n = len(np.asarray(convert_to_numpy(mbatch[Columns.REWARDS])))
        mask = np.asarray(convert_to_numpy(mbatch.get(Columns.LOSS_MASK, np.ones(n))), bool)
        parts = [
            _episode_candidates(e, len(e), int(mask[i : i + len(e)].sum()))
            for e, i in zip(eps, np.cumsum([0] + [len(e) for e in eps])[:-1])
            if len(e)
        ]
        if sum(len(r) for r, _ in parts) != n:
            raise RuntimeError(f"episode lengths {sum(len(r) for r, _ in parts)} != batch rows {n}")
        returns = torch.as_tensor(np.concatenate([r for r, _ in parts]))
        valid = (
            torch.as_tensor(np.concatenate([v for _, v in parts])) & torch.as_tensor(mask)[:, None]
        )
        adv = candidate_group_advantages(returns, valid, eps=self.eps)
        actions = torch.as_tensor(
            np.asarray(convert_to_numpy(mbatch[Columns.ACTIONS])), dtype=torch.long
        )
        mbatch[CANDIDATE_ADVANTAGES] = adv
        mbatch[CANDIDATE_VALID] = valid
        mbatch[Postprocessing.ADVANTAGES] = adv.gather(1, actions[:, None]).squeeze(1)
        mbatch[Postprocessing.VALUE_TARGETS] = torch.zeros(n)
