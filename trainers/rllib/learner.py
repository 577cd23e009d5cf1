"""``RegrlLearner``: an RLlib TorchLearner whose loss is the sum of the configured terms.

The experiment config travels in ``learner_config_dict["regrl"]`` (a plain dict), so the
learner is rebuilt identically on remote learner actors and from checkpoints.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.evaluation.postprocessing import Postprocessing

from regrl.agents.objectives.terms import (
    TermContext,
    needs,
    proxy_kappa,
    reference_keys,
    term_agg,
    total_loss,
    update_state,
)
from regrl.trainers.checkpoint import module_checkpoint_path
from regrl.trainers.config import ExperimentConfig, config_from_dict
from regrl.trainers.rllib import weights
from regrl.trainers.rllib.connectors import (
    CANDIDATE_ADVANTAGES,
    CANDIDATE_VALID,
    CandidateAdvantages,
    RegrlAdvantages,
)
from regrl.trainers.rllib.data_parallel import all_reduce_sum, shard_shares, world_size
from regrl.trainers.rllib.terms import step_context

LAST_SUFFIXES = ("_coeff",)
"""Metrics that are a controller's state (the adaptive entropy coefficient): the value after
the iteration's last mini-batch, the one the next update starts from."""


RLLIB_KEYS = ("total_loss",)
"""Keys RLlib's own learner also logs for each module, as the last value (window 1, a tensor
still in the graph): logged the same way, since one key has one reduction."""


def metric_reduce(key: str) -> str:
    """How the iteration reduces a term metric over its mini-batches: ``last`` for controller
    state and RLlib's own keys, ``max`` / ``min`` for extremes (``neg_ratio_max``), otherwise
    the ``mean`` (losses, clip and dual-clip shares, KLs)."""
    if key.endswith(LAST_SUFFIXES) or key in RLLIB_KEYS:
        return "last"
    return "max" if key.endswith("_max") else "min" if key.endswith("_min") else "mean"


def log_minibatch_metrics(logger, module_id: str, metrics: Dict[str, Any]) -> None:
    """Log one mini-batch's term metrics so that RLlib's per-update reduce reports each
    iteration's mean (or extreme) over all its mini-batches and epochs, cleared between
    iterations — not the last mini-batch's value alone."""
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):  # the reduce reads values with numpy
            value = value.detach()
        how = metric_reduce(key)
        if how == "last":
            logger.log_value((module_id, key), value, window=1)
        else:
            logger.log_value((module_id, key), value, reduce=how)


CONFIG_KEY = "regrl"
TERM_STATE_KEY = "regrl_term_state"  # learner state entry: stateful terms' controllers


