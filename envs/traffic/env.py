"""RIFT traffic environment: K critical background vehicles (CBVs) driven by a learned policy
in MetaDrive (docs/methods.md#rift-planner, #rift-on-metadrive), as a PettingZoo ``ParallelEnv``.

Scene. A MetaDrive multi-agent scenario (``map``: 'intersection', 'roundabout' or 'pg', a
procedurally generated map of blocks ``pg_map``) with K+1 controlled vehicles: the K CBVs
``cbv_0 … cbv_{K−1}`` and one ego AV driven by MetaDrive's ``IDMPolicy`` (or by its PPO
expert, ``ego_policy="expert"``); the rest is MetaDrive's IDM traffic (``traffic_density``).
Headless physics, no asset download (see ``regrl.envs.traffic.backend``).

One env step = one decision = 0.1 s of simulation (MetaDrive: 5 physics steps of 0.02 s).
Actions (``action_mode``):
- ``"raw"``: Box [steer, throttle] in [−1, 1]², applied directly (PPO-from-scratch baseline).
- ``"candidate"``: Discrete(G = R·M) index of a candidate trajectory. Candidates come from the
  injected ``candidate_fn(obs [K, OBS_DIM]) -> traj [K, G, T, 2]`` (the frozen planner, built
  by the trainers) or, when it is None, from ``candidates.lane_following_candidates``. The
  chosen one is tracked by ``control.TrajectoryTracker`` for the next 0.1 s; a new decision
  (and a new set of candidates) is made every step, like RIFT's 10 Hz replanning. An invalid
  index (a candidate on an absent lane) executes the best-scoring valid candidate instead
  and counts ``invalid_action``.

Per-agent observations are the flattened scene features (``regrl.envs.traffic.scene``). Per-step
infos hold ``metrics`` (speed, acc, collision, offroad, uncomfortable, progress_m; the last
step of the episode adds episode aggregates: cpk, orr, uc, rp, sim_error, ego_crash, …) and,
in candidate mode, ``candidate_returns`` [G] float32 and ``candidate_valid`` [G] bool of the
candidates offered at the returned observation. The reward is RIFT's dense reward (docs/methods.md#rift-reward) of
the executed motion. An agent terminates on crash, leaving the road, or arriving; every agent
is truncated at ``horizon`` steps. A MetaDrive exception inside ``step`` truncates all agents
(metric ``sim_error`` = 1) and the simulator is rebuilt at the next ``reset``.
"""

from __future__ import annotations

import functools
import math
from array import array
from typing import Any, Callable, Dict, Optional

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from regrl.envs.traffic import backend, features, scene
from regrl.envs.traffic.candidates import lane_following_candidates_batch
from regrl.envs.traffic.control import TrajectoryTracker
from regrl.envs.traffic.families import family_kwargs
from regrl.envs.traffic.metrics import driving_score, stuck
from regrl.envs.traffic.scene import DT, H, R, T
from regrl.envs.traffic.scoring import FORECASTS, GAMMA, dense_reward_rows, score_candidates_batch

ACTION_MODES = ("candidate", "raw")
OBS_BOUND = 1e4
_OBS_LOW, _OBS_HIGH = np.float32(-OBS_BOUND), np.float32(OBS_BOUND)  # the scenes' dtype
UNCOMFORTABLE = 4.0  # |a| or |yaw acc| above this is uncomfortable (RIFT's UC metric)
BRAKE = np.array([0.0, -1.0], np.float32)
_FLOAT32 = np.dtype(np.float32)
LANE_CACHES = 16  # maps whose densified lanes are kept (PG maps differ per scenario seed)
# np.clip's ufunc without its Python wrapper: minimum(maximum(x, lo), hi), NaN kept
_clip = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", np.clip)


class TrafficEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of RIFT's CBVs in MetaDrive; see the module docstring.

    Arguments: ``family`` a scenario preset (``families.FAMILIES``: default, long, dense,
    roundabout, merge, contest) that supplies ``num_cbv``, ``map``, ``pg_map``, ``horizon``,
    ``traffic_density`` and ``ego_policy`` where these are not given (None);
    ``num_cbv`` K learned vehicles; ``map`` intersection | roundabout | pg (with
    ``pg_map``, MetaDrive's block string or block count); ``horizon`` steps (0.1 s each);
    ``seed`` first MetaDrive scenario seed, ``reset(seed=s)`` plays scenario
    ``seed + s % num_scenarios`` (deterministic); ``action_mode`` candidate | raw;
    ``num_modes`` M candidates per reference lane; ``candidate_fn`` the planner (see above);
    ``traffic_density`` MetaDrive's IDM traffic; ``gamma`` of the candidate returns;
    ``idm_cbvs`` drive the CBVs by IDM too (demonstrations; actions are ignored);
    ``neighbor_forecast`` how candidate scoring moves the neighbours (``scoring.FORECASTS``:
    bicycle, RIFT's held-control bicycle, or constant_velocity); ``ego_policy`` idm | expert
    (MetaDrive's PPO expert, deterministic) | assertive (IDM that contests the right of way);
    ``use_render`` needs MetaDrive's assets; ``metadrive_config`` extra MetaDrive keys.
    """

    metadata = {"name": "rift_traffic_v0", "render_modes": []}

    def __init__(
        self,
        *,
        family: str = "default",
        num_cbv: Optional[int] = None,
        map: Optional[str] = None,
        horizon: Optional[int] = None,
        seed: int = 0,
        action_mode: str = "candidate",
        num_modes: int = 4,
        candidate_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
        traffic_density: Optional[float] = None,
        pg_map: Any = None,
        num_scenarios: int = 100,
        use_render: bool = False,
        gamma: float = GAMMA,
        idm_cbvs: bool = False,
        neighbor_forecast: str = "bicycle",
        ego_policy: Optional[str] = None,
        metadrive_config: Optional[Dict[str, Any]] = None,
    ):
        scenario = family_kwargs(
            family,
            map=map,
            pg_map=pg_map,
            num_cbv=num_cbv,
            horizon=horizon,
            traffic_density=traffic_density,
            ego_policy=ego_policy,
        )
        map, pg_map, num_cbv = scenario["map"], scenario["pg_map"], scenario["num_cbv"]
        horizon, traffic_density = scenario["horizon"], scenario["traffic_density"]
        ego_policy, self.family = scenario["ego_policy"], family
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        backend.scenario_class(map)  # validates the map name
        for name, value in (
            ("num_cbv", num_cbv),
            ("horizon", horizon),
            ("num_modes", num_modes),
            ("num_scenarios", num_scenarios),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if neighbor_forecast not in FORECASTS:
            raise ValueError(
                f"neighbor_forecast must be one of {sorted(FORECASTS)}, got {neighbor_forecast!r}"
            )
        self.neighbor_forecast = neighbor_forecast
        self._ego_policy = backend.ego_policy_class(ego_policy)  # validates the name
        if candidate_fn is not None and not callable(candidate_fn):
            raise ValueError("candidate_fn must be callable obs [K, OBS_DIM] -> [K, G, T, 2]")
        self.num_cbv, self.map, self.horizon = int(num_cbv), map, int(horizon)
        self.action_mode, self.num_modes = action_mode, int(num_modes)
        self.num_candidates = R * self.num_modes
        self.candidate_fn, self.gamma = candidate_fn, float(gamma)
        self.idm_cbvs = bool(idm_cbvs)  # demonstrations: the CBVs drive by IDM too
        self.base_seed, self.num_scenarios = int(seed), int(num_scenarios)
        self._md_config = backend.metadrive_config(
            map,
            self.num_cbv + 1,
            traffic_density,
            seed,
            num_scenarios,
            pg_map,
            use_render,
            {"agent_observation": None, **(metadrive_config or {})},
        )
        self.render_enabled = bool(use_render)
        self.possible_agents = [f"cbv_{i}" for i in range(self.num_cbv)]
        self._md_names = {a: self._md_name(a) for a in self.possible_agents}
        # every MetaDrive agent stands still unless given a control: MetaDrive (``action_check``
        # off, its default) takes the actions of its active agents from the dict and drops the
        # rest, so this saves asking it for its active agents every step
        self._stand_still = None
        if not self._md_config.get("action_check", False):
            self._stand_still = {n: BRAKE for n in [*self._md_names.values(), self._ego_name]}
        self.agents: list = []
        self._obs_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (scene.OBS_DIM,), np.float32)
        self._act_space = (
            spaces.Discrete(self.num_candidates)
            if action_mode == "candidate"
            else spaces.Box(-1.0, 1.0, (2,), np.float32)
        )
        self._md = None
        self._broken = False
        self._rng = np.random.default_rng(seed)
        self._hist = features.Histories()
        self._lanes = features.LaneCache()
        self._lane_caches: Dict[tuple, features.LaneCache] = {}  # by network_key, LRU
        self.sim_errors = 0

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    # ------------------------------------------------------------------ engine lifecycle
    def _md_name(self, agent: str) -> str:
        return "agent" + agent.split("_")[1]

    @property
    def _ego_name(self) -> str:
        return f"agent{self.num_cbv}"

    def _build(self) -> None:
        backend.acquire(self)
        cfg = dict(self._md_config)
        if cfg.get("agent_observation") is None:
            cfg["agent_observation"] = backend.null_observation_class()
        self._md = backend.lean_scenario_class(self.map)(cfg)

    def _teardown(self) -> None:
        if self._md is not None:
            try:
                self._md.close()
            finally:
                self._md = None
        backend.release(self)

    def close(self) -> None:
        self.agents = []
        self._teardown()

    def __del__(self):  # an engine left open would block every later env in the process
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ reset / step
    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            scenario = int(seed) % self.num_scenarios
        else:
            scenario = int(self._rng.integers(self.num_scenarios))
        if self._broken:
            self._teardown()
            self._broken = False
        self._reset_simulator(scenario)
        self._start_episode(scenario)
        obs = self._observe_all(self.agents)
        infos = {a: {"scenario": scenario} for a in self.agents}
        self._attach_candidates(obs, infos)
        return obs, infos

    def _reset_simulator(self, scenario: int) -> None:
        """Reset MetaDrive to ``scenario``; if MetaDrive fails, rebuild it once and retry."""
        for _attempt in (0, 1):
            if self._md is None:
                self._build()
            try:
                with backend.offline_engine_start(self.render_enabled):
                    self._md.reset(seed=self.base_seed + scenario)
                return
            except (RuntimeError, ValueError) as exc:
                if "one engine per process" in str(exc) or "asset" in str(exc):
                    raise
                error = exc
            except Exception as exc:  # MetaDrive / Bullet / panda3d internals
                error = exc
            self.sim_errors += 1
            self._teardown()
        raise RuntimeError(
            f"MetaDrive failed to reset scenario {scenario} twice: {type(error).__name__}: {error}"
        )

    def _start_episode(self, scenario: int) -> None:
        from metadrive.policy.idm_policy import IDMPolicy

        md_agents = self._md.agents
        ego = md_agents.get(self._ego_name)
        if ego is not None:  # the AV follows MetaDrive's IDM or expert, not our actions
            self._md.engine.add_policy(ego.id, self._ego_policy, ego, self.base_seed + scenario)
        self.agents = [a for a in self.possible_agents if self._md_name(a) in md_agents]
        self._vehicle = {a: md_agents[self._md_name(a)] for a in self.agents}
        if self.idm_cbvs:  # actions are then ignored
            for i, v in enumerate(self._vehicle.values()):
                self._md.engine.add_policy(v.id, IDMPolicy, v, self.base_seed + scenario + i + 1)
        self._ego = ego
        self._trackers = {a: TrajectoryTracker() for a in self.agents}
        self._cands: Dict[str, np.ndarray] = {}
        self._returns: Dict[str, np.ndarray] = {}
        self._valid: Dict[str, np.ndarray] = {}
        self._hist.clear()
        # MetaDrive's ``engine`` property imports and looks up its singleton on every access;
        # the engine object lasts as long as the MetaDrive env, so an episode keeps it
        self._engine = self._md.engine
        self._network = self._engine.current_map.road_network
        self._lanes = self._lane_cache(self._network)
        self._now = backend.vehicles_of(self._engine)
        self._hist.record(self._now, backend.state_rows(self._now, history=True))
        self._prev_speed = {a: float(self._vehicle[a].speed) for a in self.agents}
        # per CBV: speeds (stuck metric), route completion, infractions (driving score)
        self._speeds: Dict[str, list] = {a: [] for a in self.agents}
        self._route: Dict[str, float] = {a: 0.0 for a in self.agents}
        self._route0 = {a: self._travelled(a)[0] for a in self.agents}
        self._hits: Dict[str, list] = {a: [0, 0] for a in self.agents}  # vehicle, object
        self._arrived: Dict[str, bool] = {a: False for a in self.agents}
        self._t = 0
        self._stats = {
            k: 0.0
            for k in (
                "progress",
                "collisions",
                "offroad_steps",
                "uncomfortable_steps",
                "agent_steps",
                "invalid",
            )
        }

    def _lane_cache(self, network) -> "features.LaneCache":
        """The lane-geometry cache of ``network``'s geometry, kept across episodes (MetaDrive
        hands out a new map object per reset; densifying its lanes again cost ~15% of the
        wrapper's step time); at most LANE_CACHES maps are kept."""
        key = features.network_key(network)
        cache = self._lane_caches.pop(key, None) or features.LaneCache()
        self._lane_caches[key] = cache  # most recently used last
        while len(self._lane_caches) > LANE_CACHES:
            self._lane_caches.pop(next(iter(self._lane_caches)))
        return cache

    def step(self, actions: Dict[str, Any]):
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"step() needs an action for every live agent; missing {missing}")
        names = self._md_names
        controls = {names[a]: self._control(a, actions[a]) for a in self.agents}
        # the ego (IDM ignores it) and CBVs whose episode we ended but MetaDrive did not
        # stand still
        if self._stand_still is not None:
            controls = {**self._stand_still, **controls}
        else:
            for name in self._md.agents:
                controls.setdefault(name, BRAKE)
        try:
            _, _, md_term, _, md_info = self._md.step(controls)
            self._now = backend.vehicles_of(self._engine)
            self._hist.record(self._now, backend.state_rows(self._now, history=True))
        except Exception as exc:  # a simulator blow-up must not crash training
            return self._blow_up(exc)
        self._t += 1
        return self._collect(md_term, md_info)

    def _collect(self, md_term, md_info):
        agents, term, trunc, infos = self.agents, {}, {}, {}
        batch = self._observe_batch(agents)
        obs = dict(zip(agents, batch))
        md_names = [self._md_names[a] for a in agents]
        md_infos = [md_info.get(n, {}) for n in md_names]
        readings = step_readings(batch)
        step_metrics = self._step_metrics(agents, md_infos, readings)
        rew = dict(zip(agents, self._rewards(readings, step_metrics)))
        late, live, arrived = self._t >= self.horizon, [], self._arrived
        for a, name, info, metrics in zip(agents, md_names, md_infos, step_metrics):
            arrived[a] = arrive = bool(info.get("arrive_dest", False))
            term[a] = done = bool(
                md_term.get(name, False) or metrics["collision"] or metrics["offroad"] or arrive
            )
            trunc[a] = cut = not done and late
            infos[a] = {"metrics": metrics}
            if not (done or cut):
                live.append(a)
        if self.action_mode == "candidate":
            self._attach_candidates({a: obs[a] for a in live}, infos)
        if not live:
            episode = self.episode_metrics()
            for a in infos:
                infos[a]["metrics"].update(episode)
        self.agents = live
        return obs, rew, term, trunc, infos

    def _blow_up(self, exc: Exception):
        self.sim_errors += 1
        self._broken = True
        agents, self.agents = self.agents, []
        episode = {**self.episode_metrics(), "sim_error": 1.0}
        info = {"metrics": episode, "sim_exception": f"{type(exc).__name__}: {exc}"}
        zero = np.zeros(scene.OBS_DIM, np.float32)
        return (
            {a: zero.copy() for a in agents},
            {a: 0.0 for a in agents},
            {a: False for a in agents},
            {a: True for a in agents},
            {a: dict(info) for a in agents},
        )

    # ------------------------------------------------------------------ actions
    def _control(self, agent: str, action: Any) -> np.ndarray:
        if self.action_mode == "raw":
            if type(action) is np.ndarray and action.dtype is _FLOAT32 and action.shape == (2,):
                act = action  # the usual action: no conversion
            else:
                act = np.asarray(action, np.float32).reshape(-1)
                if act.shape != (2,):
                    raise ValueError(
                        f"raw action of {agent} must be [steer, throttle], got {action!r}"
                    )
            # np.minimum(np.maximum(act, -1), 1) in Python floats (exact for float32; NaN stays);
            # an action within the box (the usual case) is copied as it is
            steer, throttle = values = act.tolist()
            if -1.0 <= steer <= 1.0 and -1.0 <= throttle <= 1.0:
                return act.copy()
            return np.array([min(max(x, -1.0), 1.0) for x in values], np.float32)
        g = int(np.asarray(action).reshape(-1)[0])
        if not 0 <= g < self.num_candidates:
            raise ValueError(
                f"candidate index of {agent} must be in [0, {self.num_candidates}), got {action!r}"
            )
        valid = self._valid[agent]
        if not valid[g]:
            self._stats["invalid"] += 1
            g = int(np.argmax(np.where(valid, self._returns[agent], -np.inf)))
        return self._trackers[agent](self._cands[agent][g], self._vehicle[agent].speed)

    def _attach_candidates(self, obs: Dict[str, np.ndarray], infos: Dict[str, dict]) -> None:
        """Candidates of each live agent at ``obs``; their RIFT returns go into its info."""
        if self.action_mode != "candidate" or not obs:
            return
        names = list(obs)
        batch = np.stack([obs[a] for a in names])
        trajs = self._candidates(batch)
        finite = np.isfinite(trajs).all(axis=(2, 3))  # [K, G]
        lanes_ok = batch[:, features.field_slice("lane_mask")] > 0.5  # [K, R]
        valid = np.repeat(lanes_ok, self.num_modes, axis=1) & finite
        clean = trajs if finite.all() else np.nan_to_num(trajs)
        returns = score_candidates_batch(clean, batch, valid, self.gamma, self.neighbor_forecast)
        for i, a in enumerate(names):
            self._cands[a], self._valid[a], self._returns[a] = trajs[i], valid[i], returns[i]
            infos[a]["candidate_returns"] = returns[i]
            infos[a]["candidate_valid"] = valid[i]

    def _candidates(self, batch: np.ndarray) -> np.ndarray:
        if self.candidate_fn is None:
            trajs = lane_following_candidates_batch(batch, self.num_modes)[0]
        else:
            trajs = np.asarray(self.candidate_fn(batch), np.float32)
        want = (len(batch), self.num_candidates, T, 2)
        if trajs.shape != want:
            raise ValueError(
                f"candidate_fn returned shape {trajs.shape}, expected {want} "
                f"[K, R·M, T, 2] with R={R}, M=num_modes={self.num_modes}"
            )
        return trajs

    # ------------------------------------------------------------------ observations, reward
    def vehicles(self) -> list:
        """Every MetaDrive vehicle in the scene now (CBVs, ego, traffic)."""
        return backend.vehicles_of(self._md.engine) if self._md is not None else []

    def vehicle_role(self, v) -> int:
        """0 traffic, 1 CBV, 2 ego."""
        if self._ego is not None and v.id == self._ego.id:
            return 2
        return int(any(v.id == c.id for c in self._vehicle.values()))

    def scene_of(self, v, vehicles: Optional[list] = None) -> np.ndarray:
        """Flat scene features [OBS_DIM] of any vehicle in the scene (zeros if unrecorded)."""
        if v.id not in self._hist:
            return np.zeros(scene.OBS_DIM, np.float32)
        return self._scenes([v], vehicles)[0]

    def _scenes(self, vs: list, vehicles: Optional[list] = None) -> np.ndarray:
        """Flat scenes [len(vs), OBS_DIM] of recorded vehicles, computed as one batch."""
        vehicles = self._now if vehicles is None else vehicles
        flat = features.scene_batch(vs, vehicles, self._hist, self._network, self._lanes)
        return _clip(flat, _OBS_LOW, _OBS_HIGH, out=flat)

    def _observe(self, agent: str) -> np.ndarray:
        return self.scene_of(self._vehicle[agent])

    def _observe_all(self, agents: list) -> Dict[str, np.ndarray]:
        """Observations of ``agents`` (zeros for a vehicle MetaDrive removed this step)."""
        return dict(zip(agents, self._observe_batch(agents)))

    def _observe_batch(self, agents: list) -> np.ndarray:
        """``_observe_all`` as one array [len(agents), OBS_DIM] (its rows are the values)."""
        index = self._hist.index
        seen = [k for k, a in enumerate(agents) if self._vehicle[a].id in index]
        if len(seen) == len(agents):
            return self._scenes([self._vehicle[a] for a in agents])
        batch = np.zeros((len(agents), scene.OBS_DIM), np.float32)
        if seen:
            batch[seen] = self._scenes([self._vehicle[agents[k]] for k in seen])
        return batch

    def _step_metrics(self, agents: list, infos: list, readings: dict) -> list:
        """Per-step metrics of ``agents`` (MetaDrive ``infos``, ``step_readings`` of their
        observations); updates the episode's statistics."""
        rows = zip(agents, infos, *(readings[k] for k in ("gone", "speed", "yaw_acc", "progress")))
        return [self._agent_metrics(*row) for row in rows]

    def _agent_metrics(self, agent, info, gone, speed, yaw_acc, progress) -> Dict[str, float]:
        """``_step_metrics`` of one agent from its vectorised quantities; updates the
        episode's statistics."""
        prev = self._prev_speed[agent]
        speed = prev if gone else speed
        acc = (speed - prev) / DT
        self._prev_speed[agent] = speed
        yaw_acc = 0.0 if gone else yaw_acc
        get = info.get  # each flag read once
        vehicle, human = get("crash_vehicle"), get("crash_human")
        thing, building = get("crash_object"), get("crash_building")
        collision = float(bool(vehicle or thing or building or human))
        offroad = float(bool(get("out_of_road") or get("crash_sidewalk")))
        self._speeds[agent].append(speed)
        hits = self._hits[agent]
        hits[0] += bool(vehicle or human)
        hits[1] += bool(thing or building)
        if not gone:
            self._route[agent] = self._route_completion(agent)
        uncomfortable = float(abs(acc) > UNCOMFORTABLE or abs(yaw_acc) > UNCOMFORTABLE)
        stats = self._stats
        stats["progress"] += progress
        stats["collisions"] += collision
        stats["offroad_steps"] += offroad
        stats["uncomfortable_steps"] += uncomfortable
        stats["agent_steps"] += 1.0
        return {
            "speed": speed,
            "acc": float(acc),
            "yaw_acc": yaw_acc,
            "collision": collision,
            "offroad": offroad,
            "uncomfortable": uncomfortable,
            "progress_m": progress,
        }

    def _travelled(self, agent: str) -> tuple:
        """(travelled, route length) in m of the CBV's MetaDrive navigation (0, 0 without)."""
        nav = getattr(self._vehicle[agent], "navigation", None)
        travelled = float(getattr(nav, "travelled_length", 0.0) or 0.0)
        return travelled, float(getattr(nav, "total_length", 0.0) or 0.0)

    def _route_completion(self, agent: str) -> float:
        """Share of the CBV's route from its spawn point covered so far, in [0, 1]. MetaDrive's
        own ``route_completion`` counts the spawn point's distance along the first lane as
        travelled (its first localisation adds it), so a standing car would start at up to
        ~20 %; we subtract the travelled length at the episode start."""
        travelled, total = self._travelled(agent)
        start = self._route0[agent]
        if total - start <= 1e-6:
            return 0.0
        return float(min(max((travelled - start) / (total - start), 0.0), 1.0))

    def _reward(self, obs: np.ndarray, m: Dict[str, float]) -> float:
        """RIFT's dense reward (docs/methods.md#rift-reward) of the executed step, measured against the
        current reference lane: d = offset to its centre line, θ = heading error."""
        return self._rewards(step_readings(obs[None]), [m])[0]

    def _rewards(self, readings: dict, metrics: list) -> list:
        """``_reward`` of several agents (``step_readings`` of their observations and their
        step metrics) by ``dense_reward_rows``, ``dense_reward``'s floats for a few rows."""
        keys = ("speed", "acc", "yaw_acc", "collision", "offroad")
        v, acc, yaw_acc, collision, offroad = ([x[k] for x in metrics] for k in keys)
        return dense_reward_rows(
            d=readings["d"],
            theta=readings["theta"],
            v=v,
            a=acc,
            yaw_acc=yaw_acc,
            collision=collision,
            offroad=offroad,
        )

    def episode_metrics(self) -> Dict[str, float]:
        """RIFT's CBV metrics of the episode so far (docs/methods.md#rift-metrics): cpk (collisions per km
        of CBV progress), orr / uc (off-road / uncomfortable share of CBV steps, %), rp (CBV
        progress, m); plus the ego's crash and route completion and the invalid actions."""
        s = self._stats
        steps = max(s["agent_steps"], 1.0)
        out = {
            "cpk": s["collisions"] / max(s["progress"] / 1000.0, 1e-3),
            "orr": 100.0 * s["offroad_steps"] / steps,
            "uc": 100.0 * s["uncomfortable_steps"] / steps,
            "rp": s["progress"],
            "invalid_action": s["invalid"],
            "sim_error": 0.0,
            "episode_steps": float(self._t),
        }
        out.update(self.cbv_episode_metrics())
        ego = self._ego
        if ego is not None:
            out["ego_crash"] = float(bool(getattr(ego, "crash_vehicle", False)))
            nav = getattr(ego, "navigation", None)
            out["ego_route_completion"] = float(getattr(nav, "route_completion", 0.0) or 0.0)
        return out

    def cbv_episode_metrics(self) -> Dict[str, float]:
        """Per-CBV outcomes averaged over the CBVs of the episode (issue 25's headroom
        metrics): ``stuck`` % of CBVs that stood still (below ``metrics.STUCK_SPEED``) for
        ``metrics.STUCK_STEPS`` steps in a row; ``cbv_rc`` % route completion from the spawn
        point (``_route_completion``); ``cbv_ds`` driving score = route completion x CARLA's infraction
        penalties (``metrics.driving_score``), in %; ``collided`` / ``arrived`` % of CBVs."""
        agents = list(self._speeds)
        if not agents:
            return {}
        rc = np.array([self._route[a] for a in agents])
        hits = np.array([self._hits[a] for a in agents], float)
        return {
            "stuck": 100.0 * float(np.mean([stuck(np.array(self._speeds[a])) for a in agents])),
            "cbv_rc": 100.0 * float(rc.mean()),
            "cbv_ds": 100.0 * float(driving_score(rc, hits[:, 0], hits[:, 1]).mean()),
            "collided": 100.0 * float(np.mean(hits.sum(1) > 0)),
            "arrived": 100.0 * float(np.mean([self._arrived[a] for a in agents])),
        }


def _column(name: str, *index: int) -> int:
    """Column of entry ``index`` of field ``name`` in the flat observation."""
    f = features.field_slice(name)
    return f.start + int(np.ravel_multi_index(index, scene.OBS_LAYOUT[name]))


# The observation entries read each step, gathered with one call: the agent's current
# cos h (0: removed by MetaDrive), [vx, x(t−1), lane x0] and [vy, y(t−1), lane y0] (one
# hypot: speed, progress, offset d), [sin h(t−2..t), lane y1] and [cos h(t−2..t), lane x1]
# (one arctan2: headings, lane direction θ), the current lane's mask
_READ = [_column("agent_hist", H - 1, 2)]
_READ += [
    _column("agent_hist", H - 1, 4),
    _column("agent_hist", H - 2, 0),
    _column("lanes", 0, 0, 0),
]
_READ += [
    _column("agent_hist", H - 1, 5),
    _column("agent_hist", H - 2, 1),
    _column("lanes", 0, 0, 1),
]
_READ += [_column("agent_hist", H - i, 3) for i in (3, 2, 1)] + [_column("lanes", 0, 1, 1)]
_READ += [_column("agent_hist", H - i, 2) for i in (3, 2, 1)] + [_column("lanes", 0, 1, 0)]
_READ += [_column("lane_mask", 0)]
_READ += [_column("lanes", 0, 0, 1), _column("lanes", 0, 0, 0)]  # lane y0, x0 again: rows 16, 17
_READ = np.array(_READ, np.intp)


def step_readings(batch: np.ndarray) -> Dict[str, list]:
    """What the step metrics and the reward read from observations ``batch`` [K, OBS_DIM],
    in float32 like the observation, as lists of K floats: ``gone`` (MetaDrive removed the
    vehicle: zero observation), ``speed``, ``progress`` (distance moved over the last step),
    ``yaw_acc`` (second difference of the last three headings), and the current lane's
    offset ``d`` and heading error ``theta`` (0 without a lane)."""
    g = batch.take(_READ, axis=1).T  # [18, K] float32, a copy
    g[10:15:4] -= g[16:18]  # lane y1 − y0, lane x1 − x0
    speed, progress, d = np.hypot(g[1:4], g[4:7]).tolist()
    h0, h1, h2, theta = np.arctan2(g[7:11], g[11:15]).tolist()  # h(t−2), h(t−1), h(t), θ
    cos_h, mask = g[0:16:15].tolist()  # float32 values are exact as Python floats
    ok = [x > 0.5 for x in mask]
    return {
        "gone": [x == 0 for x in cos_h],
        "speed": speed,
        "progress": progress,
        "yaw_acc": yaw_acc_float32(h0, h1, h2),
        "d": [x if k else 0.0 for x, k in zip(d, ok)],
        "theta": [x if k else 0.0 for x, k in zip(theta, ok)],
    }


_PI32, _TWO_PI32, _DT2_32 = (float(np.float32(x)) for x in (np.pi, 2 * np.pi, DT**2))


def _f32(xs: list) -> list:
    """Python floats rounded to float32 (round to nearest even, as numpy's casts)."""
    return array("f", xs).tolist()


def yaw_acc_float32(h0: list, h1: list, h2: list) -> list:
    """``wrap_angle(h2 − 2·h1 + h0) / DT**2`` of float32 arrays (lists of their values), as
    numpy computes it in float32, in Python floats: a Python scalar becomes float32 (NEP 50),
    each +, −, / is done in double and rounded to float32, which gives the correctly rounded
    float32 result (double has more than 2·24 + 2 bits, so the double rounding is harmless),
    and the remainder is numpy's ``npy_divmodf`` (``_remainder``). It replaces eight ufunc calls
    on arrays of K (2-4 µs each with the caches cold after MetaDrive's step);
    ``tests/envs/test_traffic_env.py`` compares it with numpy's result bit for bit."""
    u = _f32([c - 2.0 * b for b, c in zip(h1, h2)])  # 2·h1 is exact
    u = _f32([x + a for x, a in zip(u, h0)])
    u = _f32([x + _PI32 for x in u])
    u = _f32([_remainder(x, _TWO_PI32) for x in u])
    u = _f32([x - _PI32 for x in u])
    return _f32([x / _DT2_32 for x in u])


def _remainder(x: float, y: float) -> float:
    """numpy's float remainder ``x % y`` for y > 0, before rounding: fmod(x, y) (exact), plus
    y when negative; NaN for x infinite or NaN. (numpy makes a zero +0; here it may stay −0,
    which the following subtraction of π cannot tell apart.)"""
    if x - x != 0:  # inf or NaN: numpy's fmod gives NaN
        return math.nan
    r = math.fmod(x, y)
    return r + y if r < 0 else r


def parallel_env(**kwargs: Any) -> TrafficEnv:
    """Create the RIFT traffic environment (PettingZoo ``ParallelEnv``)."""
    return TrafficEnv(**kwargs)
