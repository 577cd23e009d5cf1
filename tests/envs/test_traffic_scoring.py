"""RIFT candidate scoring (arXiv 2505.03344, docs/methods.md#rift-advantage, #rift-reward) on hand-built scenes, and the
scene layout / built-in candidates. Pure numpy: no MetaDrive."""

import math

import numpy as np
import pytest
import torch

from regrl.envs.traffic import candidates, scene, scoring

GAMMA = 0.98


def straight_scene(speed=10.0, lane_width=4.0, lanes=(0.0,), lane_mask=(1, 0, 0)):
    """Agent at the origin heading +x at ``speed``; straight lanes along x at the given y."""
    o = scene.empty_obs()
    o["agent_hist"][:, 0] = speed * scene.DT * np.arange(-scene.H + 1, 1)
    o["agent_hist"][:, 2] = 1.0
    o["agent_hist"][:, 4] = speed
    for r, y in enumerate(lanes):
        o["lanes"][r, :, 0] = scene.LANE_SPACING * np.arange(scene.P)
        o["lanes"][r, :, 1] = y
    o["lane_mask"][:] = lane_mask
    o["lane_width"][:] = lane_width
    o["agent_size"][:] = [4.0, 2.0]
    o["speed_limit"][0] = 15.0
    return o


def add_neighbor(o, slot, x, y, vx=0.0, heading=0.0, size=(4.0, 2.0)):
    o["neighbors"][slot, :, 0] = x + vx * scene.DT * np.arange(-scene.H + 1, 1)
    o["neighbors"][slot, :, 1] = y
    o["neighbors"][slot, :, 2] = math.cos(heading)
    o["neighbors"][slot, :, 3] = math.sin(heading)
    o["neighbors"][slot, :, 4] = vx
    o["neighbor_mask"][slot] = 1.0
    o["neighbor_size"][slot] = size


def group(*trajs):
    """Pad to G = R·1 candidates (one mode per lane); extra lanes invalid."""
    traj = np.zeros((scene.R, scene.T, 2))
    for i, t in enumerate(trajs):
        traj[i] = t
    return traj, np.arange(scene.R) < len(trajs)


def straight(speed=10.0, lateral_per_step=0.0):
    k = np.arange(1, scene.T + 1)
    return np.stack([speed * scene.DT * k, lateral_per_step * k], -1)


# ------------------------------------------- reward terms (docs/methods.md#rift-reward)
def test_reward_terms_hand_computed():
    assert scoring.collision_reward(1.0, -5.0) == pytest.approx(-25.0)
    assert scoring.collision_reward(0.0, 7.0) == 0.0
    assert scoring.offroad_reward(1.0) == -5.0
    assert scoring.comfort_reward(5.0, -5.0) == pytest.approx(-1.6)
    assert scoring.comfort_reward(3.0, 4.0) == 0.0  # strict '>' thresholds
    # θ = π/3: cos = 0.5 -> only the linear term, 0.5·0.25·(1 − 2/3)
    assert scoring.lane_align_reward(math.pi / 3, 5.0) == pytest.approx(0.5 * 0.25 / 3)
    # θ = 2π/3, v = 4: 0.5·(−0.5 + 0.05·(−2) + 0.25·(1 − 4/3))
    assert scoring.lane_align_reward(2 * math.pi / 3, 4.0) == pytest.approx(-0.3416666667)
    # d = 1, θ = π/4: −0.6·(1 − 0.05/e^0.5)
    assert scoring.lane_center_reward(1.0, math.pi / 4) == pytest.approx(-0.5818040975)
    assert scoring.lane_center_reward(1.0, 1.2) == 0.0  # cos 1.2 = 0.36 < 0.5
    assert scoring.velocity_reward(0.0, 10.0) == pytest.approx(1.0)
    assert scoring.velocity_reward(math.pi / 4, 10.0) == pytest.approx(0.7071067812)
    assert scoring.velocity_reward(0.0, 25.0) == 0.0 and scoring.velocity_reward(0.0, 2.0) == 0.0
    assert scoring.timestep_reward(0.0, 0.0) == 0.0
    assert scoring.timestep_reward(1.0, 0.0) == scoring.timestep_reward(0.0, -1.0) == -0.1


