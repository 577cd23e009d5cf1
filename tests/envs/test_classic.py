"""GroupedCartPole: groups of ``group_size`` episodes from one start state, and a repeated
reset seed (what RLlib's env runner sends at every sample() call in complete_episodes mode)
continues the stream of groups instead of restarting it."""

import numpy as np

from regrl.envs.classic import GroupedCartPole


def test_groups_share_a_start_state_and_a_repeated_seed_continues_the_stream():
    env = GroupedCartPole(group_size=3)
    resets = [env.reset(seed=7) for _ in range(7)]  # the same seed every time, as RLlib does
    ids = [info["group_id"] for _, info in resets]
    assert ids == ["7:0"] * 3 + ["7:1"] * 3 + ["7:2"]
    assert all(np.array_equal(resets[0][0], obs) for obs, _ in resets[:3])
    assert not np.array_equal(resets[0][0], resets[3][0])
    assert env.reset(seed=8)[1]["group_id"] == "8:0"  # a new seed: a new stream
    assert env.reset()[1]["group_id"] == "8:0" and env.reset(seed=7)[1]["group_id"] == "7:0"
