"""Scene features (``regrl.envs.traffic.scene``) of MetaDrive vehicles: state histories, nearest
neighbours and reference lanes sampled from MetaDrive's road network.

MetaDrive-specific but engine-agnostic in its inputs: it reads only ``position``,
``heading_theta``, ``velocity``, ``LENGTH``/``WIDTH``, ``lane``/``lane_index`` and
``navigation.checkpoints`` of vehicle objects and ``graph[start][end] -> [lanes]`` of the
road network, so the tests can drive it with stand-in objects.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, Iterable, List, Optional

import numpy as np

from regrl.envs.traffic import scene
from regrl.envs.traffic.scene import DT, LANE_SPACING, H, N, P, R

NEIGHBOR_RADIUS = 50.0  # m; vehicles farther away are not neighbours
SPEED_LIMIT_RANGE = (5.0, 40.0)  # m/s; MetaDrive's PG lanes default to 20
_BACK_STEPS = np.arange(H - 1, 0, -1, dtype=np.float64)  # steps back of history extensions
_AHEAD = LANE_SPACING * np.arange(P)  # arc length of the lane points
# np.interp minus its Python wrapper (complex-value dispatch); the same compiled routine
fast_interp = getattr(getattr(np, "_core", None), "multiarray", None)
fast_interp = getattr(fast_interp, "interp", np.interp)
_LAYOUT = []  # (name, start, end, shape) in flat
for _name, _shape in scene.OBS_LAYOUT.items():
    _start = _LAYOUT[-1][2] if _LAYOUT else 0
    _LAYOUT.append((_name, _start, _start + int(np.prod(_shape)), _shape))
_VIEWS = {entry[0]: entry[1:] for entry in _LAYOUT}


def view(flat: np.ndarray, name: str) -> np.ndarray:
    """``scene.unflatten(flat)[name]`` of one flat observation, without building the dict."""
    a, b, shape = _VIEWS[name]
    return flat[a:b].reshape(shape)


def field_slice(name: str) -> slice:
    """Where field ``name`` of ``scene.OBS_LAYOUT`` lies in the flat observation."""
    a, b, _ = _VIEWS[name]
    return slice(a, b)


def batch_view(flat: np.ndarray) -> Dict[str, np.ndarray]:
    """``scene.unflatten`` of a batch [K, OBS_DIM]: views [K, ...] of each field."""
    k = len(flat)
    return {name: flat[:, a:b].reshape((k,) + shape) for name, a, b, shape in _LAYOUT}


def _state_row(v) -> tuple:
    x, y = v.position
    vx, vy = v.velocity
    return x, y, v.heading_theta, vx, vy


def vehicle_state(v) -> np.ndarray:
    """Global [x, y, heading, vx, vy] of a MetaDrive vehicle."""
    return np.array(_state_row(v), np.float64)


def vehicle_size(v) -> np.ndarray:
    return np.array([getattr(v, "LENGTH", 4.5), getattr(v, "WIDTH", 1.9)], np.float32)


class Histories:
    """The last H global states of every vehicle, by object id, kept as one array
    ``stack [V, H, 6]`` (oldest first) in the order of the last ``record`` so that the
    features of all neighbours are computed with a few vectorised numpy calls. A state is
    [x, y, cos h, sin h, vx, vy] (``HISTORY_LAYOUT``), agent_hist's columns in the global
    frame: the frame change of a scene is then one rotation of the three 2-vectors of each
    state (``_frame_into``), cos(h − h0) = cos h·cos h0 + sin h·sin h0 included, instead of
    taking cos and sin of every relative heading of every scene again.

    A vehicle seen for fewer than H steps is extended backwards at constant velocity from
    its first state (so spawned vehicles have smooth histories). Those extension rows depend
    only on the first state, so each step just shifts a vehicle's rows by one."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.ids: List[str] = []
        self.index: Dict[str, int] = {}
        self.vehicles: Optional[list] = None  # the list last recorded (rows in its order)
        self.stack = np.zeros((0, H, STATE_COLUMNS), np.float64)
        self.sizes = np.zeros((0, 2))

    def record(self, vehicles: Iterable, states: Optional[np.ndarray] = None) -> None:
        """Append the current state of each vehicle; vehicles gone from the scene are dropped.
        ``states`` [V, 5] (``vehicle_state`` rows) or [V, 6] (``HISTORY_LAYOUT``,
        ``backend.state_rows(..., history=True)``), when given, are those states already
        read."""
        self.vehicles = vehicles if isinstance(vehicles, list) else None
        vehicles = list(vehicles)
        ids = [v.id for v in vehicles]
        if states is None:
            states = np.array([_state_row(v) for v in vehicles], np.float64).reshape(-1, 5)
        if states.shape[1] == 5:
            states = history_rows(states)
        if ids == self.ids:  # the usual step: same vehicles in the same order (one call)
            self.stack = np.concatenate((self.stack[:, 1:], states[:, None]), axis=1)
            return
        stack = np.empty((len(ids), H, STATE_COLUMNS), np.float64)
        old = [self.index.get(i, -1) for i in ids]
        seen = np.array([k for k, j in enumerate(old) if j >= 0], np.intp)
        new = np.array([k for k, j in enumerate(old) if j < 0], np.intp)
        if len(seen):
            stack[seen, :-1] = self.stack[[old[k] for k in seen], 1:]
        if len(new):
            first = states[new]
            back = first[:, None, 4:6] * DT * _BACK_STEPS[None, :, None]  # [n, H-1, 2]
            stack[new, :-1, :2] = first[:, None, :2] - back
            stack[new, :-1, 2:] = first[:, None, 2:]
        stack[:, -1] = states
        sizes = np.empty((len(ids), 2))  # float32 values, kept in float64 like the scenes
        for k, v in enumerate(vehicles):
            sizes[k] = self.sizes[old[k]] if old[k] >= 0 else vehicle_size(v)
        self.ids, self.index = ids, {i: k for k, i in enumerate(ids)}
        self.stack, self.sizes = stack, sizes

    def get(self, vid: str) -> np.ndarray:
        """[H, 6] oldest first (``HISTORY_LAYOUT``)."""
        return self.stack[self.index[vid]]

    def current(self, vid: str) -> np.ndarray:
        """The latest recorded [x, y, cos h, sin h, vx, vy]."""
        return self.stack[self.index[vid], -1]

    def __contains__(self, vid: str) -> bool:
        return vid in self.index


