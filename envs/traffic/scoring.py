"""RIFT candidate scoring: a cheap forward simulation of every candidate trajectory of one
agent at one state, giving the group returns R_g of RIFT's group-relative advantage
(Chen et al. 2025, "RIFT: Closed-Loop RL Fine-Tuning for Realistic and Controllable Traffic
Simulation", arXiv 2505.03344; docs/methods.md#rift-advantage steps 2-7 and #rift-reward; official code
``traj_evaluator.py::get_grpo_advantage`` and ``reward_model.py::DenseRewardModel``).

Differences to the official code, all forced by the offline CPU setting (docs/methods.md#rift-on-metadrive):
- the candidate is assumed to be tracked perfectly: speed, acceleration, yaw rate and yaw
  acceleration are finite differences of the candidate itself (RIFT runs ``TrackPropagate``);
- neighbours are forecast with a kinematic bicycle model holding their last control, like
  RIFT (PDM-Lite's ``forecast_other_vehicles``), but the control (steering angle, acceleration)
  is recovered from the last two observed states since the scene holds no controls
  (``forecast="bicycle"``, the default; ``"constant_velocity"`` keeps the earlier forecast);
  their boxes are inflated 1.1× (``bbox_inflation_ratio``), the candidate's box is not;
- collision is a vectorised separating-axis test of oriented boxes (RIFT: shapely STRtree);
- off-road means outside every observed reference lane, a lane being the set of points within
  width/2 of its centre polyline, whose first and last segments are extended indefinitely
  (the scene only sees 38 m of lane; RIFT rasterises the map's lane polygons).

All functions are numpy-only and vectorised over candidates G, steps T and neighbours N.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from regrl.envs.traffic.scene import DT, R, unflatten

GAMMA = 0.98
BBOX_INFLATION = 1.1
HALF_PI = np.pi / 2


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [−π, π)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


# ----------------------------------------------------------------------------- dense reward
# RIFT (arXiv 2505.03344) DenseRewardModel, docs/methods.md#rift-reward. d = |lateral offset| (m),
# theta = |heading error| (rad), v = speed (m/s), a = acceleration (m/s²), yaw_acc (rad/s²).


def collision_reward(collision: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R_collision = −(20 + |v|)·collision (RIFT ``DenseRewardModel``)."""
    return -(20.0 + np.abs(v)) * collision


def offroad_reward(offroad: np.ndarray) -> np.ndarray:
    """R_offroad = −5·offroad (RIFT ``DenseRewardModel``)."""
    return -5.0 * offroad


def comfort_reward(a: np.ndarray, yaw_acc: np.ndarray) -> np.ndarray:
    """R_comfort = −0.8·(1[|a| > 4] + 1[|ω̇| > 4]) (RIFT ``DenseRewardModel``)."""
    return -0.8 * ((np.abs(a) > 4).astype(np.float64) + (np.abs(yaw_acc) > 4))


def lane_align_reward(theta: np.ndarray, v: np.ndarray, cos=None) -> np.ndarray:
    """R_l_align = 0.5·(min(cos θ, 0) + 0.05·min(cos θ·v, 0) + 0.25·(1 − θ/(π/2)))
    (RIFT ``DenseRewardModel``); ``cos`` = cos θ if already computed."""
    cos = np.cos(theta) if cos is None else cos
    return 0.5 * (np.minimum(cos, 0) + 0.05 * np.minimum(cos * v, 0) + 0.25 * (1 - theta / HALF_PI))


def lane_center_reward(d: np.ndarray, theta: np.ndarray, cos=None) -> np.ndarray:
    """R_l_center = −0.6·1[cos θ > 0.5]·(|d| − 0.05 / exp(|d| − 0.5)) (RIFT ``DenseRewardModel``);
    ``cos`` = cos θ if already computed."""
    d = np.abs(d)
    cos = np.cos(theta) if cos is None else cos
    return -0.6 * (cos > 0.5) * (d - 0.05 / np.exp(d - 0.5))


def velocity_reward(theta: np.ndarray, v: np.ndarray, cos=None) -> np.ndarray:
    """R_velocity = 0.1·max(cos θ, 0)·1[3 < |v| < 20]·|v| (RIFT ``DenseRewardModel``);
    ``cos`` = cos θ if already computed."""
    speed = np.abs(v)
    cos = np.cos(theta) if cos is None else cos
    return 0.1 * np.maximum(cos, 0) * ((speed > 3) & (speed < 20)) * speed


