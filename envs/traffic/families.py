"""Scenario families of the RIFT traffic env: named presets of the scenario keys (map, PG block
string, CBV count, horizon, traffic density, ego driver), so that demonstrations, stage 1, RL
and evaluation can all say ``family: NAME`` instead of repeating five keys.

Why families (issue 25): the default scenario (2 CBVs, one MetaDrive ``intersection``, 10–20 s)
leaves the imitation planner nothing to fail at — it keeps moving for the whole episode and
route progress is bounded by speed × time. RIFT's gains come from closed-loop interactions in
which the imitation planner hesitates, gets stuck or collides; the families below force such
interactions (longer routes, more contested vehicles, merges, roundabouts, an ego that does not
yield). ``benchmarks/rift_headroom.py`` measures, per family, how far the imitation planner is
from a privileged reference before any RL (docs/rift_headroom.md).

A family is a dict of ``TrafficEnv`` keyword arguments; a key given explicitly (config
``env.kwargs`` or a ``regrl traffic demos`` flag) overrides the family's value. ``default`` is
exactly the env's historical defaults, so every documented result stays the same.

PG block strings (MetaDrive 0.4.3, ``PGBlockDistConfig``): S straight, C curve, X 4-way
intersection, T T-junction, O roundabout, r / R in- / out-ramp, y / Y merge / split (lane-count
bottleneck), B bidirectional road, U intersection with U-turn, $ toll gate, P parking lot. On a
``pg`` map every CBV starts on the first block and drives through the sequence; MetaDrive's IDM
traffic fills the other blocks.
"""

from __future__ import annotations

from typing import Any, Dict

SCENARIO_KEYS = ("map", "pg_map", "num_cbv", "horizon", "traffic_density", "ego_policy")
"""The TrafficEnv arguments a family sets."""

FAMILIES: Dict[str, Dict[str, Any]] = {
    # the env's historical defaults (the documented experiments also set horizon 100)
    "default": dict(
        map="intersection",
        pg_map="SCX",
        num_cbv=2,
        horizon=200,
        traffic_density=0.05,
        ego_policy="idm",
    ),
    # 30 s on the same intersection: routes end (arrival) before the horizon, so route
    # completion rather than speed x time bounds the progress
    "long": dict(
        map="intersection",
        pg_map="SCX",
        num_cbv=2,
        horizon=300,
        traffic_density=0.05,
        ego_policy="idm",
    ),
    # six CBVs from all four arms of the intersection: unprotected left turns and crossings
    # against each other (MetaDrive's multi-agent intersection has no traffic lights)
    "dense": dict(
        map="intersection",
        pg_map="SCX",
        num_cbv=6,
        horizon=300,
        traffic_density=0.05,
        ego_policy="idm",
    ),
    # six CBVs entering a multi-lane roundabout from every entry: yield on entry, merge, exit
    "roundabout": dict(
        map="roundabout",
        pg_map="SCX",
        num_cbv=6,
        horizon=300,
        traffic_density=0.05,
        ego_policy="idm",
    ),
    # a procedurally generated road with an in-ramp (r) and a lane-count bottleneck (y):
    # ramp traffic merges into the CBVs' lanes and the lanes then narrow
    "merge": dict(
        map="pg",
        pg_map="SrSyS",
        num_cbv=4,
        horizon=300,
        traffic_density=0.15,
        ego_policy="idm",
    ),
    # the intersection with four CBVs and an assertive ego (IDM at 50 km/h with short gaps,
    # backend.ASSERTIVE_IDM) that does not give way: the CBVs must yield to it
    "contest": dict(
        map="intersection",
        pg_map="SCX",
        num_cbv=4,
        horizon=300,
        traffic_density=0.05,
        ego_policy="assertive",
    ),
}


def family_kwargs(family: str, **given: Any) -> Dict[str, Any]:
    """The scenario keys of ``family`` with every ``given`` key that is not None on top."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    unknown = sorted(set(given) - set(SCENARIO_KEYS))
    if unknown:
        raise ValueError(f"{unknown} are not scenario keys; a family sets {list(SCENARIO_KEYS)}")
    return {**FAMILIES[family], **{k: v for k, v in given.items() if v is not None}}