def test_dense_reward_is_the_sum_of_terms():
    # d = 0, θ = 0, v = 10, a = 0: 0.125 (align) + 0.03·e^0.5 (centre) + 1 (velocity) − 0.1
    clean = 0.125 + 0.03 * math.exp(0.5) + 1.0 - 0.1
    r = scoring.dense_reward(
        d=0.0, theta=0.0, v=10.0, a=0.0, yaw_acc=0.0, collision=0.0, offroad=0.0
    )
    assert r == pytest.approx(clean)
    r = scoring.dense_reward(
        d=0.0, theta=0.0, v=10.0, a=0.0, yaw_acc=0.0, collision=1.0, offroad=1.0
    )
    assert r == pytest.approx(clean - 30.0 - 5.0)


def test_discounted_returns_stop_after_first_collision_inclusive():
    reward = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    collision = np.array([[0, 1, 0, 1], [0, 0, 0, 0]], bool)
    out = scoring.discounted_returns(reward, collision, gamma=0.5)
    np.testing.assert_allclose(out, [1.5, 1.875])


# ---------------------------------------------------------------- geometry
def test_boxes_overlap_separating_axes():
    half = np.array([2.0, 1.0])
    sq = np.array([1.0, 1.0])
    o = np.zeros(2)
    assert not scoring.boxes_overlap(o, 0.0, half, np.array([3.5, 0.0]), math.pi / 2, half)
    assert scoring.boxes_overlap(o, 0.0, half, np.array([2.9, 0.0]), math.pi / 2, half)
    # a square rotated 45°: its corner reaches √2 toward the first box
    assert scoring.boxes_overlap(o, 0.0, half, np.array([3.3, 0.0]), math.pi / 4, sq)
    assert not scoring.boxes_overlap(o, 0.0, half, np.array([3.5, 0.0]), math.pi / 4, sq)
    # side by side: separated only along the normal
    assert not scoring.boxes_overlap(o, 0.0, half, np.array([0.0, 2.1]), 0.0, half)
    assert scoring.boxes_overlap(o, 0.0, half, np.array([0.0, 1.9]), 0.0, half)


def test_kinematics_of_a_constant_acceleration_candidate():
    # v0 = 10, a = −2 m/s²: step speeds 9.8, 9.6, ... (speed = step length / dt)
    speed = 10.0 - 2.0 * scene.DT * np.arange(1, scene.T + 1)
    traj = np.stack([np.cumsum(speed * scene.DT), np.zeros(scene.T)], -1)[None]
    kin = scoring.candidate_kinematics(traj, v0=10.0, yaw_rate0=0.0)
    np.testing.assert_allclose(kin["speed"][0], speed, atol=1e-9)
    np.testing.assert_allclose(kin["acc"][0], -2.0, atol=1e-6)
    np.testing.assert_allclose(kin["heading"][0], 0.0)
    np.testing.assert_allclose(kin["yaw_acc"][0], 0.0)


# ----------------------------------------------- scoring (docs/methods.md#rift-advantage)
def test_straight_into_stopped_neighbour_collides_at_the_right_step():
    o = straight_scene()
    add_neighbor(o, 0, x=20.0, y=0.0)
    traj, valid = group(straight())
    returns, det = scoring.score_candidates(traj, o, valid, GAMMA)
    # front bumper x_k + 2 reaches the inflated rear 20 − 2.2 first at x_k = 16 (k = 16)
    first = np.flatnonzero(det["collision"][0])[0]
    assert first == 15 and det["collision"][0, :15].sum() == 0
    clean = 0.125 + 0.03 * math.exp(0.5) + 1.0 - 0.1
    np.testing.assert_allclose(det["reward"][0, :15], clean, rtol=1e-6)
    assert det["reward"][0, 15] == pytest.approx(clean - 30.0)
    expected = clean * sum(GAMMA**t for t in range(16)) - 30.0 * GAMMA**15
    assert returns[0] == pytest.approx(expected, rel=1e-5)
    assert returns[1] == returns[2] == 0.0  # invalid candidates


def test_moving_neighbour_is_forecast_at_constant_velocity():
    o = straight_scene()
    add_neighbor(o, 0, x=20.0, y=0.0, vx=10.0)  # same speed ahead: never reached
    traj, valid = group(straight())
    _, det = scoring.score_candidates(traj, o, valid)
    assert not det["collision"].any()


