"""Multimodal lane-conditioned trajectory planner with a separate scoring head (Pluto-style:
Cheng et al. 2024, arXiv 2404.14327; used as RIFT's stage-1 policy, Chen et al., arXiv 2505.03344).

The planner reads a vectorised scene in the agent's frame (its history, neighbours' histories,
R reference lanes as polylines) and outputs, for every reference lane r and mode query m,

- a trajectory of T future (x, y) points, expressed as arclength + lateral offset along lane r
  and mapped back to the agent frame (so every candidate follows its lane's geometry), and
- one scalar logit from ``pi_head``, the only part RIFT fine-tunes (docs/methods.md#rift-planner).

Candidates are flattened lanes-major: g = r * M + m, G = R * M. Torch only: the scene arrives
as a dict of tensors; the environment package that defines the layout is never imported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED_LOGIT = -1e8  # RIFT masks padded reference lines with -1e8 (docs/methods.md#rift-loss)
POS_SCALE, VEL_SCALE = 20.0, 10.0  # metres and m/s -> order-one network inputs


@dataclass(frozen=True)
class PlannerConfig:
    hist_steps: int = 10
    """H: history steps of the agent and neighbours."""
    num_neighbors: int = 10
    """N: neighbour slots."""
    num_lanes: int = 3
    """R: reference lanes."""
    lane_points: int = 20
    """P: points per lane polyline."""
    horizon: int = 40
    """T: future steps (4 s at 10 Hz)."""
    num_modes: int = 6
    """M: mode queries per lane."""
    dim: int = 64
    """Width of every embedding."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"PlannerConfig.{name} must be >= 1, got {value}")

    @property
    def num_candidates(self) -> int:
        return self.num_lanes * self.num_modes


def _mlp(in_dim: int, dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim)
    )


def _hist_features(hist: torch.Tensor) -> torch.Tensor:
    """[..., H, 6] (x, y, cos h, sin h, vx, vy) -> scaled and flattened [..., 6H]."""
    scale = hist.new_tensor([POS_SCALE, POS_SCALE, 1.0, 1.0, VEL_SCALE, VEL_SCALE])
    return (hist / scale).flatten(-2)


def _masked_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean and max over dim -2 of x [B, N, D]; all-masked rows give zeros."""
    m = mask.to(x.dtype).unsqueeze(-1)
    mean = (x * m).sum(-2) / m.sum(-2).clamp_min(1.0)
    mx = torch.where(m > 0, x, torch.full_like(x, -1e4)).amax(-2)
    mx = torch.where(m.sum(-2) > 0, mx, torch.zeros_like(mx))
    return torch.cat([mean, mx], -1)


def lane_frame(lanes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cumulative arclength s [B, R, P], unit tangents [B, R, P-1, 2] and segment lengths
    [B, R, P-1] of polylines lanes [B, R, P, 2]."""
    seg = lanes[..., 1:, :] - lanes[..., :-1, :]
    length = seg.norm(dim=-1).clamp_min(1e-6)
    tangent = seg / length.unsqueeze(-1)
    s = torch.cat([torch.zeros_like(length[..., :1]), length.cumsum(-1)], -1)
    return s, tangent, length


