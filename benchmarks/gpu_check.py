"""GPU check without Ray or network: objective terms, the SMARL solver and closures, and (with
the ``lm`` extra) one RLVR learner update, each on ``--device`` against the CPU, with timings.

Needs torch only, plus numpy, gymnasium and pettingzoo for the turbulence package (a machine
without them gets them from the folder that ``bash benchmarks/gpu_check.sh --vendor DIR``
fills from this checkout's venv: pure-Python packages). Run by ``benchmarks/gpu_check.sh``;
``--device cpu`` runs every step against the CPU itself (a dry run of the commands on a
machine without a GPU: it checks the script, not CUDA). ``--out FILE`` writes the table as
Markdown (docs/gpu_check_<card>.md).

Tolerances: float64 steps agree to 1e-10 relative (cuFFT and the CPU FFT round differently);
float32 term losses and gradients to 1e-4 relative (summation order on the GPU differs).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

from regrl.agents.objectives.terms import TERMS, TermContext, total_loss

TERM_RTOL, SOLVER_RTOL = 1e-4, 1e-10
Row = Tuple[str, str, float, float]  # step, result, max relative difference, seconds on device


def _timed(fn: Callable, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# ------------------------------------------------------------------------------ terms
def _context(device: str, b: int = 64, t: int = 8, a: int = 5, seed: int = 0):
    """A categorical context with every optional field filled; logits are the leaf."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, a, generator=g).to(device).requires_grad_(True)
    old = torch.randn(b, t, a, generator=g).to(device)
    actions = torch.randint(0, a, (b, t), generator=g).to(device)
    mask = (torch.rand(b, t, generator=g) > 0.2).to(device)
    logp_all, old_all = torch.log_softmax(logits, -1), torch.log_softmax(old, -1)
    pick = lambda x: x.gather(-1, actions[..., None]).squeeze(-1)  # noqa: E731
    ctx = TermContext(
        logp=pick(logp_all),
        old_logp=pick(old_all),
        advantages=torch.randn(b, generator=g).to(device),
        mask=mask,
        entropy=-(logp_all.exp() * logp_all).sum(-1),
        dist_inputs=logits,
        actions=actions,
        old_dist_inputs=old,
        proxy_logp=pick(old_all) - 0.1,
        values=torch.randn(b, t, generator=g).to(device) + 0 * logits[..., 0],
        value_targets=torch.randn(b, t, generator=g).to(device),
        reference={None: old, "demo": torch.randn(b, t, a, generator=g).to(device)},
        candidate_advantages=torch.randn(b, t, a, generator=g).to(device),
        candidate_valid=torch.ones(b, t, a, dtype=torch.bool).to(device),
    )
    return ctx, logits


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str
    params: object


def _term_specs() -> List[_Spec]:
    specs = []
    for entry in TERMS:
        info = TERMS.get(entry.name)
        fields = {f.name for f in dataclasses.fields(info.params_cls)}
        kwargs = {"checkpoint": "demo"} if "checkpoint" in fields else {}
        specs.append(_Spec(entry.name, info.params_cls(**kwargs)))
    return specs


def check_terms(device: str) -> List[Row]:
    rows = []
    for spec in _term_specs():

        def run(dev, spec=spec):
            ctx, logits = _context(dev)
            loss, _ = total_loss(ctx, [spec])
            (grad,) = torch.autograd.grad(loss, logits, allow_unused=True)
            return loss, torch.zeros_like(logits) if grad is None else grad

        (loss_c, grad_c), _ = _timed(lambda: run("cpu"), "cpu")
        (loss_d, grad_d), secs = _timed(lambda: run(device), device)
        rel = max(_rel(loss_d, loss_c), _rel(grad_d, grad_c))
        rows.append((f"term {spec.name}", "ok" if rel < TERM_RTOL else "DIFFERS", rel, secs))
    return rows


