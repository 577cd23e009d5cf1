"""MetaDrive 0.4.3 engine handling: offline start, scenario classes, one engine per process.

Offline start. ``BaseEngine.__init__`` calls ``BaseEngine.try_pull_asset()``, which downloads
MetaDrive's asset pack (models, textures) with ``urllib`` whenever ``metadrive/assets`` is
missing, and crashes with ``URLError`` offline. Headless physics mode (no rendering) never
loads an asset: ``AssetLoader.init_loader`` returns early when the engine has no window. So
while a *headless* engine is being created, ``offline_engine_start`` swaps that one static
method for a no-op and restores it afterwards; site-packages are not edited. With
``use_render=True`` nothing is swapped: MetaDrive uses the real assets, and if they are
missing we raise a clear error instead of starting a download (run ``python -m
metadrive.pull_asset`` once with network access).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Dict, Optional

import numpy as np

from regrl.envs.traffic.features import vehicle_state

MAPS = ("intersection", "roundabout", "pg")
_OWNER: Optional[object] = None  # the object holding this process's MetaDrive engine


def assets_present() -> bool:
    from metadrive.engine.asset_loader import AssetLoader

    return os.path.exists(AssetLoader.asset_path)


@contextlib.contextmanager
def offline_engine_start(render: bool):
    """Create MetaDrive's engine inside this block: headless engines skip the asset pull."""
    from metadrive.engine.base_engine import BaseEngine

    if render:
        if not assets_present():
            raise RuntimeError(
                "rendering needs MetaDrive's asset pack, which is not installed; "
                "run `python -m metadrive.pull_asset` once with network access, "
                "or use use_render=False (headless physics needs no assets)"
            )
        yield
        return
    original = BaseEngine.__dict__["try_pull_asset"]
    BaseEngine.try_pull_asset = staticmethod(lambda: None)
    try:
        yield
    finally:
        BaseEngine.try_pull_asset = original


def scenario_class(map_name: str):
    """MetaDrive multi-agent env class of ``map_name``: 'intersection', 'roundabout', or 'pg'
    (procedurally generated blocks; pass the block string, e.g. 'SCX', as ``pg_map``)."""
    from metadrive.envs.marl_envs import (
        MultiAgentIntersectionEnv,
        MultiAgentMetaDrive,
        MultiAgentRoundaboutEnv,
    )

    classes = {
        "intersection": MultiAgentIntersectionEnv,
        "roundabout": MultiAgentRoundaboutEnv,
        "pg": MultiAgentMetaDrive,
    }
    if map_name not in classes:
        raise ValueError(f"map must be one of {MAPS}, got {map_name!r}")
    return classes[map_name]


_LEAN: Dict[str, type] = {}


def lean_scenario_class(map_name: str):
    """``scenario_class(map_name)`` without MetaDrive's own reward and cost: the wrapper
    computes RIFT's reward from its own scene features and reads only the termination keys
    of MetaDrive's step info (from ``done_function``), so ``reward_function`` (lane
    look-ups for every vehicle, ego included) and ``cost_function`` were discarded work:
    about 6 % of MetaDrive's step in raw mode (cProfile, issue 25 item 4). MetaDrive's
    rewards are then 0 and its infos lack ``step_reward``, ``route_completion`` and ``cost``."""
    if map_name not in _LEAN:
        base = scenario_class(map_name)
        _LEAN[map_name] = type(
            "Lean" + base.__name__,
            (base,),
            {
                "reward_function": lambda self, vehicle_id: (0.0, {}),
                "cost_function": lambda self, vehicle_id: (0.0, {}),
            },
        )
    return _LEAN[map_name]