HISTORY_LAYOUT = ("x", "y", "cos h", "sin h", "vx", "vy")  # a Histories state
STATE_COLUMNS = len(HISTORY_LAYOUT)


def history_rows(states: np.ndarray) -> np.ndarray:
    """[V, 5] states [x, y, heading, vx, vy] -> [V, 6] ``HISTORY_LAYOUT`` rows (cos and sin
    by ``math``, as ``backend.state_rows(..., history=True)``)."""
    trig = [(math.cos(h), math.sin(h)) for h in states[:, 2].tolist()]
    trig = np.array(trig, np.float64).reshape(-1, 2)
    return np.concatenate((states[:, :2], trig, states[:, 3:5]), axis=1)


def _preferred_road(end, checkpoints: Optional[List[str]]):
    """The node after ``end`` on the navigation route ``checkpoints`` (None if off the route
    or at its end): the only part of the route that ``_next_lane`` looks at."""
    if checkpoints and end in checkpoints:
        k = checkpoints.index(end)
        return checkpoints[k + 1] if k + 1 < len(checkpoints) else None
    return None


def _next_lane(network, lane, lane_index, checkpoints: Optional[List[str]]):
    """The lane that physically continues ``lane`` (index (start, end, i)) on the route
    ``checkpoints``: ``_next_lane_to`` towards its ``_preferred_road``."""
    return _next_lane_to(network, lane, lane_index, _preferred_road(lane_index[1], checkpoints))


def _next_lane_to(network, lane, lane_index, preferred):
    """The lane that physically continues ``lane`` (index (start, end, i)): among the lanes
    leaving node ``end``, those starting within 1 m of its end point come first, then the
    road to node ``preferred``, then the smaller gap. Lane numbers are not used: at
    MetaDrive intersections lane i of one road need not connect to lane i of the next."""
    end = lane_index[1]
    roads = network.graph.get(end, {})
    if not roads:
        return None, None
    tip = np.asarray(lane.position(lane.length, 0), np.float64)
    best = None
    for road_end, lanes in roads.items():
        for j, cand in enumerate(lanes):
            gap = float(np.hypot(*(np.asarray(cand.position(0, 0)) - tip)))
            key = (gap > 1.0, road_end != preferred, gap)
            if best is None or key < best[0]:
                best = (key, cand, (end, road_end, j))
    return best[1], best[2]


