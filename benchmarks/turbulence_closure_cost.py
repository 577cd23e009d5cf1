"""Cost of the SMARL closures in the 64² LES, against the bare LES step and the 256² reference
DNS, all measured in this run (SMARL, Mojgani et al. 2023, arXiv 2312.00907; issue: the closure
tripled the step).

Rows, per batch size (simulations advancing together):
- bare: ``sim.step`` without a sub-grid model;
- Smagorinsky, outside the step: ν_e = ``smagorinsky_viscosity(sim, field)`` recomputed from the
  state before every step (the previous path; 2 more inverse transforms and ~15 small ops);
- Smagorinsky, in the step: ``StrainScaled`` (the strain norm taken from the step's own
  transforms; what ``env.advance`` uses now, same tendency to 1e-12, tested);
- Smagorinsky with one coefficient per simulation (the constant baselines, dynamic
  Smagorinsky), in the step: ⟨|S̄|²⟩ = ⟨ω²⟩ from ω̂ and Π̂ = ν_e k² ω̂, no transform;
- Leith, outside the step: ν_e = ``leith_viscosity`` recomputed before every step (the
  previous path of the Leith families, kept as the reference for their in-step rows);
- every closure family (``envs/turbulence/families``) through ``families.advance`` as the env
  and the evaluation call it, one decision per 10 steps: the agents' coefficients drawn in the
  family's action range (an interpolated field), and the family's base constant (uniform);
  every family's closure is formed inside the solver step (``StrainScaled``,
  ``GradientScaled``, ``VorticityScaled``, ``EnergyReturn``: its grid rows in the step's own
  transforms);
- bare LES + the inverse transform of the two strain rows alone (the part of an agents' field
  that no exact grid closure avoids), bare LES + the transforms alone of a two-coefficient
  field (the strain rows, the hyperviscosity's (−∇²)^{p/4}ω row and its product's forward row:
  the floor of the two-term families' agents' fields, no arithmetic) and bare LES + the
  agents' observations every 10 steps;
- with ``--cnn``, the supervised field closure as the evaluation runs it (``regrl turbulence
  compare``'s D4-CNN, ``configs/closure_cnn.yaml``'s architecture: 3×3 circular convolutions
  with 8, 8 channels, averaged over the square's 8 symmetries in one batched pass, float32):
  Π of the state every 10 steps through ``sgs.step_with_sgs``, held between (its weights
  are random: the cost does not depend on them, and Π is scaled small enough to leave the
  flow as it is);
- the learned closure as the evaluation runs it: every 10 steps the agents' observations
  (``env.observe_agents``), the shipped policy's mean (``data/turbulence/policies/smarl_ppo.pt``,
  actor only) and the interpolated coefficient field, then 10 in-step Smagorinsky steps.
Cost per simulated time unit per simulation = seconds per step / batch / dt. The DNS row is the
reference's configuration (256², float32, dt 2.5·10⁻⁴), one simulation, timed in every batch's
rounds beside its LES rows (interleaved like them, so that the DNS / LES ratio compares two
timings under the same load; before, the DNS was timed once before all LES rows, 10-step
rounds, and the ratio moved with the load of that moment: the header still prints that number).
Seconds are this
process's CPU seconds (``--clock cpu``, the default: on a machine shared with other jobs the
wall clock mostly measures the scheduler; one torch thread, so CPU time is the cost) or wall
seconds (``--clock wall``); the header gives the load average.
``--dt``: the LES's time step (default the reference's, 5·10⁻⁴); the decisions stay 5·10⁻³ time
units apart (10 steps of 5·10⁻⁴, SMARL's), so a longer step takes fewer steps per decision, and
the rows' "every N steps" say how many (benchmarks/turbulence_float32.py checks the longer
steps on the evaluation's metrics).
Run: nice -n 5 .venv/bin/python benchmarks/turbulence_closure_cost.py [--rounds 7] [--dtype float32]
         [--dt 1e-3] [--cnn]
On a GPU: python benchmarks/turbulence_closure_cost.py --device cuda --batches 1,64,256 --no-learned
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/turbulence_solver.py

import numpy as np  # noqa: E402
import torch  # noqa: E402

from regrl.envs.turbulence import families  # noqa: E402
from regrl.envs.turbulence.closures import (
    leith_viscosity,
    smagorinsky_in_step,
    smagorinsky_viscosity,
    upsample_agent_actions,
)  # noqa: E402
from regrl.envs.turbulence.env import advance, agent_points, observe_agents  # noqa: E402
from regrl.envs.turbulence.reference import (  # noqa: E402
    STEPS_PER_DECISION,
    les_physics,
    load_reference,
    steps_per_decision,
)
from regrl.envs.turbulence.solver import Turbulence2D, _to_spectral  # noqa: E402

POLICY = "data/turbulence/policies/smarl_ppo.pt"
DNS_ROW = "reference DNS 256² float32, 1 simulation (the DNS / LES column's numerator)"
# a round of the DNS row steps it steps/10 times (a 256² step costs ~5-10 64² steps), so that
# its rounds take about as long as the LES rows' and the whole run stays short
DNS_STEPS_PER_LES_STEP = 10
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def les(batch: int, n: int = 64, dtype=torch.float64, device="cpu", dt=None) -> Turbulence2D:
    physics = les_physics(load_reference().provenance["spec"])
    physics["dt"] = dt or physics["dt"]
    return Turbulence2D(n, batch=batch, seed=0, dtype=dtype, device=device, **physics)


def learned_stepper(sim: Turbulence2D, policy, log_ref, every: int = STEPS_PER_DECISION):
    """fn(k): k steps of the learned closure, a decision (observe, act) every ``every`` steps,
    through the evaluation's own decision function (``smarl.closure_coefficients``)."""
    from regrl.trainers.turbulence.smarl import closure_coefficients

    ix, iy = agent_points(sim.n, 4)

    def observe(s):
        return observe_agents(s, ix, iy, log_ref)

    def run(k):
        for _ in range(0, k, every):
            coeff = closure_coefficients(sim, "smagorinsky", None, policy, 4, observe)
            advance(sim, coeff, "smagorinsky", every)

    return run


