"""Turbulence2D (torch) vs a plain NumPy implementation of the same scheme, measured in the
same run; prints solver steps per second and speed ratios.

Scheme (SMARL, Mojgani et al. 2023, arXiv 2312.00907, docs/methods.md#smarl-solver): AB2 Jacobian (mean of
conservative and advective forms), Crank–Nicolson ν, implicit drag, 2/3-rule dealiasing,
rfft2 pseudo-spectral products. The NumPy baseline uses ``numpy.fft`` (pocketfft) and advances
a batch by looping over its simulations, as a single-simulation NumPy code would be used.
Run: .venv/bin/python benchmarks/turbulence_solver.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

# On a shared machine, spinning OpenMP threads of an oversubscribed core stall each other
# (measured here: 2 active-waiting threads up to 40x slower than 1 under load); passive
# waiting removes that cliff. Set before torch loads its OpenMP runtime; printed below.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from regrl.envs.turbulence.solver import Turbulence2D  # noqa: E402

NU, ALPHA, DT, KF = 5e-5, 0.1, 5e-4, 4


def np_to_grid(x_hat: np.ndarray, n: int) -> np.ndarray:
    return np.fft.irfft(np.fft.ifft(x_hat, axis=-2), n=n, axis=-1)


def np_to_spectral(x: np.ndarray, c: int) -> np.ndarray:
    return np.fft.fft(np.fft.rfft(x, axis=-1)[..., :c], axis=-2)


class NumpyTurb:
    """Single-simulation NumPy version of ``Turbulence2D.step`` (dealiased, no SGS term,
    β = 0), the same algorithm: only the k_y < n/3 columns stored, 2D transforms as two 1D
    passes, J = ∇×∇·(u⊗u) from u, v (2 inverse + 2 forward transforms per step; equal to the
    average of the conservative and advective forms once dealiased)."""

    def __init__(self, n: int, omega: np.ndarray, dtype=np.float64):
        cdtype = np.complex64 if dtype == np.float32 else np.complex128
        self.n, self.c = n, int(np.sum(np.arange(n // 2 + 1) < n / 3))
        kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
        ky = np.arange(self.c, dtype=float)[None, :]
        k2 = kx**2 + ky**2
        inv_k2 = np.where(k2 > 0, 1.0 / np.maximum(k2, 1.0), 0.0)
        mask = (np.abs(kx) < n / 3) & (ky < n / 3) & (k2 > 0)
        inv_den = mask / (1.0 + DT * ALPHA + 0.5 * DT * NU * k2)
        self.lin = ((1.0 - 0.5 * DT * NU * k2) * inv_den).astype(dtype)
        self.dt_inv_den = (DT * inv_den).astype(dtype)
        x = np.arange(n) * 2 * np.pi / n
        force = KF * (np.cos(KF * x)[None, :] + np.cos(KF * x)[:, None])
        self.force = (DT * inv_den * np_to_spectral(force, self.c)).astype(cdtype)
        self.to_phys = np.stack(np.broadcast_arrays(1j * ky * inv_k2, -1j * kx * inv_k2)).astype(
            cdtype
        )
        self.curl_a, self.curl_b = (ky**2 - kx**2).astype(dtype), (kx * ky).astype(dtype)
        self.w_hat = np_to_spectral(omega.astype(dtype), self.c) * mask.astype(dtype)
        self.jac_prev = None

    def step(self) -> None:
        u, v = np_to_grid(self.w_hat[None] * self.to_phys, self.n)
        flux = np_to_spectral(np.stack([u * v, u * u - v * v]), self.c)
        jac = self.curl_a * flux[0] + self.curl_b * flux[1]
        prev = jac if self.jac_prev is None else self.jac_prev
        self.w_hat = self.w_hat * self.lin + (0.5 * prev - 1.5 * jac) * self.dt_inv_den - self.force
        self.jac_prev = jac

    @property
    def omega(self) -> np.ndarray:
        return np_to_grid(self.w_hat, self.n)


def best_rates(fns, steps, rounds: int = 9) -> list:
    """Steps per second of each ``fn(k)``: best of ``rounds`` rounds, the candidates measured
    alternately within each round so that both see the same machine load."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, (fn, k) in enumerate(zip(fns, steps)):
            start = time.perf_counter()
            fn(k)
            best[i] = min(best[i], (time.perf_counter() - start) / k)
    return [1.0 / t for t in best]


def check_agree(n: int, dtype=torch.float64) -> float:
    sim = Turbulence2D(n, nu=NU, alpha=ALPHA, dt=DT, kf=KF, seed=0, dtype=dtype)
    ref = NumpyTurb(n, sim.omega[0].double().numpy())
    sim.step(50)
    for _ in range(50):
        ref.step()
    err = np.abs(sim.omega[0].double().numpy() - ref.omega).max() / np.abs(ref.omega).max()
    assert err < (1e-4 if dtype == torch.float32 else 1e-10), f"torch and numpy disagree: {err}"
    return float(err)


def bench_case(n: int, batch: int, steps: int, dtype=torch.float64) -> tuple:
    sim = Turbulence2D(n, nu=NU, alpha=ALPHA, dt=DT, kf=KF, batch=batch, seed=0, dtype=dtype)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    refs = [NumpyTurb(n, w.double().numpy(), np_dtype) for w in sim.omega]

    def numpy_steps(k):
        for _ in range(k):
            for ref in refs:  # the baseline advances a batch one simulation at a time
                ref.step()

    sim.step(5)
    numpy_steps(5)  # warm-up
    return best_rates([sim.step, numpy_steps], [steps, max(2, steps // (2 * batch))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    parser.add_argument("--threads", default="2,1", help="torch thread counts to measure")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(threads[0])
    print(
        f"torch {torch.__version__} (threads {torch.get_num_threads()}, OMP_WAIT_POLICY="
        f"{os.environ['OMP_WAIT_POLICY']})  numpy {np.__version__} (numpy.fft single-threaded)"
        f"  cpus {os.cpu_count()}  load avg {os.getloadavg()[0]:.2f}"
    )
    for n in (64, 256):
        print(
            f"agreement after 50 steps at {n}²: max rel diff float64 {check_agree(n):.1e}, "
            f"float32 {check_agree(n, torch.float32):.1e}"
        )
    scale = 0.2 if args.quick else 1.0
    cases = [(64, 1, 400), (64, 16, 60), (256, 1, 40)]
    print(
        f"{'grid':>6} {'batch':>5} {'dtype':>7} {'thr':>3} | {'torch steps/s':>13} "
        f"{'numpy steps/s':>13} | {'sim-steps/s torch':>17} | {'ratio':>6}"
    )
    for dtype in (torch.float64, torch.float32):
        for nthreads in threads:
            torch.set_num_threads(nthreads)
            for n, batch, steps in cases:
                t_rate, np_rate = bench_case(n, batch, max(4, int(steps * scale)), dtype)
                name = str(dtype).split(".")[-1]
                print(
                    f"{n:>4}² {batch:>5} {name:>7} {nthreads:>3} | {t_rate:13.1f} "
                    f"{np_rate:13.1f} | {t_rate * batch:17.1f} | x{t_rate / np_rate:5.2f}"
                )
    print(
        f"steps/s: steps of the whole batch per second (best of 9 interleaved rounds); the "
        f"numpy baseline runs in the row's dtype and loops over the batch. Targets: x2 at "
        f"256², x5 at 16 × 64². load avg {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