class LaneCache:
    """Static lane geometry of the current map, computed once per lane and reused every step:
    dense centre-line polylines (every ``step`` m) of a lane followed by its successors along
    a route, and the left/right neighbours of each lane. Sampling a cached polyline with
    ``np.interp`` replaces ~60 Python ``lane.position`` calls per agent and step; the chord
    error on a 10 m-radius curve at 1 m spacing is about 1 cm. ``clear()`` when the map
    changes."""

    def __init__(self, step: float = 1.0):
        self.step = step
        self._chains: Dict[tuple, tuple] = {}  # by (lane index, route), see ``chain_xy``
        self._paths: Dict[tuple, tuple] = {}  # the same chains by their lanes' indices
        self._next: Dict[tuple, Optional[tuple]] = {}  # (lane index, preferred road) -> index
        self._sides: Dict[tuple, list] = {}
        self._lanes: Dict[tuple, np.ndarray] = {}  # densified lane by index, shared by chains
        self._plans: Dict[str, tuple] = {}  # by vehicle id, see ``_lane_plan``
        self._joined: Dict[tuple, tuple] = {}  # by the ids of K plans, see ``_join_plans``

    def clear(self) -> None:
        for kept in (self._chains, self._paths, self._next, self._sides, self._lanes):
            kept.clear()
        self._plans.clear()
        self._joined.clear()

    def _dense(self, lane, index) -> np.ndarray:
        if index not in self._lanes:
            n = max(2, int(np.ceil(lane.length / self.step)) + 1)
            xs = np.linspace(0.0, lane.length, n)
            self._lanes[index] = centre_points(lane, xs)
        return self._lanes[index]

    def chain(self, network, lane, lane_index, checkpoints) -> tuple:
        """(arc lengths [k], points [k, 2]) of ``lane`` and up to 4 successor lanes, enough to
        sample P points ahead of any position on ``lane``."""
        return self.chain_xy(network, lane, lane_index, checkpoints)[:2]

    def chain_xy(self, network, lane, lane_index, checkpoints) -> tuple:
        """``chain`` plus contiguous copies of its x and y columns (for ``np.interp``). Kept
        by (lane index, route) and, for the routes that lead through the same lanes, by the
        lanes' indices (``_path``): the polyline depends on the route only through them."""
        key = (lane_index, tuple(checkpoints) if checkpoints else None)
        chain = self._chains.get(key)
        if chain is None:
            lanes, indices = self._path(network, lane, lane_index, checkpoints)
            chain = self._paths.get(indices)
            if chain is None:
                parts = [self._dense(lanes[0], indices[0])]
                parts += [self._dense(*hop)[1:] for hop in zip(lanes[1:], indices[1:])]
                pts = np.concatenate(parts)
                cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
                chain = self._paths[indices] = (cum, pts, pts[:, 0].copy(), pts[:, 1].copy())
            self._chains[key] = chain
        return chain

    def _path(self, network, lane, lane_index, checkpoints) -> tuple:
        """([lane, successors...], their indices as a tuple): ``lane`` followed by up to 4
        ``_next_lane`` hops along ``checkpoints``, until LANE_SPACING·P m past its end."""
        lanes, indices, total = [lane], [lane_index], lane.length
        for _ in range(4):
            if total >= lane.length + LANE_SPACING * P:
                break
            cur, index = self._successor(network, lanes[-1], indices[-1], checkpoints)
            if cur is None:
                break
            lanes.append(cur)
            indices.append(index)
            total += cur.length
        return lanes, tuple(indices)

    def _successor(self, network, lane, index, checkpoints) -> tuple:
        """``_next_lane``, kept by (lane index, preferred road); the lane object comes from
        ``network`` (see ``sides``)."""
        key = (index, _preferred_road(index[1], checkpoints))
        if key not in self._next:
            self._next[key] = _next_lane_to(network, lane, index, key[1])[1]
        nxt = self._next[key]
        if nxt is None:
            return None, None
        return network.graph[nxt[0]][nxt[1]][nxt[2]], nxt

    def sides(self, network, lane, index) -> list:
        """[(lane, index) or None] ×2: the lanes left and right of ``lane`` on its road, decided
        geometrically at the lane's middle (MetaDrive's numbering convention does not matter).
        Only the indices are cached; the lane objects come from ``network`` (a cache may
        outlive the map object it was filled from, see ``network_key``)."""
        if index not in self._sides:
            out = [None, None]
            road = network.graph.get(index[0], {}).get(index[1], [])
            s = 0.5 * lane.length
            centre, heading = np.asarray(lane.position(s, 0)), lane.heading_theta_at(s)
            for j in (index[2] - 1, index[2] + 1):
                if 0 <= j < len(road):
                    other = np.asarray(road[j].position(s, 0)) - centre
                    left = np.cos(heading) * other[1] - np.sin(heading) * other[0] > 0
                    out[0 if left else 1] = (index[0], index[1], j)
            self._sides[index] = out
        road = network.graph.get(index[0], {}).get(index[1], [])
        return [None if i is None else (road[i[2]], i) for i in self._sides[index]]


