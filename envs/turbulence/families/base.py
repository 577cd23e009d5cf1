"""The closure-family object, its registry and ``advance`` (the package docstring says how
they fit together)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from regrl.envs.turbulence.closures import upsample_agent_actions
from regrl.envs.turbulence.solver import Turbulence2D

Tensor = torch.Tensor
# apply(sim, coefficients, n_steps): each coefficient [batch] (uniform) or [batch, n, n]
Apply = Callable[[Turbulence2D, List[Tensor], int], None]


@dataclass(frozen=True)
class ClosureFamily:
    """One closure family (module docstring)."""

    name: str
    """Registry key, the value of ``env.kwargs.closure``."""
    summary: str
    """One line: the model's formula."""
    coefficients: Tuple[str, ...]
    """Names of the coefficients' roots, e.g. ("C_s",) or ("C_s", "C_4")."""
    powers: Tuple[int, ...]
    """Coefficient = root ** power: the linear multiplier of the viscosity (C_s² Δ² …)."""
    classical: Tuple[float, ...]
    """Roots of the base closure: the coefficients of the RL action a = 0 and of the env's
    spin-up, and the centre of the default action range [0, 2·coefficient]."""
    scan: Tuple[Tuple[float, ...], ...]
    """Roots of the constant scan, per coefficient (the scan is their product); fixed before
    any scan was run, in docs/smarl_families.md."""
    apply: Apply
    """Advance ``n_steps`` with the coefficients held (module docstring's Apply)."""
    action_range: Tuple[Tuple[float, float], ...] = ()
    """Coefficient ranges of the RL action (not roots); empty: [0, 2·classical coefficient]."""
    best: Tuple[float, ...] = ()
    """Roots of the best constant of the family's scan (docs/smarl_families.md; set after the
    scan, so chosen after seeing it): the baseline a learned closure of the family must beat.
    Empty: not measured yet."""

    def constants(self) -> List[Tuple[float, ...]]:
        """Roots of the constant closures a learned member is evaluated against: the base and,
        where measured and different, the scan's best."""
        return [self.classical] + ([self.best] if self.best and self.best != self.classical else [])

    @property
    def size(self) -> int:
        return len(self.coefficients)

    def coefficient(self, roots: Sequence[float]) -> Tuple[float, ...]:
        """Roots (C_s, C₄, …) → the coefficients the solver multiplies (C_s², C₄⁴, …)."""
        if len(roots) != self.size:
            raise ValueError(
                f"closure {self.name!r} takes {self.size} coefficient(s) "
                f"{list(self.coefficients)}, got {list(roots)}"
            )
        return tuple(float(r) ** p for r, p in zip(roots, self.powers))

    def base(self) -> Tuple[float, ...]:
        return self.coefficient(self.classical)

    def default_range(self) -> Tuple[Tuple[float, float], ...]:
        if self.action_range:
            return self.action_range
        return tuple((0.0, 2.0 * c) for c in self.base())

    def scan_points(self) -> List[Tuple[float, ...]]:
        """The constant scan's grid of roots (product over the coefficients)."""
        return list(itertools.product(*self.scan))

    def label(self, roots: Sequence[float]) -> str:
        """'Smagorinsky-hyper C_s=0.08 C_4=0.27'-style row name."""
        values = " ".join(f"{n}={float(r):g}" for n, r in zip(self.coefficients, roots))
        return f"{self.name} {values}"


FAMILIES: Dict[str, ClosureFamily] = {}


def register(family: ClosureFamily) -> ClosureFamily:
    if family.name in FAMILIES:
        raise ValueError(f"closure family {family.name!r} registered twice")
    sizes = {len(family.powers), len(family.classical), len(family.scan), family.size}
    if sizes != {family.size} or len(family.best) not in (0, family.size):
        raise ValueError(
            f"closure family {family.name!r}: one power/classical/scan per coefficient"
        )
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ClosureFamily:
    if name not in FAMILIES:
        raise ValueError(f"closure must be one of {sorted(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def coefficient_fields(coeff: Tensor, n: int) -> List[Tensor]:
    """Agents' coefficients [batch, a, a, m] → m tensors, each [batch] where every agent of
    every simulation chose the same value (no field, no transforms) and otherwise the
    periodic Fourier interpolation to the grid [batch, n, n] (``upsample_agent_actions``)."""
    out = []
    for i in range(coeff.shape[-1]):
        c = coeff[..., i]
        flat = c.reshape(c.shape[0], -1)
        uniform = bool((flat == flat[:, :1]).all())
        out.append(flat[:, 0].clone() if uniform else upsample_agent_actions(c, n))
    return out


def advance(sim: Turbulence2D, family: ClosureFamily, coeff: Tensor, n_steps: int) -> None:
    """Step the LES ``n_steps`` with the family's closure and the agents' coefficients
    [batch, a, a, m] (or [batch, a, a] for a one-coefficient family), held over the call."""
    coeff = torch.as_tensor(coeff, dtype=sim.dtype, device=sim.device)
    if coeff.dim() == 3:
        coeff = coeff.unsqueeze(-1)
    if coeff.dim() != 4 or coeff.shape[-1] != family.size:
        raise ValueError(
            f"closure {family.name!r} needs coefficients [batch, a, a, {family.size}], "
            f"got {list(coeff.shape)}"
        )
    family.apply(sim, coefficient_fields(coeff, sim.n), int(n_steps))
