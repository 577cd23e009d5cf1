"""Environment registry: regrl's own environments by name, plus any gymnasium id."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym

from regrl.agents.registry import UnknownNameError
from regrl.envs.classic import GroupedCartPole
from regrl.trainers.plugins import DOMAIN_PLUGINS, PluginRegistry

# Domain modules that register more environments (rift_metadrive: regrl.trainers.traffic.plugin),
# imported by name on the first lookup so that this core module imports no domain (regrl.trainers.plugins).
ENV_MODULES = DOMAIN_PLUGINS
ENVS = PluginRegistry("environment", ENV_MODULES)
# env name -> fn(cfg) -> RLModuleSpec (or None: RLlib's default MLP from ``model``), for
# :mod:`regrl.trainers.rllib.algo`; the domain plugins register theirs (rift_metadrive:
# regrl.trainers.traffic.plugin). Here, not beside RLlib, so that registering imports no RLlib.
MODULE_SPECS = PluginRegistry("module spec", DOMAIN_PLUGINS)


@dataclass(frozen=True)
class EnvEntry:
    factory: Callable[..., Any]
    multi_agent: bool = False
    """A PettingZoo ParallelEnv (all agents map to one shared policy)."""
    module_id: str = "default_policy"
    """RLModule id of the (shared) policy."""
    main_thread_only: bool = False
    """The simulator needs its process's main thread (MetaDrive installs a signal handler), so
    it cannot run inside a Ray Tune trial's worker thread: sweeps need env runners for it."""


def register_env(name: str, description: str, factory: Callable[..., Any], **kw: Any) -> None:
    ENVS.register(name, description)(EnvEntry(factory, **kw))


register_env(
    "GroupedCartPole-v1",
    "CartPole-v1 in groups of episodes from one start state (GRPO advantages)",
    GroupedCartPole,
)


def env_entry(name: str) -> EnvEntry:
    """The registry entry of ``name``; a gymnasium id gets a single-agent entry."""
    if name in ENVS:
        return ENVS.get(name)
    if name in gym.registry:
        return EnvEntry(lambda **kwargs: gym.make(name, **kwargs))
    raise UnknownNameError(ENVS.unknown_message(name) + " (or any gymnasium id, e.g. CartPole-v1)")


def make_env(name: str, kwargs: dict[str, Any]):
    """Instantiate an environment, turning unknown keyword arguments into a clear error."""
    entry = env_entry(name)
    if name in ENVS:
        params = inspect.signature(entry.factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                raise ValueError(
                    f"environment {name!r} has no argument(s) {unknown}; valid: {sorted(params)}"
                )
    return entry.factory(**kwargs)


def _action_spaces(env) -> list:
    if hasattr(env, "possible_agents"):  # PettingZoo ParallelEnv
        return [env.action_space(a) for a in env.possible_agents]
    return [env.action_space]


def probe_env(name: str, kwargs: dict[str, Any], *, need_discrete: bool = False) -> None:
    """Build the environment once in-process so bad names, arguments or action spaces fail
    with a clear message (ValueError / UnknownNameError) before any Ray actor starts."""
    try:
        env = make_env(name, kwargs)
    except UnknownNameError:
        raise
    except (TypeError, ValueError, FileNotFoundError) as exc:
        raise ValueError(f"cannot create environment {name!r} with {kwargs}: {exc}") from None
    try:
        for space in _action_spaces(env):
            if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
                raise ValueError(
                    f"environment {name!r} has action space {space}; regrl "
                    "learners support Discrete and Box"
                )
            if need_discrete and not isinstance(space, gym.spaces.Discrete):
                raise ValueError(
                    f"environment {name!r} has action space {space}; the lp_reg "
                    "term needs a Discrete (categorical) action space"
                )
    finally:
        env.close()
