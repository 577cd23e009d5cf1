"""``regrl turbulence ...``: SMARL turbulence tools (reference data, closure dataset and the
supervised-vs-RL closure comparison)."""

from __future__ import annotations

from pathlib import Path

from regrl.trainers.checks import MAX_THREADS, ConfigError
from regrl.trainers.config_overrides import add_set_flag

DEFAULT_REFERENCE_OUT = "data/turbulence/reference_kf4.npz"
"""Where `regrl turbulence reference` writes by default: a user path, never the packaged file
(envs/turbulence/data/reference_kf4.npz is replaced only when --out names it)."""
MAX_TIME_UNITS = 10_000.0
"""Longest LES run of `regrl turbulence compare` (spin-up + statistics: 2·10⁷ steps at the
LES dt of 5e-4)."""
MAX_OPT_STEPS = 10**7
"""Most optimizer steps of one supervised closure model."""
MAX_SEEDS = 1_000


def add_cli(sub) -> None:
    # the flags come from dataclasses of torch modules: built only when `regrl turbulence ...`
    # is run, so `regrl --help` imports no torch (regrl.trainers.lazy_parser)
    sub.add_parser("turbulence", help="SMARL turbulence tools", populate=_populate)


def _populate(turb) -> None:
    tsub = turb.add_subparsers(dest="action", required=True)
    _add_reference(tsub)
    _add_dataset(tsub)
    _add_compare(tsub)
    _add_pretrain(tsub)
    _add_fit(tsub)


def _spec_flags(parser, spec_cls) -> None:
    from dataclasses import fields

    for f in fields(spec_cls):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(f.default),
            help=f"(default {f.default})",
        )


def _add_reference(tsub) -> None:
    from regrl.envs.turbulence.reference import ReferenceSpec

    ref = tsub.add_parser(
        "reference",
        help="run the resolved simulation, write the reference "
        "spectra/PDF/initial conditions (checked, written atomically)",
    )
    ref.add_argument(
        "--out",
        default=DEFAULT_REFERENCE_OUT,
        help="output .npz (default %(default)s; the packaged reference "
        "envs/turbulence/data/reference_kf4.npz only when named here)",
    )
    ref.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    ref.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a busy 2-core machine two threads "
        "ran the 256² solver 10x slower)",
    )
    _spec_flags(ref, ReferenceSpec)
    ref.set_defaults(handler=_reference)


def _add_dataset(tsub) -> None:
    from regrl.envs.turbulence.dataset import DatasetSpec

    ds = tsub.add_parser(
        "dataset",
        help="run the DNS, filter it to the LES grid, write the "
        "exact sub-grid term and least-squares local C_s² (training pairs)",
    )
    ds.add_argument("--out", required=True, help="output .npz")
    ds.add_argument(
        "--reference",
        help="reference file whose physics, LES grid and initial "
        "conditions to use (default: the packaged one)",
    )
    ds.add_argument("--dns-cache", help="keep/reuse the raw DNS snapshots in this .npz")
    ds.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    _spec_flags(ds, DatasetSpec)
    ds.set_defaults(handler=_dataset)


def _add_compare(tsub) -> None:
    from regrl.trainers.turbulence.closures import CompareOptions

    d = CompareOptions()
    cmp = tsub.add_parser(
        "compare",
        help="train supervised closures on 1/10/100 snapshots "
        "and compare them with Smagorinsky baselines and an RL run",
    )
    cmp.add_argument("--dataset", required=True, help="file of `regrl turbulence dataset`")
    cmp.add_argument("--out", required=True, help="output directory (table, json, figures)")
    cmp.add_argument("--reference", help="the reference the dataset was made with")
    cmp.add_argument(
        "--snapshots",
        default=",".join(map(str, d.snapshots)),
        help="comma-separated training-set sizes (default %(default)s)",
    )
    cmp.add_argument("--rl-run", help="RL run directory (smarl_turb2d) for the RL row")
    for name in ("seeds", "time_units", "spinup", "local_steps", "cnn_steps", "cnn_arch"):
        default = getattr(d, name)
        cmp.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            help="(default %(default)s)",
        )
    cmp.add_argument(
        "--local-set",
        action="append",
        metavar="KEY=VALUE",
        help="override configs/closure_local.yaml (repeatable)",
    )
    cmp.add_argument(
        "--cnn-set",
        action="append",
        metavar="KEY=VALUE",
        help="override configs/closure_cnn.yaml (repeatable)",
    )
    cmp.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    cmp.set_defaults(handler=_compare)


