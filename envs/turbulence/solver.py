"""Pseudo-spectral solver of 2D forced turbulence used by SMARL (Mojgani, Waelchli, Guan,
Koumoutsakos, Hassanzadeh 2023, arXiv 2312.00907; docs/methods.md#smarl-solver, reference code
``rmojgani/RLonKorali: experiments/flowControl_turb_code/_model/turb.py``), in batched torch.

Equations (vorticity–streamfunction form, doubly periodic [0, 2π]², ``'ij'`` indexing: x is the
first grid axis, y the second):

    ∂ω/∂t + J(ψ, ω) = ν∇²ω − αω − F − Π + β·v ,   ∇²ψ = −ω ,   u = ∂ψ/∂y , v = −∂ψ/∂x
    F = k_f cos(k_f y) + k_f cos(k_f x) ,          Π = ∇×∇·τ ,  τ = −2 ν_e S̄

Time stepping (docs/methods.md#smarl-solver update formula): AB2 for the Jacobian (forward Euler on the first
step after a reset), Crank–Nicolson for ν, implicit drag α, explicit Euler for F, Π and β·v:

    ω̂ⁿ⁺¹ = [ω̂ⁿ − dt(1.5Ĵⁿ − 0.5Ĵⁿ⁻¹) − 0.5 dt ν k² ω̂ⁿ − dt(F̂ + Π̂ⁿ) + dt β v̂ⁿ]
           / (1 + dt α + 0.5 dt ν k²)

J = ½[∇·(uω) + u·∇ω], the mean of the conservative and advective forms, pseudo-spectral.
With ``dealias=True`` the two forms are equal on every retained mode (the 2/3 rule makes the
grid products exact there and ∇·u = 0 holds exactly), so the step evaluates J once, as
∇×∇·(u⊗u): same numbers to round-off, 4 transform rows per step instead of 8 (``jacobian``
computes each form; a test checks the equality). Without dealiasing the step averages both
forms. With a local eddy viscosity Π = ∇×∇·τ has the same form, so the dealiased step forms
1.5(u⊗u)ⁿ − 0.5(u⊗u)ⁿ⁻¹ + τⁿ on the grid and transforms it once (``_ab2_flux_into``): the
update formula unchanged, the closure's cost two inverse strain rows.

Spectral conventions: ω̂ is the unnormalised ``rfft2`` of ω (numpy's ``fft2`` convention, the
one the reference spectra use). The state is Galerkin-truncated: k = 0, the Nyquist row and
column and, with ``dealias``, every mode with |k_x| ≥ n/3 or |k_y| ≥ n/3 (Orszag's 2/3 rule,
square truncation) are held at zero; only the k_y columns that can be non-zero are stored, and
the 2D transforms are done as two 1D passes over those columns.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class StrainScaled:
    """Eddy viscosity ν_e = ``field`` · ⟨|S̄|²⟩^{1/2} with the strain norm of the state at each
    step (|S̄| = 2√(S̄11² + S̄12²), domain RMS per simulation): SMARL's Smagorinsky
    (``field`` = C_s² Δ²) evaluated inside ``step``, instead of two extra inverse transforms
    and a dozen small ops per step. ``field`` is a scalar, [batch] or a grid field [n, n] /
    [batch, n, n]. The norm needs no transform: ⟨|S̄|²⟩ = ⟨ω²⟩ for a periodic incompressible
    2D flow (Parseval: |Ŝ11|² + |Ŝ12|² = |ω̂|²/4 mode by mode), taken from ω̂. A scalar or
    [batch] field needs no transform at all (Π̂ = ν_e k² ω̂); a grid field adds the two strain
    rows to the step's transforms."""

    field: Union[float, Tensor]
    pointwise: bool = False
    """True: ν_e(x) = ``field`` · |S̄(x)|, the local strain norm (the textbook Smagorinsky
    model, Smagorinsky 1963), formed from the strain rows the step transforms anyway; the
    field is then always applied on the grid."""


@dataclass(frozen=True)
class VorticityScaled:
    """Hyperviscosity ν₄ = ``field`` · ⟨ω²⟩^½ (the domain-RMS vorticity of the state at each
    step, a rate): with ``field`` = C₄⁴ Δ⁴ the dimensionally consistent biharmonic closure of
    the two-term and backscattering families (``envs/turbulence/families``). ``field`` is a
    scalar, [batch] or a grid field."""

    field: Union[float, Tensor]
    order: int = 4
    """The operator's order p: −(−∇²)^{p/4}(ν (−∇²)^{p/4} ω), i.e. −ν k^p ω̂ for a uniform ν.
    4 (biharmonic, the default) or 8 (a steeper cut-off, ``families/hyperviscous8.py``; then
    ``field`` = C₈⁸ Δ⁸)."""


@dataclass(frozen=True)
class GradientScaled:
    """Eddy viscosity ν_e = ``field`` · ⟨|∇ω̄|⟩ (the domain mean of the vorticity-gradient norm:
    SMARL's Leith with ``field`` = C_L³ Δ³, ``turb.leith_cs``) or, with ``pointwise``,
    ``field`` · |∇ω̄(x)| (Leith 1996), evaluated inside every step from two gradient rows added
    to the step's inverse transform (instead of a closure call and its own transform before each
    step). A scalar or [batch] ``field`` with the domain mean is a uniform ν_e: Π̂ = ν_e k² ω̂,
    no strain rows."""

    field: Union[float, Tensor]
    pointwise: bool = False


@dataclass(frozen=True)
class EnergyReturn:
    """Negative Laplacian viscosity ν₂ = −``fraction`` · ⟨ν₄⟩ · Σk²|ω̂|² / Σ|ω̂|² of the state at
    each step, ⟨ν₄⟩ the domain mean of the step's hyperviscosity (which it needs): it returns
    the fraction of the hyperviscous energy drain to the resolved flow (Jansen & Held 2014,
    ``families/backscatter.py`` derives it). ``fraction`` is a scalar, [batch] or a grid field
    (then the return is local and the budget holds on the domain average)."""

    fraction: Union[float, Tensor]


EddyViscosity = Union[None, float, Tensor, StrainScaled, GradientScaled, EnergyReturn]
Hyperviscosity = Union[None, float, Tensor, VorticityScaled]


@dataclass(frozen=True)
class _Closure:
    """What one ``step`` call holds (``Turbulence2D._closure``): the eddy viscosity's kind
    ('value', 'strain', 'gradient', 'return' or None), its field or fraction [batch, 1, 1] or
    [batch, n, n], the hyperviscosity ν₄ likewise (its mean and its departure from the mean
    split once per call), and which grid rows the step must transform."""

    kind: Optional[str] = None
    nu: Optional[Tensor] = None
    pointwise: bool = False
    on_grid: bool = False  # the eddy viscosity enters as τ = −2 ν_e S̄ formed on the grid
    hyper_mean: Optional[Tensor] = None  # ⟨field⟩ of ν₄ [batch, 1, 1] (× ⟨ω²⟩^½ if scaled)
    hyper_departure: Optional[Tensor] = None  # field − ⟨field⟩ [batch, n, n], None if uniform
    hyper_scaled: bool = False
    hyper_order: int = 4  # ``VorticityScaled.order``

    @property
    def needs_rms(self) -> bool:
        return self.hyper_scaled or (self.kind == "strain" and not self.pointwise)

    @property
    def grid_rows(self) -> bool:
        """The step transforms more than the velocity: strain, gradient or −∇²ω rows."""
        return self.on_grid or self.kind == "gradient" or self.hyper_departure is not None


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

# ``VorticityScaled.order``: the biharmonic closure and the steeper k⁸ cut-off
HYPERVISCOSITY_ORDERS = (4, 8)