def along_lane(lanes: torch.Tensor, s: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """Points at arclength s [B, R, K, T] and left-normal offset ``lateral`` (same shape) of
    lanes [B, R, P, 2] -> [B, R, K, T, 2]; beyond the ends the end segments are extended."""
    cum, tangent, _ = lane_frame(lanes)
    b, r, k, t = s.shape
    flat_s = s.reshape(b, r, k * t)
    seg = torch.searchsorted(cum[..., 1:-1].contiguous(), flat_s.detach().contiguous())
    base = torch.gather(lanes, 2, seg.unsqueeze(-1).expand(-1, -1, -1, 2))
    tan = torch.gather(tangent, 2, seg.unsqueeze(-1).expand(-1, -1, -1, 2))
    ds = flat_s - torch.gather(cum, 2, seg)
    normal = torch.stack([-tan[..., 1], tan[..., 0]], -1)
    xy = base + ds.unsqueeze(-1) * tan + lateral.reshape(b, r, k * t, 1) * normal
    return xy.reshape(b, r, k, t, 2)


def project_origin(lanes: torch.Tensor) -> torch.Tensor:
    """Arclength [B, R] of the point of each polyline closest to the agent (the origin)."""
    cum, tangent, length = lane_frame(lanes)
    start = lanes[..., :-1, :]
    u = (-(start * tangent).sum(-1)).clamp(min=0.0)
    u = torch.minimum(u, length)
    closest = start + u.unsqueeze(-1) * tangent
    seg = closest.norm(dim=-1).argmin(-1, keepdim=True)  # [B, R, 1]
    return (torch.gather(cum[..., :-1], -1, seg) + torch.gather(u, -1, seg)).squeeze(-1)


class Planner(nn.Module):
    """Scene -> ``{"traj": [B, G, T, 2], "logits": [B, G], "valid": [B, G]}`` (G = R·M)."""

    def __init__(self, config: PlannerConfig = PlannerConfig()):
        super().__init__()
        c, d = config, config.dim
        self.config = c
        self.agent_enc = _mlp(6 * c.hist_steps + 3, d, d)
        self.neighbor_enc = _mlp(6 * c.hist_steps + 2, d, d)
        self.lane_enc = _mlp(2 * c.lane_points + 2, d, d)
        self.context = _mlp(3 * d, d, d)
        self.mode_emb = nn.Parameter(torch.randn(c.num_modes, d) * 0.1)
        self.decoder = _mlp(d, d, d)
        self.traj_head = nn.Linear(d, 2 * c.horizon)  # per step: raw arclength step, lateral
        self.pi_head = _mlp(d, d, 1)  # the scoring head (RIFT trains only it)
        with torch.no_grad():  # start on the lane centre, advancing softplus(0.5) ~ 1 m/step
            self.traj_head.bias[: c.horizon].fill_(0.5)
            self.traj_head.bias[c.horizon :].zero_()

    def features(self, scene: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Query features f[b, r, m] [B, R, M, D] of every (lane, mode) pair."""
        agent = torch.cat(
            [
                _hist_features(scene["agent_hist"]),
                scene["agent_size"] / 5.0,
                scene["speed_limit"] / 20.0,
            ],
            -1,
        )
        a = self.agent_enc(agent)
        nb = torch.cat([_hist_features(scene["neighbors"]), scene["neighbor_size"] / 5.0], -1)
        n = _masked_pool(self.neighbor_enc(nb), scene["neighbor_mask"] > 0.5)
        lanes = torch.cat(
            [
                (scene["lanes"] / POS_SCALE).flatten(-2),
                scene["lane_width"].unsqueeze(-1) / 4.0,
                project_origin(scene["lanes"]).unsqueeze(-1) / POS_SCALE,
            ],
            -1,
        )
        lane = self.lane_enc(lanes)  # [B, R, D]
        ctx = self.context(torch.cat([a, n], -1))  # [B, D]
        q = ctx[:, None, None] + lane[:, :, None] + self.mode_emb[None, None]
        return self.decoder(q)

    def trajectories(self, scene: Dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
        """Decode f [B, R, M, D] to agent-frame trajectories [B, G, T, 2]."""
        c = self.config
        raw = self.traj_head(f)
        step, lateral = F.softplus(raw[..., : c.horizon]), raw[..., c.horizon :]
        s = project_origin(scene["lanes"])[..., None, None] + step.cumsum(-1)
        traj = along_lane(scene["lanes"], s, lateral)  # [B, R, M, T, 2]
        return traj.flatten(1, 2)

    def scores(
        self, scene: Dict[str, torch.Tensor], f: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(masked logits [B, G], valid [B, G]); candidates of padded lanes get -1e8."""
        valid = (scene["lane_mask"] > 0.5)[..., None].expand(-1, -1, self.config.num_modes)
        logits = self.pi_head(f).squeeze(-1)
        logits = torch.where(valid, logits, torch.full_like(logits, MASKED_LOGIT))
        return logits.flatten(1), valid.flatten(1)

    def forward(
        self, scene: Dict[str, torch.Tensor], with_traj: bool = True
    ) -> Dict[str, torch.Tensor]:
        f = self.features(scene)
        logits, valid = self.scores(scene, f)
        out = {"logits": logits, "valid": valid}
        if with_traj:
            out["traj"] = self.trajectories(scene, f)
        return out


# ----------------------------------------------------------------------------- stage-1 loss
def lane_distance(
    lanes: torch.Tensor, lane_mask: torch.Tensor, future: torch.Tensor, future_mask: torch.Tensor
) -> torch.Tensor:
    """Mean over valid future steps of the distance to each lane's nearest vertex, [B, R];
    padded lanes get +inf (Pluto assigns the ground truth to its nearest reference line)."""
    d = (future[:, None, :, None, :] - lanes[:, :, None, :, :]).norm(dim=-1).amin(-1)  # [B,R,T]
    m = future_mask[:, None, :].to(d.dtype)
    mean = (d * m).sum(-1) / m.sum(-1).clamp_min(1.0)
    return torch.where(lane_mask > 0.5, mean, torch.full_like(mean, float("inf")))


def displacement(
    traj: torch.Tensor, future: torch.Tensor, future_mask: torch.Tensor
) -> torch.Tensor:
    """Average displacement error of traj [B, G, T, 2] against future [B, T, 2] over the
    valid steps of future_mask [B, T]: [B, G]."""
    err = (traj - future[:, None]).norm(dim=-1)
    m = future_mask[:, None, :].to(err.dtype)
    return (err * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def final_displacement(
    traj: torch.Tensor, future: torch.Tensor, future_mask: torch.Tensor
) -> torch.Tensor:
    """Final displacement error of traj [B, G, T, 2] against future [B, T, 2]: the distance
    at the last valid step of future_mask [B, T] ("the final time available", nuPlan's FDE),
    [B, G]. A sample whose future ends early is scored at its own last step; one with no
    valid step at step 0 (callers exclude it)."""
    b, t = future_mask.shape
    steps = torch.arange(1, t + 1, device=future_mask.device)
    last = ((future_mask > 0.5).long() * steps).argmax(-1)  # [B]
    rows = torch.arange(b, device=traj.device)
    return (traj[rows, :, last] - future[rows, last][:, None]).norm(dim=-1)


def forecast_errors(
    traj: torch.Tensor,
    future: torch.Tensor,
    future_mask: torch.Tensor,
    lane_mask: torch.Tensor,
    target: torch.Tensor,
    num_modes: int,
) -> Dict[str, torch.Tensor]:
    """Open-loop displacement errors of the G = R·M candidates, per sample [B]:

    - ``min_ade`` / ``min_fde``: ADE and FDE of the winner-take-all candidate ``target`` (g*
      of :func:`wta_target`, the mode with the lowest ADE on the lane nearest the ground
      truth; Pluto's regression target), so both describe the same trajectory;
    - ``min_ade_k`` / ``min_fde_k``: the benchmark definitions minADE_K and minFDE_K with
      K = every candidate on a valid lane, each minimised on its own over the K candidates
      (nuScenes prediction devkit ``min_ade_k`` / ``min_fde_k``; Waymo Open Motion's
      minADE / minFDE; Argoverse 2 takes min over K of ``compute_fde`` for minFDE).

    ADE over the valid steps (:func:`displacement`), FDE at the last valid step
    (:func:`final_displacement`). Shapes: traj [B, G, T, 2], future [B, T, 2], future_mask
    [B, T], lane_mask [B, R], target [B] (long). A sample without a valid lane gets +inf in
    the ``_k`` entries (callers exclude it, as :func:`planning_loss` does)."""
    ade = displacement(traj, future, future_mask)
    fde = final_displacement(traj, future, future_mask)
    valid = (lane_mask > 0.5).repeat_interleave(num_modes, dim=1)  # [B, G], lanes-major
    inf = torch.full_like(ade, float("inf"))
    return {
        "min_ade": ade.gather(1, target[:, None]).squeeze(1),
        "min_fde": fde.gather(1, target[:, None]).squeeze(1),
        "min_ade_k": torch.where(valid, ade, inf).amin(-1),
        "min_fde_k": torch.where(valid, fde, inf).amin(-1),
    }


def wta_target(
    traj: torch.Tensor,
    future: torch.Tensor,
    future_mask: torch.Tensor,
    lanes: torch.Tensor,
    lane_mask: torch.Tensor,
    num_modes: int,
) -> torch.Tensor:
    """Winner-take-all target candidate index g* = r*·M + m* [B]: r* is the valid lane
    nearest to the ground truth, m* the mode of lane r* with the smallest ADE."""
    r_star = lane_distance(lanes, lane_mask, future, future_mask).argmin(-1)  # [B]
    ade = displacement(traj, future, future_mask).detach()
    b, g = ade.shape
    ade = ade.reshape(b, g // num_modes, num_modes)
    m_star = ade[torch.arange(b), r_star].argmin(-1)
    return r_star * num_modes + m_star


def planning_loss(
    traj: torch.Tensor,
    logits: torch.Tensor,
    future: torch.Tensor,
    future_mask: torch.Tensor,
    lanes: torch.Tensor,
    lane_mask: torch.Tensor,
    *,
    num_modes: int,
    ce_weight: float = 1.0,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Pluto's imitation loss (Cheng et al. 2024, arXiv 2404.14327: the planning loss
    L_reg + L_cls of its decoder; its drivable-area auxiliary cost is
    :func:`drivable_area_loss`, its prediction and contrastive terms are left out):
    winner-take-all L2 on the mode nearest the ground truth within the reference line nearest
    the ground truth, plus cross-entropy of the scores against that candidate.

    ``L_reg = ADE(traj[g*], future)`` (mean Euclidean distance over valid steps, only the
    winner g* of :func:`wta_target` gets gradient) and ``L_cls = CE(logits, g*)`` over all
    G candidates (padded lanes are already at -1e8). ``loss = mean_b L_reg + ce_weight·mean_b L_cls``.

    Args: traj [B, G, T, 2], logits [B, G], future [B, T, 2], future_mask [B, T] (bool/float),
    lanes [B, R, P, 2], lane_mask [B, R]; G = R·num_modes. Samples without any valid future
    step or valid lane are excluded.
    Returns: (loss, metrics) with ``reg_loss``, ``ce_loss``, ``top1_acc`` (argmax logit ==
    g*) and the open-loop errors of :func:`forecast_errors` (``min_ade`` = ``reg_loss``,
    ``min_fde`` of the same winner, ``min_ade_k`` / ``min_fde_k`` over all valid candidates),
    each the mean over the included samples.
    """
    if traj.shape[1] != logits.shape[1] or traj.shape[1] != lanes.shape[1] * num_modes:
        raise ValueError(
            f"traj {tuple(traj.shape)} / logits {tuple(logits.shape)} do not hold "
            f"R·M = {lanes.shape[1]}·{num_modes} candidates"
        )
    target = wta_target(traj, future, future_mask, lanes, lane_mask, num_modes)
    ok = ((future_mask > 0.5).any(-1) & (lane_mask > 0.5).any(-1)).to(traj.dtype)
    ade = displacement(traj, future, future_mask)
    reg = ade.gather(1, target[:, None]).squeeze(1)
    ce = F.cross_entropy(logits, target, reduction="none")
    n = ok.sum().clamp_min(1.0)
    reg_loss, ce_loss = (reg * ok).sum() / n, (ce * ok).sum() / n
    acc = ((logits.argmax(-1) == target).to(traj.dtype) * ok).sum() / n
    loss = reg_loss + ce_weight * ce_loss
    with torch.no_grad():
        errors = forecast_errors(traj, future, future_mask, lane_mask, target, num_modes)
        errors = {k: torch.where(ok > 0, v, 0.0).sum() / n for k, v in errors.items()}
    return loss, {
        "reg_loss": reg_loss.detach(),
        "ce_loss": ce_loss.detach(),
        **errors,
        "min_ade": reg_loss.detach(),
        "top1_acc": acc.detach(),
    }


# ------------------------------------------------------------- Pluto's auxiliary cost
def drivable_sdf(
    points: torch.Tensor,
    lanes: torch.Tensor,
    lane_mask: torch.Tensor,
    lane_width: torch.Tensor,
    margin: float = 3.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Signed distance of points [B, K, 2] to the drivable area, the union of the valid lane
    corridors (centre line ``lanes`` [B, R, P, 2] +- ``lane_width`` [B, R] / 2), positive
    inside: ``sdf = max_r (w_r / 2 - dist(point, centre line r))`` over the valid lanes whose
    polyline the point projects onto, its end segments extended straight by ``margin`` m
    (the lanes start at the agent's projection, so its rear lies behind them). Returns (sdf [B, K],
    known [B, K]); ``known`` is False where no valid lane covers the point (off the map we
    observe, like the cells outside Pluto's cost map, which get no cost)."""
    _, tangent, length = lane_frame(lanes)  # [B, R, P-1, 2], [B, R, P-1]
    rel = points[:, None, :, None, :] - lanes[:, :, None, :-1, :]  # [B, R, K, P-1, 2]
    u_raw = (rel * tangent[:, :, None]).sum(-1)
    lo = torch.zeros_like(length)
    lo[..., 0] = -margin
    hi = length.clone()
    hi[..., -1] += margin
    u = torch.minimum(torch.maximum(u_raw, lo[:, :, None]), hi[:, :, None])
    dist = (rel - u.unsqueeze(-1) * tangent[:, :, None]).norm(dim=-1)  # [B, R, K, P-1]
    d, seg = dist.min(-1)  # [B, R, K]
    u_near = torch.gather(u_raw, -1, seg.unsqueeze(-1)).squeeze(-1)
    last = lanes.shape[2] - 2
    len_last = length[..., -1:].expand_as(u_near)
    beyond = ((seg == 0) & (u_near < -margin)) | ((seg == last) & (u_near > len_last + margin))
    covered = (lane_mask[:, :, None] > 0.5) & ~beyond
    sd = torch.where(covered, lane_width[:, :, None] / 2 - d, torch.full_like(d, -1e4))
    return sd.amax(1), covered.any(1)


def vehicle_circles(traj: torch.Tensor, size: torch.Tensor, num_circles: int = 3):
    """Pluto's ego footprint (its auxiliary-loss section): ``num_circles`` circles of radius
    sqrt(w^2 + (L / n)^2) / 2 centred along the heading. traj [B, T, 2] (vehicle centres, the
    agent's frame, origin = current centre), size [B, 2] = [length, width]. The heading at
    step t is the direction of traj[t] - traj[t-1] (traj[-1] := origin). Returns (centres
    [B, T, n, 2], radius [B])."""
    prev = torch.cat([torch.zeros_like(traj[:, :1]), traj[:, :-1]], 1)
    heading = F.normalize(traj - prev, dim=-1, eps=1e-3)
    length, width = size[:, 0], size[:, 1]
    interval = length / num_circles
    k = torch.arange(num_circles, dtype=traj.dtype, device=traj.device)
    offset = -length[:, None] / 2 + interval[:, None] * (k + 0.5)  # [B, n]
    centres = traj[:, :, None, :] + offset[:, None, :, None] * heading[:, :, None, :]
    return centres, torch.sqrt(width**2 + interval**2) / 2


def drivable_area_loss(
    traj: torch.Tensor,
    future_mask: torch.Tensor,
    size: torch.Tensor,
    lanes: torch.Tensor,
    lane_mask: torch.Tensor,
    lane_width: torch.Tensor,
    num_circles: int = 3,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Pluto's differentiable auxiliary loss (Cheng et al. 2024, arXiv 2404.14327, Sec. III,
    "Efficient Differentiable Auxiliary Loss"; the form follows the authors' code,
    ``src/models/pluto/loss/esdf_collision_loss.py``): the planned trajectory's footprint,
    covered by n circles of radius R_c, is pushed out of the non-drivable area by
    ``L_aux = (1/|V|) sum_t sum_i max(0, R_c - d_i^t)``, with d_i^t the signed distance
    of circle i at step t to the drivable area's boundary. Pluto reads d from an ESDF
    raster of the non-drivable area (and sums over |V|, the circle-steps in violation, as its
    code does); here d is exact, from :func:`drivable_sdf` on the observed lane corridors,
    since MetaDrive's scene gives lanes, not a raster. Applied, as in Pluto, to the
    winner-take-all candidate only (traj = traj[g*]) and only to samples whose agent starts
    on the drivable area.

    Args: traj [B, T, 2], future_mask [B, T] (steps that count), size [B, 2] = [length,
    width], lanes [B, R, P, 2], lane_mask [B, R], lane_width [B, R].
    Returns: (loss, {"aux_cost": loss, "aux_violation": share of counted circle-steps with
    positive cost}).
    """
    b, t, _ = traj.shape
    centres, radius = vehicle_circles(traj, size, num_circles)
    sdf, known = drivable_sdf(centres.reshape(b, t * num_circles, 2), lanes, lane_mask, lane_width)
    sdf0, known0 = drivable_sdf(traj.new_zeros(b, 1, 2), lanes, lane_mask, lane_width)
    on_road = (known0 & (sdf0 > 0)).squeeze(1)  # Pluto: no cost where the agent starts off-road
    cost = (radius[:, None] - sdf).reshape(b, t, num_circles)
    count = (
        known.reshape(b, t, num_circles) & (future_mask[..., None] > 0.5) & on_road[:, None, None]
    )
    active = count & (cost > 0)
    loss = torch.where(active, cost, torch.zeros_like(cost)).sum() / (active.sum() + 1e-6)
    share = active.sum().to(traj.dtype) / count.sum().clamp_min(1).to(traj.dtype)
    return loss, {"aux_cost": loss.detach(), "aux_violation": share.detach()}


def save_planner(path, planner: Planner, extra: Dict | None = None) -> None:
    """A self-describing checkpoint: config + weights (+ anything in ``extra``)."""
    torch.save(
        {"config": asdict(planner.config), "state_dict": planner.state_dict(), **(extra or {})},
        path,
    )


def load_planner(path, map_location: str = "cpu") -> Planner:
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"planner checkpoint {path} does not exist") from None
    if not isinstance(blob, dict) or "config" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not a planner checkpoint (needs 'config' and 'state_dict')")
    planner = Planner(PlannerConfig(**blob["config"]))
    planner.load_state_dict(blob["state_dict"])
    return planner