def network_key(network) -> tuple:
    """Geometry fingerprint of a road network: every lane's index, length, width and its
    centre line at start, middle and end. MetaDrive builds a new map object at every reset
    (the multi-agent scenarios regenerate the same map), so ``LaneCache`` is keyed by this
    instead of by the object: a cache filled on one map is reused on any map with the same
    fingerprint, whose lanes give the same densified polylines."""
    key = []
    for start, roads in network.graph.items():
        for end, lanes in roads.items():
            for j, lane in enumerate(lanes):
                ends = [lane.position(s, 0) for s in (0.0, 0.5 * lane.length, lane.length)]
                geo = tuple(float(c) for p in ends for c in p)
                key.append((start, end, j, float(lane.length), float(lane.width)) + geo)
    return tuple(key)


def _arc_samples(lane, position, cum: np.ndarray) -> np.ndarray:
    """Arc lengths along a chain of P points every LANE_SPACING m from the projection of
    ``position`` onto ``lane``, clamped to the chain (np.clip's result without its overhead)."""
    s = float(lane.local_coordinates(position)[0]) + _AHEAD
    return np.minimum(np.maximum(s, 0.0), cum[-1])


def sample_lane(
    network, lane, lane_index, position, checkpoints=None, cache: Optional[LaneCache] = None
) -> np.ndarray:
    """Global centre-line points [P, 2], every LANE_SPACING m from the projection of
    ``position`` onto ``lane``, continuing onto successor lanes (at most 4 hops; beyond the
    last one the last point is repeated)."""
    cum, pts = (cache or LaneCache()).chain(network, lane, lane_index, checkpoints)
    s = _arc_samples(lane, position, cum)
    return np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], -1)


def reference_lanes(v, network, cache: Optional[LaneCache] = None) -> list:
    """[(lane, lane_index) or None] for the vehicle's current lane and the lanes left and
    right of it on the same road."""
    lane, index = getattr(v, "lane", None), getattr(v, "lane_index", None)
    if lane is None or index is None:
        return [None] * R
    return [(lane, index)] + (cache or LaneCache()).sides(network, lane, index)


@functools.lru_cache(maxsize=None)
def _metadrive_lanes() -> tuple:
    """MetaDrive's (``StraightLane``, ``CircularLane``) classes ((None, None) without it)."""
    try:
        from metadrive.component.lane.circular_lane import CircularLane
        from metadrive.component.lane.straight_lane import StraightLane
    except ImportError:
        return None, None
    return StraightLane, CircularLane


def centre_points(lane, xs: np.ndarray) -> np.ndarray:
    """``np.asarray([lane.position(x, 0) for x in xs])`` [n, 2]: the centre line at arc
    lengths ``xs``. For MetaDrive's straight and circular lanes the method's own arithmetic
    is done on all n at once (the same IEEE double operations in the same order:
    ``start + x·direction + 0·direction_lateral``, and ``centre + (radius + 0·direction)·
    (cos φ, sin φ)`` with φ = direction·x / radius + start phase, cos and sin by ``math`` as
    in the method), instead of n Python calls; other lanes call ``position``."""
    straight, circular = _metadrive_lanes()
    method = getattr(type(lane), "position", None)
    if straight is not None and method is straight.position:
        return lane.start + xs[:, None] * lane.direction + 0 * lane.direction_lateral
    if circular is not None and method is circular.position:
        d, radius, phase = lane.direction, lane.radius, lane.start_phase
        phi = [d * x / radius + phase for x in xs.tolist()]
        unit = np.array([(math.cos(f), math.sin(f)) for f in phi], np.float64).reshape(-1, 2)
        return np.asarray(lane.center, np.float64) + unit * (radius + 0 * d)
    return np.asarray([lane.position(x, 0) for x in xs])


def _projection(lane) -> Optional[tuple]:
    """The longitudinal projection of a MetaDrive lane as Python floats, None for other lanes
    (their own ``local_coordinates`` is called):
    - ``StraightLane``: (start x, start y, direction x, direction y); the coordinate
      ``(x − sx)·dx + (y − sy)·dy`` is the method's IEEE double arithmetic on numpy scalars;
    - ``CircularLane``: (centre x, centre y, wrapped start phase, wrapped end phase, start
      phase, end phase, clockwise, radius, length) for ``_circular_longitudinal``.
    Either replaces a method call that costs several times the arithmetic."""
    straight, circular = _metadrive_lanes()
    method = getattr(type(lane), "local_coordinates", None)
    if straight is not None and method is straight.local_coordinates:
        (sx, sy), (dx, dy) = (
            np.asarray(a, np.float64).tolist() for a in (lane.start, lane.direction)
        )
        return sx, sy, dx, dy
    if circular is not None and method is circular.local_coordinates:
        values = (*lane.center, lane.start_phase, lane.end_phase, lane.radius, lane.length)
        if len(values) != 6 or not all(type(x) in _DOUBLES for x in values):
            return None  # e.g. float32 attributes: numpy would round each operation
        cx, cy, start, end, radius, length = (float(x) for x in values)
        clockwise = bool(lane.is_clockwise())
        return cx, cy, _wrap_to_pi(start), _wrap_to_pi(end), start, end, clockwise, radius, length
    return None


