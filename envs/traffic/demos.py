"""Demonstrations for RIFT's stage-1 substitute (docs/methods.md#rift-on-metadrive): IDM-driven vehicles in the
same MetaDrive scenarios, logged at 10 Hz.

Every vehicle in the scene (the CBVs, which drive by IDM here, the ego AV and the IDM traffic)
gives one sample every ``every`` steps: its flat scene features (``scene.OBS_LAYOUT``) and its
ground-truth future, the next T = 40 positions in its own frame at the sample time, with a
validity mask (False where the vehicle has left the scene or the episode ended). The file
also holds per-vehicle speed / acceleration / heading series (the "target" distributions of
the realism metrics, docs/methods.md#rift-metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from regrl.envs.traffic import scene
from regrl.envs.traffic.families import family_kwargs
from regrl.envs.traffic.features import vehicle_state
from regrl.envs.traffic.scene import DT, T


@dataclass(frozen=True)
class DemoSpec:
    episodes: int = 10
    """Episodes to record (scenario seeds seed, seed+1, ...)."""
    seed: int = 0
    """First scenario seed."""
    family: str = "default"
    """Scenario family (``families.FAMILIES``); it supplies the scenario keys left None."""
    map: Optional[str] = None
    """MetaDrive scenario: intersection | roundabout | pg (None: the family's)."""
    pg_map: Optional[str] = None
    """PG block string of map pg, e.g. SrSyS (None: the family's)."""
    num_cbv: Optional[int] = None
    """Vehicles of the CBV slots (IDM-driven while recording; None: the family's)."""
    horizon: Optional[int] = None
    """Steps per episode (0.1 s each; None: the family's)."""
    every: int = 2
    """Record a sample every this many steps."""
    traffic_density: Optional[float] = None
    """MetaDrive traffic density (None: the family's)."""

    def resolved(self) -> "DemoSpec":
        """This spec with every scenario key the family's where it is None."""
        from dataclasses import replace

        keys = ("map", "pg_map", "num_cbv", "horizon", "traffic_density")
        scenario = family_kwargs(self.family, **{k: getattr(self, k) for k in keys})
        return replace(self, **{k: scenario[k] for k in keys})


class _Episode:
    def __init__(self):
        self.states: Dict[str, Dict[int, np.ndarray]] = {}
        self.samples: List[tuple] = []  # (vehicle id, t, flat obs, role)

    def log(self, env, t: int, sample: bool) -> None:
        vehicles = env.vehicles()
        for v in vehicles:
            self.states.setdefault(v.id, {})[t] = vehicle_state(v)
            if sample:
                self.samples.append((v.id, t, env.scene_of(v, vehicles), env.vehicle_role(v)))

    def futures(self):
        """Ground-truth futures [S, T, 2] in each sample's frame and their masks [S, T]."""
        fut = np.zeros((len(self.samples), T, 2), np.float32)
        mask = np.zeros((len(self.samples), T), bool)
        for i, (vid, t, _, _) in enumerate(self.samples):
            track = self.states[vid]
            now = track[t]
            for k in range(1, T + 1):
                if t + k in track:
                    fut[i, k - 1] = scene.to_frame(track[t + k][:2], now[:2], now[2])
                    mask[i, k - 1] = True
        return fut, mask

    def series(self):
        """Per-vehicle speed, acceleration (finite difference) and heading series."""
        out = {"speed": [], "acc": [], "heading": [], "track": []}
        for n, (_vid, track) in enumerate(self.states.items()):
            steps = sorted(track)
            st = np.stack([track[t] for t in steps])
            speed = np.hypot(st[:, 3], st[:, 4])
            out["speed"].append(speed)
            out["acc"].append(np.diff(speed, prepend=speed[0]) / DT)
            out["heading"].append(st[:, 2])
            out["track"].append(np.full(len(steps), n))
        return out


def record_episode(env, seed: int, spec: DemoSpec) -> _Episode:
    spec = spec.resolved()
    env.reset(seed=seed)
    ep = _Episode()
    for t in range(spec.horizon + 1):
        ep.log(env, t, sample=(t % spec.every == 0))
        if not env.agents or t == spec.horizon:
            break
        env.step({a: env.action_space(a).sample() * 0 for a in env.agents})
    return ep


def record_demos(
    spec: DemoSpec, progress: Optional[Callable[[str], None]] = None, env=None
) -> dict:
    """Run ``spec.episodes`` IDM episodes; returns the arrays written by ``save_demos``.
    ``env``: reuse an open ``TrafficEnv`` (its map / CBV count / density win over ``spec``'s;
    it is switched to IDM-driven CBVs and left open) instead of building one (MetaDrive
    allows one engine per process)."""
    from regrl.envs.traffic.env import TrafficEnv

    spec = spec.resolved()
    owned = env is None
    if owned:
        env = TrafficEnv(
            family=spec.family,
            num_cbv=spec.num_cbv,
            map=spec.map,
            pg_map=spec.pg_map,
            horizon=spec.horizon + 1,
            seed=0,
            action_mode="raw",
            traffic_density=spec.traffic_density,
        )
    env.idm_cbvs = True
    parts: Dict[str, list] = {
        k: []
        for k in (
            "obs",
            "future",
            "future_mask",
            "role",
            "episode",
            "speed",
            "acc",
            "heading",
            "track",
        )
    }
    tracks = 0
    try:
        for e in range(spec.episodes):
            ep = record_episode(env, spec.seed + e, spec)
            fut, mask = ep.futures()
            keep = mask.any(1)
            parts["obs"].append(np.stack([s[2] for s in ep.samples])[keep])
            parts["future"].append(fut[keep])
            parts["future_mask"].append(mask[keep])
            parts["role"].append(np.array([s[3] for s in ep.samples], np.int8)[keep])
            parts["episode"].append(np.full(int(keep.sum()), e, np.int32))
            series = ep.series()
            for k in ("speed", "acc", "heading"):
                parts[k].append(np.concatenate(series[k]).astype(np.float32))
            parts["track"].append(np.concatenate(series["track"]) + tracks)
            tracks += len(series["track"])
            if progress:
                progress(
                    f"episode {e + 1}/{spec.episodes}: {int(keep.sum())} samples, "
                    f"{len(series['track'])} vehicles"
                )
    finally:
        if owned:
            env.close()
    return {k: np.concatenate(v) for k, v in parts.items()}


def save_demos(path, data: dict, spec: DemoSpec) -> None:
    import json
    from dataclasses import asdict

    np.savez_compressed(
        path,
        **data,
        spec=json.dumps(asdict(spec.resolved())),
        obs_layout=json.dumps({k: list(v) for k, v in scene.OBS_LAYOUT.items()}),
    )