# ------------------------------------------------------------------------------ solver
def check_solver(device: str, n: int = 256, steps: int = 20) -> List[Row]:
    from regrl.envs.turbulence import closures
    from regrl.envs.turbulence.solver import Turbulence2D

    def sim_on(dev):
        sim = Turbulence2D(n, nu=5e-5, alpha=0.1, dt=5e-4, kf=4, batch=2, device=dev, seed=0)
        sim.omega = 0.1 * torch.randn(2, n, n, generator=torch.Generator().manual_seed(0)).to(
            dev, torch.float64
        )
        return sim

    rows = []
    cases = {
        "no closure": lambda s: None,
        "smagorinsky": lambda s: closures.smagorinsky_viscosity(s, 0.03),
        "leith": lambda s: closures.leith_viscosity(s, 0.1),
        "dynamic smagorinsky": lambda s: closures.smagorinsky_viscosity(
            s, closures.dynamic_smagorinsky_cs2(s)
        ),
    }
    for name, closure in cases.items():

        def run(dev, closure=closure):
            sim = sim_on(dev)
            for _ in range(steps):
                sim.step(eddy_viscosity=closure(sim))
            return sim.omega

        cpu, _ = _timed(lambda: run("cpu"), "cpu")
        run(device)  # warm-up: FFT plans
        dev, secs = _timed(lambda: run(device), device)
        rel = _rel(dev, cpu)
        rows.append(
            (f"LES {n}^2 x{steps}, {name}", "ok" if rel < SOLVER_RTOL else "DIFFERS", rel, secs)
        )
    return rows


# ------------------------------------------------------------------------------ RLVR
def check_rlvr(device: str) -> List[Row]:
    """One learner update of the tiny LM on the same synthetic batch: the parameter change on
    the device against the CPU's."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return [("rlvr tiny learner update", "SKIPPED (no transformers: the lm extra)", 0.0, 0.0)]
    from regrl.trainers.rlvr import config as rc
    from regrl.trainers.rlvr.learner import Learner

    def update(dev):
        gpus = 0 if dev == "cpu" else 1
        cfg = rc.config_from_dict(
            {
                "kind": "rlvr",
                "model": {"path": "tiny", "tiny_width": 32},
                "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
                "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
                "training": {"steps": 1, "micro_batch_size": 4},
                "resources": {"mode": "local", "num_gpus_per_learner": gpus},
            },
            "gpu_check",
        )
        torch.manual_seed(0)
        learner = Learner(cfg)
        flat = lambda: torch.cat([p.detach().flatten().cpu() for p in learner.model.parameters()])  # noqa: E731
        before = flat()
        learner.update(_lm_batch(learner))
        return flat() - before  # the update itself (parameters are ~1e5 times larger)

    cpu, _ = _timed(lambda: update("cpu"), "cpu")
    dev, secs = _timed(lambda: update(device), device)
    rel = _rel(dev, cpu)
    return [("rlvr tiny learner update", "ok" if rel < TERM_RTOL else "DIFFERS", rel, secs)]


def _lm_batch(learner, n: int = 4, prompt: int = 6, t: int = 4) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    vocab = learner.model.config.vocab_size
    return {
        "prompt_ids": torch.randint(3, vocab, (n, prompt), generator=g),
        "prompt_mask": torch.ones(n, prompt, dtype=torch.long),
        "tokens": torch.randint(3, vocab, (n, t), generator=g),
        "mask": torch.ones(n, t),
        "logp": -torch.rand(n, t, generator=g) - 0.5,
        "advantages": torch.randn(n, generator=g),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--out", help="write the table as Markdown to this file")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible to torch; use --device cpu for a dry run")
        return 2
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (dry run)"
    head = f"torch {torch.__version__}, device {args.device}: {card}"
    rows: List[Row] = []
    for check in (check_terms, check_solver, check_rlvr):
        try:
            rows += check(args.device)
        except Exception as exc:  # one failing part must not hide the others
            rows.append((check.__name__, f"FAILED: {type(exc).__name__}: {exc}"[:200], 0.0, 0.0))
    lines = [
        head,
        "",
        "| step | result | max rel. diff vs CPU | s on device |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s} | {r} | {d:.1e} | {t:.3f} |" for s, r, d, t in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(f"# GPU check\n\n{text}\n")
    return 0 if all(r == "ok" or r.startswith("SKIPPED") for _, r, _, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