_DOUBLES = (float, np.float64, int)  # int: exact as a double for the sizes of a map


def _wrap_to_pi(x: float) -> float:
    """MetaDrive's ``wrap_to_pi`` of a float (``x % 2π``, minus 2π above π): Python's float
    remainder is numpy's (fmod, plus the divisor when the signs differ)."""
    x %= 2 * math.pi
    return x - 2 * math.pi * (x > math.pi)


def _circular_longitudinal(x: float, y: float, proj: tuple) -> Optional[float]:
    """``CircularLane.local_coordinates((x, y))[0]`` (MetaDrive 0.4.3) from ``_projection``'s
    floats: the method's operations in its order (``math.atan2`` as in the method); None
    where the method raises (both phase differences above π), to let it raise."""
    cx, cy, start_w, end_w, start, end, clockwise, radius, length = proj
    phase = _wrap_to_pi(math.atan2(y - cy, x - cx))
    to_start = abs(_wrap_to_pi(phase - start_w))
    to_end = abs(_wrap_to_pi(phase - end_w))
    if to_start > math.pi and to_end > math.pi:
        return None
    if to_start > to_end:
        return _wrap_to_pi(end - phase if clockwise else phase - end) * radius + length
    return _wrap_to_pi(start - phase if clockwise else phase - start) * radius


# the last entries of a flat observation: lane_mask (R), lane_width (R), agent_size (2),
# speed_limit (1), written as one row per agent (agent_size afterwards)
_TAIL = _VIEWS["lane_mask"][0]
assert [e[0] for e in _LAYOUT[-4:]] == ["lane_mask", "lane_width", "agent_size", "speed_limit"]
_TAIL_LIMIT = scene.OBS_DIM - 1 - _TAIL
PLAN_CACHE = 256  # vehicles whose lane plans are kept (a reset brings new vehicle ids)


def _lane_plan(v, network, cache: LaneCache) -> tuple:
    """(jobs, tail) of vehicle ``v``'s reference lanes: jobs [(slot r, chain_xy, lane,
    ``_projection`` of the lane)] of the lanes present, tail [OBS_DIM − _TAIL] the lane_mask,
    lane_width and speed limit (of its current lane) entries of its observation (float32
    values in float64; the slots r without a lane have no job and a zero mask).
    Kept per vehicle while its lane, lane index and route are the same objects (MetaDrive
    assigns a new route list rather than changing it; a new map has new lane objects)."""
    lane, index = getattr(v, "lane", None), getattr(v, "lane_index", None)
    checkpoints = getattr(getattr(v, "navigation", None), "checkpoints", None)
    plan = cache._plans.get(v.id)
    if plan is not None and plan[0] is lane and plan[1] == index and plan[2] is checkpoints:
        return plan[3]
    jobs, tail, limit = [], np.zeros(scene.OBS_DIM - _TAIL, np.float32), 20.0
    for r, entry in enumerate(reference_lanes(v, network, cache)):
        if entry is None:
            continue
        lane_r, index_r = entry
        chain = cache.chain_xy(network, lane_r, index_r, checkpoints)
        jobs.append((r, chain, lane_r, _projection(lane_r)))
        tail[r], tail[R + r] = 1.0, float(lane_r.width)
        if r == 0:
            limit = float(getattr(lane_r, "speed_limit", 20.0))
    tail[_TAIL_LIMIT] = min(max(limit, SPEED_LIMIT_RANGE[0]), SPEED_LIMIT_RANGE[1])
    if len(cache._plans) >= PLAN_CACHE:
        cache._plans.clear()
    tail = tail.astype(np.float64)  # float32 values, written into the float64 scene
    plan = cache._plans[v.id] = (lane, index, checkpoints, (jobs, tail))
    return plan[3]


def _fill_lanes_batch(flat, vs, network, pose, rot, cache: LaneCache) -> None:
    """Reference lanes of K agents (rows of ``flat``, agent_size left zero; the slots of absent
    lanes are not written). ``pose`` [K, 6]: the agents' current ``Histories`` states, ``rot``
    their ``_rotations``. Points are sampled from the cached chains (clamped to each chain's
    ends, as ``_arc_samples`` does), pass through float32 (the observation's dtype) and then
    change frame in one matrix product for all lanes of all agents (``scene.to_frame``'s
    arithmetic up to round-off)."""
    plans = [_lane_plan(v, network, cache) for v in vs]
    key = tuple(map(id, plans))
    joined = cache._joined.get(key)
    if joined is None:
        joined = _join_plans(plans, key, cache)
    if joined[1] is not None:
        _lanes_in_frame(flat, joined, pose, rot)
    flat[:, _TAIL:] = joined[-1]


