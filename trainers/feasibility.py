"""Can this Ray cluster ever place a run's actors? Checked before training starts.

Ray waits, silently, for an actor whose resources no node offers: a run asking a 2-CPU
machine for two learner actors and an env runner (one CPU each) starts nothing and prints
nothing until it is killed. :func:`unmet` compares the actors' bundles (one per actor:
CPUs, GPUs, custom resources such as cluster.yaml's ``learner_slot``) with the nodes' total
resources, three ways:

1. a bundle that fits no single node (Ray never splits an actor across nodes);
2. a resource whose sum over all bundles exceeds the cluster's total;
3. no assignment of bundles to nodes, found by a bounded depth-first search
   (:data:`SEARCH_STEPS`); when the search runs out of steps the run is let through.

Totals, not what is free now: resources that other jobs hold come back, a missing node
type does not. :func:`check` refuses such a run with one message saying what was asked and
what exists; on a cluster with an autoscaler it says that the run waits for it, and for what.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from regrl.trainers.checks import ConfigError

SEARCH_STEPS = 100_000
"""Nodes visited by the assignment search before it gives up (and lets the run try)."""
EPS = 1e-9
"""Ray rounds fractional resources to 1e-4; this only absorbs float sums."""


@dataclass(frozen=True)
class Demand:
    """``count`` actors of one kind, each reserving ``bundle``."""

    what: str
    """What the actors are, as messages name them: ``env runner``, ``learner``."""
    count: int
    bundle: Mapping[str, float]


def _fmt(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in resources.items() if v) + "}"


def _bundles(demands: Sequence[Demand]) -> List[Tuple[str, Dict[str, float]]]:
    out = []
    for d in demands:
        bundle = {k: float(v) for k, v in d.bundle.items() if v}
        out += [(d.what, bundle)] * d.count
    return out


def _fits(bundle: Mapping[str, float], free: Mapping[str, float]) -> bool:
    return all(free.get(k, 0.0) + EPS >= v for k, v in bundle.items())


def _placeable(bundles: List[Dict[str, float]], nodes: List[Dict[str, float]]) -> Optional[bool]:
    """True/False: some assignment of every bundle to a node exists / none does; None: the
    search ran out of steps. Largest bundles first; nodes left in the same state are tried once."""
    order = sorted(bundles, key=lambda b: (b.get("GPU", 0.0), sum(b.values())), reverse=True)
    free = [dict(n) for n in nodes]
    steps = [0]

    def place(i: int) -> Optional[bool]:
        if i == len(order):
            return True
        seen, undecided = set(), False
        for node in free:
            key = tuple(sorted(node.items()))
            if key in seen or not _fits(order[i], node):
                continue
            seen.add(key)
            steps[0] += 1
            if steps[0] > SEARCH_STEPS:
                return None
            for k, v in order[i].items():
                node[k] -= v
            found = place(i + 1)
            for k, v in order[i].items():
                node[k] += v
            if found:
                return True
            undecided |= found is None
        return None if undecided else False

    return place(0)


def unmet(demands: Sequence[Demand], nodes: Sequence[Mapping[str, float]]) -> List[str]:
    """Why the actors of ``demands`` can never all be placed on ``nodes`` (each node's total
    resources); empty when they can (or the search could not decide)."""
    bundles = _bundles(demands)
    problems = []
    for what, bundle in dict.fromkeys((w, tuple(b.items())) for w, b in bundles):
        if not any(_fits(dict(bundle), n) for n in nodes):
            problems.append(f"one {what} needs {_fmt(dict(bundle))}, which no node has")
    keys = dict.fromkeys(k for _, b in bundles for k in b)
    for key in keys:
        asked = sum(b.get(key, 0.0) for _, b in bundles)
        has = sum(n.get(key, 0.0) for n in nodes)
        if asked > has + EPS:
            parts = " + ".join(
                f"{d.count} {d.what}{'s' if d.count > 1 else ''} x {d.bundle[key]:g}"
                for d in demands
                if d.count and d.bundle.get(key)
            )
            problems.append(f"{key}: {asked:g} asked ({parts}), the cluster has {has:g}")
    if not problems and _placeable([b for _, b in bundles], [dict(n) for n in nodes]) is False:
        problems.append(
            "no node assignment fits all actors: "
            + ", ".join(f"{d.count} x {d.what} {_fmt(d.bundle)}" for d in demands if d.count)
        )
    return problems


def describe_nodes(nodes: Sequence[Mapping[str, float]], keys: Sequence[str]) -> str:
    """``2 nodes: {CPU: 2} x 2`` over the resources in ``keys`` (CPU and GPU always)."""
    keys = list(dict.fromkeys(["CPU", "GPU", *keys]))
    shapes: Dict[str, int] = {}
    for n in nodes:
        shape = _fmt({k: n.get(k, 0.0) for k in keys})
        shapes[shape] = shapes.get(shape, 0) + 1
    listed = ", ".join(f"{s} x {c}" if c > 1 else s for s, c in shapes.items())
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}: {listed}"


def check(
    demands: Sequence[Demand],
    nodes: Sequence[Mapping[str, float]],
    *,
    autoscaler: Optional[bool],
    fix: str,
) -> None:
    """Raise ConfigError (``autoscaler`` False) naming what was asked and what exists, or print
    that the run waits for the autoscaler (True) or may wait forever (None: unknown)."""
    problems = unmet(demands, nodes)
    if not problems:
        return
    keys = [k for d in demands for k in d.bundle]
    text = f"{'; '.join(problems)} ({describe_nodes(nodes, keys)})"
    if autoscaler:
        print(f"waiting for the autoscaler to add nodes: {text}", flush=True)
    elif autoscaler is None:
        print(
            f"warning: this Ray cluster cannot place the run's actors now and regrl cannot "
            f"tell whether it has an autoscaler; the run waits until nodes join: {text}",
            flush=True,
        )
    else:
        raise ConfigError(f"this Ray cluster can never place the run's actors: {text}; {fix}")


def ray_nodes() -> List[Dict[str, float]]:
    """Total resources of each alive node of the connected Ray cluster."""
    import ray  # the pure checks above need no Ray; a config is validated without it

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def has_autoscaler() -> Optional[bool]:
    """Whether an autoscaler that can add nodes serves the connected cluster (None: unknown).

    The v2 autoscaler (``ray up`` since Ray 2.50, KubeRay) reports its state to the GCS. A
    cluster started by ``ray start`` without ``--autoscaling-config`` runs the v1 monitor with
    a read-only node provider, whose status names each node's type ``node_<node id>``: that
    one cannot add nodes."""
    import ray
    from ray._private import ray_constants
    from ray._raylet import GcsClient
    from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        reply = GetClusterStatusReply()
        gcs = GcsClient(ray.get_runtime_context().gcs_address)
        reply.ParseFromString(gcs.get_cluster_status(timeout_s=10))
        if reply.autoscaling_state.autoscaler_state_version > 0:
            return True
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        types = json.loads(raw)["autoscaler_report"]["node_type_mapping"] if raw else None
    except Exception:  # an older or unreachable GCS, a changed status format: unknown
        return None
    if not types:
        return None
    return any(name != f"node_{node}" for node, name in types.items())
