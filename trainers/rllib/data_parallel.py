"""Several RLlib learner actors (``resources.num_learners >= 2``) computing what one learner
computes: whole groups per shard, global normalisers, gradients of the full-batch loss.

RLlib's ``LearnerGroup`` splits a train batch of episodes into equal-length shards, cutting
episodes where it must (``ShardEpisodesIterator``), and every learner actor then runs the
learner connector (advantages) on its shard and averages its own losses. That changes the
algorithm with the learner count: a GRPO group cut across shards gets per-shard baselines
(Shao et al. 2024, arXiv:2402.03300, eq. 3 takes the mean and std over the whole group), a cut
episode gets a bootstrapped GAE tail, advantages are normalised per shard, and the DDP average
of per-shard means weights unequal shards wrongly. Here:

- :func:`shard_units` deals whole units to shards, longest first to the shortest shard: a
  unit is a group (episodes whose reset info carries the same ``group_id``) or else one
  episode, so neither is ever cut;
- :func:`all_reduce_sum` lets the connector normalise advantages over all shards and the
  learner weight each term by its shard's share of the mini-batch (valid steps for
  token-mean terms, rows for sequence-mean ones, as the RLVR learner does for micro-batches),
  times the learner count that DDP's gradient average divides by;
- stateful terms' controllers step on the metrics summed over the learners, so every learner
  holds the same state;
- :func:`missing_modules` stops the run when a multi-agent shard would hold no steps of a
  module that other shards train (agents mapped to several modules, some absent from whole
  episodes): DDP's gradient all-reduce and the shared normalisers are per module and wait for
  every learner, so the update would hang.

``training.train_batch_size`` and ``minibatch_size`` stay totals: each learner samples and
updates on ``1/num_learners`` of them (RLlib's ``*_per_learner`` settings).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Dict, FrozenSet, Hashable, List, Optional, Sequence

import torch
import torch.distributed as dist
from ray.rllib.core.learner.learner_group import LearnerGroup
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

from regrl.trainers.checkpoint import RunAborted
from regrl.trainers.checks import ConfigError

GROUP_ID_KEY = "group_id"
"""Reset-info key of episodes that form one group (same start state, GRPO)."""


def world_size() -> int:
    """Learner actors in this learner's torch.distributed group (1 outside one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """A float64 CPU copy of ``values`` summed over the learners (gloo); the copy alone for
    one learner. Every learner must call it at the same point of its update."""
    out = values.detach().to("cpu", torch.float64).clone()
    if world_size() > 1:
        dist.all_reduce(out)
    return out


def shard_shares(mask: torch.Tensor) -> Optional[Dict[str, float]]:
    """This learner's share of the mini-batch summed over all learners: valid steps for
    ``token-mean`` terms, rows for the sequence-mean ones (every row counts in their outer
    mean); None for one learner."""
    if world_size() == 1:
        return None
    mine = (float(mask.sum()), float(mask.numel()))
    tokens, rows = all_reduce_sum(torch.tensor(mine)).tolist()
    tok, row = mine[0] / max(tokens, 1.0), mine[1] / max(rows, 1.0)
    return defaultdict(lambda: row, {"token-mean": tok})


def episode_unit(episode) -> Hashable:
    """The unit an episode must share a shard with: its group, else itself."""
    if isinstance(episode, MultiAgentEpisode):
        return ("episode", episode.id_)
    info = episode.get_infos(0) or {}
    group = info.get(GROUP_ID_KEY)
    return ("episode", episode.id_) if group is None else ("group", group)


def shard_units(
    episodes: Sequence[Any],
    num_shards: int,
    unit_of: Callable[[Any], Hashable] = episode_unit,
    length: Callable[[Any], int] = len,
) -> List[List[Any]]:
    """``num_shards`` lists of whole units (longest unit first, to the shard with the fewest
    steps so far; ties to the lowest index), episodes in their original order within a shard.
    Raises ConfigError when there are fewer units than shards (a learner would get nothing)."""
    units: dict = {}
    for i, ep in enumerate(episodes):
        units.setdefault(unit_of(ep), []).append(i)
    if len(units) < num_shards:
        raise ConfigError(
            f"the train batch holds {len(units)} episode group(s) for {num_shards} learners, "
            "and a group is never split: raise training.train_batch_size or lower "
            "resources.num_learners"
        )
    sizes = {key: sum(length(episodes[i]) for i in idx) for key, idx in units.items()}
    shards: List[List[int]] = [[] for _ in range(num_shards)]
    filled = [0] * num_shards
    for key in sorted(units, key=lambda k: -sizes[k]):  # stable: first-seen order on ties
        s = filled.index(min(filled))
        shards[s] += units[key]
        filled[s] += sizes[key]
    return [[episodes[i] for i in sorted(idx)] for idx in shards]


def episode_modules(episode) -> FrozenSet[Hashable]:
    """The RLModules whose steps an episode holds (one for a single-agent episode)."""
    if isinstance(episode, MultiAgentEpisode):
        return frozenset(episode.module_for(agent) for agent in episode.agent_ids)
    return frozenset({None})


def missing_modules(
    shards: Sequence[Sequence[Any]], modules_of: Callable[[Any], FrozenSet[Hashable]]
) -> Dict[int, List[Hashable]]:
    """``{shard index: modules of the batch that shard holds no step of}`` (empty: every
    learner trains every module)."""
    held = [set().union(*map(modules_of, shard)) for shard in shards]
    every = set().union(*held)
    return {i: sorted(every - h, key=str) for i, h in enumerate(held) if every - h}


class WholeUnitTrainingData(TrainingData):
    """RLlib's ``TrainingData`` whose episode list is sharded by :func:`shard_units`."""

    def shard(self, num_shards: int, len_lookback_buffer=None, **kwargs):
        if self.episodes is None or num_shards <= 1:
            return super().shard(num_shards, len_lookback_buffer, **kwargs)
        total = 0
        if kwargs.get("minibatch_size"):  # every learner makes the same number of steps
            total = self._compute_num_total_minibatches(
                self.episodes, num_shards, kwargs["minibatch_size"], kwargs.get("num_epochs", 1)
            )
        shards = shard_units(self.episodes, num_shards)
        missing = missing_modules(shards, episode_modules)
        if missing:
            i, mods = next(iter(missing.items()))
            raise RunAborted(
                f"learner {i + 1} of {num_shards} got no steps of module(s) "
                f"{', '.join(map(str, mods))} in this train batch (its episodes go whole to one "
                "learner, and those modules appear in only some episodes); several learners "
                "must each train every module (DDP waits for all of them): map every agent to "
                "modules present in every episode, or set resources.num_learners: 0"
            )
        return [(TrainingData(episodes=part), {"num_total_minibatches": total}) for part in shards]


class RegrlLearnerGroup(LearnerGroup):
    """A ``LearnerGroup`` that shards episodes by whole units (see the module docstring)."""

    def update(self, *, episodes=None, training_data=None, **kwargs):
        if episodes is not None and training_data is None:
            training_data = WholeUnitTrainingData(episodes=episodes)
            episodes = None
        return super().update(episodes=episodes, training_data=training_data, **kwargs)