def _add_fit(tsub) -> None:
    from regrl.trainers.turbulence.solver_loop import FitSpec

    fit = tsub.add_parser(
        "fit",
        help="solver-in-the-loop: fit a closure family's constants by gradients through "
        "unrolled LES steps, then evaluate them against the family's constants",
    )
    fit.add_argument("--out", required=True, help="output directory (fit.json, fit.md)")
    fit.add_argument("--reference", help="reference file (default: the packaged one)")
    fit.add_argument(
        "--policy-config",
        help="an RL config (e.g. configs/smarl_hyper.yaml): train its policy network through "
        "the solver instead of constants, written as OUT/policy.pt",
    )
    _spec_flags(fit, FitSpec)
    fit.add_argument(
        "--eval-sims", type=int, default=16, help="LES of the evaluation, 0: none (default 16)"
    )
    fit.add_argument("--eval-time", type=float, default=20.0, help="(default %(default)s)")
    fit.add_argument("--eval-spinup", type=float, default=2.0, help="(default %(default)s)")
    fit.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    fit.set_defaults(handler=_fit)


def _add_pretrain(tsub) -> None:
    p = tsub.add_parser(
        "pretrain-policy",
        help="fit the SMARL policy's mean to the dataset's least-squares local C_s² "
        "(supervised closure, pi_BC of demo_kl) and write it as a policy file",
    )
    p.add_argument("--dataset", required=True, help="file of `regrl turbulence dataset`")
    p.add_argument("--config", required=True, help="SMARL RL config (env, model) of the policy")
    p.add_argument("--out", required=True, help="policy file FILE.pt (FILE.json is written too)")
    p.add_argument(
        "--local-config",
        default="configs/closure_local.yaml",
        help="offline config whose training section (epochs, lr, ...) is used "
        "(default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    add_set_flag(p)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(handler=_pretrain)


def _pretrain(args) -> int:
    _check_threads(args.threads)
    import shlex
    import sys

    import torch

    from regrl.trainers.turbulence.pretrain import pretrain_policy

    torch.set_num_threads(args.threads)
    command = "regrl " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def run(a) -> int:
        prov = pretrain_policy(
            Path(a.dataset), Path(a.config), Path(a.out), local_config=Path(a.local_config),
            seed=a.seed, overrides=a.overrides, command=command,
        )  # fmt: skip
        m = prov["metrics"]
        print(f"wrote {a.out}: train loss {m['train_loss']:.4f}; " + ", ".join(
            f"{k} {v}" for k, v in m.get("heldout", m["train"]).items()))  # fmt: skip
        return 0

    return _run(run, args)


def _run(fn, args) -> int:
    try:
        return fn(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:  # FPE: DNS diverged
        raise ConfigError(str(exc)) from None


def check_device(name: str) -> None:
    """Refuse a torch device this machine does not have (before any simulation starts)."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"--device {name[:60]!r} is not a torch device (cpu, cuda, cuda:1, mps)"
        ) from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(dev.type, False):
        raise ConfigError(
            f"--device {name}: not available on this machine "
            f"(available: {', '.join(k for k, v in available.items() if v)})"
        )


def _check_out(out: str, suffix: str) -> None:
    from pathlib import Path

    path = Path(out)
    if path.suffix != suffix:
        raise ConfigError(f"--out must end in {suffix}, got {out}")
    if path.is_dir():
        raise ConfigError(f"--out {out} is a directory")
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise ConfigError(f"--out {out}: a parent of it is a file, not a directory")


def _check_reference_args(args) -> None:
    """Every argument of `regrl turbulence reference`, checked before the DNS starts."""
    from dataclasses import fields

    from regrl.envs.turbulence.reference import ReferenceSpec, check_spec

    spec = ReferenceSpec(
        **{
            f.name: getattr(args, f.name)
            for f in fields(ReferenceSpec)
            if getattr(args, f.name, None) is not None
        }
    )
    try:
        check_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"turbulence reference: {exc}") from None
    _check_threads(args.threads)
    _check_out(args.out, ".npz")
    check_device(args.device)


def _check_threads(threads: int) -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in 1..{MAX_THREADS}, got {threads}")


def _check_dataset_args(args) -> None:
    """`regrl turbulence dataset`: the spec's own checks plus finite times, the CFL-style dt
    bound and bounds on the run length (regrl.envs.turbulence.reference), before the DNS starts."""
    import math
    from dataclasses import fields

    from regrl.envs.turbulence.dataset import DatasetSpec
    from regrl.envs.turbulence.reference import (
        MAX_GRID,
        MAX_SAMPLES,
        MAX_STEPS,
        VELOCITY_SCALE,
        cfl_dt_bound,
    )

    try:
        spec = DatasetSpec(
            **{
                f.name: getattr(args, f.name)
                for f in fields(DatasetSpec)
                if getattr(args, f.name, None) is not None
            }
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"turbulence dataset: {exc}") from None
    if not all(math.isfinite(t) for t in (spec.dt, spec.spinup_time, spec.sample_every)):
        raise ConfigError(
            "turbulence dataset: --dt, --spinup-time and --sample-every must be finite"
        )
    bound = cfl_dt_bound(spec.n_dns)
    samples = spec.snapshots + spec.heldout_snapshots
    runs = spec.train_trajectories + spec.heldout_trajectories
    steps = (runs * spec.spinup_time + samples * spec.sample_every) / spec.dt
    for ok, msg in (
        (spec.n_dns <= MAX_GRID, f"--n-dns must be <= {MAX_GRID}"),
        (
            spec.dt <= bound,
            f"--dt must be <= {bound:.3g} (CFL bound dx/|u| at |u| = {VELOCITY_SCALE:g})",
        ),
        (samples <= MAX_SAMPLES, f"at most {MAX_SAMPLES} snapshots in all"),
        (steps <= MAX_STEPS, f"the DNS would run {steps:.3g} > {MAX_STEPS:.0e} steps"),
    ):
        if not ok:
            raise ConfigError(f"turbulence dataset: {msg}")
    _check_threads(args.threads)
    _check_out(args.out, ".npz")
    if args.dns_cache and not args.dns_cache.endswith(".npz"):  # numpy would append .npz
        raise ConfigError(f"--dns-cache must end in .npz, got {args.dns_cache}")


def _check_compare_args(args) -> None:
    """`regrl turbulence compare`: sizes, run lengths and paths, before any LES runs."""
    import math
    from pathlib import Path

    from regrl.envs.turbulence.reference import MAX_SAMPLES

    try:
        sizes = [int(s) for s in args.snapshots.split(",")]
    except ValueError:
        sizes = []
    if not sizes or not all(1 <= s <= MAX_SAMPLES for s in sizes):
        raise ConfigError(
            f"--snapshots must be comma-separated integers in 1..{MAX_SAMPLES}, "
            f"got {args.snapshots[:60]!r}"
        )
    times = (args.time_units, args.spinup)
    if (
        not all(math.isfinite(t) and t >= 0 for t in times)
        or args.time_units <= 0
        or sum(times) > MAX_TIME_UNITS
    ):
        raise ConfigError(
            f"--time-units must be > 0 and --spinup >= 0, finite, together <= "
            f"{MAX_TIME_UNITS:g}; got {args.time_units}, {args.spinup}"
        )
    for name, hi in (
        ("seeds", MAX_SEEDS),
        ("local_steps", MAX_OPT_STEPS),
        ("cnn_steps", MAX_OPT_STEPS),
    ):
        if not 1 <= getattr(args, name) <= hi:
            raise ConfigError(
                f"--{name.replace('_', '-')} must be in 1..{hi}, got {getattr(args, name)}"
            )
    _check_threads(args.threads)
    if args.rl_run and not Path(args.rl_run).is_dir():
        raise ConfigError(f"--rl-run {args.rl_run}: no such run directory")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a directory")


def _reference(args) -> int:
    _check_reference_args(args)  # before the slow import
    from regrl.trainers.turbulence.smarl import reference_command

    return _run(reference_command, args)


def _dataset(args) -> int:
    _check_dataset_args(args)  # before the slow import
    from regrl.trainers.turbulence.closures import dataset_command

    return _run(dataset_command, args)


def _fit(args) -> int:
    import math

    _check_threads(args.threads)
    times = (args.eval_time, args.eval_spinup)
    if not 0 <= args.eval_sims <= MAX_SEEDS:
        raise ConfigError(f"--eval-sims must be in 0..{MAX_SEEDS}, got {args.eval_sims}")
    if not all(math.isfinite(t) and t >= 0 for t in times) or sum(times) > MAX_TIME_UNITS:
        raise ConfigError(
            f"--eval-time and --eval-spinup must be finite, >= 0, together <= "
            f"{MAX_TIME_UNITS:g}; got {args.eval_time}, {args.eval_spinup}"
        )
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a directory")
    if args.policy_config and not Path(args.policy_config).is_file():
        raise ConfigError(f"--policy-config {args.policy_config}: no such file")
    from regrl.trainers.turbulence.solver_loop import fit_command

    return _run(fit_command, args)


def _compare(args) -> int:
    _check_compare_args(args)  # before the slow import
    from regrl.trainers.turbulence.closures import compare_command

    return _run(compare_command, args)
