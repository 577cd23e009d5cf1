"""Scene features (``regrl.envs.traffic.scene``) of MetaDrive vehicles: state histories, nearest
neighbours and reference lanes sampled from MetaDrive's road network.

MetaDrive-specific but engine-agnostic in its inputs: it reads only ``position``,
``heading_theta``, ``velocity``, ``LENGTH``/``WIDTH``, ``lane``/``lane_index`` and
``navigation.checkpoints`` of vehicle objects and ``graph[start][end] -> [lanes]`` of the
road network, so the tests can drive it with stand-in objects.
"""

from __future__ import annotations

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
_interp = fast_interp
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
    ``stack [V, H, 5]`` (oldest first) in the order of the last ``record`` so that the
    features of all neighbours are computed with a few vectorised numpy calls.

    A vehicle seen for fewer than H steps is extended backwards at constant velocity from
    its first state (so spawned vehicles have smooth histories). Those extension rows depend
    only on the first state, so each step just shifts a vehicle's rows by one."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.ids: List[str] = []
        self.index: Dict[str, int] = {}
        self.vehicles: Optional[list] = None  # the list last recorded (rows in its order)
        self.stack = np.zeros((0, H, 5), np.float64)
        self.sizes = np.zeros((0, 2), np.float32)

    def record(self, vehicles: Iterable, states: Optional[np.ndarray] = None) -> None:
        """Append the current state of each vehicle; vehicles gone from the scene are dropped.
        ``states`` [V, 5], when given, are those states already read (``vehicle_state`` rows)."""
        self.vehicles = vehicles if isinstance(vehicles, list) else None
        vehicles = list(vehicles)
        ids = [v.id for v in vehicles]
        if states is None:
            states = np.array([_state_row(v) for v in vehicles], np.float64).reshape(-1, 5)
        stack = np.empty((len(ids), H, 5), np.float64)
        if ids == self.ids:  # the usual step: same vehicles in the same order
            stack[:, :-1] = self.stack[:, 1:]
            stack[:, -1] = states
            self.stack = stack
            return
        old = [self.index.get(i, -1) for i in ids]
        seen = np.array([k for k, j in enumerate(old) if j >= 0], np.intp)
        new = np.array([k for k, j in enumerate(old) if j < 0], np.intp)
        if len(seen):
            stack[seen, :-1] = self.stack[[old[k] for k in seen], 1:]
        if len(new):
            first = states[new]
            back = first[:, None, 3:5] * DT * _BACK_STEPS[None, :, None]  # [n, H-1, 2]
            stack[new, :-1, :2] = first[:, None, :2] - back
            stack[new, :-1, 2:] = first[:, None, 2:]
        stack[:, -1] = states
        sizes = np.empty((len(ids), 2), np.float32)
        for k, v in enumerate(vehicles):
            sizes[k] = self.sizes[old[k]] if old[k] >= 0 else vehicle_size(v)
        self.ids, self.index = ids, {i: k for k, i in enumerate(ids)}
        self.stack, self.sizes = stack, sizes

    def get(self, vid: str) -> np.ndarray:
        """[H, 5] oldest first."""
        return self.stack[self.index[vid]]

    def current(self, vid: str) -> np.ndarray:
        """The latest recorded [x, y, heading, vx, vy]."""
        return self.stack[self.index[vid], -1]

    def __contains__(self, vid: str) -> bool:
        return vid in self.index


