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

import functools
from typing import Any, Tuple

import numpy as np

from regrl.envs.traffic.features import fast_interp as _interp
from regrl.envs.traffic.scene import DT, R, T, unflatten

A_MIN, A_MAX = -4.0, 2.0  # m/s²: hard-but-comfortable braking .. mild acceleration
MERGE_TIME = 3.0  # s to complete a lane change
CENTER_TIME = 1.5  # s to return to the centre of the current lane
A_LAT = 3.0  # m/s² lateral acceleration allowed in curves: v ≤ √(A_LAT / κ)
_T_AHEAD = DT * np.arange(1, T + 1)  # s, time of each candidate step


def _fade(tau: float) -> np.ndarray:
    """(1 − t/τ)² clipped to t ≤ τ over the candidate steps: how much of the offset between
    the agent and its lane remains at each step."""
    return (1.0 - np.minimum(np.maximum(_T_AHEAD / tau, 0.0), 1.0)) ** 2


_FADES = (_fade(CENTER_TIME), _fade(MERGE_TIME))  # current lane, a neighbouring lane


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
    cum = np.concatenate([[0.0], seg.cumsum()])
    out = np.stack([_interp(s, cum, line[:, 0]), _interp(s, cum, line[:, 1])], -1)
    for end, (i, j), edge in ((s > cum[-1], (-2, -1), cum[-1]), (s < 0, (0, 1), 0.0)):
        if not end.any():  # nothing to extrapolate at this end
            continue
        step = line[j] - line[i]
        u = step / np.sqrt(step.dot(step))  # np.linalg.norm's floats, without its overhead
        base = line[-1] if edge else line[0]
        out = np.where(end[..., None], base + (s - edge)[..., None] * u, out)
    return out


def speed_profiles(v0: float, accels: np.ndarray, v_max: float, curve_cap=None) -> np.ndarray:
    """Arc lengths [M, T] travelled at constant acceleration, speed clipped to [0, v_max] and,
    if given, to ``curve_cap(s)`` (m/s at arc length s) evaluated where the unconstrained
    profile would be (one fixed-point pass: the cap only ever lowers the speed)."""
    speed = _free_speed(v0, accels, v_max)
    return _capped_arcs(speed, (speed * DT).cumsum(1), curve_cap)


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
    return (speed * DT).cumsum(1)


def curvature_cap(line: np.ndarray):
    """s -> the speed at which a car on polyline ``line`` [P, 2] sees A_LAT of lateral
    acceleration, from the heading change between consecutive segments."""
    seg = line[1:] - line[:-1]
    length = np.hypot(seg[:, 0], seg[:, 1])
    ok = length > 1e-6
    if not ok.all():
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
    at = length.cumsum()[:-1]  # arc length of each interior vertex
    return lambda s: _interp(s, at, cap)


@functools.lru_cache(maxsize=16)
def _accelerations(M: int) -> np.ndarray:
    """The M constant accelerations of the candidates of one lane (read-only)."""
    accels = np.linspace(A_MIN, A_MAX, M) if M > 1 else np.zeros(1)
    accels.setflags(write=False)
    return accels


def lane_following_candidates(obs: Any, M: int) -> Tuple[np.ndarray, np.ndarray]:
    """Candidates [R·M, T, 2] (agent frame, lanes-major) and their validity [R·M] for the
    scene ``obs`` (flat [OBS_DIM] or ``scene`` dict). Absent lanes give zero candidates that
    are marked invalid."""
    if isinstance(obs, dict):
        o = {k: np.asarray(v)[None] for k, v in obs.items()}
    else:
        o = unflatten(np.asarray(obs)[None])
    traj, valid = _lane_following(o, M)
    return traj[0], valid[0]


def lane_following_candidates_batch(obs: np.ndarray, M: int) -> Tuple[np.ndarray, np.ndarray]:
    """``lane_following_candidates`` of K scenes ``obs`` [K, OBS_DIM] at once: candidates
    [K, R·M, T, 2] and validity [K, R·M], the same numbers as K separate calls."""
    return _lane_following(unflatten(np.asarray(obs)), M)


