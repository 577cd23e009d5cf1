"""RegrlAdvantages: our GAE reproduces RLlib's stock value targets on the learner batch
layout, and the group estimator gives GRPO advantages per episode."""

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.postprocessing.episodes import add_one_ts_to_episodes_and_truncate
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from regrl.trainers.rllib.connectors import RegrlAdvantages

OBS_SPACE, ACT_SPACE = Box(-100, 100, (1,)), Discrete(2)


class LinearValue(ValueFunctionAPI):
    """V(s) = s[0]: values are read straight off the observations."""

    def compute_values(self, batch, embeddings=None):
        return torch.as_tensor(np.asarray(batch["obs"]), dtype=torch.float32)[:, 0]

    def is_stateful(self):
        return False

    def unwrapped(self):  # an RLModule's (the DDP wrapper's returns the module inside)
        return self


class OneModule(dict):
    pass


def episode(obs, rewards, *, terminated=False, truncated=False, group=None):
    info = {} if group is None else {"group_id": group}
    return SingleAgentEpisode(
        observations=[np.array([o], np.float32) for o in obs],
        infos=[info] * len(obs),
        actions=[0] * len(rewards),
        rewards=list(rewards),
        terminated=terminated,
        truncated=truncated,
        observation_space=OBS_SPACE,
        action_space=ACT_SPACE,
        len_lookback_buffer=0,
    )


def learner_batch(eps):
    """The rows the learner pipeline builds after AddOneTsToEpisodesAndTruncate."""
    add_one_ts_to_episodes_and_truncate(eps)
    rows = {"obs": [], "rewards": [], "terminateds": [], "truncateds": [], "loss_mask": []}
    for e in eps:
        n = len(e)  # real steps + the appended bootstrap step
        rows["obs"] += [e.get_observations(t) for t in range(n)]
        rows["rewards"] += list(e.get_rewards())
        rows["terminateds"] += [False] * (n - 2) + [e.is_terminated, False]
        rows["truncateds"] += [False] * (n - 2) + [e.is_truncated and not e.is_terminated, False]
        rows["loss_mask"] += [True] * (n - 1) + [False]
    return {"default_policy": {k: np.array(v) for k, v in rows.items()}}


def run(connector, eps, batch):
    module = OneModule(default_policy=LinearValue())
    return connector(rl_module=module, batch=batch, episodes=eps)["default_policy"]


def test_gae_matches_rllib_stock_targets():
    eps = [
        episode([0.5, 1.0, 2.0, 4.0], [1.0, 0.0, 2.0], terminated=True),
        episode([3.0, 1.0, 5.0], [1.0, 1.0], truncated=True),
    ]
    batch = learner_batch(eps)
    mb = batch["default_policy"]
    values = mb["obs"][:, 0].astype(np.float32)
    expected = compute_value_targets(
        values,
        mb["rewards"].astype(np.float32),
        mb["terminateds"].astype(np.float32),
        mb["truncateds"].astype(np.float32),
        gamma=0.9,
        lambda_=0.8,
    )
    out = run(RegrlAdvantages(gamma=0.9, lam=0.8, normalize=False), eps, batch)
    np.testing.assert_allclose(out["value_targets"].numpy(), expected, rtol=1e-6, atol=1e-6)
    mask = mb["loss_mask"]
    np.testing.assert_allclose(
        out["advantages"].numpy()[mask], (expected - values)[mask], rtol=1e-6, atol=1e-6
    )
    # hand check, terminated episode, last step: delta = 2 + 0 - 2.0 = 0
    # step 1: delta = 0 + 0.9*2 - 1 = 0.8, A = 0.8 + 0.72*0 = 0.8
    # step 0: delta = 1 + 0.9*1 - 0.5 = 1.4, A = 1.4 + 0.72*0.8 = 1.976
    np.testing.assert_allclose(out["advantages"].numpy()[:3], [1.976, 0.8, 0.0], atol=1e-6)
    # truncated episode bootstraps from V(s_T)=5: step 1 delta = 1 + 0.9*5 - 1 = 4.5
    np.testing.assert_allclose(out["advantages"].numpy()[5], 4.5, atol=1e-6)
    assert out["advantages"].numpy()[3] == 0.0 and out["advantages"].numpy()[6] == 0.0


def test_normalised_advantages_have_zero_mean_unit_std_over_valid_rows():
    eps = [episode([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0], terminated=True)]
    out = run(RegrlAdvantages(gamma=0.99, lam=0.95), eps, learner_batch(eps))
    valid = out["advantages"][:3]
    assert abs(float(valid.mean())) < 1e-6
    assert abs(float(valid.std(unbiased=False)) - 1.0) < 1e-5


def test_group_advantages_per_episode():
    eps = [
        episode([0.0] * 3, [1.0, 1.0], terminated=True, group="g0"),  # return 2
        episode([0.0] * 5, [1.0] * 4, terminated=True, group="g0"),  # return 4
        episode([0.0] * 4, [1.0] * 3, terminated=True, group="g1"),  # return 3
        episode([0.0] * 4, [1.0] * 3, terminated=True, group="g1"),
    ]  # return 3
    out = run(
        RegrlAdvantages(gamma=1.0, lam=1.0, estimator="group", group_std="unbiased"),
        eps,
        learner_batch(eps),
    )
    a = 1.0 / (np.sqrt(2.0) + 1e-6)  # (r - mean) = -1, +1; unbiased std = sqrt(2)
    expected = [-a, -a, 0.0] + [a] * 4 + [0.0] + [0.0] * 8
    np.testing.assert_allclose(out["advantages"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_group_estimator_without_group_ids_is_a_clear_error():
    eps = [episode([0.0] * 3, [1.0, 1.0], terminated=True)]
    with pytest.raises(ValueError, match="put 'group_id' into its reset info"):
        run(RegrlAdvantages(gamma=1.0, lam=1.0, estimator="group"), eps, learner_batch(eps))
