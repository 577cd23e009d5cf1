"""Two RLlib learner actors (DDP over gloo) compute what one learner computes: the same
parameters after one update on the same episodes, for PPO + GAE (normalised advantages, a
value term, adaptive entropy, demo-KL) and for GRPO group advantages with dual clip; groups
are never split across the learners' shards.

Tolerance: parameters agree to ``ATOL = 1e-5``, 3 % of one Adam step (lr = 3e-4: Adam moves
a parameter by about lr per step whatever the gradient's scale). Two learners sum float32
losses in another order (two shards, then a float64 all-reduce of the gradients), which
changes gradients by ~1e-7 relative; a split group, per-shard normalisation or per-shard
weighting moved parameters by 1.0e-3 to 1.2e-3 (measured), a hundred times the tolerance. The update is full-batch (``minibatch_size=None``): with
mini-batches, one learner and two learners draw different rows into each mini-batch.

Also here, sharing the Ray session: a run asking for more CPUs than exist is refused.
"""

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from regrl.trainers.config import config_from_dict
from regrl.trainers.rllib.algo import build_algorithm_config
from regrl.trainers.rllib.data_parallel import missing_modules, shard_units
from regrl.trainers.rllib.learner import TERM_STATE_KEY

ATOL = 1e-5
EPOCHS = 2


def ppo_gae(demo):
    return {
        "env": {"name": "CartPole-v1"},
        "objective": {
            "advantages": {"estimator": "gae", "normalize": True},
            "terms": [
                {"name": "policy", "clip_low": 0.2, "clip_high": 0.2},
                {"name": "value", "coeff": 0.5, "clip": 10.0},
                # target below the initial policy's entropy (about ln 2): the controller steps
                # down once per epoch, on the entropy of the whole batch (a learner's own
                # share, about half of it, is below the target and would step it up)
                {"name": "adaptive_entropy", "target": 0.5, "init_coeff": 0.02},
                {"name": "demo_kl", "coeff": 0.1, "checkpoint": str(demo)},
            ],
        },
    }