def _lane_following(o, M: int) -> Tuple[np.ndarray, np.ndarray]:
    """Candidates of the batched scene dict ``o`` ([K, ...] fields). The speed profiles of
    all agents and the geometry of all present lanes (each [P, 2]) are computed with one
    numpy call per operation; only interpolation along each lane runs per lane, and lanes
    with repeated points take the one-lane path (``curvature_cap``, ``along_polyline``)."""
    if int(M) < 1:
        raise ValueError(f"number of modes M must be >= 1, got {M}")
    M = int(M)
    hist = np.asarray(o["agent_hist"])
    K = len(hist)
    v0 = np.hypot(hist[:, -1, 4], hist[:, -1, 5]).astype(np.float64)  # [K]
    v_max = np.asarray(o["speed_limit"]).reshape(K).astype(np.float64)
    # _free_speed of each agent: the same for every lane before its curve cap
    free = _accelerations(M)[:, None] * DT * np.arange(1, T + 1)
    speed = np.minimum(
        np.maximum(v0[:, None, None] + free, 0.0), np.maximum(v_max, v0)[:, None, None]
    )  # [K, M, T]
    arcs = (speed * DT).cumsum(2)
    valid = np.asarray(o["lane_mask"]).reshape(K, R) > 0.5
    ks, rs = valid.nonzero()
    traj = np.zeros((K, R, M, T, 2))
    if len(ks):
        lines = np.asarray(o["lanes"], np.float64)[ks, rs]  # [L, P, 2]
        traj[ks, rs] = _follow_lanes(lines, rs, speed[ks], arcs[ks])
    return traj.reshape(K, R * M, T, 2).astype(np.float32), np.repeat(valid, M, axis=1)


def _follow_lanes(lines: np.ndarray, rs: np.ndarray, speed: np.ndarray, arcs: np.ndarray):
    """Candidates [L, M, T, 2] along lanes ``lines`` [L, P, 2] (reference slot ``rs`` [L])
    with free speeds and their arc lengths ``speed``, ``arcs`` [L, M, T]: ``speed_profiles``
    under ``curvature_cap`` and ``along_polyline``, then the fade of the offset."""
    seg = lines[:, 1:] - lines[:, :-1]
    length = np.hypot(seg[..., 0], seg[..., 1])  # curvature_cap's lengths
    heading = np.arctan2(seg[..., 1], seg[..., 0])
    turn = heading[:, 1:] - heading[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):  # repeated points: not used below
        kappa = np.abs(turn) / (0.5 * (length[:, 1:] + length[:, :-1]))
        cap = np.sqrt(A_LAT / np.maximum(kappa, 1e-6))
    at = length.cumsum(1)[:, :-1]
    sq = seg * seg
    seg_len = np.sqrt(sq[..., 0] + sq[..., 1])  # along_polyline's lengths
    cum = np.zeros(lines.shape[:2])
    cum[:, 1:] = seg_len.cumsum(1)
    # lanes with a repeated point or a heading step of π take the one-lane path
    plain = (
        (length > 1e-6).all(1) & (np.abs(turn) < np.pi).all(1) & (seg_len > 1e-6).all(1)
    ).tolist()
    out = np.empty(speed.shape + (2,))
    ok = [i for i, p in enumerate(plain) if p]
    if ok:  # the curve cap of every plain lane, then its arc lengths in one call each
        capped = np.stack([_interp(arcs[i], at[i], cap[i]) for i in ok])  # [l, M, T]
        capped = (np.minimum(speed[ok], np.maximum(capped, 0.0)) * DT).cumsum(2)
        arcs[ok] = capped  # kept for the extrapolation below
    for i, p in enumerate(plain):
        if not p:
            s = _capped_arcs(speed[i], arcs[i], curvature_cap(lines[i]))
            out[i] = along_polyline(lines[i], s)
            continue
        out[i, ..., 0] = _interp(arcs[i], cum[i], lines[i, :, 0])
        out[i, ..., 1] = _interp(arcs[i], cum[i], lines[i, :, 1])
    _extrapolate(out, arcs, lines, cum, plain)
    fade = np.where((rs == 0)[:, None], _FADES[0], _FADES[1])  # [L, T]
    return out - fade[:, None, :, None] * lines[:, None, None, 0]


def _extrapolate(out, arcs, lines, cum, plain) -> None:
    """``along_polyline``'s extrapolation along the end segments, in place, for the
    ``plain`` lanes (points ``out`` [L, M, T, 2] at arc lengths ``arcs`` [L, M, T]); which
    lanes reach beyond an end is found for all lanes in one call per end."""
    beyond = (arcs > cum[:, -1, None, None]).any(axis=(1, 2)).tolist()
    before = (arcs < 0).any(axis=(1, 2)).tolist()
    for i, ok in enumerate(plain):
        if not ok or not (beyond[i] or before[i]):
            continue
        s, line, total = arcs[i], lines[i], cum[i, -1]
        for end, (a, b), edge in ((s > total, (-2, -1), total), (s < 0, (0, 1), 0.0)):
            if not end.any():
                continue
            step = line[b] - line[a]
            u = step / np.sqrt(step.dot(step))
            base = line[-1] if edge else line[0]
            out[i] = np.where(end[..., None], base + (s - edge)[..., None] * u, out[i])