def _next_lane(network, lane, lane_index, checkpoints: Optional[List[str]]):
    """The lane that physically continues ``lane`` (index (start, end, i)): among the lanes
    leaving node ``end``, those starting within 1 m of its end point come first, then the
    road on the navigation route, then the smaller gap. Lane numbers are not used: at
    MetaDrive intersections lane i of one road need not connect to lane i of the next."""
    end = lane_index[1]
    roads = network.graph.get(end, {})
    if not roads:
        return None, None
    preferred = None
    if checkpoints and end in checkpoints:
        k = checkpoints.index(end)
        preferred = checkpoints[k + 1] if k + 1 < len(checkpoints) else None
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
        self._chains: Dict[tuple, tuple] = {}
        self._sides: Dict[tuple, list] = {}
        self._lanes: Dict[tuple, np.ndarray] = {}  # densified lane by index, shared by chains

    def clear(self) -> None:
        self._chains.clear()
        self._sides.clear()
        self._lanes.clear()

    def _dense(self, lane, index) -> np.ndarray:
        if index not in self._lanes:
            n = max(2, int(np.ceil(lane.length / self.step)) + 1)
            xs = np.linspace(0.0, lane.length, n)
            self._lanes[index] = np.asarray([lane.position(x, 0) for x in xs])
        return self._lanes[index]

    def chain(self, network, lane, lane_index, checkpoints) -> tuple:
        """(arc lengths [k], points [k, 2]) of ``lane`` and up to 4 successor lanes, enough to
        sample P points ahead of any position on ``lane``."""
        return self.chain_xy(network, lane, lane_index, checkpoints)[:2]

    def chain_xy(self, network, lane, lane_index, checkpoints) -> tuple:
        """``chain`` plus contiguous copies of its x and y columns (for ``np.interp``)."""
        key = (lane_index, tuple(checkpoints) if checkpoints else None)
        if key not in self._chains:
            parts, total, cur, index = (
                [self._dense(lane, lane_index)],
                lane.length,
                lane,
                lane_index,
            )
            for _ in range(4):
                if total >= lane.length + LANE_SPACING * P:
                    break
                cur, index = _next_lane(network, cur, index, checkpoints)
                if cur is None:
                    break
                parts.append(self._dense(cur, index)[1:])
                total += cur.length
            pts = np.concatenate(parts)
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            self._chains[key] = (cum, pts, pts[:, 0].copy(), pts[:, 1].copy())
        return self._chains[key]

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


def _lane_jobs(obs, vs, network, cache: LaneCache) -> list:
    """(agent k, slot r, lane, chain) of every reference lane present for agents ``vs``;
    also writes each agent's speed limit (of its current lane) into the batched ``obs``."""
    jobs = []
    for k, v in enumerate(vs):
        checkpoints = getattr(getattr(v, "navigation", None), "checkpoints", None)
        limit = None
        for r, entry in enumerate(reference_lanes(v, network, cache)):
            if entry is None:
                continue
            lane, index = entry
            jobs.append((k, r, lane, cache.chain_xy(network, lane, index, checkpoints)))
            if r == 0:
                limit = float(getattr(lane, "speed_limit", 20.0))
        limit = 20.0 if limit is None else limit
        obs["speed_limit"][k, 0] = min(max(limit, SPEED_LIMIT_RANGE[0]), SPEED_LIMIT_RANGE[1])
    return jobs


def _fill_lanes_batch(obs, vs, network, origins, cos_sin, cache: LaneCache) -> None:
    """Reference lanes of K agents (batched ``obs``). Points are sampled from the cached
    chains, pass through float32 (the observation's dtype) and then change frame in one
    vectorised call for all lanes (``scene.to_frame``'s arithmetic, per-agent pose)."""
    jobs = _lane_jobs(obs, vs, network, cache)
    if not jobs:
        return
    ks, rs = [j[0] for j in jobs], [j[1] for j in jobs]
    s0 = np.array([float(lane.local_coordinates(origins[k])[0]) for k, _, lane, _ in jobs])
    ends = np.array([chain[0][-1] for *_, chain in jobs])
    arcs = np.minimum(np.maximum(s0[:, None] + _AHEAD, 0.0), ends[:, None])
    world = []
    for s, (*_, (cum, _, xs, ys)) in zip(arcs, jobs):
        world += [_interp(s, cum, xs), _interp(s, cum, ys)]
    world = np.array(world, np.float32).reshape(len(jobs), 2, P)  # points pass through float32
    d = world - origins[ks, :, None]  # float64 [L, 2, P]
    c, s = cos_sin[0][ks, 0], cos_sin[1][ks, 0]  # [L, 1]
    dx, dy = d[:, 0], d[:, 1]
    local = np.empty((len(jobs), P, 2))
    np.add(c * dx, s * dy, out=local[..., 0])
    np.subtract(c * dy, s * dx, out=local[..., 1])  # −s·dx + c·dy, the same float
    obs["lanes"][ks, rs] = local
    obs["lane_mask"][ks, rs] = 1.0
    obs["lane_width"][ks, rs] = [float(j[2].width) for j in jobs]


