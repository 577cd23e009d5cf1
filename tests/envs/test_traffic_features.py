"""Scene features from MetaDrive-like objects (stand-ins: no engine needed)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from regrl.envs.traffic import features, scene


class Lane:
    """A straight lane from ``a`` to ``b`` with MetaDrive's lane methods."""

    def __init__(self, a, b, width=3.5, speed_limit=20.0):
        self.a, self.b = np.asarray(a, float), np.asarray(b, float)
        self.length = float(np.linalg.norm(self.b - self.a))
        self.u = (self.b - self.a) / self.length
        self.width, self.speed_limit = width, speed_limit

    def position(self, s, lat):
        return self.a + s * self.u + lat * np.array([-self.u[1], self.u[0]])

    def local_coordinates(self, p):
        d = np.asarray(p, float) - self.a
        return float(d @ self.u), float(self.u[0] * d[1] - self.u[1] * d[0])

    def heading_theta_at(self, s):
        return math.atan2(self.u[1], self.u[0])


def vehicle(vid, x, y, h=0.0, v=0.0, lane=None, index=None, route=None):
    return SimpleNamespace(
        id=vid,
        position=(x, y),
        heading_theta=h,
        velocity=(v * math.cos(h), v * math.sin(h)),
        lane=lane,
        lane_index=index,
        LENGTH=4.0,
        WIDTH=2.0,
        navigation=SimpleNamespace(checkpoints=route),
    )


@pytest.fixture
def road():
    """Road A->B with two lanes (y = 0 and y = 3.5), then road B->C (one lane) and a turn
    B->D; the route goes A, B, C."""
    a0, a1 = Lane((0, 0), (10, 0)), Lane((0, 3.5), (10, 3.5))
    bc, bd = Lane((10, 0), (60, 0)), Lane((10, 0), (10, -50))
    graph = {"A": {"B": [a0, a1]}, "B": {"D": [bd], "C": [bc]}}
    return SimpleNamespace(graph=graph), a0, a1


def test_history_is_extended_back_at_constant_velocity():
    hist = features.Histories()
    v = vehicle("v", 5.0, 1.0, v=10.0)
    hist.record([v])
    h = hist.get("v")
    assert h.shape == (scene.H, features.STATE_COLUMNS)
    np.testing.assert_allclose(h[:, 0], 5.0 - 1.0 * np.arange(scene.H - 1, -1, -1))
    # [x, y, cos h, sin h, vx, vy], extension rows included
    np.testing.assert_array_equal(h[:, 2:], [[1.0, 0.0, 10.0, 0.0]] * scene.H)
    hist.record([])  # gone from the scene -> dropped
    assert "v" not in hist


def test_lane_sampling_follows_the_route_across_roads(road):
    network, a0, _ = road
    cache = features.LaneCache()
    pts = features.sample_lane(network, a0, ("A", "B", 0), (5.0, 0.3), ["A", "B", "C"], cache)
    np.testing.assert_allclose(pts[:, 0], 5.0 + 2.0 * np.arange(scene.P), atol=1e-9)
    np.testing.assert_allclose(pts[:, 1], 0.0, atol=1e-9)
    # without a route the first road leaving B is taken (here the turn to D)
    turn = features.sample_lane(network, a0, ("A", "B", 0), (5.0, 0.0), None, cache)
    np.testing.assert_allclose(turn[5:, 0], 10.0, atol=1e-9)


def test_left_and_right_lanes_are_found_geometrically(road):
    network, a0, a1 = road
    lanes = features.reference_lanes(vehicle("v", 1, 0, lane=a0, index=("A", "B", 0)), network)
    assert lanes[0][0] is a0 and lanes[1][0] is a1 and lanes[2] is None
    lanes = features.reference_lanes(vehicle("v", 1, 3.5, lane=a1, index=("A", "B", 1)), network)
    assert lanes[1] is None and lanes[2][0] is a0