JOINED_CACHE = 128  # sets of lane plans (one per agent) whose joined chains are kept


def _join_plans(plans: list, key: tuple, cache: LaneCache) -> tuple:
    """The lanes of K agents' plans (``_lane_plan``) as one polyline for one interpolation
    call: the chains laid end to end along the arc-length axis, chain j shifted by offset_j
    (at least 1 m apart), x and y as the real and imaginary parts of one complex array.
    Returns (plans, arc lengths [n], points complex [n], per lane (agent, lane, projection,
    offset, end), agents [J], slots r [J], tails [K, OBS_DIM − _TAIL]); kept by the
    plans' ids (the entry holds the plans, so their ids are not reused while it is kept)."""
    arcs, points, lanes, offset = [], [], [], 0.0
    for k, plan in enumerate(plans):
        for r, (cum, _, xs, ys), lane, proj in plan[0]:
            arcs.append(cum + offset)
            points.append(xs + 1j * ys)
            end = float(arcs[-1][-1])  # the shifted end, as the interpolation sees it
            lanes.append((k, r, lane, proj, offset, end))
            offset = math.floor(end) + 2.0
    tails = np.array([plan[1] for plan in plans], np.float64).reshape(
        len(plans), scene.OBS_DIM - _TAIL
    )
    if len(cache._joined) >= JOINED_CACHE:
        cache._joined.clear()
    if not lanes:
        joined = cache._joined[key] = (plans, None, None, None, None, None, tails)
        return joined
    agents, slots = (np.array([e[i] for e in lanes], np.intp) for i in (0, 1))
    joined = (plans, np.concatenate(arcs), np.concatenate(points), lanes, agents, slots, tails)
    cache._joined[key] = joined
    return joined


def _lanes_in_frame(flat, joined: tuple, pose, rot) -> None:
    """The P points of each lane of ``joined`` (``_join_plans``), in its agent's frame,
    written into the lanes of ``flat``. The arc-length samples of each lane are shifted by its
    offset and clamped to its end (the sample at a chain's end or start is its end or start
    point exactly); shifting rounds like a change of the arc origin (~1e-13 m)."""
    _, arcs, points, lanes, agents, slots, _ = joined
    xy = pose[:, :2].tolist()
    s0, clamp = [], False
    for i, _, lane, proj, offset, end in lanes:
        if proj is not None and len(proj) == 4:  # a straight lane
            (x, y), (sx, sy, dx, dy) = xy[i], proj
            s = (x - sx) * dx + (y - sy) * dy
        else:
            s = None if proj is None else _circular_longitudinal(*xy[i], proj)
            if s is None:
                s = float(lane.local_coordinates(pose[i, :2])[0])
        s += offset
        s0.append(s)
        clamp = clamp or s < offset or s + _AHEAD_END > end
    s = np.add.outer(s0, _AHEAD)  # [J, P]
    if clamp:
        s = np.minimum(np.maximum(s, [[e[4]] for e in lanes]), [[e[5]] for e in lanes])
    world = _interp_complex(s.reshape(-1), arcs, points).view(np.float64)
    world = world.reshape(len(lanes), P, 2).astype(np.float32)  # points pass through float32
    d = world - pose[:, None, :2].take(agents, axis=0)  # float64 [J, P, 2] (exact from float32)
    out = np.matmul(d, rot.take(agents, axis=0))  # [J, P, 2] in the agents' frames
    flat[:, _LANES].reshape(len(flat), R, 2 * P)[agents, slots] = out.reshape(len(lanes), 2 * P)


_AHEAD_END = float(_AHEAD[-1])
# np.interp's routine for complex values (x and y in one call), without its Python wrapper
_interp_complex = getattr(getattr(np, "_core", None), "multiarray", None)
_interp_complex = getattr(_interp_complex, "interp_complex", None) or np.interp


_LANES = field_slice("lanes")


