"""RIFT traffic: MetaDrive wrapper, scene features, candidate scoring, demonstrations.

Interface used by the planner / RIFT trainer side (numpy-only, no MetaDrive needed):

- ``regrl.envs.traffic.scene``: ``H=10`` history steps (1 s at 10 Hz), ``N=10`` neighbours,
  ``R=3`` reference lanes (current, left, right; masked when absent), ``P=20`` lane points
  (every 2 m ahead, agent frame), ``T=40`` future steps (4 s), ``DT=0.1``; ``OBS_LAYOUT``
  (ordered name -> shape: agent_hist (H,6) [x, y, cos h, sin h, vx, vy] in the agent's current
  frame, current state last; neighbors (N,H,6); neighbor_mask (N,); neighbor_size (N,2)
  [length, width]; lanes (R,P,2); lane_mask (R,); lane_width (R,); agent_size (2,);
  speed_limit (1,) m/s), ``flatten(dict) -> float32[OBS_DIM]``, ``unflatten([..., OBS_DIM])
  -> dict`` (batched, numpy or torch), ``OBS_DIM``.
- Candidates: float arrays ``traj [G, T, 2]`` of (x, y) in the agent frame, G = R·M in
  lanes-major order (candidate g follows reference lane g // M); candidates of absent lanes
  are masked. Headings are derived from consecutive points.
- ``regrl.envs.traffic.scoring.score_candidates(traj [G,T,2], obs, valid [G], gamma=0.98,
  forecast="bicycle"|"constant_velocity") -> (returns [G] float32, details)`` with details ``collision``/``offroad`` [G,T] bool and
  ``reward`` [G,T] (RIFT's dense reward, docs/methods.md#rift-reward; discounted sum stopping after the
  first collision step, which is included).
- ``regrl.envs.traffic.candidates.lane_following_candidates(obs, M) -> (traj [R·M,T,2], valid)``.
- ``scoring.score_candidates_batch(trajs [K,G,T,2], obs [K,OBS_DIM], valid [K,G]) -> returns
  [K,G]`` and ``candidates.lane_following_candidates_batch(obs [K,OBS_DIM], M)``: the same
  numbers for K agents at once (what the env calls every step).
- ``regrl.envs.traffic.parallel_env(family="default", num_cbv=K, map=..., horizon=..., seed=...,
  action_mode="candidate"|"raw", num_modes=M, candidate_fn=None, neighbor_forecast="bicycle",
  ego_policy="idm"|"expert"|"assertive", ...)``: the PettingZoo ParallelEnv; ``family`` is a
  scenario preset (``regrl.envs.traffic.families.FAMILIES``) for the scenario keys left None
  (``regrl.envs.traffic.env``); candidate mode puts ``candidate_returns`` [G] float32 and
  ``candidate_valid`` [G] bool into each agent's info, for the candidates offered at the
  observation returned with that info.

``parallel_env`` imports MetaDrive lazily (at the first ``reset``); the other modules never do.
"""

from typing import Any

from regrl.envs.traffic import scene  # noqa: F401  (the interface modules are importable as attributes)


def parallel_env(**kwargs: Any):
    """Create the RIFT traffic environment (see ``regrl.envs.traffic.env.TrafficEnv``)."""
    from regrl.envs.traffic.env import TrafficEnv

    return TrafficEnv(**kwargs)


__all__ = ["parallel_env", "scene"]
