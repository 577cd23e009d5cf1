"""Multimodal planner (Pluto-style, RIFT stage 1): shapes, lane geometry, WTA loss numbers."""

import math

import pytest
import torch

from regrl.agents.models.planner import (
    MASKED_LOGIT,
    Planner,
    PlannerConfig,
    along_lane,
    drivable_area_loss,
    drivable_sdf,
    final_displacement,
    forecast_errors,
    lane_distance,
    load_planner,
    planning_loss,
    project_origin,
    save_planner,
    wta_target,
)

torch.set_num_threads(1)
TINY = PlannerConfig(
    hist_steps=3, num_neighbors=2, num_lanes=2, lane_points=5, horizon=4, num_modes=3, dim=8
)


def scene(b=2, c=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(c.lane_points, dtype=torch.float32) * 2.0 - 2.0
    lane = torch.stack([x, torch.zeros_like(x)], -1)
    lanes = torch.stack([lane + torch.tensor([0.0, 3.5 * r]) for r in range(c.num_lanes)])
    return {
        "agent_hist": torch.randn(b, c.hist_steps, 6, generator=g),
        "neighbors": torch.randn(b, c.num_neighbors, c.hist_steps, 6, generator=g),
        "neighbor_mask": torch.tensor([[1.0, 0.0]] * b),
        "neighbor_size": torch.ones(b, c.num_neighbors, 2),
        "lanes": lanes.expand(b, -1, -1, -1).clone(),
        "lane_mask": torch.tensor([[1.0, 1.0], [1.0, 0.0]])[:b],
        "lane_width": torch.full((b, c.num_lanes), 3.5),
        "agent_size": torch.tensor([[4.5, 2.0]] * b),
        "speed_limit": torch.full((b, 1), 15.0),
    }


def test_shapes_and_padded_lanes_masked():
    out = Planner(TINY)(scene())
    assert out["traj"].shape == (2, 6, 4, 2)
    assert out["logits"].shape == (2, 6)
    assert torch.isfinite(out["traj"]).all()
    # sample 1 has lane 1 padded -> candidates g = 3, 4, 5 (lanes-major) are masked
    assert torch.all(out["logits"][1, 3:] == MASKED_LOGIT)
    assert torch.all(out["logits"][1, :3] > MASKED_LOGIT / 2)
    assert out["valid"].tolist() == [[True] * 6, [True] * 3 + [False] * 3]


def test_along_lane_and_projection_on_a_bent_polyline():
    # lane: (0,1) -> (2,1) -> (2,3): arclength 2 to the corner, then north
    lanes = torch.tensor([[[[0.0, 1.0], [2.0, 1.0], [2.0, 3.0]]]])
    s = torch.tensor([[[[1.0, 3.0, 5.0, -1.0]]]])
    lat = torch.tensor([[[[0.5, 0.0, 0.0, 0.0]]]])
    xy = along_lane(lanes, s, lat)[0, 0, 0]
    # s=1 on the first segment, +0.5 to the left (north); s=3 one metre up the second
    # segment; s=5 extrapolates the last segment; s=-1 extrapolates the first one backwards
    expected = torch.tensor([[1.0, 1.5], [2.0, 2.0], [2.0, 4.0], [-1.0, 1.0]])
    assert torch.allclose(xy, expected, atol=1e-6)
    # origin projects onto (0, 1): arclength 0; shifting the lane left by 1.5 moves it to 1.5
    assert project_origin(lanes).item() == pytest.approx(0.0)
    assert project_origin(lanes - torch.tensor([1.5, 0.0])).item() == pytest.approx(1.5)


def test_candidates_start_on_their_lane_and_move_forward():
    p = Planner(TINY)
    with torch.no_grad():
        p.traj_head.weight.zero_()  # lateral offset 0, arclength step softplus(0.5) per step
        traj = p(scene())["traj"]
    # lanes-major: candidates 0..2 ride lane 0 (y = 0), 3..5 lane 1 (y = 3.5), starting from
    # the agent's projection (x = 0) and advancing softplus(0.5) = 0.974 m per step
    step = math.log1p(math.exp(0.5))
    expected_x = step * torch.arange(1, 5, dtype=torch.float32)
    assert torch.allclose(traj[0, :, :, 0], expected_x.expand(6, -1), atol=1e-5)
    assert torch.allclose(traj[0, :3, :, 1], torch.zeros(3, 4), atol=1e-6)
    assert torch.allclose(traj[0, 3:, :, 1], torch.full((3, 4), 3.5), atol=1e-6)


def _example():
    # one sample, R=2 lanes (y=0 and y=3.5), M=2 modes, T=2 steps
    lanes = torch.tensor([[[[0.0, 0.0], [10.0, 0.0]], [[0.0, 3.5], [10.0, 3.5]]]])
    future = torch.tensor([[[1.0, 3.0], [2.0, 3.0]]])  # near lane 1
    traj = torch.tensor(
        [
            [
                [[1.0, 0.0], [2.0, 0.0]],  # g0 = (lane 0, mode 0): ADE 3.0
                [[1.0, 3.0], [2.0, 3.0]],  # g1 = (lane 0, mode 1): ADE 0 (exact)
                [[1.0, 3.5], [2.0, 4.0]],  # g2 = (lane 1, mode 0): ADE 0.75
                [[1.0, 3.0], [3.0, 3.0]],
            ]
        ]
    )  # g3 = (lane 1, mode 1): ADE 0.5
    return lanes, future, traj


def test_wta_target_is_closest_mode_of_the_lane_nearest_the_ground_truth():
    lanes, future, traj = _example()
    fm, lm = torch.ones(1, 2), torch.ones(1, 2)
    dist = lane_distance(lanes, lm, future, fm)
    # nearest vertex: lane 0 -> (0,0): distances sqrt(1+9), sqrt(4+9); lane 1 -> (0,3.5)
    assert dist[0, 0].item() == pytest.approx((math.sqrt(10) + math.sqrt(13)) / 2, rel=1e-6)
    assert dist[0, 1].item() == pytest.approx((math.sqrt(1.25) + math.sqrt(4.25)) / 2, rel=1e-6)
    # g1 has the smallest ADE overall but sits on lane 0: the target is g3 (lane 1, mode 1)
    assert wta_target(traj, future, fm, lanes, lm, num_modes=2).tolist() == [3]
    # with lane 1 padded, the target falls back to lane 0's best mode g1
    assert wta_target(traj, future, fm, lanes, torch.tensor([[1.0, 0.0]]), 2).tolist() == [1]


def test_planning_loss_numbers_and_winner_only_gradient():
    lanes, future, traj = _example()
    traj = traj.clone().requires_grad_(True)
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5]])
    loss, m = planning_loss(
        traj, logits, future, torch.ones(1, 2), lanes, torch.ones(1, 2), num_modes=2, ce_weight=0.5
    )
    ce = -(0.5 - math.log(math.exp(0) + math.exp(1) + math.exp(2) + math.exp(0.5)))
    assert m["reg_loss"].item() == pytest.approx(0.5)  # ADE of g3: (0 + 1) / 2
    assert m["ce_loss"].item() == pytest.approx(ce, rel=1e-6)
    assert loss.item() == pytest.approx(0.5 + 0.5 * ce, rel=1e-6)
    assert m["top1_acc"].item() == 0.0  # argmax is g2, target g3
    loss.backward()
    assert traj.grad[0, :3].abs().sum() == 0 and traj.grad[0, 3].abs().sum() > 0


