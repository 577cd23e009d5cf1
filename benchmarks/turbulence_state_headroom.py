"""Does placing the dissipation by the local flow state help? A headroom probe before any RL
(issue 21 §1 and §3: "closure families where the agents' local state matters").

The position probe (``turbulence_position_headroom.py``) moved a family's best constant by a
fixed pattern of the forcing and found nothing. This probe moves it by what the agents
themselves observe: each agent's local invariants (``observe_agents``: tr S², tr R² of the
velocity gradient at its point, each divided by its domain RMS). At every decision, each of
the family's coefficients becomes constant × (1 + a·P_i) at agent i, where P_i ∈ [−1, 1] is
the agent's rank among the simulation's agents by one feature, mapped linearly (the lowest
−1, the highest +1; zero mean, so the mean coefficient is the constant's):

- ``strain``: tr S² = |S̄|²/2 — more dissipation where the resolved strain is large (a > 0),
  the direction the pointwise Smagorinsky closure already takes, or less (a < 0);
- ``rotation``: −tr R² = ω̄²/2 — more dissipation in the vortex cores (a > 0) or less, i.e.
  leave the coherent vortices alone (a < 0), the usual argument for why tails need it;
- ``okubo_weiss``: tr S² − (−tr R²) in those RMS units — more where strain dominates rotation
  (a > 0: filaments between vortices) or where rotation dominates (a < 0).

Ranks rather than values: the features' distributions are heavy-tailed, and ranks give every
row the same spread of coefficients whatever the feature; a decentralised policy can reach the
same map through a fixed monotone function of its own observation, since the features'
distribution over the domain is statistically steady. Features, amplitudes (±0.5, so every
coefficient stays within 0.5–1.5 of the constant at the agent points; the interpolated field
between them can overshoot a little) and the 16×16 lattice were fixed in this
module before the probe ran. The lattice is the position probe's: 16×16 agents a quarter
forcing wavelength apart, the finest field the env's Fourier interpolation places at a few
grid cells (SMARL's and our RL configs' 4×4 agents interpolate to wavenumbers ≤ 2 only, so
they cannot follow individual vortices at all).

Each row is 16 LES × 20 time units after 2, paired per simulation against the unmodulated
constant run in the same file; a row with an interval excluding 0 on the spectrum error is a
state-dependent gain agents seeing their invariants could learn. The position probe's control
(the same field path at a = 0.001) already measured the decorrelation noise of such rows.

Rows are appended to ``--out`` as they finish; a rerun skips those already there.

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_state_headroom.py \\
          --reference envs/turbulence/data/reference_kf4_ens16.npz \\
          --family smagorinsky_hyper8 --roots 0.03,0.38 --out docs/smarl_state.json
"""

from __future__ import annotations

import numpy as np
from turbulence_position_headroom import (  # the same rows, command line and paired table
    LATTICE,
    probe_arguments,
    report,
    run_probe,
)

FEATURES = ("strain", "rotation", "okubo_weiss")
AMPLITUDES = (-0.5, 0.5)  # fixed before the probe ran
# observe_agents' columns: 0 tr S (zero, incompressible), 1 tr S², 2 tr R² (≤ 0), then H's
TR_S2, TR_R2 = 1, 2


def feature(obs: np.ndarray, name: str) -> np.ndarray:
    """[batch, agents] the named feature from observations [batch, agents, obs]."""
    if name == "strain":
        return obs[..., TR_S2]
    if name == "rotation":
        return -obs[..., TR_R2]
    if name == "okubo_weiss":
        return obs[..., TR_S2] + obs[..., TR_R2]
    raise ValueError(f"feature must be one of {FEATURES}, got {name!r}")


def rank_pattern(values: np.ndarray) -> np.ndarray:
    """[batch, agents] → each agent's rank within its simulation mapped linearly onto [−1, 1]
    (lowest −1, highest +1): zero mean per simulation. Ties are broken by agent order."""
    values = np.asarray(values)
    agents = values.shape[-1]
    if agents < 2:
        raise ValueError("rank_pattern needs at least 2 agents")
    ranks = np.argsort(np.argsort(values, axis=-1, kind="stable"), axis=-1, kind="stable")
    return 2.0 * ranks / (agents - 1) - 1.0


def state_policy(coeff, name: str, amplitude: float):
    """A fixed 'policy' [batch, agents, obs] → coefficients [batch, agents, m]: each of the
    family's ``coeff`` times 1 + amplitude·P, P the rank pattern of the feature ``name``."""
    if abs(amplitude) > 1:
        raise ValueError(
            f"|amplitude| must be <= 1 (a coefficient would go negative), got {amplitude}"
        )
    coeff = np.asarray(coeff, dtype=float)
    feature(np.zeros((1, 2, 3)), name)  # refuses an unknown feature before any run

    def policy(obs: np.ndarray) -> np.ndarray:
        factor = 1.0 + amplitude * rank_pattern(feature(obs, name))
        return factor[..., None] * coeff

    return policy


def state_variants():
    """The state probe's rows: each feature at each amplitude."""
    return [
        (name, amp, lambda coeff, ref, name=name, amp=amp: state_policy(coeff, name, amp))
        for name in FEATURES
        for amp in AMPLITUDES
    ]


def main() -> None:
    args = probe_arguments(__doc__, "feature")
    if not args.report:
        run_probe(args, state_variants(), {"lattice": LATTICE})
    print(
        "P = each agent's rank by its local feature (strain tr S², rotation −tr R², "
        f"Okubo-Weiss their difference), mapped onto [-1, 1]; {LATTICE}x{LATTICE} agents."
    )
    print(report(args.out))


if __name__ == "__main__":
    main()