def steppers(
    sim: Turbulence2D, policy, log_ref, every: int = STEPS_PER_DECISION, names=None, cnn=False
) -> dict:
    """name -> fn(k) advancing k steps; the coefficient field is fixed like one RL decision."""
    gen = torch.Generator().manual_seed(0)
    field = upsample_agent_actions(
        0.0578 * torch.rand(sim.batch, 4, 4, generator=gen, dtype=torch.float64), sim.n
    ).to(sim.device, sim.dtype)

    def outside(k):
        for _ in range(k):
            sim.step(1, eddy_viscosity=smagorinsky_viscosity(sim, field))

    def leith(k):
        for _ in range(k):
            sim.step(1, eddy_viscosity=leith_viscosity(sim, 0.17**3 * field / 0.0289))

    fns = {
        "bare LES": sim.step,
        "Smagorinsky, outside the step (old)": outside,
        "Smagorinsky, in the step (new)": lambda k: sim.step(
            k, eddy_viscosity=smagorinsky_in_step(sim, field)
        ),
        "Smagorinsky uniform C_s², in the step (new)": lambda k: sim.step(
            k, eddy_viscosity=smagorinsky_in_step(sim, field[:, 0, 0])
        ),
        "Leith, outside the step": leith,
    }
    fns.update(family_steppers(sim, every, names))
    fns["bare LES + strain rows' inverse transform (a grid field's floor)"] = strain_floor(sim)
    fns["bare LES + a two-coefficient field's transforms (its floor)"] = two_field_floor(sim)
    ix, iy = agent_points(sim.n, 4)

    def observed(k):
        for _ in range(0, k, every):
            observe_agents(sim, ix, iy, log_ref)
            sim.step(every)

    fns[f"bare LES + observations every {every} steps"] = observed
    if cnn:
        fns[f"supervised D4-CNN Π every {every} steps"] = cnn_stepper(
            les(sim.batch, dtype=sim.dtype, device=sim.device, dt=sim.dt), every
        )
    if policy is not None:
        fns[f"learned closure: observations + policy every {every} steps"] = learned_stepper(
            les(sim.batch, dtype=sim.dtype, device=sim.device, dt=sim.dt), policy, log_ref, every
        )
    return fns