def test_future_mask_drops_steps_and_samples():
    lanes, future, traj = _example()
    fm = torch.tensor([[1.0, 0.0]])  # only step 0 counts: g3 matches it exactly
    _, m = planning_loss(traj, torch.zeros(1, 4), future, fm, lanes, torch.ones(1, 2), num_modes=2)
    assert m["reg_loss"].item() == pytest.approx(0.0)
    loss, m = planning_loss(
        traj, torch.zeros(1, 4), future, torch.zeros(1, 2), lanes, torch.ones(1, 2), num_modes=2
    )
    assert loss.item() == 0.0  # no valid future step: the sample is excluded


def _fde_example():
    """Two samples, R=2 lanes (y=0, y=3.5), M=2, T=3; ground truth along y=3 (nearest lane 1).
    Per-step errors of each candidate (ADE / FDE by hand):
    g0 (lane 0): 3, 3, 3     -> 3.0 / 3.0
    g1 (lane 0): 0, 0, 1.5   -> 0.5 / 1.5   (lowest ADE overall, wrong lane)
    g2 (lane 1): 1, 1, 0.4   -> 0.8 / 0.4   (lowest FDE overall)
    g3 (lane 1): 0, 0.6, 1.2 -> 0.6 / 1.2   (winner: lowest ADE on lane 1)
    """
    lane = lambda y: [[0.0, y], [10.0, y]]  # noqa: E731
    lanes = torch.tensor([[lane(0.0), lane(3.5)]] * 2)
    future = torch.tensor([[[1.0, 3.0], [2.0, 3.0], [3.0, 3.0]]] * 2)
    g = [
        [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]],
        [[1.0, 3.0], [2.0, 3.0], [3.0, 4.5]],
        [[1.0, 4.0], [2.0, 4.0], [3.0, 3.4]],
        [[1.0, 3.0], [2.0, 3.6], [3.0, 4.2]],
    ]
    return lanes, future, torch.tensor([g, g])