def timestep_reward(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """R_timestep = −0.1·1[|v| > 0 or |a| > 0] (RIFT ``DenseRewardModel``)."""
    return -0.1 * ((np.abs(v) > 0) | (np.abs(a) > 0))


def dense_reward(*, d, theta, v, a, yaw_acc, collision, offroad) -> np.ndarray:
    """r = sum of the seven DenseRewardModel terms (RIFT arXiv 2505.03344, docs/methods.md#rift-reward);
    ``d`` and ``theta`` may be signed (absolute values are taken)."""
    d, theta = np.abs(d), np.abs(theta)
    cos = np.cos(theta)  # shared by three terms
    return (
        collision_reward(collision, v)
        + offroad_reward(offroad)
        + comfort_reward(a, yaw_acc)
        + lane_align_reward(theta, v, cos)
        + lane_center_reward(d, theta, cos)
        + velocity_reward(theta, v, cos)
        + timestep_reward(v, a)
    )


def dense_reward_rows(*, d, theta, v, a, yaw_acc, collision, offroad) -> list:
    """``dense_reward`` of a few rows (the env's K agents of one step), inputs [K] (lists of
    floats or arrays): the same operations in the same order in Python arithmetic (IEEE
    double), cos and exp by ``math`` (numpy's may differ in the last bit), since numpy's
    per-call overhead dominates ~50 calls on arrays of 2."""
    d, theta = ([abs(x) for x in _floats(col)] for col in (d, theta))
    cos = [math.cos(x) for x in theta]  # θ from arctan2: finite or NaN
    decay = [math.exp(x - 0.5) if x < 700.0 else math.inf for x in d]  # np.exp's overflow
    rows = zip(d, theta, cos, decay, *(_floats(x) for x in (v, a, yaw_acc, collision, offroad)))
    out = []
    for dk, th, c, e, vk, ak, yk, hit, off in rows:
        speed, acc = abs(vk), abs(ak)
        r = -(20.0 + speed) * hit  # collision_reward
        r += -5.0 * off  # offroad_reward
        r += -0.8 * (float(acc > 4) + float(abs(yk) > 4))  # comfort_reward
        r += 0.5 * (_min0(c) + 0.05 * _min0(c * vk) + 0.25 * (1 - th / HALF_PI))  # lane align
        r += -0.6 * (c > 0.5) * (dk - 0.05 / e)  # lane_center_reward
        r += 0.1 * _max0(c) * (3 < speed < 20) * speed  # velocity_reward
        r += -0.1 * (speed > 0 or acc > 0)  # timestep_reward
        out.append(r)
    return out


def _floats(x) -> list:
    """A list of Python floats of a [K] list or array."""
    return x if isinstance(x, list) else np.asarray(x, np.float64).tolist()


def _min0(x: float) -> float:
    """``np.minimum(x, 0)`` of a finite float."""
    return x if x < 0 else 0.0


def _max0(x: float) -> float:
    """``np.maximum(x, 0)`` of a finite float."""
    return x if x > 0 else 0.0


def discounted_returns(
    reward: np.ndarray, collision: np.ndarray, gamma: float = GAMMA
) -> np.ndarray:
    """R_g = Σ_t γ^t r_t over [G, T], stopping at the first collision step *inclusive*: the
    collision step's reward (with its −(20+|v|) penalty) counts, later steps do not
    (RIFT ``get_grpo_advantage``, docs/methods.md#rift-advantage step 7)."""
    collision = np.asarray(collision)
    hit_before = collision.cumsum(-1) - collision > 0  # a collision at an earlier step
    disc = gamma ** np.arange(reward.shape[-1])
    return np.sum(np.where(hit_before, 0.0, reward) * disc, axis=-1)


# ----------------------------------------------------------------------------- kinematics


def _step_diff(first, x: np.ndarray) -> np.ndarray:
    """``np.diff`` of [first, x_0, …, x_{T−1}] along the last axis of x [G, T] (``first`` a
    float or one per row [G])."""
    out = np.empty_like(x)
    out[:, 0] = x[:, 0] - first
    out[:, 1:] = x[:, 1:] - x[:, :-1]
    return out


def candidate_kinematics(traj: np.ndarray, v0, yaw_rate0, dt: float = DT) -> Dict[str, np.ndarray]:
    """Perfect tracking of candidates ``traj`` [G, T, 2] (agent frame, the agent at the origin
    heading +x with speed ``v0`` and yaw rate ``yaw_rate0``, floats or one per candidate
    [G]): heading of each step's
    displacement (held while the displacement is < 1 mm), speed, acceleration, yaw rate and
    yaw acceleration, all [G, T]."""
    G, T, _ = traj.shape
    pts = np.concatenate([np.zeros((G, 1, 2)), traj], axis=1)
    disp = pts[:, 1:] - pts[:, :-1]  # np.diff and np.linalg.norm's floats, less overhead
    sq = disp * disp
    step = np.sqrt(sq[..., 0] + sq[..., 1])
    raw = np.arctan2(disp[..., 1], disp[..., 0])
    moving = step > 1e-3
    # hold the last heading while standing still: index of the latest moving step so far
    idx = np.where(moving, np.arange(T)[None], -1)
    idx = np.maximum.accumulate(idx, axis=1)
    latest = raw[np.arange(G)[:, None], np.maximum(idx, 0)]  # np.take_along_axis, leaner
    heading = np.where(idx >= 0, latest, 0.0)
    speed = step / dt
    acc = _step_diff(v0, speed) / dt
    yaw_rate = wrap_angle(_step_diff(0.0, heading)) / dt
    yaw_acc = _step_diff(yaw_rate0, yaw_rate) / dt
    return {
        "heading": heading,
        "speed": speed,
        "acc": acc,
        "yaw_rate": yaw_rate,
        "yaw_acc": yaw_acc,
    }


def current_motion(agent_hist: np.ndarray, dt: float = DT) -> Tuple[float, float]:
    """Speed and yaw rate of the agent now, from the last two rows of ``agent_hist`` [H, 6]
    (floats; arrays [K] of K agents' ``agent_hist`` [K, H, 6])."""
    v0 = np.hypot(agent_hist[..., -1, 4], agent_hist[..., -1, 5])
    prev_heading = np.arctan2(agent_hist[..., -2, 3], agent_hist[..., -2, 2])
    now_heading = np.arctan2(agent_hist[..., -1, 3], agent_hist[..., -1, 2])
    yaw_rate = wrap_angle(now_heading - prev_heading) / dt
    if np.ndim(v0):
        return v0, yaw_rate
    return float(v0), float(yaw_rate)


# np.clip's ufunc without its Python wrapper (the same values)
_clip = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", np.clip)
WHEELBASE = 2.7  # m, kinematic bicycle wheelbase L of a neighbour (a mid-size car)
MAX_STEER = 0.7  # rad, |δ| held by the bicycle forecast (MetaDrive's max is 40° = 0.698)
ACC_RANGE = (-8.0, 4.0)  # m/s², held acceleration (finite differences of 0.1 s steps are noisy)


def forecast_constant_velocity(neighbors: np.ndarray, T: int, dt: float = DT):
    """Constant-velocity forecast from each neighbour's last state [N, H, 6]: centres
    [N, T, 2] at steps 1..T and headings [N, T] (held)."""
    last = neighbors[:, -1]
    t = dt * np.arange(1, T + 1)
    centres = last[:, None, 0:2] + last[:, None, 4:6] * t[None, :, None]
    heading = np.arctan2(last[:, 3], last[:, 2])
    return centres, np.repeat(heading[:, None], T, axis=1)


def bicycle_rollout(
    x, y, heading, v, acc, steer, T: int, dt: float = DT, wheelbase: float = WHEELBASE
):
    """Kinematic bicycle holding steering ``steer`` δ and acceleration ``acc`` for T steps of
    ``dt``, all inputs [N], from reference point (x, y) (the observed centre stands in for the
    rear axle): ψ' = v·tan(δ)/L, v' = a (speed stops at 0).
    Each step is integrated exactly along its arc of curvature tan(δ)/L, so constant δ traces
    a circle of radius L/tan(δ). Returns positions [N, T, 2] and headings [N, T]."""
    kappa = np.tan(steer) / wheelbase
    t = dt * np.arange(T + 1)
    stop = np.where(acc < 0, -v / np.minimum(acc, -1e-12), np.inf)[:, None]  # time of v = 0
    tt = np.minimum(t, stop)
    s = v[:, None] * tt + 0.5 * acc[:, None] * tt**2  # arc length
    ds = s[:, 1:] - s[:, :-1]  # [N, T]
    psi = heading[:, None] + kappa[:, None] * s  # [N, T+1]
    mid = 0.5 * (psi[:, 1:] + psi[:, :-1])
    chord = ds * np.sinc(kappa[:, None] * ds / (2 * np.pi))  # 2 sin(Δψ/2)/κ
    xy = np.stack(
        [
            x[:, None] + (chord * np.cos(mid)).cumsum(1),
            y[:, None] + (chord * np.sin(mid)).cumsum(1),
        ],
        -1,
    )
    return xy, psi[:, 1:]


def last_control(neighbors: np.ndarray, dt: float = DT, wheelbase: float = WHEELBASE):
    """Speed, acceleration and steering angle [N] of each neighbour now, from its last two
    states [N, H, 6]: a = Δv/dt, δ = atan(L·ω/v) with ω = Δψ/dt (δ = 0 below 0.5 m/s, where
    the heading is noise); both clipped to plausible ranges."""
    prev, last = neighbors[:, -2], neighbors[:, -1]
    v = np.hypot(last[:, 4], last[:, 5])
    acc = _clip((v - np.hypot(prev[:, 4], prev[:, 5])) / dt, *ACC_RANGE)
    omega = wrap_angle(np.arctan2(last[:, 3], last[:, 2]) - np.arctan2(prev[:, 3], prev[:, 2])) / dt
    steer = np.where(v > 0.5, np.arctan(wheelbase * omega / np.maximum(v, 0.5)), 0.0)
    return v, acc, _clip(steer, -MAX_STEER, MAX_STEER)


def forecast_bicycle(neighbors: np.ndarray, T: int, dt: float = DT):
    """RIFT's neighbour forecast (docs/methods.md#rift-advantage step 4): a kinematic bicycle holding the
    last control, recovered by ``last_control``; centres [N, T, 2], headings [N, T]."""
    last = neighbors[:, -1]
    v, acc, steer = last_control(neighbors, dt)
    return bicycle_rollout(
        last[:, 0], last[:, 1], np.arctan2(last[:, 3], last[:, 2]), v, acc, steer, T, dt
    )


FORECASTS = {"bicycle": forecast_bicycle, "constant_velocity": forecast_constant_velocity}


def forecast_neighbors(neighbors: np.ndarray, T: int, dt: float = DT, forecast: str = "bicycle"):
    """Neighbour centres [N, T, 2] at steps 1..T and headings [N, T] by the named forecast
    (``FORECASTS``: bicycle | constant_velocity)."""
    if forecast not in FORECASTS:
        raise ValueError(f"neighbour forecast must be one of {sorted(FORECASTS)}, got {forecast!r}")
    return FORECASTS[forecast](np.asarray(neighbors, np.float64), T, dt)


# ----------------------------------------------------------------------------- geometry


def boxes_overlap(c1, h1, half1, c2, h2, half2) -> np.ndarray:
    """Separating-axis test of oriented rectangles, broadcast over leading dims: centres
    [..., 2], headings [...], half extents [..., 2] = (half length, half width). Two boxes
    overlap iff none of the four edge normals separates their projections; the projection
    radii are written with the relative angle, so no small-axis reductions are needed."""
    dx, dy = c2[..., 0] - c1[..., 0], c2[..., 1] - c1[..., 1]
    l1, w1, l2, w2 = half1[..., 0], half1[..., 1], half2[..., 0], half2[..., 1]
    co1, si1, co2, si2 = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    k = np.abs(co1 * co2 + si1 * si2)  # |cos(h2 − h1)|
    m = np.abs(si1 * co2 - co1 * si2)  # |sin(h2 − h1)|
    sep = np.abs(dx * co1 + dy * si1) > l1 + l2 * k + w2 * m  # box-1 long axis
    sep |= np.abs(dy * co1 - dx * si1) > w1 + l2 * m + w2 * k  # box-1 normal
    sep |= np.abs(dx * co2 + dy * si2) > l2 + l1 * k + w1 * m  # box-2 long axis
    sep |= np.abs(dy * co2 - dx * si2) > w2 + l1 * m + w1 * k  # box-2 normal
    return ~sep


def collision_matrix(
    traj,
    heading,
    agent_size,
    neighbors,
    neighbor_mask,
    neighbor_size,
    inflation: float = BBOX_INFLATION,
    forecast: str = "bicycle",
) -> np.ndarray:
    """[G, T] bool: the candidate's box overlaps a present neighbour's inflated box, the
    neighbours moved by ``forecast`` (see ``forecast_neighbors``). Arrays are laid out
    [neighbour, G·T] so numpy's inner loops run over all candidate points."""
    G, T, _ = traj.shape
    present = np.asarray(neighbor_mask) > 0.5
    if not present.any():
        return np.zeros((G, T), bool)
    nb_c, nb_h = forecast_neighbors(
        np.asarray(neighbors)[present], T, forecast=forecast
    )  # [n, T, 2], [n, T]
    size = np.asarray(neighbor_size, np.float64)[present]
    return _overlaps(traj, heading, agent_size, nb_c, nb_h, size, inflation)


def _overlaps(traj, heading, agent_size, nb_c, nb_h, neighbor_size, inflation) -> np.ndarray:
    """``collision_matrix`` of candidates ``traj`` [G, T, 2] with the forecast neighbours
    (centres [n, T, 2], headings [n, T], sizes [n, 2], n >= 1)."""
    G, T, _ = traj.shape
    f32 = np.float32  # metre-scale coordinates: float32 is exact enough and twice as fast
    nb_half = (0.5 * inflation * neighbor_size).astype(f32)
    c2 = np.tile(nb_c.astype(f32), (1, G, 1))  # [n, G·T, 2]
    hit = boxes_overlap(
        np.asarray(traj, f32).reshape(1, G * T, 2),
        np.asarray(heading, f32).reshape(1, G * T),
        (0.5 * np.asarray(agent_size, np.float64)).astype(f32)[None, None],
        c2,
        np.tile(nb_h.astype(f32), (1, G)),
        nb_half[:, None],
    )  # [n, G·T]
    return hit.any(0).reshape(G, T)


def _segments(line: np.ndarray):
    """Per segment of a polyline [..., P, 2] (one, or several stacked along leading axes;
    float32 [..., S, 1] columns): start point, unit direction, and arc-length limits; the
    first segment reaches back and the last one forward indefinitely."""
    line = np.asarray(line, np.float32)
    seg = line[..., 1:, :] - line[..., :-1, :]
    length = np.hypot(seg[..., 0], seg[..., 1])
    u = seg / np.maximum(length, 1e-9)[..., None]
    lo, hi = np.zeros_like(length), length.copy()
    lo[..., 0], hi[..., -1] = -np.inf, np.inf
    cols = (line[..., :-1, 0], line[..., :-1, 1], u[..., 0], u[..., 1], lo, hi)
    return tuple(x[..., None].copy() for x in cols)


def _segment_headings(line) -> np.ndarray:
    """Heading of each segment of a polyline [..., P, 2] in float32 -> [..., S]."""
    line = np.asarray(line, np.float32)
    seg = line[..., 1:, :] - line[..., :-1, :]
    return np.arctan2(seg[..., 1], seg[..., 0])


def segment_offsets(px, py, line):
    """Squared distance and signed lateral offset (left +) of the points ``px``, ``py`` [Q]
    to every segment of ``line`` [P, 2] -> two arrays [S, Q]. Points run along the inner,
    contiguous axis: numpy's inner loops then run over all Q points (3-10x faster than an
    inner axis of S = 19 segments)."""
    return _offsets(px, py, _segments(line))


def _offsets(px, py, segments: tuple):
    """``segment_offsets`` of the segments ``_segments`` returned (of one polyline, or of
    several laid one after another along the segment axis)."""
    ax, ay, ux, uy, lo, hi = segments
    # s = rx·ux + ry·uy, lat = ux·ry − uy·rx, out = s − clip(s, lo, hi), out² + lat²: the
    # same float32 operations in the same order, written in place to save [S, Q] temporaries
    rx, ry = px - ax, py - ay
    s = rx * ux
    s += ry * uy
    lat = ux * ry
    lat -= np.multiply(uy, rx, out=ry)
    out = np.maximum(s, lo)
    np.minimum(out, hi, out=out)
    np.subtract(s, out, out=out)
    out *= out
    out += np.multiply(lat, lat, out=rx)
    return out, lat


def lane_relations(
    points: np.ndarray, lanes: np.ndarray, own: np.ndarray, present: np.ndarray = None
):
    """Distance [G, T, R] of candidate points ``points`` [G, T, 2] to every lane polyline
    ``lanes`` [R, P, 2] (end segments extended indefinitely; +inf for lanes not
    ``present`` [R]), and the signed lateral offset and heading [G, T] of the nearest segment
    of each candidate's own lane ``own`` [G] (0 where that lane is absent)."""
    G, T, _ = points.shape
    pts = np.asarray(points, np.float32).reshape(G * T, 2)
    px, py = pts[:, 0].copy(), pts[:, 1].copy()
    own_q = np.repeat(np.asarray(own), T)  # lane of each point
    dist = np.full((G * T, lanes.shape[0]), np.inf, np.float32)
    lat_own = np.zeros(G * T, np.float32)
    head_own = np.zeros(G * T, np.float32)
    present = np.ones(lanes.shape[0], bool) if present is None else np.asarray(present, bool)
    for r in present.nonzero()[0]:
        dist2, lat = segment_offsets(px, py, lanes[r])  # [S, Q]
        dist[:, r] = np.sqrt(dist2.min(0))
        q = (own_q == r).nonzero()[0]
        if len(q):
            if q[-1] - q[0] + 1 == len(q):  # contiguous (lanes-major candidates): views
                q = slice(q[0], q[-1] + 1)
            j = dist2[:, q].argmin(0)
            lat_own[q] = lat[:, q][j, np.arange(len(j))]  # np.take_along_axis, leaner
            head_own[q] = _segment_headings(lanes[r])[j]
    return dist.reshape(G, T, -1), lat_own.reshape(G, T), head_own.reshape(G, T)


def lane_offroad(points, lanes, own, present, half_width):
    """``lane_relations``'s use in scoring with less of its work: off-road [G, T] (no present
    lane within ``half_width`` [R] float64 of the point: ``~np.any(dist <= half_width)``) and
    the lateral offset and heading [G, T] of the nearest segment of each candidate's own lane
    ``own`` [G]. Each point is measured against its own lane first (which the offset needs
    anyway); only the points outside it are measured against the present lanes, all in one
    call (their own lane again, which cannot change the answer). The same float32 operations
    per point and segment as ``lane_relations`` (``segment_offsets`` on fewer columns), so
    the same bits; in the intersection scenes it measures about 0.6 times as many pairs.
    Lanes-major candidates with the same number on every present lane (the env's usual
    case) go through their own lanes in one batched call."""
    G, T, _ = points.shape
    own = np.asarray(own)
    rs = np.asarray(present, bool).nonzero()[0]
    if len(rs) and G % len(rs) == 0 and np.array_equal(own, np.repeat(rs, G // len(rs))):
        pts = np.asarray(points, np.float32).reshape(len(rs), -1, 2)
        px, py = pts[..., 0].copy(), pts[..., 1].copy()  # [L, Q]: lane l's own points
        segments = _segments(np.asarray(lanes)[rs])  # [L, S, 1] columns
        heading = _segment_headings(np.asarray(lanes)[rs])  # [L, S]
        dist2, lat = _offsets(px[:, None], py[:, None], segments)  # [L, S, Q]
        j = dist2.argmin(1)[:, None]
        within = np.sqrt(dist2.min(1)) <= half_width[rs][:, None]
        lat_own = np.take_along_axis(lat, j, 1)
        head_own = np.take_along_axis(heading[..., None], j, 1)
        stacked = tuple(x.reshape(-1, 1) for x in segments)  # the lanes one after another
        px, py, within = px.reshape(-1), py.reshape(-1), within.reshape(-1)
    else:
        px, py, within, lat_own, head_own, stacked = _own_lane_rows(
            points, lanes, own, rs, half_width
        )
    q = (~within).nonzero()[0]
    if len(q) and len(rs):
        dist2, _ = _offsets(px[q], py[q], stacked)  # [len(rs)·S, Q]
        dist = np.sqrt(dist2.reshape(len(rs), -1, len(q)).min(1))  # [len(rs), Q]
        within[q] = (dist <= half_width[rs][:, None]).any(0)
    return ~within.reshape(G, T), lat_own.reshape(G, T), head_own.reshape(G, T)


def _own_lane_rows(points, lanes, own, rs, half_width) -> tuple:
    """``lane_offroad``'s first pass for candidates in any order (those of an absent lane
    are not within and have zero offset and heading): the points' x and y [G·T], whether
    within their own lane, the offset and heading there, and the segments of the present
    lanes ``rs`` one after another."""
    G, T, _ = points.shape
    pts = np.asarray(points, np.float32).reshape(G * T, 2)
    px, py = pts[:, 0].copy(), pts[:, 1].copy()
    own_q = np.repeat(own, T)  # lane of each point
    within = np.zeros(G * T, bool)
    lat_own = np.zeros(G * T, np.float32)
    head_own = np.zeros(G * T, np.float32)
    segments = [_segments(lanes[r]) for r in rs.tolist()]
    for r, seg in zip(rs.tolist(), segments):
        q = (own_q == r).nonzero()[0]
        if not len(q):
            continue
        dist2, lat = _offsets(px[q], py[q], seg)  # [S, Q_r]
        j = dist2.argmin(0)
        cols = np.arange(len(j))
        within[q] = np.sqrt(dist2[j, cols]) <= half_width[r]  # the column minimum
        lat_own[q] = lat[j, cols]
        head_own[q] = _segment_headings(lanes[r])[j]
    stacked = tuple(np.concatenate(x) for x in zip(*segments)) if segments else None
    return px, py, within, lat_own, head_own, stacked


# ----------------------------------------------------------------------------- scoring


def _as_dict(obs: Any) -> Mapping[str, np.ndarray]:
    if isinstance(obs, Mapping):
        return {k: np.asarray(v, np.float64) for k, v in obs.items()}
    return unflatten(np.asarray(obs, np.float64))  # one conversion, then views


def _check_candidates(traj: np.ndarray, valid: np.ndarray) -> None:
    if traj.ndim != 3 or traj.shape[-1] != 2:
        raise ValueError(f"traj must be [G, T, 2], got shape {traj.shape}")
    G = traj.shape[0]
    if G % R or valid.shape != (G,):
        raise ValueError(
            f"need G = R·M candidates (R={R}) and valid_mask [G]; got traj "
            f"{traj.shape}, valid_mask {valid.shape}"
        )


def _scored_rows(valid: np.ndarray) -> np.ndarray:
    """Candidates that are simulated: the valid ones (all if none is valid)."""
    return valid.nonzero()[0] if valid.any() else np.arange(len(valid))


def score_candidates(
    traj: np.ndarray,
    obs: Any,
    valid_mask: np.ndarray,
    gamma: float = GAMMA,
    forecast: str = "bicycle",
) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Returns R_g [G] (float32; 0 for invalid candidates) of candidates ``traj`` [G, T, 2]
    (agent frame, G = R·M lanes-major: candidate g follows reference lane g // M) of one agent
    whose scene is ``obs`` (``scene`` dict or flat [OBS_DIM] vector), neighbours moved by
    ``forecast`` (bicycle | constant_velocity), and details [G, T]:
    ``collision``, ``offroad`` (bool), ``reward`` and the kinematics (zero for invalid
    candidates, which are not simulated: every step of a candidate depends on that candidate
    only, so leaving them out changes no valid candidate's numbers; an absent reference lane
    made a third of the work in the intersection scenes). RIFT arXiv 2505.03344,
    docs/methods.md#rift-advantage (steps 2-7) and #rift-reward; see the module docstring for the simplifications."""
    o = _as_dict(obs)
    traj = np.asarray(traj, np.float64)
    valid = np.asarray(valid_mask, bool)
    _check_candidates(traj, valid)
    G = traj.shape[0]
    rows = _scored_rows(valid)
    batch = {k: v[None] for k, v in o.items()}
    returns, sub = _score_rows([traj[rows]], [rows // (G // R)], batch, gamma, forecast, True)
    out = np.zeros(G, np.float32)
    out[rows] = np.where(valid[rows], returns, 0.0)
    details = {k: np.zeros((G,) + v.shape[1:], v.dtype) for k, v in sub.items()}
    for k, v in sub.items():
        details[k][rows] = v
    return out, details


def score_candidates_batch(
    trajs: np.ndarray,
    obs: np.ndarray,
    valid_mask: np.ndarray,
    gamma: float = GAMMA,
    forecast: str = "bicycle",
) -> np.ndarray:
    """``score_candidates``'s returns [K, G] float32 for K agents at once: candidates
    ``trajs`` [K, G, T, 2] of agents with flat scenes ``obs`` [K, OBS_DIM] and validity
    ``valid_mask`` [K, G]. The same numbers as K separate calls (every quantity of a
    candidate depends only on it and its agent's scene); the kinematics, the neighbour
    forecast, the reward and the returns of all agents' candidates are each computed in one
    numpy call, which saves most of the per-call overhead of these small arrays."""
    trajs = np.asarray(trajs, np.float64)
    valid = np.asarray(valid_mask, bool)
    if trajs.ndim != 4 or valid.shape != trajs.shape[:2]:
        raise ValueError(
            f"need trajs [K, G, T, 2] and valid_mask [K, G]; got {trajs.shape}, {valid.shape}"
        )
    for traj, v in zip(trajs, valid):
        _check_candidates(traj, v)
    o = unflatten(np.asarray(obs, np.float64))
    if o["agent_hist"].shape[:1] != trajs.shape[:1]:
        raise ValueError(f"need obs [K, OBS_DIM] of K = {len(trajs)} agents, got {np.shape(obs)}")
    K, G = valid.shape
    rows = [_scored_rows(v) for v in valid]
    returns, _ = _score_rows(
        [t[r] for t, r in zip(trajs, rows)], [r // (G // R) for r in rows], o, gamma, forecast
    )
    out = np.zeros((K, G), np.float32)
    for k, (r, ret) in enumerate(zip(rows, returns)):
        if valid[k, r[0]]:  # rows are the valid candidates, or all when none is valid (0)
            out[k, r] = ret
    return out


def _score_rows(trajs: list, owns: list, o, gamma: float, forecast: str, details=False):
    """Discounted returns (a list of [g_k] float64) of the candidates ``trajs[k]`` [g_k, T, 2]
    of agent k following reference lanes ``owns[k]`` [g_k] in the batched scene dict ``o``
    ([K, ...] fields), and (if ``details``) the details [g_0, T] of agent 0
    (``score_candidates``). Lane geometry and boxes are per agent; the rest runs on all
    candidates at once."""
    sizes = [len(t) for t in trajs]
    bounds = np.cumsum([0] + sizes)
    traj = np.concatenate(trajs)
    agent = np.repeat(np.arange(len(trajs)), sizes)
    v0, yaw_rate0 = current_motion(o["agent_hist"])
    kin = candidate_kinematics(traj, v0[agent], yaw_rate0[agent])
    collision = _collisions(traj, kin["heading"], o, bounds, forecast)
    offroad, d, lane_heading = (np.empty(traj.shape[:2], t) for t in (bool, np.float32, np.float32))
    half_width = 0.5 * o["lane_width"]  # [K, R] float64
    for k, own in enumerate(owns):
        rel = lane_offroad(
            traj[bounds[k] : bounds[k + 1]],
            o["lanes"][k],
            own,
            o["lane_mask"][k] > 0.5,
            half_width[k],
        )
        for out, x in zip((offroad, d, lane_heading), rel):
            out[bounds[k] : bounds[k + 1]] = x
    theta = wrap_angle(kin["heading"] - lane_heading)
    reward = dense_reward(
        d=d,
        theta=theta,
        v=kin["speed"],
        a=kin["acc"],
        yaw_acc=kin["yaw_acc"],
        collision=collision,
        offroad=offroad,
    )
    returns = np.split(discounted_returns(reward, collision, gamma), bounds[1:-1])
    if not details:
        return returns, None
    out = {
        "collision": collision,
        "offroad": offroad,
        "reward": reward,
        "delta_dis": d,
        "delta_angle": theta,
        **kin,
    }
    return returns[0], {k: v[: bounds[1]] for k, v in out.items()}


def _collisions(traj, heading, o, bounds, forecast: str) -> np.ndarray:
    """``collision_matrix`` [g, T] of the candidates of every agent (rows ``bounds[k]`` to
    ``bounds[k + 1]`` of ``traj`` belong to agent k of the batched scene ``o``); the present
    neighbours of all agents are forecast with one call."""
    present = o["neighbor_mask"] > 0.5  # [K, N]
    out = np.zeros(traj.shape[:2], bool)
    if not present.any():
        return out
    T = traj.shape[1]
    nb_c, nb_h = forecast_neighbors(o["neighbors"][present], T, forecast=forecast)
    ends = np.cumsum(present.sum(1))
    for k, end in enumerate(ends):
        start = end - present[k].sum()
        if start == end:
            continue
        sl = slice(bounds[k], bounds[k + 1])
        size = o["neighbor_size"][k][present[k]]
        out[sl] = _overlaps(
            traj[sl],
            heading[sl],
            o["agent_size"][k],
            nb_c[start:end],
            nb_h[start:end],
            size,
            BBOX_INFLATION,
        )
    return out