def fill_lanes(
    obs: Dict[str, np.ndarray], v, network, origin, heading, cache: Optional[LaneCache] = None
) -> None:
    """Fill ``lanes``, ``lane_mask``, ``lane_width`` and ``speed_limit`` of one agent's
    ``obs`` (unbatched; the slots of absent lanes are left as they are)."""
    flat = np.zeros((1, scene.OBS_DIM), np.float32)
    x, y = np.asarray(origin, np.float64).tolist()
    pose = history_rows(np.array([[x, y, float(heading), 0.0, 0.0]]))
    _fill_lanes_batch(flat, [v], network, pose, _rotations(pose), cache or LaneCache())
    row = scene.unflatten(flat[0])
    present = row["lane_mask"] > 0.5
    for name in ("lanes", "lane_mask", "lane_width"):
        obs[name][present] = row[name][present]
    obs["speed_limit"][...] = row["speed_limit"]


def _neighbor_rows(vid: str, vehicles, histories: Histories, origin) -> np.ndarray:
    """Rows of ``histories.stack`` of the (at most N) nearest other vehicles within
    NEIGHBOR_RADIUS, nearest first (ties in the order of ``vehicles``)."""
    index = histories.index
    rows = np.array([index[o.id] for o in vehicles if o.id != vid and o.id in index], np.intp)
    if not len(rows):
        return rows
    pos = histories.stack[rows, -1, :2]
    dist = np.hypot(pos[:, 0] - origin[0], pos[:, 1] - origin[1])
    order = np.argsort(dist, kind="stable")
    return rows[order[dist[order] <= NEIGHBOR_RADIUS][:N]]


def _rotations(pose: np.ndarray) -> np.ndarray:
    """[K, 2, 2] matrices that take a global row vector (u, w) into the frames of K agents
    (``pose`` [K, 6] their ``Histories`` states): (u, w) @ rot = (c·u + s·w, c·w − s·u)."""
    return (pose.take(_ROT_COLUMNS, axis=1) * _ROT_SIGNS).reshape(-1, 2, 2)


_ROT_COLUMNS, _ROT_SIGNS = np.array([2, 3, 3, 2]), np.array([1.0, -1.0, 1.0, 1.0])  # c −s s c


def _frame_into(out, states, pose, rot) -> None:
    """``scene.states_to_frame`` of [K, M, H, 6] ``Histories`` states (a copy, changed in
    place) in agent k's frame (``pose`` [K, 6] its current state, ``rot`` its
    ``_rotations``), written into ``out`` [K, M, H, 6] (a float64 view of the scenes, rounded
    to float32 once at the end). The positions relative to the agent, the heading's (cos, sin)
    and the velocity of each state are three row vectors rotated by one matrix product
    (``np.matmul``) for all states of an agent; equal to ``states_to_frame``'s arithmetic up
    to round-off (the product may fuse a multiply and an add; cos(h − h0) and sin(h − h0) come
    from the angle-difference identities)."""
    k = len(states)
    if not k:  # no agent asking (every CBV done while vehicles remain)
        return
    states[..., :2] -= pose[:, None, None, :2]  # [x − x0, y − y0, cos h, sin h, vx, vy]
    np.matmul(states.reshape(k, -1, 2), rot, out=out.reshape(k, -1, 2))


def _neighbor_table(vs, vehicles, histories: Histories, me: list, origins) -> tuple:
    """Rows [K, 1 + n] of ``histories.stack``: agent k's own row ``me[k]``, then its nearest
    other vehicles within NEIGHBOR_RADIUS, nearest first (ties in the order of ``vehicles``),
    n (<= N) the most any agent has; and the number of filled slots of each agent (list of K;
    an empty slot holds the agent's own row: the caller zeroes it).
    The same selection as ``_neighbor_rows``, with one distance matrix for all agents and
    each row's nearest found by ``_nearest``. ``vehicles`` that is the very list last
    recorded (``Histories.vehicles``, not mutated since) is taken as the rows of
    ``histories.stack`` in order, without looking up its ids."""
    recorded = vehicles is histories.vehicles and len(vehicles) == len(histories.ids)
    if recorded:  # the list last recorded: its rows, in order
        pos = histories.stack[:, -1, :2]
    else:
        index = histories.index
        cols = np.array([index[o.id] for o in vehicles if o.id in index], np.intp)
        pos = histories.stack[cols, -1, :2]
    if not len(pos) or not len(me):  # no vehicle recorded, or no agent asking (K = 0)
        return np.array(me, np.intp).reshape(-1, 1), [0] * len(vs)
    diff = pos[None] - origins[:, None]  # [K, V, 2]
    dist = np.hypot(diff[..., 0], diff[..., 1])
    own, ids = me, None if recorded else cols.tolist()
    orders, near = [], []
    for row, o in zip(dist.tolist(), own):
        for i in (o,) if recorded else [i for i, c in enumerate(ids) if c == o]:
            row[i] = math.inf  # not its own neighbour
        order = _nearest(row, NEIGHBOR_RADIUS, N)
        orders.append(order)
        near.append(len(order))
    n = max(near)
    if not recorded:
        orders = [[ids[i] for i in order] for order in orders]
    # slots beyond an agent's neighbours hold its own row (the caller zeroes them)
    return np.array(
        [[o] + order + [o] * (n - len(order)) for o, order in zip(own, orders)], np.intp
    ), near