def test_leaving_the_lane_is_offroad_and_clean_candidate_is_not():
    o = straight_scene(lane_width=4.0)
    traj, valid = group(straight())
    _, det = scoring.score_candidates(traj, o, valid)
    assert not det["offroad"][0].any() and not det["collision"][0].any()
    traj, valid = group(straight(lateral_per_step=0.2))
    _, det = scoring.score_candidates(traj, o, valid)
    # y = 0.2·k leaves the half width 2 at k = 11 (index 10)
    np.testing.assert_array_equal(np.flatnonzero(det["offroad"][0]), np.arange(10, scene.T))
    # centre offset and heading error against the candidate's reference lane (lane 0)
    np.testing.assert_allclose(det["delta_dis"][0], 0.2 * np.arange(1, scene.T + 1), rtol=1e-5)
    np.testing.assert_allclose(det["delta_angle"][0], math.atan2(0.2, 1.0), rtol=1e-5)


def test_a_present_left_lane_extends_the_drivable_area():
    o = straight_scene(lane_width=4.0, lanes=(0.0, 4.0), lane_mask=(1, 1, 0))
    traj, valid = group(straight(lateral_per_step=0.2))
    _, det = scoring.score_candidates(traj, o, valid)
    # drivable up to y = 6: 0.2·k > 6 from k = 31 (index 30)
    assert np.flatnonzero(det["offroad"][0])[0] == 30


def test_scoring_accepts_flat_obs_and_rejects_bad_shapes():
    o = straight_scene()
    traj, valid = group(straight())
    a, _ = scoring.score_candidates(traj, o, valid)
    b, _ = scoring.score_candidates(traj, scene.flatten(o), valid)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    with pytest.raises(ValueError, match="G = R"):
        scoring.score_candidates(traj[:2], o, valid[:2])
    with pytest.raises(ValueError, match="traj must be"):
        scoring.score_candidates(traj[..., :1], o, valid)


# ---------------------------------------------------------------- scene layout
def test_flatten_unflatten_roundtrip_numpy_and_torch_batched():
    rng = np.random.default_rng(0)
    o = {k: rng.normal(size=s).astype(np.float32) for k, s in scene.OBS_LAYOUT.items()}
    flat = scene.flatten(o)
    assert flat.shape == (scene.OBS_DIM,) and flat.dtype == np.float32
    assert scene.OBS_DIM == 60 + 600 + 10 + 20 + 120 + 3 + 3 + 2 + 1
    back = scene.unflatten(flat)
    for k in scene.OBS_LAYOUT:
        np.testing.assert_array_equal(back[k], o[k])
    batch = torch.as_tensor(np.stack([flat, 2 * flat]))[None]  # [1, 2, D]
    tb = scene.unflatten(batch)
    assert tb["neighbors"].shape == (1, 2, scene.N, scene.H, 6)
    torch.testing.assert_close(tb["lanes"][0, 1], torch.as_tensor(2 * o["lanes"]))
    with pytest.raises(ValueError, match="OBS_DIM"):
        scene.unflatten(flat[:-1])
    with pytest.raises(ValueError, match="lanes"):
        scene.flatten({**o, "lanes": o["lanes"][:2]})


def test_lane_following_candidates_follow_their_lanes():
    o = straight_scene(speed=8.0, lanes=(0.0, 3.5, -3.5), lane_mask=(1, 1, 0))
    traj, valid = candidates.lane_following_candidates(scene.flatten(o), 4)
    assert traj.shape == (12, scene.T, 2) and traj.dtype == np.float32
    np.testing.assert_array_equal(valid, [1] * 8 + [0] * 4)
    np.testing.assert_allclose(traj[:4, :, 1], 0.0, atol=1e-6)  # current lane
    np.testing.assert_allclose(traj[4:8, -1, 1], 3.5, atol=1e-6)  # merged left by 4 s
    assert np.all(np.diff(traj[:8, :, 0], axis=1) >= -1e-6)  # never reverses
    # mode 0 brakes at A_MIN until standing still; the last mode accelerates to the limit
    v_end = np.hypot(*(traj[:, -1] - traj[:, -2]).T) / scene.DT
    assert v_end[0] == pytest.approx(0.0, abs=1e-4) and v_end[3] == pytest.approx(15.0, abs=1e-3)
    with pytest.raises(ValueError, match="M"):
        candidates.lane_following_candidates(o, 0)


