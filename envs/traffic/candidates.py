"""Built-in candidate generator: constant-acceleration profiles along each reference lane.

The env uses it when no planner is injected (``candidate_fn=None``), so that candidate mode is
runnable and testable without a trained model. Candidate g = r·M + m follows reference lane r
(current, left, right) with the m-th acceleration of ``np.linspace(A_MIN, A_MAX, M)``; the
speed is clipped to [0, speed limit] and, in curves, to the speed of A_LAT lateral
acceleration. A candidate on a neighbouring lane merges smoothly: the
offset between the agent and the lane fades out as (1 − t/τ)², τ = ``MERGE_TIME`` s for a
neighbouring lane and ``CENTER_TIME`` s for the current one. The fade starts with a non-zero
slope on purpose: the env replans every 0.1 s, and a fade that is flat at t = 0 (e.g. a
smoothstep) would never pull the tracked car back to the centre line.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from regrl.envs.traffic.scene import DT, R, T, unflatten

A_MIN, A_MAX = -4.0, 2.0  # m/s²: hard-but-comfortable braking .. mild acceleration
MERGE_TIME = 3.0  # s to complete a lane change
CENTER_TIME = 1.5  # s to return to the centre of the current lane
A_LAT = 3.0  # m/s² lateral acceleration allowed in curves: v ≤ √(A_LAT / κ)


def segment_lengths(line: np.ndarray) -> np.ndarray:
    """Lengths [P−1] of the segments of polyline ``line`` [P, 2]: the floats of
    ``np.linalg.norm(np.diff(line, axis=0), axis=-1)`` (square, add the two, root) without
    the two functions' Python overhead, which dominated on these small arrays."""
    sq = line[1:] - line[:-1]
    sq = sq * sq
    return np.sqrt(sq[:, 0] + sq[:, 1])


def along_polyline(line: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points [..., 2] at arc lengths ``s`` along polyline ``line`` [P, 2] measured from its
    first point, extrapolated along the end segments."""
    seg = segment_lengths(line)
    keep = seg > 1e-6  # drop repeated points
    if not keep.all():
        line = line[np.concatenate([[True], keep])]
        seg = segment_lengths(line)
    if len(line) < 2:
        return np.broadcast_to(line[0], s.shape + (2,)).copy()
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    out = np.stack([np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])], -1)
    for end, (i, j), edge in ((s > cum[-1], (-2, -1), cum[-1]), (s < 0, (0, 1), 0.0)):
        if not end.any():  # nothing to extrapolate at this end
            continue
        u = (line[j] - line[i]) / np.linalg.norm(line[j] - line[i])
        base = line[-1] if edge else line[0]
        out = np.where(end[..., None], base + (s - edge)[..., None] * u, out)
    return out


def speed_profiles(v0: float, accels: np.ndarray, v_max: float, curve_cap=None) -> np.ndarray:
    """Arc lengths [M, T] travelled at constant acceleration, speed clipped to [0, v_max] and,
    if given, to ``curve_cap(s)`` (m/s at arc length s) evaluated where the unconstrained
    profile would be (one fixed-point pass: the cap only ever lowers the speed)."""
    speed = _free_speed(v0, accels, v_max)
    return _capped_arcs(speed, np.cumsum(speed * DT, axis=1), curve_cap)


def _free_speed(v0: float, accels: np.ndarray, v_max: float) -> np.ndarray:
    """Speeds [M, T] at constant acceleration, clipped to [0, max(v_max, v0)] (np.clip's
    floats without its overhead)."""
    return np.minimum(
        np.maximum(v0 + accels[:, None] * DT * np.arange(1, T + 1), 0.0), max(v_max, v0)
    )


def _capped_arcs(speed: np.ndarray, arcs: np.ndarray, curve_cap) -> np.ndarray:
    """Arc lengths [M, T] of ``speed`` lowered to ``curve_cap`` evaluated at ``arcs``, the
    uncapped profile's arc lengths (``arcs`` itself when there is no cap)."""
    if curve_cap is None:
        return arcs
    speed = np.minimum(speed, np.maximum(curve_cap(arcs), 0.0))
    return np.cumsum(speed * DT, axis=1)


def curvature_cap(line: np.ndarray):
    """s -> the speed at which a car on polyline ``line`` [P, 2] sees A_LAT of lateral
    acceleration, from the heading change between consecutive segments."""
    seg = line[1:] - line[:-1]
    length = np.hypot(seg[:, 0], seg[:, 1])
    ok = length > 1e-6
    if ok.sum() < 2:
        return None
    seg, length = seg[ok], length[ok]
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = heading[1:] - heading[:-1]
    if not np.all(np.abs(turn) < np.pi):  # np.unwrap changes nothing when no step reaches π
        heading = np.unwrap(heading)
        turn = heading[1:] - heading[:-1]
    kappa = np.abs(turn) / (0.5 * (length[1:] + length[:-1]))
    cap = np.sqrt(A_LAT / np.maximum(kappa, 1e-6))
    at = np.cumsum(length)[:-1]  # arc length of each interior vertex
    return lambda s: np.interp(s, at, cap)


def lane_following_candidates(obs: Any, M: int) -> Tuple[np.ndarray, np.ndarray]:
    """Candidates [R·M, T, 2] (agent frame, lanes-major) and their validity [R·M] for the
    scene ``obs`` (flat [OBS_DIM] or ``scene`` dict). Absent lanes give zero candidates that
    are marked invalid."""
    if int(M) < 1:
        raise ValueError(f"number of modes M must be >= 1, got {M}")
    o = obs if isinstance(obs, dict) else unflatten(np.asarray(obs))
    v0 = float(np.hypot(*np.asarray(o["agent_hist"])[-1, 4:6]))
    accels = np.linspace(A_MIN, A_MAX, M) if M > 1 else np.zeros(1)
    v_max = float(np.asarray(o["speed_limit"]).reshape(-1)[0])
    t = DT * np.arange(1, T + 1)
    traj = np.zeros((R, M, T, 2))
    valid = np.asarray(o["lane_mask"]).reshape(R) > 0.5
    speed = _free_speed(v0, accels, v_max)  # the same for every lane before its curve cap
    arcs = np.cumsum(speed * DT, axis=1)
    for r in np.flatnonzero(valid):
        line = np.asarray(o["lanes"][r], np.float64)
        s = _capped_arcs(speed, arcs, curvature_cap(line))  # speed_profiles(v0, ...)
        fade = (
            1.0 - np.minimum(np.maximum(t / (CENTER_TIME if r == 0 else MERGE_TIME), 0.0), 1.0)
        ) ** 2
        traj[r] = along_polyline(line, s) - fade[None, :, None] * line[0]
    return traj.reshape(R * M, T, 2).astype(np.float32), np.repeat(valid, M)