GRPO = {
    "env": {"name": "GroupedCartPole-v1", "kwargs": {"group_size": 4}},
    "objective": {
        "advantages": {"estimator": "group", "group_std": "unbiased"},
        "terms": [{"name": "policy", "clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}],
    },
}


def config(body, learners):
    return config_from_dict(
        {
            "name": "dp",
            **body,
            "training": {"train_batch_size": 400, "minibatch_size": 400},
            "resources": {"num_env_runners": 0, "num_learners": learners},
        }
    )


def weights(learner_group):
    return {k: np.asarray(v) for k, v in learner_group.get_weights()["default_policy"].items()}


def one_and_two_learners(body, sample):
    """Initial parameters, then parameters and term states after the same update by a local
    learner and by two learner actors (every actor's state)."""
    algo = build_algorithm_config(config(body, 0)).build_algo()
    episodes = sample(algo.env_runner)
    two = build_algorithm_config(config(body, 2)).build_learner_group(
        spaces=algo.env_runner.get_spaces()
    )
    try:
        start = weights(algo.learner_group)
        two.set_weights(algo.learner_group.get_weights())
        for group in (algo.learner_group, two):  # the connectors extend episodes in place
            group.update(episodes=copy.deepcopy(episodes), num_epochs=EPOCHS, minibatch_size=None)
        states = two.foreach_learner(lambda learner: learner.get_state()[TERM_STATE_KEY])
        return Result(
            start,
            weights(algo.learner_group),
            weights(two),
            algo.learner_group.get_state()["learner"][TERM_STATE_KEY]["default_policy"],
            [s.get()["default_policy"] for s in states],
            episodes,
        )
    finally:
        two.shutdown()
        algo.stop()


@dataclass
class Result:
    start: dict
    one: dict
    two: dict
    state_one: dict
    states_two: list
    episodes: list

    def assert_same(self):
        assert self.one.keys() == self.two.keys()
        worst = max(float(np.abs(self.one[k] - self.two[k]).max()) for k in self.one)
        assert worst < ATOL, f"2 learners differ from 1 by {worst:.2e} (tolerance {ATOL})"
        moved = max(float(np.abs(self.one[k] - v).max()) for k, v in self.start.items())
        assert moved > 10 * ATOL, moved  # the update did move the parameters
        assert all(s == self.state_one for s in self.states_two)


def demonstrator(path):
    """A weights-only policy file near the initial policy, not equal to it."""
    algo = build_algorithm_config(config({**ppo_gae(None), "objective": {}}, 0)).build_algo()
    try:
        module = algo.learner_group._learner.module["default_policy"]
        torch.manual_seed(1)
        torch.save({k: v + 0.1 * torch.randn_like(v) for k, v in module.state_dict().items()}, path)
    finally:
        algo.stop()
    return path


def test_ppo_gae_adaptive_entropy_demo_kl_two_learners_equal_one(ray_session, tmp_path):
    demo = demonstrator(tmp_path / "demo.pt")
    result = one_and_two_learners(
        ppo_gae(demo), lambda runner: runner.sample(num_timesteps=400, random_actions=False)
    )
    result.assert_same()
    assert result.state_one["adaptive_entropy/coeff"] == pytest.approx(0.02 - EPOCHS * 0.005)


def test_grpo_dual_clip_two_learners_equal_one_and_groups_stay_whole(ray_session):
    result = one_and_two_learners(
        GRPO, lambda runner: runner.sample(num_episodes=12, random_actions=False)
    )
    assert len({e.get_infos(0)["group_id"] for e in result.episodes}) == 3  # 3 groups of 4
    result.assert_same()


def test_shards_hold_whole_groups_balanced_by_steps():
    # (unit, length): groups a (3 episodes, 15 steps), b (2, 10), c (1, 20), x (3), y (2)
    eps = [("a", 5), ("b", 9), ("a", 5), ("c", 20), ("a", 5), ("b", 1), ("x", 3), ("y", 2)]
    shards = shard_units(eps, 2, unit_of=lambda e: e[0], length=lambda e: e[1])
    # c (20) first, a (15) to the empty shard, b (10) to a's (15 < 20), x and y to c's: 25 | 25
    assert shards == [
        [("c", 20), ("x", 3), ("y", 2)],
        [("a", 5), ("b", 9), ("a", 5), ("a", 5), ("b", 1)],
    ]
    for shard in shards:  # every unit in exactly one shard
        others = [e for s in shards if s is not shard for e in s]
        assert not {u for u, _ in shard} & {u for u, _ in others}
    with pytest.raises(ValueError, match="holds 1 episode group"):
        shard_units([("a", 5), ("a", 4)], 2, unit_of=lambda e: e[0], length=lambda e: e[1])


def test_batch_sizes_are_totals_divisible_by_the_learner_count():
    from regrl.trainers.checks import ConfigError

    with pytest.raises(ConfigError, match=r"must be divisible by resources.num_learners \(3\)"):
        config(GRPO, 3)
    algo_cfg = build_algorithm_config(config(GRPO, 2))
    assert (algo_cfg.train_batch_size_per_learner, algo_cfg.minibatch_size) == (200, 200)
    assert algo_cfg.total_train_batch_size == 400


@pytest.mark.slow  # the learner path is covered by the equality tests above; this adds PPO's loop
def test_regrl_train_cartpole_grpo_with_two_learners(ray_session, tmp_path):
    """The issue's command: before, KeyError 'advantages' in the learner actors."""
    from regrl.trainers.config import load_config
    from regrl.trainers.run import train

    cfg = load_config(
        Path(__file__).resolve().parents[2] / "configs" / "cartpole_grpo.yaml",
        [
            f"runs_root={tmp_path}",
            "resources.num_learners=2",
            "resources.num_env_runners=0",
            "training.iterations=1",
            "training.train_batch_size=600",
            "training.minibatch_size=200",
        ],
    )
    result = train(cfg, progress=False)
    assert result.iteration == 1 and result.env_steps >= 600
    assert np.isfinite(result.metrics["learner/policy_loss"])
    assert (result.run_dir / "checkpoints" / "iter_000001").is_dir()


def test_regrl_train_refuses_more_cpus_than_this_machine_has(ray_session, tmp_path, capsys):
    """Two learners and as many env runners as this machine has CPUs: refused before any
    actor starts (it used to wait silently), naming what was asked and what exists."""
    from regrl.trainers.cli import main

    cpus = os.cpu_count()
    sets = [
        f"runs_root={tmp_path}",
        "resources.num_learners=2",
        f"resources.num_env_runners={cpus}",
    ]
    config = str(Path(__file__).resolve().parents[2] / "configs" / "cartpole_ppo.yaml")
    assert main(["train", config, *[a for s in sets for a in ("--set", s)]]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: this Ray cluster can never place the run's actors: CPU: {cpus + 2} asked "
        f"({cpus} env runners x 1 + 2 learners x 1), the cluster has {cpus} (1 node: "
        f"{{CPU: {cpus}}}); lower resources.num_learners, num_env_runners or "
        "num_cpus_per_env_runner, set resources.num_gpus_per_learner: 0 or remove the custom "
        "resources, or run on a cluster with --address"
    )


# ---- multi-agent: one RLModule per agent --------------------------------------------------
# regrl's configs map every agent of a multi-agent env to one shared module (trainers/envs.py);
# the learner path also takes several modules, as RLlib's multi_agent(policies=...) sets up.
def multi_agent_config(learners, mapping):
    from ray.rllib.examples.envs.classes.multi_agent import MultiAgentCartPole

    body = ppo_gae(None)
    body["objective"]["terms"] = body["objective"]["terms"][:3]  # demo-KL: one module's file
    return (
        build_algorithm_config(config(body, learners))
        .environment(MultiAgentCartPole, env_config={"num_agents": 2})
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=mapping)
    )


def per_agent(agent_id, episode, **kwargs):
    return f"p{agent_id}"


def all_weights(learner_group):
    return {
        f"{module}/{k}": np.asarray(v)
        for module, params in learner_group.get_weights().items()
        for k, v in params.items()
    }


def test_one_module_per_agent_two_learners_equal_one(ray_session):
    """Agent 0 -> module p0, agent 1 -> p1, both in every episode: each learner trains both
    modules (advantage normalisers, term weights and controllers per module). One epoch:
    without a mini-batch size RLlib's multi-epoch iterator cuts each module's rows at the
    batch's env-step count (a multi-agent batch holds more module steps than env steps), so
    one and two learners would take different mini-batches (measured: 1.1e-3 apart after 2
    epochs, 3e-8 after 1)."""
    algo = multi_agent_config(0, per_agent).build_algo()
    episodes = algo.env_runner.sample(num_timesteps=400, random_actions=False)
    two = multi_agent_config(2, per_agent).build_learner_group(spaces=algo.env_runner.get_spaces())
    try:
        start = all_weights(algo.learner_group)
        two.set_weights(algo.learner_group.get_weights())
        for group in (algo.learner_group, two):
            group.update(episodes=copy.deepcopy(episodes), num_epochs=1, minibatch_size=None)
        states = two.foreach_learner(lambda learner: learner.get_state()[TERM_STATE_KEY])
        result = Result(
            start,
            all_weights(algo.learner_group),
            all_weights(two),
            algo.learner_group.get_state()["learner"][TERM_STATE_KEY],
            [s.get() for s in states],
            episodes,
        )
    finally:
        two.shutdown()
        algo.stop()
    assert {k.split("/")[0] for k in result.one} == {"p0", "p1"}
    result.assert_same()
    assert set(result.state_one) == {"p0", "p1"}


def test_missing_modules_per_shard():
    shards = [[{"a", "b"}, {"a"}], [{"a"}], [{"b"}, {"a", "b"}]]
    assert missing_modules(shards, frozenset) == {1: ["b"]}
    assert missing_modules([[{"a", "b"}], [{"b", "a"}]], frozenset) == {}


def test_a_module_absent_from_a_learner_shard_stops_the_run(ray_session):
    """One episode maps its agents to p1, every other to p0: the shard without that episode
    would never call p1's DDP all-reduce, and the learners would wait on each other forever."""
    from regrl.trainers.checkpoint import RunAborted
    from regrl.trainers.rllib.data_parallel import WholeUnitTrainingData

    first = []

    def one_episode_on_p1(agent_id, episode, **kwargs):
        if not first:
            first.append(episode.id_)
        return "p1" if episode.id_ == first[0] else "p0"

    algo = multi_agent_config(0, one_episode_on_p1).build_algo()
    try:
        episodes = algo.env_runner.sample(num_timesteps=400, random_actions=False)
    finally:
        algo.stop()
    assert len(episodes) >= 2
    with pytest.raises(RunAborted, match=r"learner \d of 2 got no steps of module\(s\) p1 in"):
        WholeUnitTrainingData(episodes=episodes).shard(2)
