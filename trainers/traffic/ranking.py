"""How far a candidate scorer ranks like RIFT's own return (docs/rift.md, "Can the scoring head
learn RIFT's ranking?").

RIFT's group-relative advantage (Chen et al., arXiv 2505.03344; official code
``traj_evaluator.py::get_grpo_advantage``; docs/methods.md#rift-advantage) ranks the candidates of a state by their returns
R_g under the neighbour forecast. A scorer fine-tuned to the optimum of RIFT's surrogate puts
its mass on argmax_g R_g: the "best return" reference of the headroom table. These functions
measure how close a scorer's argmax comes to that choice on recorded states:

- ``regret``: R_best − R_chosen per state (0 where the scorer picks a best candidate);
- ``regret_closed``: 1 − mean regret / mean regret of the imitation scorer (0: no better than
  IL, 1: always the best-return candidate, < 0: worse than IL);
- ``listwise_target``: the softmax of the returns over the valid candidates, the target of the
  supervised ceiling fit (ListNet's top-one probability, Cao et al. 2007, Eq. 2).

Numpy only; arrays are [N states, G candidates]. Returns of invalid candidates are ignored.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

TIE_TOL = 1e-9
"""A chosen candidate within this of the best return counts as a best choice (ties in float
returns, e.g. two candidates that both stop before any neighbour)."""


def _checked(returns, valid, scores=None):
    r = np.asarray(returns, np.float64)
    v = np.asarray(valid, bool)
    if r.ndim != 2 or v.shape != r.shape:
        raise ValueError(f"need returns and valid of one shape [N, G]; got {r.shape}, {v.shape}")
    if not v.any(-1).all():
        raise ValueError("every state needs at least one valid candidate")
    if scores is None:
        return r, v, None
    s = np.asarray(scores, np.float64)
    if s.shape != r.shape:
        raise ValueError(f"scores {s.shape} do not match returns {r.shape}")
    return r, v, s


def regret(returns, valid, scores) -> Tuple[np.ndarray, np.ndarray]:
    """(regret [N], top1 [N] bool): the best valid return minus the return of the valid
    candidate with the highest score, and whether that candidate is a best one."""
    r, v, s = _checked(returns, valid, scores)
    best = np.where(v, r, -np.inf).max(-1)
    pick = np.where(v, s, -np.inf).argmax(-1)
    gap = best - r[np.arange(len(r)), pick]
    return gap, gap <= TIE_TOL


def regret_closed(regret_scorer, regret_il) -> float:
    """1 − mean(regret_scorer) / mean(regret_il) over the same states; NaN where the IL scorer
    already picks a best candidate everywhere (nothing to close)."""
    a, b = np.asarray(regret_scorer, np.float64), np.asarray(regret_il, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"regrets of different states: {a.shape} vs {b.shape}")
    base = b.mean()
    return float("nan") if base <= 0 else float(1.0 - a.mean() / base)


def listwise_target(returns, valid, tau: float = 1.0) -> np.ndarray:
    """softmax(R_g / tau) over the valid candidates of each state, 0 on invalid ones [N, G]."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    r, v, _ = _checked(returns, valid)
    z = np.where(v, r / tau, -np.inf)
    z = z - z.max(-1, keepdims=True)
    e = np.where(v, np.exp(z), 0.0)
    return e / e.sum(-1, keepdims=True)


def per_group_means(values, groups) -> np.ndarray:
    """Mean of ``values`` [N] within each group label of ``groups`` [N], in sorted label order
    (the episode means an interval over held-out episodes is taken over)."""
    x, g = np.asarray(values, np.float64), np.asarray(groups)
    if x.shape != g.shape:
        raise ValueError(f"values {x.shape} and groups {g.shape} differ")
    labels, inv = np.unique(g, return_inverse=True)
    return np.bincount(inv, weights=x, minlength=len(labels)) / np.bincount(inv)