def acquire(owner: object) -> None:
    """Claim this process's single MetaDrive engine for ``owner``, or raise a clear error."""
    global _OWNER
    from metadrive.engine.engine_utils import engine_initialized

    if _OWNER is not None and _OWNER is not owner:
        raise RuntimeError(
            "MetaDrive allows one engine per process and another traffic env holds it; call "
            "close() on it first (with RLlib keep num_envs_per_env_runner=1 for this env)"
        )
    if _OWNER is None and engine_initialized():
        raise RuntimeError(
            "a MetaDrive engine is already running in this process (created "
            "outside regrl.envs.traffic); close that MetaDrive env first"
        )
    _OWNER = owner


def release(owner: object) -> None:
    global _OWNER
    if _OWNER is owner:
        _OWNER = None


def metadrive_config(
    map_name: str,
    num_agents: int,
    traffic_density: float,
    seed: int,
    num_scenarios: int,
    pg_map: Any,
    render: bool,
    extra: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """MetaDrive config: our horizon and termination bookkeeping replace MetaDrive's (no
    respawn, no MetaDrive horizon); crashes and leaving the road end an agent's episode; an
    episode is a deterministic function of its seed."""
    cfg = dict(
        num_agents=num_agents,
        use_render=render,
        log_level=50,
        traffic_density=traffic_density,
        allow_respawn=False,
        horizon=None,
        start_seed=int(seed),
        num_scenarios=int(num_scenarios),
        crash_done=True,
        out_of_road_done=True,
        # off-road = off the drivable lanes (RIFT's ORR), not touching a solid line:
        # MetaDrive's intersection U-turns cannot be driven without touching the
        # centre line, which would otherwise end the episode as "out of road"
        on_continuous_line_done=False,
        # determinism per seed: spawn places follow the seed, and no vehicle body is
        # recycled from an earlier episode (pooled Bullet bodies carry state over)
        force_seed_spawn_manager=True,
        num_buffering_objects=0,
    )
    if map_name == "pg":
        cfg["map"] = pg_map
    cfg.update(extra or {})
    return cfg


def null_observation_class():
    """A MetaDrive observation that computes nothing: the wrapper builds its own scene
    features, so MetaDrive's default lidar observation (ray casts per agent per step) would
    be pure overhead."""
    import gymnasium as gym
    import numpy as np
    from metadrive.obs.observation_base import BaseObservation

    class NullObservation(BaseObservation):
        @property
        def observation_space(self):
            return gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

        def observe(self, *args, **kwargs):
            return np.zeros(1, np.float32)

    return NullObservation


def vehicles_of(engine) -> list:
    """All vehicles in the scene (controlled agents, the ego and traffic). Whether an object
    is a vehicle is decided once per class (``isinstance`` against MetaDrive's abstract base
    class goes through ``ABCMeta.__instancecheck__`` for every object and step)."""
    kinds = _VEHICLE_CLASSES
    objects = engine.get_objects().values()
    try:
        return [o for o in objects if kinds[type(o)]]
    except KeyError:  # a class not seen yet
        from metadrive.component.vehicle.base_vehicle import BaseVehicle

        for o in objects:
            kinds.setdefault(type(o), isinstance(o, BaseVehicle))
        return [o for o in objects if kinds[type(o)]]


_VEHICLE_CLASSES: Dict[type, bool] = {}


_FAST_CLASSES: Dict[type, bool] = {}
_PI, _HALF_PI, _TWO_PI = np.pi, np.pi / 2, 2 * np.pi  # MetaDrive's wrap_to_pi's floats


def _reads_plain_state(cls) -> bool:
    """Whether ``cls`` keeps BaseVehicle's position / heading_theta / velocity properties
    (so ``state_rows`` may read the same numbers from panda3d directly)."""
    if cls not in _FAST_CLASSES:
        from metadrive.base_class.base_object import BaseObject
        from metadrive.component.vehicle.base_vehicle import BaseVehicle

        _FAST_CLASSES[cls] = (
            cls.heading_theta is BaseVehicle.heading_theta
            and cls.position is BaseObject.position
            and cls.velocity is BaseObject.velocity
        )
    return _FAST_CLASSES[cls]


def state_rows(vehicles, history: bool = False) -> np.ndarray:
    """Global [x, y, heading, vx, vy] of each vehicle, [V, 5] float64: the same floats as the
    ``position``, ``heading_theta`` and ``velocity`` properties (MetaDrive 0.4.3), read from the
    panda3d node and the Bullet body node directly instead of through three properties per
    vehicle and step (Vector / array construction and the ``body`` python-tag look-up; the
    tag holds a wrapper of the same Bullet node). ``history``: [V, 6] rows in the layout
    ``features.Histories`` keeps, [x, y, cos h, sin h, vx, vy] (``math``'s cos and sin)."""
    rows, plain = [], _FAST_CLASSES
    cos, sin = math.cos, math.sin
    for v in vehicles:
        cls = type(v)
        if not (plain[cls] if cls in plain else _reads_plain_state(cls)):
            x, y, heading, vx, vy = vehicle_state(v).tolist()  # a subclass overrides one
        else:
            origin = v.origin
            pos, vel = origin.getPos(), v._body.get_linear_velocity()
            x, y, vx, vy = pos[0], pos[1], vel[0], vel[1]
            heading = origin.getH() / 180 * math.pi  # wrap_to_pi(wrap_to_pi(h) + π/2), inlined
            heading %= _TWO_PI
            heading -= _TWO_PI * (heading > _PI)
            heading += _HALF_PI
            heading %= _TWO_PI
            heading -= _TWO_PI * (heading > _PI)
        if history:
            rows.append((x, y, cos(heading), sin(heading), vx, vy))
        else:
            rows.append((x, y, heading, vx, vy))
    return np.array(rows, np.float64) if rows else np.zeros((0, 6 if history else 5))


def _idm_policy():
    from metadrive.policy.idm_policy import IDMPolicy

    return IDMPolicy


def _expert_policy():
    """MetaDrive's PPO expert (``metadrive.examples.expert``; its weights ship inside the
    package, and its lidar is a physics ray cast, so it runs offline and headless), acting
    with the mean of its Gaussian: the stock ``ExpertPolicy`` samples the action from numpy's
    *global* random state, which would tie every episode to whatever else drew from it."""
    from metadrive.examples.ppo_expert.numpy_expert import expert
    from metadrive.policy.base_policy import BasePolicy

    class DeterministicExpertPolicy(BasePolicy):
        def act(self, agent_id=None):
            action = expert(self.control_object, deterministic=True)
            self.action_info["action"] = action
            return action

    return DeterministicExpertPolicy


ASSERTIVE_IDM = dict(NORMAL_SPEED=50.0, DISTANCE_WANTED=4.0, TIME_WANTED=0.5)
"""IDMPolicy's class constants for the assertive ego (MetaDrive's defaults: 30 km/h, 10 m,
1.5 s): faster and with short gaps, so it enters the junction where the default IDM would
still be waiting and the CBVs must give way (the ``contest`` scenario family)."""


def _assertive_policy():
    """MetaDrive's IDMPolicy with ``ASSERTIVE_IDM``: an ego that contests the right of way."""
    from metadrive.policy.idm_policy import IDMPolicy

    return type("AssertiveIDMPolicy", (IDMPolicy,), dict(ASSERTIVE_IDM))


EGO_POLICIES = {"idm": _idm_policy, "expert": _expert_policy, "assertive": _assertive_policy}


def ego_policy_class(name: str):
    """MetaDrive policy class that drives the ego AV: 'idm' (rule-based IDM + lane changes),
    'assertive' (the same IDM, faster and with short gaps: it contests the right of way) or
    'expert' (MetaDrive's PPO expert; RIFT's AV is the rule-based expert PDM-Lite)."""
    if name not in EGO_POLICIES:
        raise ValueError(f"ego_policy must be one of {sorted(EGO_POLICIES)}, got {name!r}")
    return EGO_POLICIES[name]()
