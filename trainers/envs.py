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


def probe_env(name: str, kwargs: dict[str, Any], *, need_discrete: bool = False) -> None:
    """Build the environment once in-process so bad names, arguments or action spaces fail
    with a clear message (ValueError / UnknownNameError) before any Ray actor starts."""
    try:
        env = make_env(name, kwargs)
    except UnknownNameError:
        raise
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot create environment {name!r} with {kwargs}: {exc}") from None
    try:
        space = env.action_space
        if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ValueError(f"environment {name!r} has action space {space}; regrl learners "
                             "support Discrete and Box")
        if need_discrete and not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"environment {name!r} has action space {space}; the lp_reg "
                             "term needs a Discrete (categorical) action space")
    finally:
        env.close()
