"""What torch.compile (inductor, CPU) buys the 64² SMARL LES (Mojgani et al. 2023, arXiv
2312.00907; issue 21 item 5): the eager step against the compiled step of
``envs/turbulence/compiled.py`` (the dealiased step as one pure function, complex products on
real views, fused C++ kernels around the four FFTs), measured in one run with interleaved
rounds, per batch size, beside the 256² reference DNS.

Rows, per batch size (× the eager bare step of the same rounds):
- eager bare / eager agents' field: ``sim.step`` and ``families.advance`` with the
  ``smagorinsky`` family's agents' field (a decision every 10 steps), as
  ``benchmarks/turbulence_closure_cost.py`` times them;
- compiled bare / compiled field, one step per call (``compile_fx`` on the ``torch.fx`` graph,
  no per-call guards), the field also with 10 steps (one decision) as one graph, and with
  ``torch.compile`` (dynamo, ``fullgraph=True, dynamic=False``) one step per call;
- the learned closure (observations + the shipped policy every 10 steps, as the evaluation
  runs it) with the eager and with the compiled 10-step field, and the DNS row (256², float32,
  one simulation, in the same rounds: the DNS / LES column).
Also printed: each graph's compile time (process CPU and wall seconds: inductor compiles in
worker processes) and how far the compiled step drifts from the eager one over 200 steps
(max |Δω̂| / max |ω̂|). Process CPU seconds, one torch thread, best of ``--rounds``.
Run: nice -n 5 .venv/bin/python benchmarks/turbulence_compile_cost.py [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/turbulence_solver.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
from turbulence_closure_cost import (  # noqa: E402  this folder
    DNS_STEPS_PER_LES_STEP,
    DTYPES,
    STEPS_PER_ACTION,
    best_seconds,
    les,
    load_learned_policy,
)

from regrl.envs.turbulence import families  # noqa: E402
from regrl.envs.turbulence.compiled import CompiledLES  # noqa: E402
from regrl.envs.turbulence.env import agent_points, observe_agents  # noqa: E402
from regrl.envs.turbulence.reference import load_reference  # noqa: E402
from regrl.envs.turbulence.solver import StrainScaled, Turbulence2D  # noqa: E402

FAMILY = families.get_family("smagorinsky")
DNS_ROW = "reference DNS 256² float32, 1 simulation"


def agents_field(sim: Turbulence2D) -> torch.Tensor:
    """The agents' coefficients [batch, 4, 4, 1] drawn in the family's action range (as the
    cost benchmark's family rows)."""
    gen = torch.Generator().manual_seed(1)
    low, high = FAMILY.default_range()[0]
    unit = torch.rand(sim.batch, 4, 4, 1, generator=gen, dtype=sim.dtype)
    return low + unit * (high - low)


def timed_compile(sim: Turbulence2D, steps: int, backend: str, field: bool) -> tuple:
    """A ``CompiledLES`` whose graph is compiled now; (runner, CPU s, wall s)."""
    runner = CompiledLES(sim, steps=steps, backend=backend)
    cpu, wall = time.process_time(), time.perf_counter()
    grid = families.coefficient_fields(agents_field(sim), sim.n)[0] * sim.delta**2
    runner.advance(steps + 1, grid if field else None)  # an eager step starts the history
    return runner, time.process_time() - cpu, time.perf_counter() - wall


def decision_loop(sim, coeff_of, advance):
    """fn(k): k steps, a decision every ``STEPS_PER_ACTION`` steps."""

    def run(k):
        for _ in range(0, k, STEPS_PER_ACTION):
            advance(coeff_of())

    return run


def compiled_field(runner: CompiledLES, coeff_of):
    sim = runner.sim

    def advance(coeff):
        field = families.coefficient_fields(coeff, sim.n)[0] * sim.delta**2
        runner.advance(STEPS_PER_ACTION, field)

    return decision_loop(sim, coeff_of, advance)


def eager_field(sim, coeff_of):
    return decision_loop(
        sim, coeff_of, lambda coeff: families.advance(sim, FAMILY, coeff, STEPS_PER_ACTION)
    )


def learned_decision(sim, policy, log_ref):
    from regrl.trainers.turbulence.smarl import closure_coefficients

    ix, iy = agent_points(sim.n, 4)
    return lambda: closure_coefficients(
        sim, "smagorinsky", None, policy, 4, lambda s: observe_agents(s, ix, iy, log_ref)
    )


def drift(dtype) -> float:
    """max |Δω̂| / max |ω̂| after 200 steps of the agents' field, compiled against eager, from
    the same batch-4 state."""
    eager, comp = les(4, dtype=dtype), les(4, dtype=dtype)
    grid = families.coefficient_fields(agents_field(eager), eager.n)[0] * eager.delta**2
    eager.step(200, eddy_viscosity=StrainScaled(grid))
    CompiledLES(comp, steps=STEPS_PER_ACTION).advance(200, grid)
    return float((eager._w_hat - comp._w_hat).abs().max() / eager._w_hat.abs().max())


def rows(batch, dtype, policy, log_ref, compile_times) -> dict:
    """name -> fn(k) for one batch size; each row steps its own solver."""
    fixed = {}
    fns = {"eager bare": les(batch, dtype=dtype).step}
    sim = les(batch, dtype=dtype)
    fixed["field"] = agents_field(sim)
    fns["eager agents' field"] = eager_field(sim, lambda: fixed["field"])
    for label, steps, backend, field in (
        ("compiled bare, 1 step per graph (fx)", 1, "fx", False),
        ("compiled agents' field, 1 step per graph (fx)", 1, "fx", True),
        ("compiled agents' field, 10 steps per graph (fx)", 10, "fx", True),
        ("compiled agents' field, 1 step per call (torch.compile)", 1, "dynamo", True),
    ):
        runner, cpu, wall = timed_compile(les(batch, dtype=dtype), steps, backend, field)
        compile_times[(batch, label)] = (cpu, wall)
        if field:
            fns[label] = compiled_field(runner, lambda: fixed["field"])
        else:
            fns[label] = lambda k, r=runner: r.advance(k)
    if policy is not None:
        sim = les(batch, dtype=dtype)
        fns["learned closure, eager step"] = eager_field(
            sim, learned_decision(sim, policy, log_ref)
        )
        runner = CompiledLES(les(batch, dtype=dtype), steps=STEPS_PER_ACTION)
        decide = learned_decision(runner.sim, policy, log_ref)
        fns["learned closure, compiled 10-step field"] = compiled_field(runner, decide)
    return fns


def dns_solver() -> Turbulence2D:
    p = load_reference().provenance["spec"]
    return Turbulence2D(
        p["n_dns"], nu=p["nu"], alpha=p["alpha"], dt=p["dt"], kf=p["kf"], beta=p["beta"],
        seed=0, dtype=torch.float32,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    parser.add_argument("--no-learned", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = DTYPES[args.dtype]
    policy = None if args.no_learned else load_learned_policy()
    log_ref = np.log10(load_reference().enstrophy_spectrum[1:] + 1e-30)
    dns = dns_solver()
    print(
        f"torch {torch.__version__}, 1 thread, CPU seconds, {args.dtype} LES, best of "
        f"{args.rounds} interleaved rounds, load avg {os.getloadavg()[0]:.2f} (1 min) on "
        f"{os.cpu_count()} cores; compiled against eager over 200 steps (agents' field, "
        f"batch 4): max |Δω̂| / max |ω̂| = {drift(dtype):.1e}"
    )
    print("| batch | row | ms per step | x eager bare | DNS / LES cost |\n|---|---|---|---|---|")
    compile_times: dict = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        fns = rows(batch, dtype, policy, log_ref, compile_times)
        fns[DNS_ROW] = lambda k: dns.step(max(1, k // DNS_STEPS_PER_LES_STEP))
        best = best_seconds(fns, args.steps, args.rounds, clock=time.process_time)
        best[DNS_ROW] *= DNS_STEPS_PER_LES_STEP
        bare, dns_tu = best["eager bare"], best[DNS_ROW] / dns.dt
        sim_dt = les(1).dt
        for name, sec in best.items():
            per_tu = sec / dns.dt if name == DNS_ROW else sec / batch / sim_dt
            print(
                f"| {batch} | {name} | {sec * 1e3:.3f} | {sec / bare:.2f} | "
                f"{dns_tu / per_tu:.1f} |",
                flush=True,
            )
    print("\ncompile time (first call of each graph; process CPU s / wall s):")
    for (batch, label), (cpu, wall) in compile_times.items():
        print(f"- batch {batch}, {label}: {cpu:.1f} / {wall:.1f}")
    print(f"load avg at the end {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