def test_final_displacement_is_at_the_last_valid_step():
    """Catches FDE taken at the wrong step: step 0 (g3: 0), T-2 (0.6), T-1 when the future
    ends early (1.2 instead of 0.6), or the mean over steps (ADE)."""
    _, future, traj = _fde_example()
    fm = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    fde = final_displacement(traj, future, fm)
    assert fde[0].tolist() == pytest.approx([3.0, 1.5, 0.4, 1.2], rel=1e-6)
    assert fde[1].tolist() == pytest.approx([3.0, 0.0, 1.0, 0.6], rel=1e-6)


def test_forecast_errors_hand_computed():
    """min_ade / min_fde belong to the winner g3; min_ade_k / min_fde_k are minimised
    separately over the valid candidates. Catches ADE and FDE swapped (0.6 vs 1.2, 0.5 vs
    0.4), minFDE_K taken as the FDE of the lowest-ADE candidate (1.5), the winner's FDE taken
    from the global best (0.4) and candidates of a padded lane counted (sample 1: g2, g3)."""
    lanes, future, traj = _fde_example()
    fm, lm = torch.ones(2, 3), torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    target = wta_target(traj, future, fm, lanes, lm, num_modes=2)
    assert target.tolist() == [3, 1]
    e = forecast_errors(traj, future, fm, lm, target, num_modes=2)
    assert e["min_ade"].tolist() == pytest.approx([0.6, 0.5], rel=1e-6)
    assert e["min_fde"].tolist() == pytest.approx([1.2, 1.5], rel=1e-6)
    assert e["min_ade_k"].tolist() == pytest.approx([0.5, 0.5], rel=1e-6)
    assert e["min_fde_k"].tolist() == pytest.approx([0.4, 1.5], rel=1e-6)


def test_planning_loss_reports_the_errors_as_means_over_included_samples():
    lanes, future, traj = _fde_example()
    fm = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # sample 1 has no future: excluded
    _, m = planning_loss(traj, torch.zeros(2, 4), future, fm, lanes, torch.ones(2, 2), num_modes=2)
    assert m["min_ade"].item() == pytest.approx(0.6, rel=1e-6)
    assert m["min_fde"].item() == pytest.approx(1.2, rel=1e-6)
    assert m["min_ade_k"].item() == pytest.approx(0.5, rel=1e-6)
    assert m["min_fde_k"].item() == pytest.approx(0.4, rel=1e-6)