def cnn_stepper(sim: Turbulence2D, every: int = STEPS_PER_DECISION):
    """fn(k): k steps of the supervised D4-CNN closure (module docstring), Π every ``every``."""
    from regrl.agents.models.closure import ClosureCNN
    from regrl.envs.turbulence.sgs import step_with_sgs
    from regrl.trainers.turbulence.closures import cnn_closure

    torch.manual_seed(0)
    model = ClosureCNN(hidden=(8, 8), activation="tanh", symmetric=True).to(sim.device)
    model.eval()
    sgs = cnn_closure(model, sigma_omega=1.0, sigma_pi=1e-9)

    def run(k):
        step_with_sgs(sim, sgs, k, every=every)

    return run


def strain_floor(sim: Turbulence2D):
    """fn(k): k bare steps, each followed by the inverse transform of the two strain rows an
    agents' field adds to the step (``_step_grid``, no closure arithmetic): what any closure
    that forms ν_e S̄ exactly on the grid must add to the bare step."""
    ops = sim._flux_ops(True, False, False)[2:]

    def run(k):
        for _ in range(k):
            sim.step(1)
            sim._step_grid(sim._w_hat.unsqueeze(1) * ops)

    return run


def two_field_floor(sim: Turbulence2D, order: int = 8):
    """fn(k): k bare steps, each followed by the transforms an agents' field of a two-term
    family adds (``_ab2_flux_into``: the two strain rows and the order-``order``
    hyperviscosity's row inverse, its product's row forward), with none of its arithmetic."""
    ops = sim._flux_ops(True, False, True, order)[2:]

    def run(k):
        for _ in range(k):
            sim.step(1)
            phys = sim._step_grid(sim._w_hat.unsqueeze(1) * ops)
            _to_spectral(phys[:, 2:3], sim._c)

    return run


def family_steppers(sim: Turbulence2D, every: int = STEPS_PER_DECISION, names=None) -> dict:
    """'<family>, agents' field' and '<family>, uniform' -> fn(k): k steps, a decision every
    ``every`` steps (coefficients held between, as in the env); ``names``: only these
    families (default all)."""
    gen = torch.Generator().manual_seed(1)
    fns = {}
    for name, fam in families.FAMILIES.items():
        if names is not None and name not in names:
            continue
        low, high = (torch.tensor(b, dtype=sim.dtype) for b in zip(*fam.default_range()))
        unit = torch.rand(sim.batch, 4, 4, fam.size, generator=gen, dtype=sim.dtype)
        field = low + unit * (high - low)
        uniform = torch.tensor(fam.base(), dtype=sim.dtype).expand(sim.batch, 4, 4, fam.size)
        for label, coeff in (("agents' field", field), ("uniform", uniform)):

            def run(k, fam=fam, coeff=coeff):
                for _ in range(0, k, every):
                    families.advance(sim, fam, coeff, every)

            fns[f"{name}, {label}"] = run
    return fns


