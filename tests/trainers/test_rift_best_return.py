"""The best-return reference policy of the headroom benchmark and the rollout that hands a
policy its agents' infos (no MetaDrive: a scripted env)."""

import numpy as np
import pytest

from regrl.trainers.traffic.evaluation import BestReturnPolicy, rollout


def test_best_return_policy_takes_the_highest_valid_return():
    infos = [
        # the invalid candidate 0 has the highest return: skipped
        {"candidate_returns": np.array([9.0, 1.0, 3.0]), "candidate_valid": np.array([0, 1, 1])},
        {"candidate_returns": np.array([-2.0, -1.0, -5.0]), "candidate_valid": np.ones(3)},
    ]
    np.testing.assert_array_equal(BestReturnPolicy()(np.zeros((2, 4)), infos), [2, 1])
    with pytest.raises(ValueError, match="needs candidate mode"):
        BestReturnPolicy()(np.zeros((1, 4)), [{"metrics": {}}])


class ScriptedEnv:
    """Two agents for two steps; each info carries the step and the agent's name."""

    def reset(self, seed=None):
        self.t, self.agents = 0, ["a", "b"]
        return {a: np.zeros(3) for a in self.agents}, {a: {"who": a, "t": 0} for a in self.agents}

    def step(self, actions):
        self.t += 1
        self.seen = actions
        done = self.t >= 2
        m = {"speed": 1.0, "cpk": 0.0} if done else {"speed": 1.0}
        infos = {a: {"who": a, "t": self.t, "metrics": m} for a in self.agents}
        obs = {a: np.zeros(3) for a in self.agents}
        if done:
            self.agents = []
        return obs, {}, {}, {}, infos


def test_rollout_hands_an_info_reading_policy_each_agents_current_info():
    calls = []

    class Recorder:
        reads_info = True

        def __call__(self, obs, infos):
            calls.append([(i["who"], i["t"]) for i in infos])
            return np.arange(len(obs))

    env = ScriptedEnv()
    out = rollout(env, Recorder(), episodes=1, seed=0)
    assert calls == [[("a", 0), ("b", 0)], [("a", 1), ("b", 1)]]
    assert env.seen == {"a": 0, "b": 1} and len(out["steps"]["speed"]) == 4
    # a plain policy is still called with the observations only
    plain = rollout(ScriptedEnv(), lambda obs: np.zeros(len(obs), int), episodes=1, seed=0)
    assert plain["episodes"] == [{"speed": 1.0, "cpk": 0.0}]