def _nearest(row: list, radius: float, n: int) -> list:
    """Indices of the (at most n) smallest entries of ``row`` that are <= ``radius``, smallest
    first, ties in index order: the within-radius prefix of ``np.argsort(row, kind="stable")``
    cut at n (NaN is never within). Sorting only the entries within the radius, in Python:
    numpy's per-call overhead dominates rows of a few vehicles."""
    within = [i for i, x in enumerate(row) if x <= radius]
    return sorted(within, key=row.__getitem__)[:n]  # sorted is stable


# agent_hist (H rows) and the N neighbours' histories are adjacent in the flat observation,
# so one [K, 1 + N, H, 6] view of it receives the agent's and its neighbours' frame change
_HIST_END = _VIEWS["neighbors"][1]
assert _VIEWS["agent_hist"][0] == 0 and _VIEWS["neighbors"][0] == _VIEWS["agent_hist"][1]
_NEIGHBOR_MASK = _VIEWS["neighbor_mask"][0]
_NEIGHBOR_SIZE = field_slice("neighbor_size")
_AGENT_SIZE = field_slice("agent_size")


def _fill_states_batch(flat, vs, vehicles, histories: Histories, me, pose, rot):
    """Agent histories, sizes and nearest neighbours of K agents (rows of ``flat``): one frame
    change of the [K, 1 + n, H] states of the agents and their neighbour slots
    (``_neighbor_table``); slots beyond an agent's neighbours are zero."""
    rows, near = _neighbor_table(vs, vehicles, histories, me, pose[:, :2])
    k, n = len(vs), rows.shape[1] - 1
    hist = flat[:, : (1 + n) * H * scene.STATE_DIM].reshape(k, 1 + n, H, scene.STATE_DIM)
    _frame_into(hist, histories.stack.take(rows, axis=0), pose, rot)
    sizes = histories.sizes.take(rows, axis=0)  # [K, 1 + n, 2]: vehicle_size, per vehicle
    flat[:, _AGENT_SIZE] = sizes[:, 0]
    neighbor_size = flat[:, _NEIGHBOR_SIZE].reshape(k, N, 2)
    neighbor_size[:, :n] = sizes[:, 1:]
    flat[:, _NEIGHBOR_MASK : _NEIGHBOR_MASK + n] = 1.0
    for j, filled in enumerate(near):
        if filled < n:
            hist[j, 1 + filled :] = 0.0
            neighbor_size[j, filled:n] = 0.0
            flat[j, _NEIGHBOR_MASK + filled : _NEIGHBOR_MASK + n] = 0.0


def scene_batch(
    vs, vehicles, histories: Histories, network, cache: Optional[LaneCache] = None
) -> np.ndarray:
    """Flat scenes [K, OBS_DIM] float32 of vehicles ``vs`` (each in ``histories``), filled
    in place through views of a float64 batch that is rounded to float32 once at the end
    (a ufunc writing float64 results into float32 views casts through buffers, about twice
    the cost of the call): every frame change is one vectorised call for all K agents,
    only lane look-ups and neighbour selection loop over agents."""
    flat = np.zeros((len(vs), scene.OBS_DIM))  # float64 until the end: no cast per write
    me = [histories.index[v.id] for v in vs]  # rows of the agents (a list of K)
    pose = histories.stack[:, -1].take(me, axis=0)  # take: cheaper than fancy indexing
    rot = _rotations(pose)
    _fill_lanes_batch(flat, vs, network, pose, rot, cache or LaneCache())
    _fill_states_batch(flat, vs, vehicles, histories, me, pose, rot)
    return flat.astype(np.float32)  # each entry rounded once, as before


def scene_flat(
    v, vehicles, histories: Histories, network, cache: Optional[LaneCache] = None
) -> np.ndarray:
    """The scene of vehicle ``v`` (its state must be in ``histories``) as one float32
    [OBS_DIM] vector."""
    return scene_batch([v], vehicles, histories, network, cache)[0]


def scene_obs(
    v, vehicles, histories: Histories, network, cache: Optional[LaneCache] = None
) -> Dict[str, np.ndarray]:
    """The ``scene`` dict of vehicle ``v`` (its state must be in ``histories``): views of
    ``scene_flat``'s vector."""
    return scene.unflatten(scene_flat(v, vehicles, histories, network, cache))