# ---------------------------------- neighbour forecasts (docs/methods.md#rift-advantage, 4)
def test_bicycle_with_constant_steering_drives_the_circle_of_radius_L_over_tan_delta():
    L, delta, v, T = 2.7, 0.3, 5.0, 40
    rho = L / math.tan(delta)  # 8.87 m
    xy, psi = scoring.bicycle_rollout(
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.array([v]),
        np.zeros(1),
        np.array([delta]),
        T,
        wheelbase=L,
    )
    phi = v * scene.DT * np.arange(1, T + 1) / rho  # angle travelled around the centre (0, rho)
    np.testing.assert_allclose(xy[0, :, 0], rho * np.sin(phi), atol=1e-9)
    np.testing.assert_allclose(xy[0, :, 1], rho * (1 - np.cos(phi)), atol=1e-9)
    np.testing.assert_allclose(psi[0], phi, atol=1e-12)


def test_bicycle_holds_braking_until_standstill_and_never_reverses():
    # v0 = 4 m/s, a = -2 m/s², heading +y: stops after 2 s at 4 m, then stays
    xy, _ = scoring.bicycle_rollout(
        np.array([1.0]),
        np.array([2.0]),
        np.array([math.pi / 2]),
        np.array([4.0]),
        np.array([-2.0]),
        np.zeros(1),
        30,
    )
    t = scene.DT * np.arange(1, 31)
    along = np.where(t < 2.0, 4.0 * t - t**2, 4.0)
    np.testing.assert_allclose(xy[0, :, 1], 2.0 + along, atol=1e-9)
    np.testing.assert_allclose(xy[0, :, 0], 1.0, atol=1e-9)


def circling_neighbor(rho=10.0, v=6.0):
    """History [1, H, 6] of a vehicle driving counter-clockwise on a circle of radius rho
    around the origin at speed v; its last state is at angle 0, i.e. at (rho, 0), heading +y."""
    ang = v * scene.DT * np.arange(-scene.H + 1, 1) / rho
    h = ang + math.pi / 2
    return np.stack(
        [rho * np.cos(ang), rho * np.sin(ang), np.cos(h), np.sin(h), v * np.cos(h), v * np.sin(h)],
        -1,
    )[None]


def test_bicycle_forecast_holds_the_observed_turn_and_constant_velocity_does_not():
    nb = circling_neighbor()
    v, acc, steer = scoring.last_control(nb)
    assert v[0] == pytest.approx(6.0) and acc[0] == pytest.approx(0.0, abs=1e-9)
    assert steer[0] == pytest.approx(math.atan(scoring.WHEELBASE / 10.0), rel=1e-3)
    bike, heading = scoring.forecast_neighbors(nb, 30, forecast="bicycle")
    np.testing.assert_allclose(np.hypot(*bike[0].T), 10.0, rtol=2e-3)  # stays on the circle
    assert heading[0, -1] - heading[0, 0] == pytest.approx(6.0 * 2.9 / 10.0, rel=2e-3)
    straight_on, held = scoring.forecast_neighbors(nb, 30, forecast="constant_velocity")
    assert np.hypot(*straight_on[0, -1]) > 15.0 and np.ptp(held) == 0.0
    o = straight_scene()
    add_neighbor(o, 0, x=20.0, y=0.0, vx=10.0)
    traj, valid = group(straight())
    with pytest.raises(ValueError, match="bicycle"):
        scoring.score_candidates(traj, o, valid, forecast="unicycle")


def test_curvature_cap_of_a_curve_through_heading_pi_is_the_circle_speed():
    # a 10 m-radius arc whose heading passes ±π: the wrap must not look like a sharp turn
    from regrl.envs.traffic.candidates import A_LAT, curvature_cap

    phi = np.linspace(0.25 * np.pi, 1.75 * np.pi, 40)  # counter-clockwise, heading crosses π
    line = 10.0 * np.stack([np.cos(phi), np.sin(phi)], -1)
    cap = curvature_cap(line)
    s = np.linspace(2.0, 40.0, 20)
    np.testing.assert_allclose(cap(s), math.sqrt(A_LAT * 10.0), rtol=1e-2)