def test_bad_shapes_and_config_raise():
    lanes, future, traj = _example()
    with pytest.raises(ValueError, match="R·M"):
        planning_loss(
            traj, torch.zeros(1, 4), future, torch.ones(1, 2), lanes, torch.ones(1, 2), num_modes=3
        )
    with pytest.raises(ValueError, match="num_modes"):
        PlannerConfig(num_modes=0)


def test_checkpoint_roundtrip(tmp_path):
    p = Planner(TINY)
    save_planner(tmp_path / "planner.pt", p, {"epoch": 3})
    q = load_planner(tmp_path / "planner.pt")
    s = scene()
    with torch.no_grad():
        assert torch.equal(p(s)["logits"], q(s)["logits"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_planner(tmp_path / "missing.pt")


# ------------------------------------------------------- Pluto's auxiliary drivable-area cost
def straight_lanes(ys, width=3.5, mask=None, p=11):
    """Lanes along +x from x = 0 to 20 at the given y offsets, one scene ([1, R, P, 2])."""
    x = torch.linspace(0.0, 20.0, p)
    lanes = torch.stack([torch.stack([x, torch.full_like(x, y)], -1) for y in ys])[None]
    lane_mask = torch.tensor([mask or [1.0] * len(ys)])
    return lanes, lane_mask, torch.full((1, len(ys)), width)


def test_drivable_sdf_is_the_union_of_the_lane_corridors():
    lanes, lane_mask, width = straight_lanes([0.0, 3.5])
    pts = torch.tensor([[[5.0, 1.0], [5.0, 3.0], [5.0, -3.0], [-2.0, 0.5], [-5.0, 0.0]]])
    sdf, known = drivable_sdf(pts, lanes, lane_mask, width)
    # 1.75 - 1; max(1.75 - 3, 1.75 - 0.5); 1.75 - 3; behind the start within the 3 m margin
    assert torch.allclose(sdf[0, :4], torch.tensor([0.75, 1.25, -1.25, 1.25]), atol=1e-5)
    assert known[0].tolist() == [True, True, True, True, False]  # 5 m behind: off the map
    sdf, _ = drivable_sdf(pts, lanes, torch.tensor([[1.0, 0.0]]), width)  # left lane padded
    assert sdf[0, 1].item() == pytest.approx(1.75 - 3.0, abs=1e-5)


def test_drivable_area_loss_numbers_and_gradient():
    """Vehicle 3 m x 1.6 m: 3 circles 1 m apart of radius sqrt(1.6^2 + 1^2)/2 = 0.9434 m.
    Sample 0 drives along y = 0 with its lane's centre at y = -1 (sdf = 1.75 - 1 = 0.75, cost
    0.1934 on all 9 circle-steps); sample 1 drives on its lane's centre (no cost); sample 2
    starts off the road (lane at y = -5: excluded, as in Pluto)."""
    traj = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]]).repeat(3, 1, 1)
    traj.requires_grad_(True)
    lanes = torch.cat([straight_lanes([y])[0] for y in (-1.0, 0.0, -5.0)])
    lane_mask, width = torch.ones(3, 1), torch.full((3, 1), 3.5)
    size = torch.tensor([[3.0, 1.6]] * 3)
    loss, m = drivable_area_loss(traj, torch.ones(3, 3), size, lanes, lane_mask, width)
    radius = math.sqrt(1.6**2 + 1.0) / 2
    assert loss.item() == pytest.approx(radius - 0.75, abs=1e-5)  # mean over violating circles
    assert m["aux_violation"].item() == pytest.approx(0.5)  # 9 of the 18 counted (not sample 2)
    loss.backward()
    # moving a point up by dy moves its 3 circles away from the centre line: 3/9 per point
    assert torch.allclose(traj.grad[0, :, 1], torch.full((3,), 1 / 3), atol=1e-4)
    assert traj.grad[1:].abs().max().item() == 0.0
    fmask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    masked, m = drivable_area_loss(traj, fmask, size, lanes, lane_mask, width)
    assert masked.item() == pytest.approx(radius - 0.75, abs=1e-5)
    assert m["aux_violation"].item() == pytest.approx(3 / 12)  # masked steps do not count
