"""Turbulence2D steps/s on CUDA vs this machine's CPU (1 thread), same grid and batch, one run.

Run on a GPU machine: .venv/bin/python benchmarks/gpu_solver.py --n 1024
Without CUDA it measures the CPU only and says so.
"""

from __future__ import annotations

import argparse
import time

import torch

from regrl.envs.turbulence.solver import Turbulence2D


def steps_per_s(n: int, device: str, steps: int, dtype=torch.float64) -> float:
    sim = Turbulence2D(n, nu=5e-5, alpha=0.1, dt=5e-5, kf=4, batch=1, device=device, dtype=dtype)
    sim.omega = 0.1 * torch.randn(1, n, n, dtype=dtype, device=device)
    sim.step()  # warm-up: cuFFT plans / allocations
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        sim.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--cpu-steps", type=int, default=5)
    p.add_argument("--gpu-steps", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(1)
    cpu = steps_per_s(args.n, "cpu", args.cpu_steps)
    print(f"solver {args.n}^2 float64: cpu (1 thread) {cpu:.2f} steps/s")
    if not torch.cuda.is_available():
        print("no CUDA device: GPU timing skipped")
        return
    gpu = steps_per_s(args.n, "cuda", args.gpu_steps)
    print(
        f"solver {args.n}^2 float64: cuda ({torch.cuda.get_device_name()}) {gpu:.1f} steps/s"
        f"  ratio cuda/cpu x{gpu / cpu:.1f}"
    )


if __name__ == "__main__":
    main()
