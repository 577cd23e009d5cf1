"""Classic-control environments with the extras regrl's learners use (group ids for GRPO)."""

from __future__ import annotations

from typing import Optional

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class GroupedCartPole(gym.Wrapper):
    """CartPole-v1 whose episodes come in groups of ``group_size`` from the same start state.

    The reset info carries ``group_id``: episodes of one group start from the identical
    initial state (same reset seed), so their returns can be compared group-relatively as
    GRPO compares G completions of one prompt (Shao et al. 2024, arXiv 2402.03300).

    A reset with a new seed starts a new stream of groups; a reset with the seed of the
    running stream continues it. RLlib's env runner, in ``complete_episodes`` batch mode,
    resets with the config's seed at every ``sample()`` call (one episode per call and
    vectorised env): restarting there put every episode of every batch in group 0, from one
    start state.
    """

    def __init__(self, group_size: int = 4, max_episode_steps: int = 500):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        env = gym.wrappers.TimeLimit(CartPoleEnv(), max_episode_steps=max_episode_steps)
        super().__init__(env)
        self.group_size = group_size
        self._base_seed: Optional[int] = None
        self._episode = 0

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None and int(seed) != self._base_seed:  # a new stream of groups
            self._base_seed, self._episode = int(seed), 0
        if self._base_seed is None:  # never seeded: the stream of seed 0
            self._base_seed = 0
        group = self._episode // self.group_size
        self._episode += 1
        obs, info = self.env.reset(seed=self._base_seed * 1_000_003 + group, options=options)
        info = dict(info, group_id=f"{self._base_seed}:{group}")
        return obs, info