# ------------------------------------------ batched paths of the env (issue 25 item 4)
def test_dense_reward_rows_gives_dense_rewards_floats():
    rng = np.random.default_rng(4)
    k = 400
    cols = dict(
        d=rng.normal(0, 2, k),
        theta=rng.uniform(-3.2, 3.2, k),
        v=rng.choice([0.0, 3.0, 20.0, -5.0, 12.5], k) + rng.normal(0, 1, k) * (rng.random(k) < 0.5),
        a=rng.choice([0.0, 4.0, -4.0], k) + rng.normal(0, 3, k) * (rng.random(k) < 0.5),
        yaw_acc=rng.choice([0.0, 4.0, -4.0], k) + rng.normal(0, 3, k) * (rng.random(k) < 0.5),
        collision=(rng.random(k) < 0.2).astype(float),
        offroad=(rng.random(k) < 0.2).astype(float),
    )
    cols["theta"][:5] = [0.0, np.pi / 3, np.pi / 2, np.pi, -np.pi / 3]  # cos θ at 0.5, 0, −1
    fast = scoring.dense_reward_rows(**cols)
    assert isinstance(fast, list) and len(fast) == k
    # the same IEEE operations: equal floats (a tolerance only for other machines' libm)
    np.testing.assert_allclose(fast, scoring.dense_reward(**cols), rtol=1e-13, atol=1e-13)


def test_batched_scoring_gives_each_agents_own_returns():
    # agent 0: stopped car ahead, one lane; agent 1: no neighbour, left lane present and
    # a bicycle-forecast neighbour turning across; candidates differ and some are invalid
    o0 = straight_scene()
    add_neighbor(o0, 0, x=20.0, y=0.0)
    o1 = straight_scene(speed=6.0, lanes=(0.0, 3.5), lane_mask=(1, 1, 0))
    add_neighbor(o1, 0, x=12.0, y=8.0, vx=5.0, heading=-1.2)
    o1["neighbors"][0, -2, 2:4] = [math.cos(-1.1), math.sin(-1.1)]  # turning: steering held
    add_neighbor(o1, 3, x=-15.0, y=3.5, vx=9.0)
    t0, v0 = group(straight(), straight(8.0, 0.05), straight(12.0))
    t1, v1 = group(straight(6.0, 0.1), straight(5.0, 0.2))
    v0[1] = False  # an invalid candidate of a present lane
    trajs, valid = np.stack([t0, t1]), np.stack([v0, v1])
    obs = np.stack([scene.flatten(o0), scene.flatten(o1)])
    batch = scoring.score_candidates_batch(trajs, obs, valid)
    assert batch.shape == (2, scene.R) and batch.dtype == np.float32
    for k in range(2):
        alone, _ = scoring.score_candidates(trajs[k], obs[k], valid[k])
        np.testing.assert_array_equal(batch[k], alone)
    assert batch[0, 0] != batch[1, 0] and batch[0, 1] == 0.0
    with pytest.raises(ValueError, match="K = 2 agents"):
        scoring.score_candidates_batch(trajs, obs[:1], valid)
    with pytest.raises(ValueError, match="valid_mask"):
        scoring.score_candidates_batch(trajs, obs, valid[:, :2])


def _one_lane_reference(o, M):
    """lane_following_candidates of one scene dict from the one-lane functions."""
    v0 = float(np.hypot(*o["agent_hist"][-1, 4:6]))
    accels = np.linspace(candidates.A_MIN, candidates.A_MAX, M)
    t = scene.DT * np.arange(1, scene.T + 1)
    traj = np.zeros((scene.R, M, scene.T, 2))
    for r in np.flatnonzero(o["lane_mask"] > 0.5):
        line = np.asarray(o["lanes"][r], np.float64)
        cap = candidates.curvature_cap(line)
        s = candidates.speed_profiles(v0, accels, float(o["speed_limit"][0]), cap)
        tau = candidates.CENTER_TIME if r == 0 else candidates.MERGE_TIME
        fade = (1.0 - np.clip(t / tau, 0.0, 1.0)) ** 2
        traj[r] = candidates.along_polyline(line, s) - fade[None, :, None] * line[0]
    return traj.reshape(-1, scene.T, 2).astype(np.float32)


