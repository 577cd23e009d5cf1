"""``regrl turbulence ...``: SMARL turbulence tools (reference data)."""
from __future__ import annotations

from trainers.config import ConfigError


def add_cli(sub) -> None:
    from dataclasses import fields

    from envs.turbulence.reference import ReferenceSpec

    turb = sub.add_parser("turbulence", help="SMARL turbulence tools")
    tsub = turb.add_subparsers(dest="action", required=True)
    ref = tsub.add_parser("reference", help="run the resolved simulation, write the reference "
                          "spectra/PDF/initial conditions (default: the packaged file)")
    ref.add_argument("--out", help="output .npz (default: envs/turbulence/data/reference_kf4.npz)")
    ref.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    ref.add_argument("--threads", type=int, default=1,
                     help="torch CPU threads (default 1: on a busy 2-core machine two threads "
                          "ran the 256² solver 10x slower)")
    for f in fields(ReferenceSpec):
        ref.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default),
                         help=f"(default {f.default})")
    ref.set_defaults(handler=_reference)


def _reference(args) -> int:
    from trainers.turbulence import reference_command

    try:
        return reference_command(args)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
