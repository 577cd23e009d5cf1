"""``regrl turbulence ...``: SMARL turbulence tools (reference data, closure dataset and the
supervised-vs-RL closure comparison)."""
from __future__ import annotations

from trainers.checks import MAX_THREADS, ConfigError

DEFAULT_REFERENCE_OUT = "data/turbulence/reference_kf4.npz"
"""Where `regrl turbulence reference` writes by default: a user path, never the packaged file
(envs/turbulence/data/reference_kf4.npz is replaced only when --out names it)."""


def add_cli(sub) -> None:
    turb = sub.add_parser("turbulence", help="SMARL turbulence tools")
    tsub = turb.add_subparsers(dest="action", required=True)
    _add_reference(tsub)
    _add_dataset(tsub)
    _add_compare(tsub)


def _spec_flags(parser, spec_cls) -> None:
    from dataclasses import fields

    for f in fields(spec_cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default),
                            help=f"(default {f.default})")


def _add_reference(tsub) -> None:
    from envs.turbulence.reference import ReferenceSpec

    ref = tsub.add_parser("reference", help="run the resolved simulation, write the reference "
                          "spectra/PDF/initial conditions (checked, written atomically)")
    ref.add_argument("--out", default=DEFAULT_REFERENCE_OUT,
                     help="output .npz (default %(default)s; the packaged reference "
                          "envs/turbulence/data/reference_kf4.npz only when named here)")
    ref.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    ref.add_argument("--threads", type=int, default=1,
                     help="torch CPU threads (default 1: on a busy 2-core machine two threads "
                          "ran the 256² solver 10x slower)")
    _spec_flags(ref, ReferenceSpec)
    ref.set_defaults(handler=_reference)


def _add_dataset(tsub) -> None:
    from envs.turbulence.dataset import DatasetSpec

    ds = tsub.add_parser("dataset", help="run the DNS, filter it to the LES grid, write the "
                         "exact sub-grid term and least-squares local C_s² (training pairs)")
    ds.add_argument("--out", required=True, help="output .npz")
    ds.add_argument("--reference", help="reference file whose physics, LES grid and initial "
                    "conditions to use (default: the packaged one)")
    ds.add_argument("--dns-cache", help="keep/reuse the raw DNS snapshots in this .npz")
    ds.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    _spec_flags(ds, DatasetSpec)
    ds.set_defaults(handler=_dataset)


def _add_compare(tsub) -> None:
    from trainers.turbulence_closures import CompareOptions

    d = CompareOptions()
    cmp = tsub.add_parser("compare", help="train supervised closures on 1/10/100 snapshots "
                          "and compare them with Smagorinsky baselines and an RL run")
    cmp.add_argument("--dataset", required=True, help="file of `regrl turbulence dataset`")
    cmp.add_argument("--out", required=True, help="output directory (table, json, figures)")
    cmp.add_argument("--reference", help="the reference the dataset was made with")
    cmp.add_argument("--snapshots", default=",".join(map(str, d.snapshots)),
                     help="comma-separated training-set sizes (default %(default)s)")
    cmp.add_argument("--rl-run", help="RL run directory (smarl_turb2d) for the RL row")
    for name in ("seeds", "time_units", "spinup", "local_steps", "cnn_steps", "cnn_arch"):
        default = getattr(d, name)
        cmp.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                         help="(default %(default)s)")
    cmp.add_argument("--local-set", action="append", metavar="KEY=VALUE",
                     help="override configs/closure_local.yaml (repeatable)")
    cmp.add_argument("--cnn-set", action="append", metavar="KEY=VALUE",
                     help="override configs/closure_cnn.yaml (repeatable)")
    cmp.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    cmp.set_defaults(handler=_compare)


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
        raise ConfigError(f"--device {name[:60]!r} is not a torch device (cpu, cuda, cuda:1, "
                          "mps)") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s)")
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available.get(dev.type, False):
        raise ConfigError(f"--device {name}: not available on this machine "
                          f"(available: {', '.join(k for k, v in available.items() if v)})")


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

    from envs.turbulence.reference import ReferenceSpec, check_spec

    spec = ReferenceSpec(**{f.name: getattr(args, f.name) for f in fields(ReferenceSpec)
                            if getattr(args, f.name, None) is not None})
    try:
        check_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"turbulence reference: {exc}") from None
    if not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in 1..{MAX_THREADS}, got {args.threads}")
    _check_out(args.out, ".npz")
    check_device(args.device)


def _reference(args) -> int:
    from trainers.turbulence import reference_command

    _check_reference_args(args)
    return _run(reference_command, args)


def _dataset(args) -> int:
    from trainers.turbulence_closures import dataset_command

    return _run(dataset_command, args)


def _compare(args) -> int:
    from trainers.turbulence_closures import compare_command

    return _run(compare_command, args)
