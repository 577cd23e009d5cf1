"""The dealiased LES step of ``Turbulence2D`` (SMARL, Mojgani et al. 2023, arXiv 2312.00907)
compiled by torch's inductor into fused C++ kernels around the four FFTs: the bare step and
SMARL's in-step Smagorinsky field (``StrainScaled(field)``, ν_e = field · ⟨ω²⟩^½, the
``smagorinsky`` family's agents' field), for measuring what compilation buys
(``benchmarks/turbulence_compile_cost.py``, docs/smarl_families.md §6). Not used by the env or
the evaluation: they step the eager solver.

The step is ``Turbulence2D._ab2_flux_into``'s update written as one pure function of
(ω̂ⁿ, 1.5(u⊗u)ⁿ⁻¹, field) with every complex product spelt out on the real and imaginary parts
(inductor generates no code for complex operators; on the real views the spectral products,
the padding of the column transform's output, the grid products with the AB2/τ combination and
the update each fuse into one kernel). It is traced by ``torch.fx`` and handed to inductor's
``compile_fx`` directly: ``torch.compile`` (dynamo) adds guards and frame handling to every
call, more than a 64² step at batch 1 saves (its row in docs/smarl_compile_cost.txt). Fixed
shapes and strides: one compiled graph per solver, field or not, and steps per call. The same
update to round-off (tested against the eager step).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from regrl.envs.turbulence.solver import StrainScaled, Turbulence2D

Tensor = torch.Tensor


def _parts(t: Tensor) -> Tuple[Tensor, Tensor]:
    return t.real.contiguous(), t.imag.contiguous()


def _cmul(xr: Tensor, xi: Tensor, ar: Tensor, ai: Tensor) -> Tuple[Tensor, Tensor]:
    return xr * ar - xi * ai, xr * ai + xi * ar


def step_function(sim: Turbulence2D, field: bool) -> Callable:
    """fn(ω̂ [b, n, c] complex, 1.5(u⊗u)ⁿ⁻¹ [b, 2, n, n][, field [b, n, n]]) → (ω̂ⁿ⁺¹,
    1.5(u⊗u)ⁿ): one dealiased step with the grid AB2 history, with no closure or with
    ``StrainScaled(field)``, in plain torch (eager; ``compile_steps`` compiles it)."""
    if not sim.dealias or sim.beta or not sim.forcing:
        raise ValueError("the compiled step covers the dealiased, forced, β = 0 LES only")
    n, c = sim.n, sim._c
    op_r, op_i = _parts(sim._flux_ops(field, False, False))
    lin_r, lin_i = _parts(sim._lin)
    force_r, force_i = _parts(sim._neg_force)
    curl_a, curl_b = (w.real.contiguous() for w in sim._step_curl)  # real weights
    rms_weight2 = sim._rms_weight.real.square()

    def step(w: Tensor, flux_prev: Tensor, coeff: Optional[Tensor] = None):
        wr = torch.view_as_real(w)
        xr, xi = wr[..., 0], wr[..., 1]
        rows = torch.stack(_cmul(xr.unsqueeze(1), xi.unsqueeze(1), op_r, op_i), -1)
        col = torch.view_as_real(torch.fft.ifft(torch.view_as_complex(rows), dim=-2))
        padded = torch.nn.functional.pad(col, (0, 0, 0, n // 2 + 1 - c))
        phys = torch.fft.irfft(torch.view_as_complex(padded), n=n, dim=-1)
        u, v = phys[:, 0], phys[:, 1]  # √1.5 u, √1.5 v
        flux = torch.stack([u * v, u * u - v * v], 1)
        total = flux - flux_prev / 3.0
        if coeff is not None:  # + ν_e (τ rows), ν_e = field · ⟨ω²⟩^½
            mean_square = ((xr * xr + xi * xi) * rms_weight2).sum((-2, -1), keepdim=True)
            total = total + (coeff * mean_square.sqrt()).unsqueeze(1) * phys[:, 2:4]
        hats = torch.fft.fft(torch.fft.rfft(total, dim=-1)[..., :c], dim=-2)
        hats = torch.view_as_real(hats)
        lr, li = _cmul(xr, xi, lin_r, lin_i)
        out_r = force_r + lr + hats[:, 0, ..., 0] * curl_a + hats[:, 1, ..., 0] * curl_b
        out_i = force_i + li + hats[:, 0, ..., 1] * curl_a + hats[:, 1, ..., 1] * curl_b
        return torch.view_as_complex(torch.stack([out_r, out_i], -1)), flux

    if field:
        return step
    return lambda w, flux_prev: step(w, flux_prev)


def compile_steps(sim: Turbulence2D, field: bool, steps: int = 1, backend: str = "fx"):
    """``step_function`` unrolled ``steps`` times and compiled for ``sim``'s shapes: ``fx``
    traces it with ``torch.fx`` and compiles the graph with inductor's ``compile_fx`` (no
    per-call guards), ``dynamo`` with ``torch.compile(fullgraph=True, dynamic=False)``,
    ``eager`` not at all (the same wrapper, for tests). Raises RuntimeError naming the cause
    if inductor cannot compile (no C++ compiler)."""
    one = step_function(sim, field)

    def unrolled_field(w, flux_prev, coeff):
        for _ in range(steps):
            w, flux_prev = one(w, flux_prev, coeff)
        return w, flux_prev

    def unrolled_bare(w, flux_prev):
        for _ in range(steps):
            w, flux_prev = one(w, flux_prev)
        return w, flux_prev

    unrolled = unrolled_field if field else unrolled_bare

    example = [sim._w_hat, _flux_history(sim)]
    example += [sim._w_hat.real.new_zeros(sim.batch, sim.n, sim.n)] if field else []
    try:
        if backend == "eager":  # not compiled: the same code path, for fast tests
            fn = unrolled
        elif backend == "dynamo":
            fn = torch.compile(unrolled, fullgraph=True, dynamic=False)
        elif backend == "fx":
            from torch._inductor.compile_fx import compile_fx

            graph = torch.fx.symbolic_trace(unrolled)
            fn = compile_fx(graph, example)
        else:
            raise ValueError(f"backend must be 'fx', 'dynamo' or 'eager', got {backend!r}")
        fn(*example)  # compile now, not inside the first timed call
    except (ImportError, RuntimeError, OSError) as err:  # inductor missing or no compiler
        raise RuntimeError(
            f"the compiled LES step needs torch's inductor and a C++ compiler: {err}"
        ) from err
    return fn


def _flux_history(sim: Turbulence2D) -> Tensor:
    if sim._flux_prev is None:
        raise ValueError("step the solver with a closure field once first (grid AB2 history)")
    return sim._flux_prev


class CompiledLES:
    """Advance ``sim`` with compiled steps: ``advance(n_steps, field)`` is
    ``sim.step(n_steps, eddy_viscosity=StrainScaled(field))`` (``field`` [batch, n, n],
    C_s²Δ² on the grid) or, with ``field`` None, the bare step, to round-off. The first call
    of each kind compiles (seconds); the solver's first step after a reset runs eager (it
    starts the grid AB2 history); ``steps`` steps per compiled call, a remainder eager. CPU
    solvers (inductor's C++ kernels)."""

    def __init__(self, sim: Turbulence2D, steps: int = 1, backend: str = "fx"):
        self.sim, self.steps, self.backend = sim, int(steps), backend
        self._fns: dict = {}

    def advance(self, n_steps: int, field: Optional[Tensor] = None) -> None:
        sim, n_steps = self.sim, int(n_steps)
        if field is not None:  # [batch] (one coefficient per simulation) or [batch, n, n]
            field = field.to(sim.dtype).reshape(sim.batch, -1, 1) if field.dim() == 1 else field
            # contiguous: the compiled graph is specialised to its inputs' strides
            field = field.expand(sim.batch, sim.n, sim.n).to(sim.dtype).contiguous()
        # a zero field for the bare step's eager steps: it keeps its history in spectral
        # space otherwise, and the compiled step continues the grid history
        grid = sim._w_hat.real.new_zeros(sim.batch, sim.n, sim.n) if field is None else field
        if sim._flux_prev is None:  # the forward-Euler start, eager
            sim.step(1, eddy_viscosity=StrainScaled(grid))
            n_steps -= 1
        calls, rest = divmod(n_steps, self.steps)
        key = field is not None
        if calls and key not in self._fns:
            self._fns[key] = compile_steps(sim, key, self.steps, self.backend)
        coeff = () if field is None else (field,)
        w, flux = sim._w_hat, sim._flux_prev
        for _ in range(calls):
            w, flux = self._fns[key](w, flux, *coeff)
        sim._w_hat, sim._flux_prev, sim._jac_prev = w, flux, None
        sim.steps += calls * self.steps
        sim.time += calls * self.steps * sim.dt
        if rest:
            sim.step(rest, eddy_viscosity=StrainScaled(grid))