def fill_lanes(
    obs: Dict[str, np.ndarray], v, network, origin, heading, cache: Optional[LaneCache] = None
) -> None:
    """Fill ``lanes``, ``lane_mask``, ``lane_width`` and ``speed_limit`` of one agent's
    ``obs`` (unbatched)."""
    batched = {name: arr[None] for name, arr in obs.items()}
    headings = np.array([heading], np.float64)
    _fill_lanes_batch(
        batched,
        [v],
        network,
        np.asarray(origin, np.float64)[None],
        _cos_sin(headings),
        cache or LaneCache(),
    )


def _cos_sin(headings: np.ndarray) -> tuple:
    """cos and sin of K headings, shaped [K, 1, 1] to broadcast over [K, M, H] states."""
    return np.cos(headings)[:, None, None], np.sin(headings)[:, None, None]


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


def fill_neighbors(obs, v, vehicles, histories: Histories, origin, heading) -> None:
    near = _neighbor_rows(v.id, vehicles, histories, origin)
    if not len(near):
        return
    obs["neighbors"][: len(near)] = scene.states_to_frame(histories.stack[near], origin, heading)
    obs["neighbor_mask"][: len(near)] = 1.0
    obs["neighbor_size"][: len(near)] = histories.sizes[near]


def _frame_into(out, states, origins, headings, cos_sin: tuple) -> None:
    """``scene.states_to_frame`` of [K, M, H, 5] states with agent k's origin and heading,
    written into ``out`` [K, M, H, 6] (float32 views of the observations): the same float64
    operations, rounded once on writing. Positions and velocities share the rotation, so
    [x − x0, vx] and [y − y0, vy] are rotated as two-column arrays (v − 0 is exact)."""
    c, s = cos_sin
    shift = np.zeros((len(origins), 1, 1, 2))
    shift[:, 0, 0, 0] = origins[:, 0]
    along = states[..., _X_VX] - shift  # [x − x0, vx]
    shift[:, 0, 0, 0] = origins[:, 1]
    across = states[..., _Y_VY] - shift  # [y − y0, vy]
    c, s = c[..., None], s[..., None]
    np.add(c * along, s * across, out=out[..., _X_VX_OUT])
    np.subtract(c * across, s * along, out=out[..., _Y_VY_OUT])
    rel = states[..., 2] - headings[:, None, None]
    np.cos(rel, out=out[..., 2])
    np.sin(rel, out=out[..., 3])


_X_VX, _Y_VY = [0, 3], [1, 4]  # columns of a [x, y, h, vx, vy] state
_X_VX_OUT, _Y_VY_OUT = slice(0, 6, 4), slice(1, 6, 4)  # columns 0, 4 and 1, 5 of agent_hist


