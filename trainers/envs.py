"""Environment registry: regrl's own environments by name, plus any gymnasium id."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import gymnasium as gym

from agents.registry import Registry, UnknownNameError
from envs.classic import GroupedCartPole

ENVS = Registry("environment")
ENVS.register("GroupedCartPole-v1",
              "CartPole-v1 in groups of episodes from one start state (GRPO advantages)")(
    GroupedCartPole)


def is_gym_id(name: str) -> bool:
    return name in gym.registry


def env_factory(name: str) -> Callable[..., gym.Env]:
    """Return ``make(**kwargs) -> Env`` for a registered name or a gymnasium id."""
    if name in ENVS:
        return ENVS.get(name)
    if is_gym_id(name):
        return lambda **kwargs: gym.make(name, **kwargs)
    raise UnknownNameError(ENVS.unknown_message(name) + " (or any gymnasium id, e.g. CartPole-v1)")


def make_env(name: str, kwargs: dict[str, Any]) -> gym.Env:
    """Instantiate an environment, turning bad keyword arguments into a clear error."""
    factory = env_factory(name)
    if name in ENVS:
        params = inspect.signature(factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                raise ValueError(f"environment {name!r} has no argument(s) {unknown}; "
                                 f"valid: {sorted(params)}")
    return factory(**kwargs)