# ``enstrophy_spectrum`` as one matrix product up to n·c·n entries (the 64² LES: 90k; the 256²
# DNS, 5.6M, would multiply a 45 MB matrix per call, slower than its direct sums)
_SPECTRUM_MATRIX_MAX_ENTRIES = 1 << 18

# ``Turbulence2D._grid_buffer``: work arrays up to this size are kept between steps (a batch-4
# float64 or batch-8 float32 pair of 64² rows), larger ones allocated per step
_KEEP_WORK_ARRAY_BYTES = 256 << 10

_KEEP_FREED_BYTES = 64 << 20  # ``_keep_freed_memory``: above a batch-64 step's temporaries


@functools.lru_cache(maxsize=1)
def _keep_freed_memory() -> bool:
    """Tell glibc's malloc (once per process, Linux only) to keep up to 64 MiB of freed memory
    instead of handing it back to the kernel (M_TRIM_THRESHOLD) and to serve blocks below that
    size from its heap (M_MMAP_THRESHOLD). A step allocates and frees a few megabytes of
    temporaries (transform rows, products); with glibc's adaptive defaults a closure's extra
    rows pushed the freed heap top over the trim threshold, so the memory was returned and
    faulted back in at every step: at batch 16 the in-step Smagorinsky field took 1,500 page
    faults and ~3 ms of system time per step against 3 faults for the bare step, more than
    the transforms themselves (benchmarks/turbulence_closure_cost.py). No effect on results;
    the price is up to 64 MiB of freed memory kept by the process. Returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(
        mallopt(m_mmap_threshold, _KEEP_FREED_BYTES)
        and mallopt(m_trim_threshold, 2 * _KEEP_FREED_BYTES)
    )


# ----------------------------------------------------------------------------- spectral grid
def wavenumbers(n: int, device=None, dtype=torch.float64) -> Tuple[Tensor, Tensor]:
    """Integer wavenumbers of an ``rfft2`` on an n×n grid of [0, 2π]²: k_x [n, 1] (full,
    ``fftfreq`` order) and k_y [1, n//2 + 1] (non-negative half)."""
    kx = torch.fft.fftfreq(n, 1.0 / n, device=device, dtype=dtype).reshape(n, 1)
    ky = torch.fft.rfftfreq(n, 1.0 / n, device=device, dtype=dtype).reshape(1, n // 2 + 1)
    return kx, ky


def _cutoff(n: int, dealias: bool) -> float:
    return n / 3.0 if dealias else n / 2.0


def retained_modes(n: int, dealias: bool, device=None, dtype=torch.float64) -> Tensor:
    """[n, n//2+1] 0/1 mask of the modes the solver keeps: no k = 0, no Nyquist mode, and with
    ``dealias`` only |k_x|, |k_y| < n/3 (2/3 rule: products of kept modes never alias back)."""
    kx, ky = wavenumbers(n, device, dtype)
    keep = (kx.abs() < _cutoff(n, dealias)) & (ky < _cutoff(n, dealias))
    keep[0, 0] = False
    return keep.to(dtype)


def _to_grid(x_hat: Tensor, n: int) -> Tensor:
    """irfft2 of a half spectrum [..., n, c] whose columns k_y ≥ c are zero → [..., n, n]."""
    return torch.fft.irfft(torch.fft.ifft(x_hat, dim=-2), n=n, dim=-1)


def _to_spectral(x: Tensor, c: int) -> Tensor:
    """rfft2 of [..., n, n] restricted to the columns k_y < c → [..., n, c]."""
    return torch.fft.fft(torch.fft.rfft(x, dim=-1)[..., :c], dim=-2)


def _coarsen_hat(w_hat: Tensor, n: int, n_les: int) -> Tensor:
    """Sharp square cut-off of an n-grid rfft2 spectrum to the modes |k_x|, |k_y| < n_les/2 of
    an n_les grid, rescaled by (n_les/n)² so that ``irfft2`` on the coarse grid returns
    physical values (the unnormalised FFT scales with the number of grid points)."""
    h = n_les // 2
    out = w_hat.new_zeros(w_hat.shape[:-2] + (n_les, h + 1))
    out[..., :h, :h] = w_hat[..., :h, :h]
    out[..., n_les - h + 1 :, :h] = w_hat[..., n - h + 1 :, :h]
    return out * (n_les / n) ** 2


def _check_les_grid(n: int, n_les: int) -> None:
    if n_les % 2 or n_les < 2 or n_les > n:
        raise ValueError(f"n_les must be even and in [2, n={n}], got {n_les}")


def spectral_filter(omega: Tensor, n_les: int) -> Tensor:
    """Filter a field [..., n, n] to an n_les grid with a sharp spectral cut-off (keeps
    |k_x|, |k_y| < n_les/2; the coarse Nyquist modes are dropped). Returns [..., n_les, n_les]
    physical values on the coarse grid x_j = 2πj/n_les (SMARL's filtered DNS, docs/methods.md#smarl-solver).
    A field whose modes all lie below the cut-off comes back exactly, sampled every n/n_les
    points."""
    n = omega.shape[-1]
    _check_les_grid(n, n_les)
    return torch.fft.irfft2(_coarsen_hat(torch.fft.rfft2(omega), n, n_les), s=(n_les, n_les))


def gaussian_filter(omega: Tensor, n_les: int, width_factor: float = 2.0) -> Tensor:
    """Gaussian filter G(k) = exp(−k² Δ_f² / 24) with Δ_f = width_factor · 2π/n_les (the usual
    LES choice Δ_f = 2Δ_LES), followed by the sharp cut-off to the n_les grid
    (``spectral_filter``). [..., n, n] → [..., n_les, n_les]."""
    n = omega.shape[-1]
    _check_les_grid(n, n_les)
    kx, ky = wavenumbers(n, omega.device, omega.dtype)
    delta_f = width_factor * 2.0 * math.pi / n_les
    g = torch.exp(-(kx**2 + ky**2) * delta_f**2 / 24.0)
    w_hat = torch.fft.rfft2(omega) * g
    return torch.fft.irfft2(_coarsen_hat(w_hat, n, n_les), s=(n_les, n_les))


def _norm(a: Tensor, b: Tensor, weight: float) -> Tensor:
    """√(a² + weight·b²) in three ops (differentiable: the in-place root keeps its result)."""
    return torch.addcmul(a * a, b, b, value=weight).sqrt_()


def _invariants(rows: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """tr(S), tr(S²), tr(R²) [..., 3, n, n] of a 2×2 tensor field A = S + R (S symmetric, R
    antisymmetric) given as ``rows`` [..., 4, n, n] = A11, A22, ½(A12 + A21), ½(A12 − A21)
    (the off-diagonal parts formed in Fourier space, before the transform); SMARL's
    ``turb.invariant`` (docs/methods.md#smarl-environment). Leading axes are batch axes: both
    tensors of ``local_invariants`` go through the same 6 calls. With ``out`` [..., 3, n, n]
    the result is written there (not differentiable), else built out of place."""
    a11, a22, off_s, off_r = rows.unbind(-3)
    if out is None:  # the same operations, out of place
        tr_s2 = torch.addcmul(torch.addcmul(a11 * a11, a22, a22), off_s, off_s, value=2.0)
        return torch.stack([a11 + a22, tr_s2, (off_r * off_r).mul(-2.0)], -3)
    tr_s, tr_s2, tr_r2 = out.unbind(-3)
    torch.add(a11, a22, out=tr_s)
    torch.mul(a11, a11, out=tr_s2).addcmul_(a22, a22).addcmul_(off_s, off_s, value=2.0)
    torch.mul(off_r, off_r, out=tr_r2).mul_(-2.0)
    return out


# ----------------------------------------------------------------------------- the solver
class Turbulence2D:
    """Batched 2D forced, linearly damped Navier–Stokes solver (SMARL's ``turb``; module
    docstring for equations and scheme). ``batch`` independent simulations advance together;
    all tensors live on ``device`` and the step path has no host synchronisation.

    ``seed`` (int) draws ``random_initial_condition(seed)``; with ``seed=None`` the vorticity
    starts at zero (set ``omega`` before stepping). ``nu``, ``alpha``, ``beta``, ``dt``, ``kf``
    and ``dealias`` are fixed at construction (the step operators are precomputed from them).
    """

    def __init__(
        self,
        n: int,
        *,
        nu: float,
        alpha: float,
        dt: float,
        kf: int = 4,
        beta: float = 0.0,
        batch: int = 1,
        device="cpu",
        dtype=torch.float64,
        dealias: bool = True,
        forcing: bool = True,
        seed: Optional[int] = None,
    ):
        if n < 4 or n % 2:
            raise ValueError(f"n must be an even integer >= 4, got {n}")
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.n, self.batch, self.dtype = int(n), int(batch), dtype
        self.device = torch.device(device)
        self.nu, self.alpha, self.beta, self.dt = float(nu), float(alpha), float(beta), float(dt)
        self.kf, self.dealias, self.forcing = int(kf), bool(dealias), bool(forcing)
        self.delta = 2.0 * math.pi / self.n  # grid spacing Δ, the closures' filter width
        _keep_freed_memory()
        self._build_operators()
        self.time, self.steps = 0.0, 0
        self._w_hat = torch.zeros(
            self.batch, self.n, self._c, dtype=_COMPLEX[dtype], device=self.device
        )
        self._jac_prev: Optional[Tensor] = None  # Ĵⁿ⁻¹ (no dealiasing)
        self._flux_prev: Optional[Tensor] = None  # 1.5·(u⊗u)ⁿ⁻¹ on the grid (dealiased)
        if seed is not None:
            self.random_initial_condition(seed)

    # ------------------------------------------------------------------ operators
    def _build_operators(self) -> None:
        n, dt = self.n, self.dt
        kx, ky = wavenumbers(n, self.device, self.dtype)
        self._c = int((ky < _cutoff(n, self.dealias)).sum())  # stored k_y columns
        ky = ky[:, : self._c]
        k2 = kx**2 + ky**2
        inv_k2 = torch.where(k2 > 0, 1.0 / k2.clamp_min(1.0), torch.zeros_like(k2))
        self._kx, self._ky, self._k2, self._inv_k2 = kx, ky, k2, inv_k2
        self._mask = retained_modes(n, self.dealias, self.device, self.dtype)[:, : self._c]
        cn_den = 1.0 + dt * self.alpha + 0.5 * dt * self.nu * k2  # Crank–Nicolson, drag
        inv_den = self._mask / cn_den
        self._cn_den, self._inv_den = cn_den, inv_den  # ``_hyper_ops`` of other orders
        cdt = _COMPLEX[self.dtype]  # complex-typed weights: no real→complex promotion per step
        beta_v = -1j * dt * self.beta * kx * inv_k2  # dt·β·v̂ = dt·β·(−i k_x) ω̂ / k²
        self._lin = ((1.0 - 0.5 * dt * self.nu * k2 + beta_v) * inv_den).to(cdt)
        self._ab2_now, self._ab2_prev = (-1.5 * dt * inv_den).to(cdt), (0.5 * dt * inv_den).to(cdt)
        self._neg_dt_inv_den = (-dt * inv_den).to(cdt)
        self._neg_sgs_scalar = (-dt * inv_den * k2).to(cdt)  # Π̂ = ν_e k² ω̂, constant ν_e
        # hyperviscosity −ν₄∇⁴ω, backward Euler beside Crank–Nicolson: ω̂ⁿ⁺¹ = (what the
        # step forms) / (1 + ν₄ · dt k⁴ / (1 + dt α + ½ dt ν k²))
        self._hyper_den = dt * k2**2 / cn_den
        self._k2_complex = k2.to(cdt)
        # ⟨ω²⟩^½ = ‖ω̂ · √weight‖ / n² over the stored half plane (k_y > 0 columns count twice)
        half = torch.full_like(ky, math.sqrt(2.0))
        half[..., 0] = 1.0
        self._rms_weight = (half / n**2).to(cdt)
        self._neg_force = (-dt * inv_den * self._forcing_hat()).to(cdt)
        self._build_transfer_operators()
        self._invariant_ops: Optional[Tensor] = None
        self._mirror_rows = (-torch.arange(n, device=self.device)) % n  # row of −k_x
        self._spectrum_matrix: Optional[Tensor] = None  # ``enstrophy_spectrum``

    def _build_transfer_operators(self) -> None:
        """ω̂ → grid fields: ``_to_phys`` = [u, v, ∂xω, ∂yω, ω] and ``_to_strain`` = [S̄11, S̄12];
        the step transforms only the rows it needs (``_step_rows``)."""
        kx, ky, inv_k2 = self._kx, self._ky, self._inv_k2
        ikx, iky = (1j * kx).expand_as(inv_k2), (1j * ky).expand_as(inv_k2)
        self._to_phys = torch.stack([iky * inv_k2, -ikx * inv_k2, ikx, iky, torch.ones_like(ikx)])
        strain = torch.stack([-kx * ky * inv_k2, 0.5 * (kx**2 - ky**2) * inv_k2])
        self._to_strain = strain.to(ikx.dtype)
        rows = self._to_phys[:2] if self.dealias else self._to_phys
        self._step_rows = rows, torch.cat([rows, self._to_strain])
        # dealiased step (``_ab2_flux_into``): √1.5·u, √1.5·v, so that their products are the
        # AB2 weight 1.5 times (u⊗u), and −2 S̄12, −4 S̄11, so that ν_e times them is τ12 and
        # τ11 − τ22 (τ = −2 ν_e S̄), in the order of the momentum-flux rows
        self._scaled_uv = math.sqrt(1.5) * self._to_phys[:2]
        self._tau_rows = torch.stack([-2.0 * self._to_strain[1], -4.0 * self._to_strain[0]])
        self._flux_op_cache: Dict[Tuple[bool, bool, bool, int], Tensor] = {}  # ``_flux_ops``
        self._hyper_op_cache: Dict[int, Tuple[Tensor, Tensor, Tensor]] = {}  # ``_hyper_ops``
        self._moment_weights: Optional[Tensor] = None  # ``_rms_and_mean_square_wavenumber``
        self._padded: Dict[Tuple[int, ...], Tensor] = {}  # ``_step_grid``
        # ∇×∇·T of a symmetric tensor T: (k_y² − k_x²) T̂12 + k_x k_y (T̂11 − T̂22)
        self._curl_a = (ky**2 - kx**2).to(ikx.dtype)
        self._curl_b = (kx * ky).expand_as(inv_k2).to(ikx.dtype)
        self._pi_a, self._pi_b = -2.0 * self._curl_a, -4.0 * self._curl_b  # Π's τ factors
        # the dealiased step's −dt·∇×∇·T/den in two weights (``_ab2_flux_into``): the transformed
        # rows go into ω̂ⁿ⁺¹ by two fused multiply-adds, without forming ∇×∇·T first
        self._step_curl = (self._curl_a * self._neg_dt_inv_den, self._curl_b * self._neg_dt_inv_den)
        self._grid_buffers: Dict[str, Tensor] = {}  # ``_grid_buffer``

    def _curl_div(self, t12_hat: Tensor, t11_minus_t22_hat: Tensor) -> Tensor:
        """Spectral ∇×∇·T, the form of both Π = ∇×∇·τ and J = ∇×∇·(u⊗u) (= u·∇ω, ∇·u = 0)."""
        return torch.addcmul(self._curl_a * t12_hat, self._curl_b, t11_minus_t22_hat)

    def _forcing_hat(self) -> Tensor:
        """F̂ of F = k_f cos(k_f y) + k_f cos(k_f x) (enters as −dt·F̂, docs/methods.md#smarl-solver)."""
        if not self.forcing:
            return torch.zeros_like(self._k2)
        if self.kf < 1 or self.kf >= _cutoff(self.n, self.dealias):
            raise ValueError(f"kf={self.kf} is not a resolved wavenumber of the n={self.n} grid")
        x = torch.arange(self.n, device=self.device, dtype=self.dtype) * self.delta
        f = self.kf * (torch.cos(self.kf * x)[None, :] + torch.cos(self.kf * x)[:, None])
        return _to_spectral(f, self._c)

    # ------------------------------------------------------------------ state
    @property
    def omega(self) -> Tensor:
        """Physical vorticity [batch, n, n]. Setting it accepts [n, n] (broadcast) or
        [batch, n, n], projects it on the retained modes (drops the mean, the Nyquist modes and,
        with ``dealias``, the 2/3-rule modes) and resets the AB2 history."""
        return _to_grid(self._w_hat, self.n)

    @omega.setter
    def omega(self, value) -> None:
        w = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        if w.shape == (self.n, self.n):
            w = w.expand(self.batch, self.n, self.n)
        if w.shape != (self.batch, self.n, self.n):
            raise ValueError(
                f"omega must have shape [{self.n}, {self.n}] or "
                f"[{self.batch}, {self.n}, {self.n}], got {list(w.shape)}"
            )
        self._w_hat = _to_spectral(w, self._c) * self._mask
        self._jac_prev = self._flux_prev = None

    def detach_(self) -> "Turbulence2D":
        """Cut the autograd history of the state and of the AB2 history (truncated
        backpropagation through time: the next unroll starts from these values as constants)."""
        self._w_hat = self._w_hat.detach()
        if self._flux_prev is not None:
            self._flux_prev = self._flux_prev.detach()
        if self._jac_prev is not None:
            self._jac_prev = self._jac_prev.detach()
        return self

    @property
    def omega_hat(self) -> Tensor:
        """rfft2 of the vorticity [batch, n, n//2+1] (unnormalised; a copy)."""
        out = self._w_hat.new_zeros(self.batch, self.n, self.n // 2 + 1)
        out[..., : self._c] = self._w_hat
        return out

    @property
    def psi(self) -> Tensor:
        """Streamfunction [batch, n, n]: ψ̂ = ω̂ / k² (∇²ψ = −ω, zero mean)."""
        return self._phys(self._inv_k2)

    def _phys(self, op: Tensor, count: Optional[int] = None) -> Tensor:
        """Grid field(s) of ω̂·op: op [n, c] → [batch, n, n]; op [f, n, c] → [batch, f, n, n]
        (of the first ``count`` simulations only, if given)."""
        w_hat = self._w_hat[:count]
        w_hat = w_hat if op.dim() == 2 else w_hat.unsqueeze(1)
        return _to_grid(w_hat * op, self.n)

    def random_initial_condition(self, seed: int, energy: float = 0.5, k_peak: float = 4.0) -> None:
        """Smooth random vorticity: Gaussian white noise (``torch.Generator`` seeded with
        ``seed``, drawn on the CPU so every device gets the same field) shaped to the energy
        spectrum E(k) ∝ k⁴ exp(−(k/k_peak)²) (the reference's ``turb.IC`` shape, peak moved to
        low k), truncated to the retained modes and scaled to ½⟨u²+v²⟩ = ``energy`` per element.
        Batch element b is the b-th draw, so elements differ and a seed is reproducible."""
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(self.batch, self.n, self.n, generator=g, dtype=torch.float64)
        k = self._k2.sqrt()
        # white noise puts ∝ k modes in a shell; |ω̂|² ∝ k² E(k) / k  ⇒  amplitude ∝ k^2.5
        shape = k**2.5 * torch.exp(-0.5 * (k / k_peak) ** 2) * self._mask
        w_hat = _to_spectral(noise.to(self.device, self.dtype), self._c) * shape
        scale = torch.sqrt(energy / self._energy_of(w_hat).clamp_min(torch.finfo(self.dtype).tiny))
        self._w_hat = w_hat * scale[:, None, None]
        self._jac_prev = self._flux_prev = None

    # ------------------------------------------------------------------ stepping
    def step(
        self,
        n_steps: int = 1,
        eddy_viscosity: EddyViscosity = None,
        hyperviscosity: Hyperviscosity = None,
    ) -> None:
        """Advance ``n_steps`` time steps. ``eddy_viscosity`` is None, a scalar, a per-element
        tensor [batch], or a field [n, n] / [batch, n, n]; it is held fixed over the call and
        enters as Π = ∇×∇·(−2 ν_e S̄), explicit (docs/methods.md#smarl-solver). A positive constant ν_e
        dissipates like an extra viscosity: Π̂ = ν_e k² ω̂. ``StrainScaled(field)`` multiplies
        the field by the current strain norm at every step (SMARL's Smagorinsky; with
        ``pointwise`` the local norm |S̄(x)|), ``GradientScaled`` by the vorticity-gradient norm
        (Leith), and ``EnergyReturn`` is the Jansen–Held backscatter of the hyperviscosity.
        ``hyperviscosity`` ν₄ (same shapes, or ``VorticityScaled``) adds −∇²(ν₄ ∇²ω) (= −ν₄∇⁴ω
        for a uniform ν₄; with ``VorticityScaled(order=8)`` −∇⁴(ν₈ ∇⁴ω)): its domain mean per
        simulation backward Euler (unconditionally stable), a field's departure from that mean
        explicit, like Π. Every closure is evaluated
        at the state its step starts from; the grid rows it needs (strain, vorticity gradient,
        −∇²ω) join the step's own inverse transform and its products the forward one."""
        closure = self._closure(eddy_viscosity, hyperviscosity)
        for _ in range(int(n_steps)):
            self._step_once(closure)
        self.steps += int(n_steps)
        self.time += int(n_steps) * self.dt

    def _closure(self, eddy_viscosity: EddyViscosity, hyperviscosity: Hyperviscosity) -> _Closure:
        """A ``step`` call's closure, validated and split once for all its steps."""
        kinds = {StrainScaled: "strain", GradientScaled: "gradient", EnergyReturn: "return"}
        kind = kinds.get(type(eddy_viscosity), None if eddy_viscosity is None else "value")
        value = eddy_viscosity
        if kind in ("strain", "gradient"):
            value = eddy_viscosity.field
        elif kind == "return":
            value = eddy_viscosity.fraction
        nu = self._eddy_viscosity(value)
        pointwise = kind in ("strain", "gradient") and bool(eddy_viscosity.pointwise)
        on_grid = nu is not None and (pointwise or nu.shape[-1] != 1)
        hyper_scaled = isinstance(hyperviscosity, VorticityScaled)
        nu_4 = self._eddy_viscosity(
            hyperviscosity.field if hyper_scaled else hyperviscosity, "hyperviscosity"
        )
        order = int(hyperviscosity.order) if hyper_scaled else 4
        if order not in HYPERVISCOSITY_ORDERS:
            raise ValueError(
                f"VorticityScaled.order must be one of {HYPERVISCOSITY_ORDERS}, got {order}"
            )
        if kind == "return" and nu_4 is None:
            raise ValueError(
                "EnergyReturn returns a fraction of a hyperviscosity's energy drain: "
                "give hyperviscosity= too"
            )
        if kind == "return" and order != 4:
            raise ValueError(
                "EnergyReturn's budget (Σk²|ω̂|²) is that of a biharmonic hyperviscosity: "
                f"order 4, got {order}"
            )
        mean = departure = None
        if nu_4 is not None and nu_4.shape[-1] != 1:  # ⟨ν₄⟩ implicit, ν₄ − ⟨ν₄⟩ explicit
            mean = nu_4.mean((-2, -1), keepdim=True)
            departure = nu_4 - mean
        elif nu_4 is not None:
            mean = nu_4
        return _Closure(kind, nu, pointwise, on_grid, mean, departure, hyper_scaled, order)

    def _eddy_viscosity(self, value, name: str = "eddy_viscosity") -> Optional[Tensor]:
        if value is None:
            return None
        nu_e = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        b, n = self.batch, self.n
        if nu_e.dim() == 0 or nu_e.shape == (b,):
            return nu_e.reshape(-1, 1, 1)
        if nu_e.shape == (n, n):
            return nu_e.expand(b, n, n)
        if nu_e.shape != (b, n, n):
            raise ValueError(
                f"{name} must be a scalar, [{b}], [{n}, {n}] or "
                f"[{b}, {n}, {n}], got {list(nu_e.shape)}"
            )
        return nu_e

    def _step_once(self, c: _Closure) -> None:
        """One step of the update formula (module docstring), as fused multiply-adds with the
        precomputed weights: lin·ω̂ − dt·F̂/den − dt(1.5 Ĵ − 0.5 Ĵ_prev + Π̂)/den, then the
        hyperviscosity: + dt k² FFT[(ν₄ − ⟨ν₄⟩)·∇²ω]/den and the factor
        1 / (1 + ⟨ν₄⟩ dt k⁴ / den) (backward Euler beside Crank–Nicolson). ⟨ω²⟩^½ is taken
        once per step for every closure term scaled by it."""
        w = self._w_hat
        tracking = self._tracking(c.nu, c.hyper_mean, c.hyper_departure)
        rms = msw = None
        if c.kind == "return":  # ⟨ω²⟩ and Σk²|ω̂|² in one pass over |ω̂|²
            rms, msw = self._rms_and_mean_square_wavenumber()
        elif c.needs_rms:
            rms = self.vorticity_rms().reshape(-1, 1, 1)
        nu_4 = c.hyper_mean * rms if c.hyper_scaled else c.hyper_mean  # ⟨ν₄⟩ [batch, 1, 1]
        nu_e = c.nu
        if c.kind == "strain" and not c.pointwise:  # ⟨|S̄|²⟩^½ = ⟨ω²⟩^½ (Parseval): no transform
            nu_e = nu_e * rms
        elif c.kind == "return":  # ν₂ = −c_b ⟨ν₄⟩ Σk²|ω̂|²/Σ|ω̂|²
            nu_e = -nu_e * (nu_4 * msw)
        w_new = torch.addcmul(self._neg_force, w, self._lin)
        if self.dealias and (c.grid_rows or self._flux_prev is not None):
            nu_e, departure_hat = self._ab2_flux_into(w_new, c, nu_e, tracking)
        else:  # AB2 history Ĵⁿ⁻¹ kept in spectral space (the bare step's cheaper path)
            if c.kind == "gradient":
                nu_e = self._gradient_viscosity(c)
            jac, pi = self._nonlinear_hat(
                nu_e if c.on_grid else None, c.pointwise and c.kind == "strain"
            )
            jac_prev = jac if self._jac_prev is None else self._jac_prev
            w_new.addcmul_(jac, self._ab2_now).addcmul_(jac_prev, self._ab2_prev)
            if pi is not None:
                w_new.addcmul_(pi, self._neg_dt_inv_den)
            self._jac_prev = jac
            departure_hat = None
            if c.hyper_departure is not None:  # (−∇²)^{p/4}ω and the product, apart
                row, _, _ = self._hyper_ops(c.hyper_order)
                minus_lap = _to_grid(w * row, self.n)
                departure_hat = _to_spectral(c.hyper_departure * minus_lap, self._c)
        if nu_e is not None and not c.on_grid:  # a uniform ν_e: Π̂ = ν_e k² ω̂
            w_new.addcmul_(w, nu_e * self._neg_sgs_scalar)
        if nu_4 is not None:
            _, hyper_weight, hyper_den = self._hyper_ops(c.hyper_order)
            if departure_hat is not None:  # − dt k² FFT[(ν₄ − ⟨ν₄⟩)(−∇²ω)] / den (p = 4)
                scale = rms if c.hyper_scaled else None  # the departure row is ν₄'s field's
                weight = hyper_weight if scale is None else scale * hyper_weight
                w_new.addcmul_(departure_hat, weight)
            factor = (nu_4 * hyper_den).add_(1.0).reciprocal_()  # real: cheaper than dividing
            # in place unless autograd records (then w_new's value is needed for ∂/∂ν₄)
            w_new = w_new * factor if tracking else w_new.mul_(factor)
        self._w_hat = w_new

    def _gradient_viscosity(self, c: _Closure) -> Tensor:
        """``GradientScaled``'s ν_e from its own gradient transform (the step without
        dealiasing, and its first step)."""
        wx, wy = self.vorticity_gradient()
        norm = torch.sqrt(wx**2 + wy**2)
        return c.nu * (norm if c.pointwise else norm.mean((-2, -1), keepdim=True))

    def _step_grid(self, rows_hat: Tensor) -> Tensor:
        """``_to_grid`` of the step's spectral rows [batch, rows, n, c]. Outside autograd the
        column pass writes into a kept half spectrum whose columns k_y ≥ c stay zero, so that
        the inverse real transform finds its padding in place: the same numbers, without
        allocating and zero-filling a padded copy at every step (5-10% of a bare step at batch
        16 on a loaded machine)."""
        if torch.is_grad_enabled() and rows_hat.requires_grad:
            return _to_grid(rows_hat, self.n)
        shape = rows_hat.shape[:-1] + (self.n // 2 + 1,)
        padded = self._padded.get(shape)
        if padded is None:
            padded = self._padded[shape] = rows_hat.new_zeros(shape)
        padded[..., : self._c] = torch.fft.ifft(rows_hat, dim=-2)
        return torch.fft.irfft(padded, n=self.n, dim=-1)

    def _nonlinear_hat(
        self, nu_e_field: Optional[Tensor], pointwise: bool = False
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Ĵ [batch, n, c] and, for an eddy-viscosity field, Π̂ (else None) of the current
        state, each on its own, with one batched inverse and one batched forward transform
        (the step without dealiasing, the bare dealiased step with its spectral history, and
        ``sgs.eddy_viscosity_term``). Dealiased: J from the momentum-flux form ∇×∇·(u⊗u),
        equal to the average form on every retained mode (4 rows); otherwise
        ½[∇·(uω) + u·∇ω] explicitly (8 rows)."""
        ops = self._step_rows[0 if nu_e_field is None else 1]
        phys = self._step_grid(self._w_hat.unsqueeze(1) * ops)
        if nu_e_field is not None and pointwise:  # ν_e(x) = field·|S̄(x)|, |S̄| = 2√(S̄11² + S̄12²)
            nu_e_field = nu_e_field * 2.0 * torch.linalg.vector_norm(phys[:, -2:], dim=1)
        if self._tracking(nu_e_field):  # autograd: out= writes are not differentiable
            prods = torch.stack(self._products(phys, nu_e_field), 1)
        else:
            prods = self._products_into(phys, nu_e_field)
        hats = _to_spectral(prods, self._c)
        if self.dealias:
            jac = self._curl_div(hats[:, 0], hats[:, 1])
        else:
            jac = 0.5 * (hats[:, 0] + 1j * (self._kx * hats[:, 1] + self._ky * hats[:, 2]))
        pi = None
        if nu_e_field is not None:  # τ12 = −2 ν_e S̄12, τ11 − τ22 = −4 ν_e S̄11
            pi = torch.addcmul(self._pi_a * hats[:, -1], self._pi_b, hats[:, -2])
        return jac, pi

    def _tracking(self, *closure: Optional[Tensor]) -> bool:
        """True while autograd records the step (the state or a closure tensor requires grad):
        the step then builds its products out of place (``torch.stack``) instead of writing
        them into preallocated buffers, ~5% slower and differentiable."""
        if not torch.is_grad_enabled():
            return False
        return self._w_hat.requires_grad or any(t is not None and t.requires_grad for t in closure)

    def _products(self, phys: Tensor, nu_e_field: Optional[Tensor]) -> List[Tensor]:
        """The grid products ``_nonlinear_hat`` transforms, out of place (for autograd):
        dealiased (u⊗u)12, (u⊗u)11 − (u⊗u)22, else u·∇ω, uω, vω; then ν_e S̄11, ν_e S̄12."""
        u, v = phys[:, 0], phys[:, 1]
        if self.dealias:
            terms = [u * v, u * u - v * v]
        else:
            terms = [u * phys[:, 2] + v * phys[:, 3], u * phys[:, 4], v * phys[:, 4]]
        if nu_e_field is not None:
            terms += [nu_e_field * phys[:, -2], nu_e_field * phys[:, -1]]
        return terms

    def _products_into(self, phys: Tensor, nu_e_field: Optional[Tensor]) -> Tensor:
        """``_products`` written into one preallocated [batch, rows, n, n] buffer (no stack
        copy; not differentiable)."""
        u, v = phys[:, 0], phys[:, 1]
        n_products = (2 if self.dealias else 3) + (0 if nu_e_field is None else 2)
        prods = phys.new_empty(self.batch, n_products, self.n, self.n)
        if self.dealias:  # (u⊗u)12, (u⊗u)11 − (u⊗u)22
            torch.mul(u, v, out=prods[:, 0])
            torch.addcmul(u * u, v, v, value=-1.0, out=prods[:, 1])
        else:  # u·∇ω, uω, vω
            torch.addcmul(u * phys[:, 2], v, phys[:, 3], out=prods[:, 0])
            torch.mul(phys[:, 0:2], phys[:, 4:5], out=prods[:, 1:3])
        if nu_e_field is not None:  # ν_e S̄11, ν_e S̄12
            torch.mul(nu_e_field.unsqueeze(1), phys[:, -2:], out=prods[:, -2:])
        return prods

    def vorticity_rms(self, w_hat: Optional[Tensor] = None) -> Tensor:
        """⟨ω²⟩^½ [batch] from the stored half spectrum (of the state, or of ``w_hat``). The
        norm runs on the real view: torch's norm of the complex tensor took 13x longer (166 vs
        13 µs at batch 16)."""
        w_hat = self._w_hat if w_hat is None else w_hat
        weighted = torch.view_as_real(w_hat * self._rms_weight)
        return torch.linalg.vector_norm(weighted, dim=(-3, -2, -1))

    def mean_square_wavenumber(self) -> Tensor:
        """Σ k²|ω̂|² / Σ |ω̂|² [batch]: palinstrophy over enstrophy, the ratio by which a
        hyperviscosity's energy drain exceeds a unit Laplacian viscosity's energy input
        (Jansen & Held 2014's energy budget, ``families/backscatter.py``)."""
        weight = self._rms_weight.real**2  # the half plane's double count, per column
        power = (self._w_hat.abs() ** 2) * weight
        total = power.sum((-2, -1))
        return (power * self._k2).sum((-2, -1)) / total.clamp_min(torch.finfo(self.dtype).tiny)

    def _hyper_ops(self, order: int) -> Tuple[Tensor, Tensor, Tensor]:
        """The order-p hyperviscosity's spectral operators (``VorticityScaled.order``): the
        grid row of a field's departure, (−∇²)^{p/4} ω ↔ k^{p/2} ω̂ (complex); its weight on
        the transformed product, −dt k^{p/2}/den (complex); and the backward-Euler term of the
        uniform part, dt k^p / (1 + dt α + ½ dt ν k²) (real). p = 4 returns the step's own
        tensors (the two-term families' numbers, unchanged); other orders are built once."""
        if order == 4:
            return self._k2_complex, self._neg_sgs_scalar, self._hyper_den
        if order not in self._hyper_op_cache:
            dt, k2 = self.dt, self._k2
            half = k2 ** (order // 4)
            cdt = _COMPLEX[self.dtype]
            self._hyper_op_cache[order] = (
                half.to(cdt),
                (-dt * self._inv_den * half).to(cdt),
                dt * k2 ** (order // 2) / self._cn_den,
            )
        return self._hyper_op_cache[order]

    def _flux_ops(self, tau: bool, gradient: bool, minus_lap: bool, order: int = 4) -> Tensor:
        """[rows, n, c] ω̂ → grid operators of the dealiased step (``_ab2_flux_into``): √1.5 u,
        √1.5 v, then −2 S̄12, −4 S̄11 (``tau``), ∂xω, ∂yω (``gradient``), −∇²ω (``minus_lap``;
        (−∇²)^{p/4}ω for a hyperviscosity of ``order`` p)."""
        key = (tau, gradient, minus_lap, order)
        if key not in self._flux_op_cache:
            rows = [self._scaled_uv]
            rows += [self._tau_rows] if tau else []
            rows += [self._to_phys[2:4]] if gradient else []
            rows += [self._hyper_ops(order)[0][None]] if minus_lap else []
            self._flux_op_cache[key] = torch.cat(rows)
        return self._flux_op_cache[key]

    def _rms_and_mean_square_wavenumber(self) -> Tuple[Tensor, Tensor]:
        """(``vorticity_rms``, ``mean_square_wavenumber``) each [batch, 1, 1], from one
        weighted sum of |ω̂|² (the Jansen–Held step needs both)."""
        if self._moment_weights is None:  # [n·c·2, 2]: both parts of each ω̂ alike
            weight = self._rms_weight.real**2  # 1/n⁴, the k_y > 0 columns twice
            pair = torch.stack(torch.broadcast_tensors(weight, weight * self._k2), -1)
            self._moment_weights = pair.unsqueeze(-2).expand(-1, -1, 2, -1).reshape(-1, 2)
        # |ω̂|² weighted and summed by one matrix product (a sum over the real/imaginary pair
        # of the real view was ~10x slower than the rest of this at batch 16)
        squares = torch.view_as_real(self._w_hat).square().reshape(self.batch, -1)
        moments = squares @ self._moment_weights  # [batch, 2]
        total = moments[:, 0:1, None]  # ⟨ω²⟩
        msw = moments[:, 1:2, None] / total.clamp_min(torch.finfo(self.dtype).tiny)
        return total.sqrt(), msw

    def _grid_buffer(self, name: str, rows: int, avoid: Optional[Tensor] = None) -> Tensor:
        """A [batch, rows, n, n] work array of the dealiased step (outside autograd): up to
        ``_KEEP_WORK_ARRAY_BYTES`` a kept one, so that the step's grid products and their AB2
        combination are written into the same memory at every step instead of two fresh
        allocations; above, a fresh one per step as before (kept arrays were not faster
        there in paired timings at batch 16, paired medians 1.03 and 1.00, and would hold
        megabytes per solver at large batches). ``avoid``: the AB2 history, which the
        products of this step must not overwrite (two arrays alternate)."""
        shape = (self.batch, rows, self.n, self.n)
        if math.prod(shape) * self._w_hat.real.element_size() > _KEEP_WORK_ARRAY_BYTES:
            return self._w_hat.real.new_empty(shape)
        for key in (f"{name}{rows}", f"{name}{rows}'"):
            buf = self._grid_buffers.get(key)
            if buf is None:
                buf = self._grid_buffers[key] = self._w_hat.real.new_empty(shape)
            if avoid is None or buf.data_ptr() != avoid.data_ptr():
                return buf
        raise AssertionError("unreachable: two alternating buffers cannot both hold the history")

    def _ab2_flux_into(
        self, w_new: Tensor, c: _Closure, nu_e: Optional[Tensor], tracking: bool
    ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Add the dealiased step's −dt(1.5 Ĵⁿ − 0.5 Ĵⁿ⁻¹ + Π̂ⁿ)/den to ``w_new`` [batch, n, c]
        in place; returns the eddy viscosity ν_e as evaluated on this state (Leith's and the
        pointwise norms need the grid) and, for a hyperviscosity field,
        FFT[(ν₄ − ⟨ν₄⟩)·(−∇²ω)] [batch, n, c] (else None), with one inverse and one forward
        transform. J and Π are both ∇×∇· of a symmetric tensor (J of u⊗u, Π of τ = −2ν_e S̄)
        and the transform is linear, so the update's combination is formed on the grid before
        the transform: T = 1.5(u⊗u)ⁿ − 0.5(u⊗u)ⁿ⁻¹ + τⁿ, keeping the previous step's 1.5(u⊗u)
        as the AB2 history (forward Euler, T = (u⊗u)ⁿ + τⁿ, on the first step). The same
        numbers as transforming J and Π separately (to round-off, tested); a local eddy
        viscosity costs two inverse strain rows, Leith's norm two gradient rows, a
        hyperviscosity field one inverse and one forward row, all in the same calls. The
        transformed T̂ enters as (k_y² − k_x²)T̂12 + k_x k_y(T̂11 − T̂22) times −dt/den, with
        both weights multiplied out once (``_step_curl``): two multiply-adds into ``w_new``."""
        lap = c.hyper_departure is not None
        gradient = c.kind == "gradient"
        ops = self._flux_ops(c.on_grid, gradient, lap, c.hyper_order)
        phys = self._step_grid(self._w_hat.unsqueeze(1) * ops)
        u, v = phys[:, 0], phys[:, 1]  # √1.5 u, √1.5 v
        row = 4 if c.on_grid else 2
        tau = phys[:, 2:4] if c.on_grid else None  # −2 S̄12, −4 S̄11
        if gradient:  # ν_e = field · |∇ω̄(x)| or field · ⟨|∇ω̄|⟩
            norm = _norm(phys[:, row], phys[:, row + 1], 1.0)
            nu_e = nu_e * (norm if c.pointwise else norm.mean((-2, -1), keepdim=True))
            row += 2
        elif c.pointwise:  # |S̄| = 2√(S̄11² + S̄12²) = √(r₀² + r₁²/4) of the rows −2 S̄12, −4 S̄11
            nu_e = nu_e * _norm(tau[:, 0], tau[:, 1], 0.25)
        if tracking:  # autograd: out of place
            flux = torch.stack([u * v, u * u - v * v], 1)
            buffer = head = None
        else:
            flux = self._grid_buffer("flux", 2, avoid=self._flux_prev)
            torch.mul(u, v, out=flux[:, 0])  # 1.5 (u⊗u)12
            torch.mul(u, u, out=flux[:, 1]).addcmul_(v, v, value=-1.0)  # 1.5 (u⊗u)11 − 22
            buffer = self._grid_buffer("total", 3 if lap else 2)
            head = buffer[:, :2]
        spectral_history = self._flux_prev is None and self._jac_prev is not None
        if self._flux_prev is not None:  # 1.5 Fⁿ − 0.5 Fⁿ⁻¹
            head = torch.add(flux, self._flux_prev, alpha=-1.0 / 3.0, out=head)
        elif spectral_history:  # 1.5 Fⁿ now, − 0.5 Ĵⁿ⁻¹ after the transform
            head = flux.clone() if tracking else head.copy_(flux)
        else:  # first step: forward Euler, Fⁿ
            head = torch.mul(flux, 2.0 / 3.0, out=head)
        if c.on_grid:  # + τ12, τ11 − τ22
            head.addcmul_(nu_e.unsqueeze(1), tau)
        if not lap:
            total = head if tracking else buffer
        elif tracking:  # + the hyperviscosity's departure row
            total = torch.cat([head, (c.hyper_departure * phys[:, row]).unsqueeze(1)], 1)
        else:
            total = buffer
            torch.mul(c.hyper_departure, phys[:, row], out=buffer[:, 2])
        hats = _to_spectral(total, self._c)
        curl_a, curl_b = self._step_curl
        w_new.addcmul_(hats[:, 0], curl_a).addcmul_(hats[:, 1], curl_b)
        if spectral_history:  # − dt(−0.5 Ĵⁿ⁻¹)/den
            w_new.addcmul_(self._jac_prev, self._neg_dt_inv_den, value=-0.5)
        self._flux_prev, self._jac_prev = flux, None
        return nu_e, (hats[:, 2] if lap else None)

    # ------------------------------------------------------------------ diagnostics
    def jacobian(self, form: str = "average") -> Tensor:
        """J(ψ, ω) [batch, n, n] of the current state on the retained modes, in the
        ``conservative`` ∇·(uω), ``advective`` u·∇ω or ``average`` form (diagnostic)."""
        phys = self._phys(self._to_phys)
        vel, grad_w, w = phys[:, 0:2], phys[:, 2:4], phys[:, 4:5]
        cons = _to_spectral(vel * w, self._c)
        cons = 1j * self._kx * cons[:, 0] + 1j * self._ky * cons[:, 1]
        adv = _to_spectral((vel * grad_w).sum(1), self._c)
        forms = {"conservative": cons, "advective": adv, "average": 0.5 * (cons + adv)}
        if form not in forms:
            raise ValueError(f"form must be one of {sorted(forms)}, got {form!r}")
        return _to_grid(forms[form] * self._mask, self.n)

    def velocity(self) -> Tuple[Tensor, Tensor]:
        """(u, v) = (∂ψ/∂y, −∂ψ/∂x), each [batch, n, n]."""
        uv = self._phys(self._to_phys[:2])
        return uv[:, 0], uv[:, 1]

    def strain_rate(self) -> Tuple[Tensor, Tensor]:
        """Resolved strain rate (S̄11, S̄12), each [batch, n, n]; S̄22 = −S̄11 (∇·u = 0)."""
        s = self._phys(self._to_strain)
        return s[:, 0], s[:, 1]

    def vorticity_gradient(self) -> Tuple[Tensor, Tensor]:
        """(∂ω/∂x, ∂ω/∂y), each [batch, n, n]."""
        g = self._phys(self._to_phys[2:4])
        return g[:, 0], g[:, 1]

    def _energy_of(self, w_hat: Tensor) -> Tensor:
        """½⟨u² + v²⟩ = Σ_k |ω̂|²/k² / (2 n⁴), the stored half plane counted twice (k_y > 0)."""
        weight = torch.full_like(self._ky, 2.0)
        weight[..., 0] = 1.0
        return (w_hat.abs() ** 2 * self._inv_k2 * weight).sum((-2, -1)) / (2.0 * self.n**4)

    def energy(self) -> Tensor:
        """Domain-mean kinetic energy ½⟨u² + v²⟩ [batch]."""
        u, v = self.velocity()
        return 0.5 * (u**2 + v**2).mean((-2, -1))

    def enstrophy(self) -> Tensor:
        """Domain-mean enstrophy ½⟨ω²⟩ [batch]."""
        return 0.5 * (self.omega**2).mean((-2, -1))

    def _directional_spectrum(self, density: Tensor) -> Tensor:
        """SMARL's ``spec_type='xy'`` 1D spectrum of a full-plane density P(k_x, k_y) given on
        the rfft half plane [..., n, n//2+1]: ½[mean_{k_x} P(·, k) + mean_{k_y} P(k, ·)] for
        k = 0..n/2−1."""
        n, h = self.n, self.n // 2
        mean_over_kx = density.mean(-2)[..., :h]  # function of k_y
        # Σ over all k_y of P(k_x, ·): P(k_x, −k_y) = P(−k_x, k_y) lives in row −k_x
        mirrored = torch.roll(torch.flip(density, [-2]), 1, -2)  # row k_x ← row −k_x
        pairs = (density[..., 1:h] + mirrored[..., 1:h]).sum(-1)
        full_ky = density[..., 0] + pairs + density[..., h]
        return 0.5 * (mean_over_kx + full_ky[..., :h] / n)

    def enstrophy_spectrum(self) -> Tensor:
        """Ẑ(k) [batch, n//2] = xy-average (``_directional_spectrum``) of |ω̂|²/2 / n³, as the
        reference's ``turb.enstrophy_spectrum`` (docs/methods.md#smarl-solver). A directional spectrum is
        even in k, so Ẑ(0) + 2 Σ_{k≥1} Ẑ(k) = ½⟨ω²⟩ = ``enstrophy()`` exactly (the Nyquist bin,
        the missing term, is always zero here). A mode (k_x, k_y) shows up at k = |k_y| and at
        k = |k_x|, half of its weight in each. On a small grid (the 64² LES) the spectrum, linear
        in the squared parts of ω̂, is one product of them with a fixed matrix
        (``_spectrum_matrix_of``): 3 torch calls instead of a dozen, a third of the time at
        batch 1, where the agents observe it at every decision; the same numbers as the direct
        sums (``_spectrum_sums``, kept for large grids) to round-off (tested)."""
        if self.n * self._c * self.n > _SPECTRUM_MATRIX_MAX_ENTRIES:
            return self._spectrum_sums(torch.view_as_real(self._w_hat).square().sum(-1))
        if self._spectrum_matrix is None:
            self._spectrum_matrix = self._spectrum_matrix_of()
        squares = torch.view_as_real(self._w_hat).square().reshape(self.batch, -1)
        return squares @ self._spectrum_matrix

    def _spectrum_matrix_of(self) -> Tensor:
        """[n·c·2, n/2] M with ``_spectrum_sums``(|ω̂|²) = (the squared real and imaginary
        parts of ω̂, flattened) @ M: the weight 1/4n⁴ of mode (k_x, k_y) in bin k_y (the sum
        over k_x), in bin k_x for 0 ≤ k_x < n/2 (the sum over k_y) and in bin −k_x mod n for
        k_y ≥ 1 (the mirrored half plane), accumulated; both parts of a mode alike."""
        n, c, h = self.n, self._c, self.n // 2
        kx = torch.arange(n, device=self.device)[:, None].expand(n, c).reshape(-1)
        ky = torch.arange(c, device=self.device)[None, :].expand(n, c).reshape(-1)
        mode = torch.arange(n * c, device=self.device)
        mirrored = (-kx) % n
        weights = torch.zeros(n * c, h, dtype=torch.float64, device=self.device)
        ones = torch.ones(n * c, dtype=torch.float64, device=self.device)
        for keep, bin_ in ((ky < h, ky), (kx < h, kx), ((mirrored < h) & (ky >= 1), mirrored)):
            weights.index_put_((mode[keep], bin_[keep]), ones[keep], accumulate=True)
        return (weights / (4.0 * n**4)).repeat_interleave(2, 0).to(self.dtype)

    def _spectrum_sums(self, power: Tensor) -> Tensor:
        """``enstrophy_spectrum`` of the power P = |ω̂|² [..., n, c] over the stored columns,
        summed directly (no padded copy, flip or roll): with P = |ω̂|²,
        Ẑ(k) = [Σ_{k_x} P(k_x, k) + Σ_{k_y} P(k, k_y) + Σ_{k_y ≥ 1} P(−k, k_y)] / 4n⁴."""
        h, c = self.n // 2, self._c
        by_column = power.sum(-2)[..., :h]  # Σ_{k_x} P(k_x, k_y), k_y < c ≤ h
        by_row = power.sum(-1)  # Σ_{k_y} P(k_x, k_y)
        mirror = self._mirror_rows[:h]  # (−k) mod n
        total = by_row[..., :h] + by_row[..., mirror] - power[..., mirror, 0]
        if c < h:
            by_column = torch.nn.functional.pad(by_column, (0, h - c))
        return (total + by_column) / (4.0 * self.n**4)

    def energy_spectrum(self) -> Tensor:
        """Ê(k) [batch, n//2] = xy-average of |ω̂|²/(n² k²) / n (k = 0 excluded), as the
        reference's ``turb.energy_spectrum``: it has no ½, so
        Ê(0) + 2 Σ_{k≥1} Ê(k) = ⟨u² + v²⟩ = 2 · ``energy()``."""
        kx, ky = wavenumbers(self.n, self.device, self.dtype)
        k2 = kx**2 + ky**2
        inv_k2 = torch.where(k2 > 0, 1.0 / k2.clamp_min(1.0), torch.zeros_like(k2))
        p = self.omega_hat.abs() ** 2 * inv_k2 / self.n**2
        return self._directional_spectrum(p) / self.n

    def is_finite(self) -> Tensor:
        """[batch] bool: every spectral coefficient finite."""
        return torch.isfinite(torch.view_as_real(self._w_hat)).flatten(1).all(1)

    def max_abs_omega(self) -> Tensor:
        """[batch] max |ω| over the grid."""
        return self.omega.abs().amax((-2, -1))

    def local_invariants(self, count: Optional[int] = None) -> Tensor:
        """[batch, 6, n, n] (or [count, 6, n, n]: the first ``count`` simulations) SMARL's local state (docs/methods.md#smarl-environment, ``statetype=invariantlocal…``):
        tr(S), tr(S²), tr(R²) of the velocity gradient A = [[u_x, u_y], [v_x, v_y]] = S + R,
        then the same three invariants (trace, trace of the square of the symmetric part, trace
        of the square of the antisymmetric part) of the second-derivative tensor
        H = [[u_xx, v_xx], [u_yy, v_yy]], as the reference's ``turb.invariant(gradgradV)``.
        Eight grid rows in one transform: the diagonals (u_x, v_y, u_xx, v_yy, each from its
        own operator, so that tr(S) = u_x + v_y is formed on the grid as before) and the
        off-diagonal parts ½(A12 ± A21) taken in Fourier space, which leaves 12 grid ops into
        one output instead of 24 and a stack (the same numbers to round-off, tested), issued
        as 6 calls over both tensors at once (the same elementwise operations, bit for bit)."""
        if self._invariant_ops is None:  # built once: the eight operators
            ikx, iky = 1j * self._kx, 1j * self._ky
            u_hat, v_hat = self._to_phys[0], self._to_phys[1]

            def parts(a11, a12, a21, a22):
                return [a11, a22, 0.5 * (a12 + a21), 0.5 * (a12 - a21)]

            grad = parts(ikx * u_hat, iky * u_hat, ikx * v_hat, iky * v_hat)
            hess = parts(ikx**2 * u_hat, ikx**2 * v_hat, iky**2 * u_hat, iky**2 * v_hat)
            self._invariant_ops = torch.stack(torch.broadcast_tensors(*grad, *hess))
        ops = self._invariant_ops
        w_hat = self._w_hat[:count].unsqueeze(1) * ops
        if torch.is_grad_enabled() and w_hat.requires_grad:  # differentiable, out of place
            rows = _to_grid(w_hat, self.n)
            return torch.cat([_invariants(rows[:, :4]), _invariants(rows[:, 4:])], 1)
        rows = self._step_grid(w_hat)  # the kept zero-padded half spectrum
        b, n = rows.shape[0], self.n
        out = rows.new_empty(b, 6, n, n)  # A's three invariants, then H's, in one set of calls
        _invariants(rows.view(b, 2, 4, n, n), out.view(b, 2, 3, n, n))
        return out