def best_seconds(
    fns: dict, steps: int, rounds: int, sync=lambda: None, clock=time.perf_counter
) -> dict:
    """Best seconds per step of each fn over ``rounds`` rounds, interleaved so that all see the
    same machine load (``sync`` waits for queued GPU work; ``clock`` the timer)."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn(3)  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            start = clock()
            fn(steps)
            sync()
            best[name] = min(best[name], (clock() - start) / steps)
    return best


def load_learned_policy():
    """The shipped policy as the evaluation calls it (imports the RLlib module code)."""
    from regrl.trainers.rllib.policy_file import load_policy
    from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy

    module, _, provenance = load_policy(POLICY)
    return module_policy(module, coeff_range_of(provenance["config"]["env"]["kwargs"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batches", default="1,4,16", help="comma-separated batch sizes")
    parser.add_argument(
        "--no-learned", action="store_true", help="skip the learned-closure row (needs RLlib)"
    )
    parser.add_argument(
        "--cnn", action="store_true", help="add the supervised D4-CNN closure's row"
    )
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="process CPU or wall seconds"
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float64",
        help="the LES's precision (the DNS row is the reference's float32 either way; "
        "benchmarks/turbulence_float32.py checks float32 against float64 on the evaluation)",
    )
    parser.add_argument(
        "--dt", type=float, default=None, help="the LES's time step (default the reference's)"
    )
    parser.add_argument(
        "--families",
        default=None,
        metavar="NAME,...",
        help="time only these closure families (default all), beside the bare and floor rows",
    )
    args = parser.parse_args()
    names = None
    if args.families is not None:
        names = [n.strip() for n in args.families.split(",") if n.strip()]
        for name in names:
            try:
                families.get_family(name)
            except ValueError as exc:
                raise SystemExit(f"error: --families: {exc}") from None
    torch.set_num_threads(1)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda or args.clock == "wall" else time.process_time
    p = load_reference().provenance["spec"]
    les_dt = args.dt or les_physics(p)["dt"]
    try:
        every = steps_per_decision(les_dt, les_physics(p)["dt"])
    except ValueError as exc:
        raise SystemExit(f"error: --dt: {exc}") from None
    dns = Turbulence2D(
        p["n_dns"],
        nu=p["nu"],
        alpha=p["alpha"],
        dt=p["dt"],
        kf=p["kf"],
        beta=p["beta"],
        seed=0,
        dtype=torch.float32,
        device=args.device,
    )
    dns_steps = max(5, args.steps // 10)
    dns_s = best_seconds({"dns": dns.step}, dns_steps, args.rounds, sync, clock)["dns"]
    dns_tu = dns_s / dns.dt
    print(
        f"torch {torch.__version__}, "
        f"{torch.cuda.get_device_name() if cuda else '1 thread'}, "
        f"{'wall' if clock is time.perf_counter else 'CPU'} seconds, "
        f"load avg {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores; "
        f"reference DNS {p['n_dns']}² float32 dt {dns.dt:g}, timed alone before the LES rows "
        f"(the ratio's numerator until this round): {dns_s * 1e3:.2f} ms/step = "
        f"{dns_tu:.2f} s per time unit; the DNS / LES column divides by the DNS row of the "
        "same batch's interleaved rounds"
    )
    print(
        f"| batch | LES 64² {args.dtype} dt {les_dt:g} | ms per step | x bare step | s per time unit per "
        "simulation | DNS / LES cost |\n|---|---|---|---|---|---|"
    )
    policy = None if args.no_learned else load_learned_policy()
    log_ref = np.log10(load_reference().enstrophy_spectrum[1:] + 1e-30)
    for batch in [int(b) for b in args.batches.split(",")]:
        sim = les(batch, dtype=DTYPES[args.dtype], device=args.device, dt=les_dt)
        fns = steppers(sim, policy, log_ref, every, names, cnn=args.cnn)
        fns[DNS_ROW] = lambda k: dns.step(max(1, k // DNS_STEPS_PER_LES_STEP))
        best = best_seconds(fns, args.steps, args.rounds, sync, clock)
        best[DNS_ROW] *= DNS_STEPS_PER_LES_STEP  # seconds per DNS step
        bare, dns_here = best["bare LES"], best[DNS_ROW] / dns.dt  # s per time unit
        for name, sec in best.items():
            per_tu = (
                sec / (1 if name == DNS_ROW else batch) / (dns.dt if name == DNS_ROW else sim.dt)
            )
            print(
                f"| {batch} | {name} | {sec * 1e3:.3f} | {sec / bare:.2f} | {per_tu:.3f} | "
                f"{dns_here / per_tu:.1f} |",
                flush=True,
            )
    print(f"load avg at the end {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
