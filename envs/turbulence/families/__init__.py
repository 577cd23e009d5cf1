"""Closure families: the sub-grid models an LES of 2D turbulence can be given, each a
first-class object with its coefficients, how it enters the solver step, the textbook value the
RL action is centred on, and the grid of its constant scan (docs/smarl_families.md).

A family's coefficients are the linear multipliers of its viscosities (SMARL's C_s², C_L³;
here also C₄⁴ and a backscatter fraction); they are *named* by their roots (C_s, C_L, C₄), the
values the literature quotes, and ``powers`` maps one to the other. Every consumer — the LES
rollouts of the evaluation, the SMARL env, the constant scan, the cost benchmark — calls
``advance(sim, family, coeff, n_steps)`` with coefficients [batch, a, a, m] set by a×a agents
(m = the family's number of coefficients), so a new family is one file that registers itself.
"""

from __future__ import annotations

# importing a family's module registers it
from regrl.envs.turbulence.families import (  # noqa: F401
    backscatter,
    hyperviscous,
    hyperviscous8,
    leith,
    smagorinsky,
)
from regrl.envs.turbulence.families.base import (
    FAMILIES,
    ClosureFamily,
    advance,
    coefficient_fields,
    get_family,
    register,
)

__all__ = ["FAMILIES", "ClosureFamily", "advance", "coefficient_fields", "get_family", "register"]