def _neighbor_table(vs, vehicles, histories: Histories, me, origins) -> tuple:
    """Rows [K, 1 + n] of ``histories.stack``: agent k's own row, then its nearest other
    vehicles within NEIGHBOR_RADIUS, nearest first (ties in the order of ``vehicles``), n
    (<= N) the most any agent has; mask [K, n] of the filled slots (an empty slot holds the
    row of a vehicle beyond NEIGHBOR_RADIUS: the caller zeroes it). The same
    selection as ``_neighbor_rows``, for all agents with one distance matrix. ``vehicles``
    that is the very list last recorded (``Histories.vehicles``, not mutated since) is
    taken as the rows of ``histories.stack`` in order, without looking up its ids."""
    recorded = vehicles is histories.vehicles and len(vehicles) == len(histories.ids)
    if recorded:  # the list last recorded: its rows, in order
        pos = histories.stack[:, -1, :2]
    else:
        index = histories.index
        cols = np.array([index[o.id] for o in vehicles if o.id in index], np.intp)
        pos = histories.stack[cols, -1, :2]
    if not len(pos):
        return me[:, None], np.zeros((len(vs), 0), bool)
    dist = np.hypot(pos[None, :, 0] - origins[:, 0, None], pos[None, :, 1] - origins[:, 1, None])
    if recorded:
        dist[np.arange(len(vs)), me] = np.inf  # not its own neighbour
    else:
        dist[cols[None, :] == me[:, None]] = np.inf
    near = (dist <= NEIGHBOR_RADIUS).sum(1)  # the sorted distances' mask is a prefix
    n = min(int(near.max()), N)
    rows = np.empty((len(vs), 1 + n), np.intp)
    rows[:, 0] = me
    order = dist.argsort(axis=1, kind="stable")[:, :n]
    rows[:, 1:] = order if recorded else cols[order]
    return rows, np.arange(n) < near[:, None]


# agent_hist (H rows) and the N neighbours' histories are adjacent in the flat observation,
# so one [K, 1 + N, H, 6] view of it receives the agent's and its neighbours' frame change
_HIST_END = _VIEWS["neighbors"][1]
assert _VIEWS["agent_hist"][0] == 0 and _VIEWS["neighbors"][0] == _VIEWS["agent_hist"][1]


def _fill_states_batch(
    flat, obs, vs, vehicles, histories: Histories, me, origins, headings, cos_sin: tuple
) -> None:
    """Agent histories and nearest neighbours of K agents (batched ``obs``, views of
    ``flat``): one frame change of the [K, 1 + n, H] states of the agents and their filled
    neighbour slots (``_neighbor_table``); the other slots stay zero."""
    rows, mask = _neighbor_table(vs, vehicles, histories, me, origins)
    n = mask.shape[1]
    hist = flat[:, :_HIST_END].reshape(len(vs), 1 + N, H, scene.STATE_DIM)[:, : 1 + n]
    _frame_into(hist, histories.stack[rows], origins, headings, cos_sin)
    sizes = obs["neighbor_size"][:, :n]
    sizes[:] = histories.sizes[rows[:, 1:]]
    if not mask.all():
        empty = ~mask
        hist[:, 1:][empty] = 0.0
        sizes[empty] = 0.0
    obs["neighbor_mask"][:, :n] = mask
    obs["agent_size"][:] = histories.sizes[me]  # vehicle_size, cached per vehicle


def scene_batch(
    vs, vehicles, histories: Histories, network, cache: Optional[LaneCache] = None
) -> np.ndarray:
    """Flat scenes [K, OBS_DIM] float32 of vehicles ``vs`` (each in ``histories``), filled
    in place through views of the batch: every frame change is one vectorised call for all
    K agents, only lane look-ups and neighbour selection loop over agents."""
    flat = np.zeros((len(vs), scene.OBS_DIM), np.float32)
    obs = batch_view(flat)
    me = np.array([histories.index[v.id] for v in vs], np.intp)
    current = histories.stack[me, -1]
    origins, headings = current[:, :2], current[:, 2]
    cos_sin = _cos_sin(headings)
    _fill_states_batch(flat, obs, vs, vehicles, histories, me, origins, headings, cos_sin)
    _fill_lanes_batch(obs, vs, network, origins, cos_sin, cache or LaneCache())
    return flat


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