def test_batched_lane_following_candidates_match_the_one_lane_functions():
    # curved lanes (radius 30 m), a lane whose last points repeat (end of the known road),
    # a lane that reverses (heading steps of π: np.unwrap) and absent lanes
    arc = 30.0 * np.stack(
        [np.sin(np.arange(scene.P) / 15), 1 - np.cos(np.arange(scene.P) / 15)], -1
    )
    scenes = []
    for k, speed in enumerate((3.0, 9.0, 14.0, 22.0)):
        o = straight_scene(speed=speed, lanes=(0.0, 3.5, -3.5), lane_mask=(1, k % 2, 1))
        o["lanes"][0] = arc + [0.5, 0.3 * k]
        o["lanes"][2, 14:] = o["lanes"][2, 13]
        if k == 3:
            o["lanes"][1, 10:] = o["lanes"][1, 10:][::-1]
            o["lane_mask"][1] = 1.0
        scenes.append(scene.flatten(o))
    batch, valid = candidates.lane_following_candidates_batch(np.stack(scenes), 5)
    assert batch.shape == (4, 15, scene.T, 2) and valid.shape == (4, 15)
    for k, flat in enumerate(scenes):
        o = scene.unflatten(flat)
        np.testing.assert_array_equal(batch[k], _one_lane_reference(o, 5))
        single, single_valid = candidates.lane_following_candidates(flat, 5)
        np.testing.assert_array_equal(batch[k], single)
        np.testing.assert_array_equal(valid[k], single_valid)


def _offroad_reference(points, lanes, own, present, half_width):
    """What scoring computed from ``lane_relations`` before ``lane_offroad``."""
    dist, lat, heading = scoring.lane_relations(points, lanes, own, present)
    return ~np.any(dist <= half_width, axis=-1), lat, heading


def test_lane_offroad_gives_lane_relations_bits():
    # random curved lanes (some absent), candidates lanes-major (the batched path) and in
    # any order with absent own lanes (the per-lane path); points within a few float32 ulps
    # of the half width of a 3.4 m lane (0.5·3.4 is no float32 and rounds up: the test is in
    # float64), non-finite points, and a lane with repeated points
    rng = np.random.default_rng(3)
    t = np.arange(scene.P) * scene.LANE_SPACING
    edge = np.float32(1.7) + np.arange(-4, 5) * np.spacing(np.float32(1.7))
    for case in range(60):
        lanes = np.zeros((scene.R, scene.P, 2))
        for r in range(scene.R):
            bend = rng.normal(0, 0.01)
            lanes[r] = np.stack([t, 3.5 * (r - 1) + bend * t**2], -1) + rng.normal(0, 5, 2)
        lanes[0] = np.stack([t, 0 * t], -1)  # straight along x: the edge points' lane
        if case % 7 == 3:
            lanes[1, 12:] = lanes[1, 11]
        present = rng.random(scene.R) < 0.7
        present[0] = True
        half_width = 0.5 * np.array([3.4, *rng.choice([3.3, 3.5, 4.0], scene.R - 1)])
        m = 1 + case % 4
        if case % 2:  # lanes-major, m candidates per present lane
            own = np.repeat(present.nonzero()[0], m)
        else:  # any order, absent own lanes included
            own = np.concatenate([[0], rng.integers(0, scene.R, 3 * m)])
        g = len(own)
        points = lanes[own][:, :1] + rng.normal(0, 2.5, (g, scene.T, 2))
        points[0, : len(edge)] = np.stack([np.full_like(edge, 10.0), edge], -1)
        if case % 5 == 4:
            points[0, -1] = [np.nan, 1.0]
            points[-1, -2] = [np.inf, 0.0]
        with np.errstate(invalid="ignore"):
            ours = scoring.lane_offroad(points, lanes, own, present, half_width)
            reference = _offroad_reference(points, lanes, own, present, half_width)
        for a, b in zip(ours, reference):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_batched_scoring_of_an_agent_without_valid_candidates_is_zero():
    # its candidates are still simulated (``_scored_rows``) but every return reads 0
    o = straight_scene()
    add_neighbor(o, 0, x=20.0, y=0.0)
    t, v = group(straight(), straight(8.0, 0.05), straight(12.0))
    obs = np.stack([scene.flatten(o)] * 2)
    valid = np.stack([v, np.zeros_like(v)])
    batch = scoring.score_candidates_batch(np.stack([t, t]), obs, valid)
    np.testing.assert_array_equal(batch[1], 0.0)
    np.testing.assert_array_equal(batch[0], scoring.score_candidates(t, obs[0], v)[0])
    assert (batch[0] != 0).all()