def action_dist_kind(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return "categorical"
    if isinstance(space, gym.spaces.Box):
        return "gaussian"
    raise ValueError(f"regrl learners support Discrete or Box action spaces, got {space}")


class RegrlLearner(PPOTorchLearner):
    """Sums ``objective.terms`` (policy/lp_reg surrogate, value, entropy, demo_kl, ...)."""

    def build(self) -> None:
        super().build()
        self.regrl_config: ExperimentConfig = config_from_dict(
            self.config.learner_config_dict[CONFIG_KEY], source="learner_config_dict"
        )
        adv = self.regrl_config.objective.advantages
        if (
            self._learner_connector is not None
            and self.config.add_default_connectors_to_learner_pipeline
        ):
            self._learner_connector.remove("GeneralAdvantageEstimation")
            if adv.estimator == "candidates":
                # RIFT's group advantage over candidates (docs/methods.md#rift-advantage)
                self._learner_connector.append(CandidateAdvantages())
            else:
                self._learner_connector.append(
                    RegrlAdvantages(
                        gamma=adv.gamma,
                        lam=adv.lam,
                        estimator=adv.estimator,
                        group_std=adv.group_std,
                        normalize=adv.normalize,
                    )
                )
        terms = self.regrl_config.objective.terms
        # one frozen copy per (checkpoint, module); key None = this run's initial weights
        self._reference: Dict[Optional[str], Dict[str, RLModule]] = {
            key: {mid: self._load_reference(mid, key) for mid in self.module.keys()}
            for key in reference_keys(terms)
        }
        self._needs_values = needs(terms, "needs_values")
        # stateful terms' controllers per module (adaptive_entropy), saved with the learner
        self._term_state: Dict[str, Dict[str, float]] = {mid: {} for mid in self.module.keys()}
        self._proxy_kappa = proxy_kappa(terms)

    def _load_reference(self, module_id: str, checkpoint: Optional[str]) -> RLModule:
        if checkpoint is None:  # frozen copy of the initial (seeded) weights
            ref = copy.deepcopy(self.module[module_id].unwrapped())
        elif Path(checkpoint).suffix == weights.SUFFIX:  # weights-only policy file
            ref = copy.deepcopy(self.module[module_id].unwrapped())
            weights.load_into(ref, weights.load_policy_state(checkpoint), checkpoint)
        else:
            ref = RLModule.from_checkpoint(module_checkpoint_path(Path(checkpoint), module_id))
        ref = ref.to(self._device)
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out) -> torch.Tensor:
        ctx = self._context(module_id, batch, fwd_out)
        terms = self.regrl_config.objective.terms
        share = shard_shares(ctx.mask)  # None for one learner
        weight = None if share is None else (lambda spec: share[term_agg(spec)])
        loss, metrics = total_loss(ctx, terms, weight)
        m = ctx.mask.to(ctx.entropy.dtype)
        metrics["entropy"] = (ctx.entropy * m).sum().detach() / m.sum().clamp_min(1)
        if share is not None:  # several learners: whole-mini-batch values, full-batch gradient
            metrics["entropy"] = metrics["entropy"] * share["token-mean"]
            keys = sorted(metrics)
            summed = all_reduce_sum(
                torch.stack([torch.as_tensor(metrics[k]).double() for k in keys])
            )
            metrics = dict(zip(keys, summed.tolist()))
            loss = loss * world_size()  # DDP averages the learners' gradients
        # controllers step on this mini-batch's metrics; the next mini-batch uses the new state
        update_state(terms, ctx.term_state, metrics)
        log_minibatch_metrics(self.metrics, module_id, metrics)
        return loss

    def _context(self, module_id: str, batch: Dict[str, Any], fwd_out) -> TermContext:
        """The steps of ``batch`` as length-one sequences; values, the min-p proxy and the
        frozen policies' outputs only when a configured term's flag asks for them."""
        module = self.module[module_id].unwrapped()
        dist_inputs = fwd_out[Columns.ACTION_DIST_INPUTS]
        cur = module.get_train_action_dist_cls().from_logits(dist_inputs)
        actions = batch[Columns.ACTIONS]
        mask = batch.get(Columns.LOSS_MASK)
        if mask is None:
            mask = torch.ones(actions.shape[0], dtype=torch.bool, device=dist_inputs.device)
        values = None
        if self._needs_values:
            values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
        reference = {}
        with torch.no_grad():
            for key, modules in self._reference.items():
                reference[key] = modules[module_id].forward_train(batch)[Columns.ACTION_DIST_INPUTS]
        return step_context(
            dist_inputs=dist_inputs,
            old_dist_inputs=batch[Columns.ACTION_DIST_INPUTS],
            actions=actions,
            logp=cur.logp(actions),
            old_logp=batch[Columns.ACTION_LOGP],
            advantages=batch[Postprocessing.ADVANTAGES],
            entropy=cur.entropy(),
            mask=mask,
            dist=action_dist_kind(module.action_space),
            proxy_kappa=self._proxy_kappa,
            values=values,
            value_targets=batch.get(Postprocessing.VALUE_TARGETS),
            reference=reference,
            candidate_advantages=batch.get(CANDIDATE_ADVANTAGES),
            candidate_valid=batch.get(CANDIDATE_VALID),
            term_state=self._term_state.setdefault(module_id, {}),
        )

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None and not_components is None:  # full state (checkpoints) only
            state[TERM_STATE_KEY] = {mid: dict(s) for mid, s in self._term_state.items()}
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if TERM_STATE_KEY in state:
            self._term_state = {mid: dict(s) for mid, s in state[TERM_STATE_KEY].items()}
