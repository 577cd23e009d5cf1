"""Scene features of one traffic agent (the observation of RIFT's planner, docs/methods.md#rift-planner, #rift-on-metadrive).

Everything is expressed in the agent's *current* frame: origin at its centre, x along its
heading, y to its left, at the time of the decision. Shapes (``OBS_LAYOUT``):

- ``agent_hist (H, 6)``: [x, y, cos h, sin h, vx, vy] of the agent over the last H steps,
  oldest first, current state last (so ``agent_hist[-1] = [0, 0, 1, 0, v, 0]`` up to slip).
- ``neighbors (N, H, 6)``: the same history for the N nearest other vehicles (nearest first);
  rows of absent neighbours are zero, ``neighbor_mask (N,)`` is 1 for present ones;
  ``neighbor_size (N, 2)`` = [length, width].
- ``lanes (R, P, 2)``: R reference lanes (current, left, right), P centre-line points every
  ``LANE_SPACING`` m ahead, starting at the agent's projection on the lane;
  ``lane_mask (R,)`` 1 where the lane exists, ``lane_width (R,)`` in m.
- ``agent_size (2,)`` = [length, width], ``speed_limit (1,)`` in m/s.

``flatten`` / ``unflatten`` convert between the dict and one float32 vector of ``OBS_DIM``
entries (the order of ``OBS_LAYOUT``); ``unflatten`` works on any leading batch shape, with
numpy arrays or torch tensors (views, no copies).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping

import numpy as np

H = 10  # history steps (1 s at 10 Hz), current state last
N = 10  # nearest neighbours
R = 3  # reference lanes: current, left, right
P = 20  # lane points, every LANE_SPACING m ahead
T = 40  # future steps of a candidate (4 s at 10 Hz)
DT = 0.1  # s per step
LANE_SPACING = 2.0  # m between lane points
STATE_DIM = 6  # x, y, cos h, sin h, vx, vy

OBS_LAYOUT: "OrderedDict[str, tuple]" = OrderedDict(
    [
        ("agent_hist", (H, STATE_DIM)),
        ("neighbors", (N, H, STATE_DIM)),
        ("neighbor_mask", (N,)),
        ("neighbor_size", (N, 2)),
        ("lanes", (R, P, 2)),
        ("lane_mask", (R,)),
        ("lane_width", (R,)),
        ("agent_size", (2,)),
        ("speed_limit", (1,)),
    ]
)


def _size(shape: tuple) -> int:
    return int(np.prod(shape))


_OFFSETS: Dict[str, tuple] = {}
_start = 0
for _name, _shape in OBS_LAYOUT.items():
    _OFFSETS[_name] = (_start, _start + _size(_shape))
    _start += _size(_shape)
OBS_DIM = _start


def empty_obs() -> Dict[str, np.ndarray]:
    """A zero scene (every neighbour and lane masked) to fill in."""
    return {k: np.zeros(s, np.float32) for k, s in OBS_LAYOUT.items()}


def flatten(obs: Mapping[str, Any]) -> np.ndarray:
    """Scene dict (unbatched, shapes of ``OBS_LAYOUT``) -> float32 [OBS_DIM]."""
    missing = [k for k in OBS_LAYOUT if k not in obs]
    if missing:
        raise KeyError(f"scene obs lacks {missing}; expected keys {list(OBS_LAYOUT)}")
    parts = []
    for name, shape in OBS_LAYOUT.items():
        arr = np.asarray(obs[name], dtype=np.float32)
        if arr.shape != shape:
            raise ValueError(f"scene obs {name!r} has shape {arr.shape}, expected {shape}")
        parts.append(arr.reshape(-1))
    return np.concatenate(parts)


def unflatten(flat: Any) -> Dict[str, Any]:
    """float [..., OBS_DIM] (numpy or torch) -> dict of [..., *shape] views."""
    if flat.shape[-1] != OBS_DIM:
        raise ValueError(
            f"expected last dimension {OBS_DIM} (scene.OBS_DIM), got shape {tuple(flat.shape)}"
        )
    lead = tuple(flat.shape[:-1])
    return {
        name: flat[..., a:b].reshape(lead + OBS_LAYOUT[name]) for name, (a, b) in _OFFSETS.items()
    }


def to_frame(xy: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    """Global points [..., 2] -> the frame at ``origin`` rotated by ``heading``."""
    c, s = np.cos(heading), np.sin(heading)
    d = np.asarray(xy, np.float64) - origin
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def rotate(vec: np.ndarray, heading: float) -> np.ndarray:
    """Global vectors [..., 2] (velocities) -> directions in the frame rotated by ``heading``."""
    return to_frame(vec, np.zeros(2), heading)


def states_to_frame(states: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    """Global states [..., 5] = [x, y, h, vx, vy] -> [..., 6] rows of ``agent_hist`` layout."""
    c, s = np.cos(heading), np.sin(heading)
    dx, dy = states[..., 0] - origin[0], states[..., 1] - origin[1]
    vx, vy = states[..., 3], states[..., 4]
    rel = states[..., 2] - heading
    return np.stack(
        [
            c * dx + s * dy,
            c * dy - s * dx,
            np.cos(rel),
            np.sin(rel),
            c * vx + s * vy,
            c * vy - s * vx,
        ],
        -1,
    ).astype(np.float32)
