"""The ego AV of the traffic env can be MetaDrive's PPO expert (issue 16 §2): it starts offline,
drives, and is deterministic per scenario seed (the stock ExpertPolicy samples from numpy's
global random state)."""

import numpy as np
import pytest

pytest.importorskip("metadrive")

from regrl.envs.traffic import parallel_env  # noqa: E402


def _ego_speeds(env, seed, steps=30):
    env.reset(seed=seed)
    speeds = []
    for _ in range(steps):
        if not env.agents:
            break
        env.step({a: np.array([0.0, 0.3], np.float32) for a in env.agents})
        speeds.append(float(env._ego.speed))
    return speeds


def test_expert_ego_drives_and_is_deterministic_per_seed():
    env = parallel_env(num_cbv=1, action_mode="raw", horizon=30, ego_policy="expert")
    try:
        first = _ego_speeds(env, 0)
        np.random.seed(123)  # the stock expert would draw its action noise from here
        np.random.random(7)
        again = _ego_speeds(env, 0)
    finally:
        env.close()
    assert max(first) > 3.0  # it drives (m/s), not the BRAKE the env sends it
    assert first == again


def test_unknown_ego_policy_is_a_clear_error():
    with pytest.raises(
        ValueError, match="ego_policy must be one of \\['assertive', 'expert', 'idm'\\]"
    ):
        parallel_env(ego_policy="pdm_lite")