def test_scene_obs_in_the_agent_frame(road):
    network, a0, _ = road
    ego = vehicle("e", 2.0, 0.0, v=5.0, lane=a0, index=("A", "B", 0), route=["A", "B", "C"])
    near = vehicle("n", 12.0, 0.0, v=3.0)
    far = vehicle("f", 200.0, 0.0)
    side = vehicle("s", 2.0, 3.5, h=math.pi / 2)
    hist = features.Histories()
    hist.record([ego, near, far, side])
    o = features.scene_obs(ego, [ego, near, far, side], hist, network)
    np.testing.assert_allclose(o["agent_hist"][-1], [0, 0, 1, 0, 5, 0], atol=1e-6)
    np.testing.assert_array_equal(o["neighbor_mask"][:3], [1, 1, 0])  # far is beyond 50 m
    np.testing.assert_allclose(o["neighbors"][0, -1], [0, 3.5, 0, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(o["neighbors"][1, -1], [10, 0, 1, 0, 3, 0], atol=1e-6)
    np.testing.assert_array_equal(o["lane_mask"], [1, 1, 0])
    np.testing.assert_allclose(o["lanes"][0, :, 0], 2.0 * np.arange(scene.P), atol=1e-6)
    np.testing.assert_allclose(o["lanes"][1, :4, 1], 3.5, atol=1e-6)  # then merges into B->C
    np.testing.assert_allclose(o["lanes"][1, 6:, 1], 0.0, atol=1e-6)
    assert o["lane_width"][0] == 3.5 and o["speed_limit"][0] == 20.0
    assert scene.flatten(o).shape == (scene.OBS_DIM,)


def test_nearest_is_the_within_radius_prefix_of_numpys_stable_argsort():
    rng = np.random.default_rng(3)
    rows = [rng.integers(0, 4, 12).astype(float).tolist() for _ in range(20)]  # many ties
    rows += [[2.0, math.nan, 1.0, math.inf, 1.0, math.nan, 0.0]]  # NaN sorts last in numpy
    rows += [rng.uniform(0, 80, 15).tolist() for _ in range(20)]
    for row in rows:
        for radius, n in ((2.0, 3), (50.0, 10), (math.inf, 4), (-1.0, 5)):
            want = [i for i in np.argsort(row, kind="stable") if row[i] <= radius][:n]
            assert features._nearest(row, radius, n) == want


def test_neighbor_table_is_the_per_agent_selection():
    """The batched neighbour rows equal ``_neighbor_rows`` (numpy's stable argsort per agent)
    for the recorded vehicle list and for another list of the same vehicles, with ties."""
    rng = np.random.default_rng(8)
    for _ in range(30):
        xy = rng.integers(-30, 31, (14, 2)) * 4.0  # on a grid: equal distances are common
        vs = [vehicle(f"v{i}", x, y) for i, (x, y) in enumerate(xy)]
        hist = features.Histories()
        hist.record(vs)
        agents = vs[:3]
        me = [hist.index[v.id] for v in agents]
        origins = hist.stack[me, -1, :2]
        for listed in (vs, vs[::-1][:10]):  # the recorded list, and another one
            rows, near = features._neighbor_table(agents, listed, hist, me, origins)
            for k, v in enumerate(agents):
                want = features._neighbor_rows(v.id, listed, hist, origins[k])
                assert rows[k, 0] == me[k] and near[k] == len(want)
                assert rows[k, 1 : 1 + near[k]].tolist() == want.tolist()


def test_neighbor_table_of_no_agents_is_empty():
    """K = 0 (every CBV done while the scene still has vehicles): no rows, not a crash (a RIFT
    sweep's env runner died on max() of an empty list here)."""
    vs = [vehicle(f"v{i}", 4.0 * i, 0.0) for i in range(3)]
    hist = features.Histories()
    hist.record(vs)
    for listed in (vs, vs[:2]):
        rows, near = features._neighbor_table([], listed, hist, [], np.zeros((0, 2)))
        assert rows.shape == (0, 1) and near == []


def test_scene_batch_of_no_agents_is_empty(road):
    """K = 0 with vehicles in the scene: an empty batch (the frame change has no agent)."""
    network, a0, _ = road
    vs = [vehicle(f"v{i}", 4.0 * i, 0.0, lane=a0, index=("A", "B", 0)) for i in range(3)]
    hist = features.Histories()
    hist.record(vs)
    assert features.scene_batch([], vs, hist, network).shape == (0, scene.OBS_DIM)


def test_kept_lane_plan_follows_the_vehicles_lane_and_route(road):
    """A LaneCache reused step after step gives the scene of a fresh cache when the vehicle
    changes lane or is given a new route (the per-vehicle plan is not stale)."""
    network, a0, a1 = road
    kept = features.LaneCache()
    ego = vehicle("e", 2.0, 0.0, v=5.0, lane=a0, index=("A", "B", 0), route=["A", "B", "C"])
    for lane, index, route in [
        (a0, ("A", "B", 0), ["A", "B", "C"]),
        (a1, ("A", "B", 1), ["A", "B", "C"]),  # lane change
        (a1, ("A", "B", 1), ["A", "B", "D"]),  # new route: the chain turns to D
        (a0, ("A", "B", 0), None),
    ]:
        ego.lane, ego.lane_index, ego.navigation = lane, index, SimpleNamespace(checkpoints=route)
        hist = features.Histories()
        hist.record([ego])
        got = features.scene_flat(ego, [ego], hist, network, kept)
        want = features.scene_flat(ego, [ego], hist, network, features.LaneCache())
        np.testing.assert_array_equal(got, want)


def test_straight_lane_projection_is_metadrives_local_coordinates():
    pytest.importorskip("metadrive")
    from metadrive.component.lane.straight_lane import StraightLane

    rng = np.random.default_rng(4)
    for _ in range(50):
        start, end = rng.uniform(-300, 300, 2), rng.uniform(-300, 300, 2)
        lane = StraightLane(start, end)
        sx, sy, dx, dy = features._projection(lane)
        for x, y in rng.uniform(-400, 400, (5, 2)):
            want = lane.local_coordinates(np.array([x, y]))[0]
            assert (x - sx) * dx + (y - sy) * dy == want  # bit for bit
    assert features._projection(Lane((0, 0), (1, 0))) is None  # not MetaDrive's: its own method


def test_circular_lane_projection_is_metadrives_local_coordinates():
    """``_circular_longitudinal`` gives MetaDrive's ``CircularLane.local_coordinates``
    longitudinal bit for bit: both turning directions, phases around ±π, points inside,
    outside and at the centre of the circle."""
    pytest.importorskip("metadrive")
    from metadrive.component.lane.circular_lane import CircularLane

    rng = np.random.default_rng(5)
    for k in range(200):
        centre = rng.uniform(-300, 300, 2)
        radius, angle = rng.uniform(2, 60), rng.uniform(0.1, 6.0)
        start = rng.choice([np.pi, -np.pi, 0.0, rng.uniform(-7, 7)])
        lane = CircularLane(centre, radius, start, angle, clockwise=bool(k % 2))
        proj = features._projection(lane)
        assert len(proj) == 9
        points = centre + rng.uniform(-2, 2, (8, 1)) * radius * rng.standard_normal((8, 2))
        for x, y in [*points.tolist(), centre.tolist()]:
            want = lane.local_coordinates(np.array([x, y]))[0]
            got = features._circular_longitudinal(x, y, proj)
            assert np.float64(got).tobytes() == np.float64(want).tobytes()  # bit for bit


def test_preferred_road_is_the_node_after_the_lane_end_on_the_route():
    assert features._preferred_road("B", ["A", "B", "C"]) == "C"
    assert features._preferred_road("C", ["A", "B", "C"]) is None  # end of the route
    assert features._preferred_road("X", ["A", "B", "C"]) is None  # off the route
    assert features._preferred_road("B", None) is None


def test_routes_through_the_same_lanes_share_one_chain(road):
    """Chains are kept by their lanes' indices: a route that only differs before the lane
    (or after the chain's reach) gets the very chain of the first route, one that turns
    elsewhere gets its own, and both equal a fresh cache's."""
    network, a0, _ = road
    cache = features.LaneCache()
    first = cache.chain_xy(network, a0, ("A", "B", 0), ["A", "B", "C"])
    same = cache.chain_xy(network, a0, ("A", "B", 0), ["S", "A", "B", "C"])
    turn = cache.chain_xy(network, a0, ("A", "B", 0), ["A", "B", "D"])
    assert same is first and turn is not first
    for route, got in ((["S", "A", "B", "C"], same), (["A", "B", "D"], turn)):
        want = features.LaneCache().chain_xy(network, a0, ("A", "B", 0), route)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(turn[1][-1], [10.0, -50.0])  # ends on B->D


def test_frame_change_is_states_to_frame_to_round_off():
    """``_frame_into`` (one matrix product per agent over the rows [x − x0, y − y0], [cos h,
    sin h], [vx, vy] of ``Histories`` states) gives ``states_to_frame``'s float64 columns up to
    round-off; an agent's own current state is exactly at the origin."""
    rng = np.random.default_rng(6)
    k, m = 3, 4
    states = rng.uniform(-100, 100, (k, m, scene.H, 5))
    states[..., 2] = rng.uniform(-4, 4, (k, m, scene.H))
    kept = features.history_rows(states.reshape(-1, 5)).reshape(k, m, scene.H, -1)
    kept[:, 0, -1] = pose = features.history_rows(states[:, 0, -1])  # slot 0: the agent itself
    out = np.zeros((k, m, scene.H, scene.STATE_DIM))
    features._frame_into(out, kept.copy(), pose, features._rotations(pose))
    for j in range(k):
        x0, y0, h0 = states[j, 0, -1, :3]
        c, s = math.cos(h0), math.sin(h0)
        dx, dy = states[j, ..., 0] - x0, states[j, ..., 1] - y0
        vx, vy, rel = states[j, ..., 3], states[j, ..., 4], states[j, ..., 2] - h0
        want = [c * dx + s * dy, c * dy - s * dx, np.cos(rel), np.sin(rel)]
        want += [c * vx + s * vy, c * vy - s * vx]
        np.testing.assert_allclose(out[j], np.stack(want, -1), rtol=0, atol=1e-12)
        assert out[j, 0, -1, :2].tolist() == [0.0, 0.0]


def test_joined_lanes_are_each_lanes_own_samples(road):
    """The lanes of several agents sampled in one interpolation over their joined chains
    (``_join_plans``) are each lane's ``sample_lane`` points in the agent's frame, also where
    the samples are clamped to a chain's start or end; kept joins follow plan changes."""
    network, a0, a1 = road
    bc = network.graph["B"]["C"][0]
    cache = features.LaneCache()
    cases = [
        [(2.0, 0.3, 0.1, a0, ("A", "B", 0), ["A", "B", "C"])],
        [
            (2.0, 3.2, 0.0, a1, ("A", "B", 1), ["A", "B", "C"]),
            (5.0, 0.0, 0.0, bc, ("B", "C", 0), ["B", "C"]),
        ],
        [(40.0, 0.5, 0.2, bc, ("B", "C", 0), ["B", "C"])],  # past the chain's end: clamped
        [
            (7.0, -0.4, -0.1, bc, ("B", "C", 0), ["B", "C"]),
            (1.0, 0.2, 0.0, a0, ("A", "B", 0), None),
        ],
    ]
    for case in cases:
        vs = [
            vehicle(f"v{i}", x, y, h, v=3.0, lane=lane, index=index, route=route)
            for i, (x, y, h, lane, index, route) in enumerate(case)
        ]
        hist = features.Histories()
        hist.record(vs)
        flat = features.scene_batch(vs, vs, hist, network, cache)
        for row, v in zip(flat, vs):
            o = scene.unflatten(row)
            for r, entry in enumerate(features.reference_lanes(v, network, cache)):
                if entry is None:
                    assert o["lane_mask"][r] == 0 and not o["lanes"][r].any()
                    continue
                pts = features.sample_lane(network, *entry, v.position, v.navigation.checkpoints)
                want = scene.to_frame(pts.astype(np.float32), np.array(v.position), v.heading_theta)
                np.testing.assert_allclose(o["lanes"][r], want, rtol=0, atol=1e-5)


def test_centre_points_are_metadrives_lane_positions_bit_for_bit():
    """The vectorised centre line of MetaDrive's straight and circular lanes is the list of
    ``lane.position(x, 0)``, bit for bit; other lanes use their own method."""
    pytest.importorskip("metadrive")
    from metadrive.component.lane.circular_lane import CircularLane
    from metadrive.component.lane.straight_lane import StraightLane

    rng = np.random.default_rng(7)
    lanes = [StraightLane(rng.uniform(-300, 300, 2), rng.uniform(-300, 300, 2)) for _ in range(20)]
    lanes += [StraightLane([0, 0], [10, 0]), StraightLane([5, -3], [5, 40])]  # int starts
    lanes += [
        CircularLane(rng.uniform(-200, 200, 2), r, phase, angle, clockwise)
        for r, phase, angle, clockwise in zip(
            rng.uniform(3, 40, 20),
            rng.uniform(-7, 7, 20),
            rng.uniform(0.2, 3.1, 20),
            rng.integers(0, 2, 20).astype(bool),
        )
    ]
    lanes += [Lane((0, 0), (3, 4))]  # not MetaDrive's: its own position
    for lane in lanes:
        xs = np.linspace(0.0, lane.length, max(2, int(np.ceil(lane.length)) + 1))
        want = np.asarray([lane.position(x, 0) for x in xs], np.float64)
        got = features.centre_points(lane, xs)
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
