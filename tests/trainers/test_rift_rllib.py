"""RIFT stage 2 through RLlib without MetaDrive: a stand-in PettingZoo env with the traffic
env's candidate interface (flat scene obs, Discrete(R·M), info candidate_returns/valid).
Checks the module spec hook, the candidate-advantage connector, the candidate_policy term,
that only pi_head moves, and that the scorer learns to prefer the best candidate."""

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from pettingzoo import ParallelEnv

from regrl.agents.models.planner import Planner, save_planner
from regrl.envs.traffic import scene
from regrl.trainers.config import config_from_dict
from regrl.trainers.envs import ENVS, register_env
from regrl.trainers.rllib.algo import MODULE_SPECS
from regrl.trainers.run import train
from regrl.trainers.traffic.planner_io import scene_planner_config
from regrl.trainers.traffic.scorer_module import rift_module_spec

torch.set_num_threads(1)
M = 2
G = scene.R * M
BEST = 3  # the candidate with the highest return in every state


class CandidateStandIn(ParallelEnv):
    """Two CBVs, 6 steps; candidate g's return is -|g - BEST| (+ noise), lane 2 absent."""

    metadata = {"name": "rift_standin"}

    def __init__(self, planner=None, num_modes=M, action_mode="candidate", seed=0):
        self.possible_agents = ["cbv_0", "cbv_1"]
        self.rng = np.random.default_rng(seed)

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return gym.spaces.Box(-1e3, 1e3, (scene.OBS_DIM,), np.float32)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return gym.spaces.Discrete(G)

    def _obs(self):
        o = scene.empty_obs()
        o["agent_hist"][:, 0] = np.linspace(-9, 0, scene.H)
        o["agent_hist"][:, 2], o["agent_hist"][:, 4] = 1.0, 10.0
        x = np.arange(scene.P) * scene.LANE_SPACING
        for r, y in enumerate((0.0, 3.5)):
            o["lanes"][r] = np.stack([x, np.full_like(x, y)], -1)
            o["lane_mask"][r], o["lane_width"][r] = 1.0, 3.5
        o["agent_size"][:] = (4.5, 2.0)
        o["speed_limit"][:] = 15.0
        o["agent_hist"] += self.rng.normal(0, 0.1, o["agent_hist"].shape).astype(np.float32)
        return scene.flatten(o)

    def _candidates(self):
        # returns of the candidates offered at the observation returned with this info
        valid = np.repeat([True, True, False], M)
        ret = -np.abs(np.arange(G) - BEST).astype(np.float32) + self.rng.normal(0, 0.1, G)
        self.ret = np.where(valid, ret, 0.0)
        return {"candidate_returns": self.ret, "candidate_valid": valid}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        return {a: self._obs() for a in self.agents}, {a: self._candidates() for a in self.agents}

    def step(self, actions):
        self.t += 1
        rewards = {a: float(self.ret[actions[a]]) for a in self.agents}
        done = self.t >= 6
        infos = {a: {} if done else self._candidates() for a in self.agents}
        obs = {a: self._obs() for a in self.agents}
        term = {a: False for a in self.agents}
        trunc = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, term, trunc, infos


@pytest.fixture(scope="module")
def planner_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("planner") / "planner.pt"
    save_planner(path, Planner(scene_planner_config(num_modes=M, dim=8)))
    return path


@pytest.fixture(scope="module", autouse=True)
def standin_registered():
    register_env(
        "rift_standin", "test stand-in", CandidateStandIn, multi_agent=True, module_id="cbv"
    )
    MODULE_SPECS.register("rift_standin", "test")(rift_module_spec)
    yield
    # keep `regrl list` and other modules' registries as they were
    ENVS._entries.pop("rift_standin", None)
    MODULE_SPECS._entries.pop("rift_standin", None)


def config(tmp, planner_file, iterations=1, **terms):
    return config_from_dict(
        {
            "name": "rift_standin",
            "runs_root": str(tmp),
            "env": {"name": "rift_standin", "kwargs": {"planner": str(planner_file)}},
            "objective": {
                "advantages": {"estimator": "candidates"},
                "terms": [{"name": "candidate_policy", **terms}],
            },
            "training": {
                "iterations": iterations,
                "train_batch_size": 48,
                "minibatch_size": 24,
                "num_epochs": 4,
                "lr": 3e-3,
            },
            "resources": {"num_env_runners": 0, "torch_threads": 1},
            "checkpoint": {"every": 100, "keep": 1},
        }
    )


def scorer(run_dir):
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.evaluate import load_module

    return load_module(latest_checkpoint(run_dir), "cbv").planner


@pytest.mark.slow  # ~45 s; test_rift_metadrive runs the same path for one iteration
def test_rift_trains_only_the_scoring_head_and_prefers_the_best_candidate(
    ray_session, tmp_path, planner_file
):
    result = train(config(tmp_path, planner_file, iterations=4), progress=False)
    m = result.metrics
    assert np.isfinite(m["learner/policy_loss"]) and "learner/dual_clip_frac" in m
    assert "learner/candidate_kl" not in m  # RIFT: no KL, no reference model
    before = torch.load(planner_file, weights_only=True)["state_dict"]
    after = scorer(result.run_dir).state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("pi_head.") for k in moved), moved
    obs = torch.as_tensor(np.stack([CandidateStandIn()._obs() for _ in range(8)]))
    with torch.no_grad():
        p0 = Planner(scene_planner_config(M, 8))
        p0.load_state_dict(before)
        old = torch.softmax(p0(scene.unflatten(obs), with_traj=False)["logits"], -1)
        new = torch.softmax(
            scorer(result.run_dir)(scene.unflatten(obs), with_traj=False)["logits"], -1
        )
    assert (new[:, BEST] > old[:, BEST]).all()
    assert torch.all(new[:, 4:] == 0)  # the absent lane's candidates stay impossible


@pytest.mark.parametrize("lr, moved", [(1e-9, False), (1e-2, True)])
def test_kl_to_the_il_scorer_is_logged_by_rift_and_grows_with_the_update(
    ray_session, tmp_path, planner_file, lr, moved
):
    import dataclasses

    cfg = config(tmp_path, planner_file, iterations=2)  # RIFT: no KL in the loss, still logged
    tr = dataclasses.replace(cfg.training, lr=lr)
    result = train(dataclasses.replace(cfg, training=tr), progress=False)
    kl = result.metrics["learner/kl_to_il"]
    # the reference is a frozen copy of the stage-1 scorer: an update that barely moves the
    # head leaves the KL at float32 round-off (a different reference would not), a real one not
    assert (kl > 1e-5) if moved else (abs(kl) < 1e-7), kl


def test_grpo_kl_baseline_logs_kl(ray_session, tmp_path, planner_file):
    result = train(config(tmp_path, planner_file, dual_clip=None, kl_coeff=0.2), progress=False)
    assert np.isfinite(result.metrics["learner/candidate_kl"])
    assert result.metrics["learner/kl_to_il"] > 0  # the IL scorer is the KL's reference here


def test_missing_planner_is_a_clear_error(tmp_path):
    cfg = config(tmp_path, tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="no stage-1 planner"):
        rift_module_spec(cfg)
