"""A fixed string-hash seed for every ``regrl`` process that trains or evaluates.

Python salts ``hash(str)`` per process (``PYTHONHASHSEED`` unset = random), so the iteration
order of a ``set`` of strings changes from run to run. RLlib's multi-agent episodes keep their
agent ids (strings such as ``"cbv_0"``) in such sets, which orders the rows of a learner's
train batch; its mini-batch shuffle then draws a different permutation of differently ordered
rows, and two runs with one seed diverge from the first update. Measured on the RIFT dense
family (docs/rift.md, "Longer fine-tunes"): the first iteration's samples are bit-identical,
the first update's KL to the IL scorer was 0.009 and 0.012 in two runs with the hash seed
unset, and bit-identical in two runs with ``PYTHONHASHSEED=0``. Single-agent runs (CartPole)
were already reproducible.

The seed can only be set before the interpreter starts, so the console script re-executes
itself once with ``PYTHONHASHSEED=0`` when the variable is unset; Ray workers started by the
local cluster inherit it. A value the user set is kept. Commands that never train (help,
``list``, ``validate``) are not re-executed, which keeps their start-up as measured in
``benchmarks/startup.py``.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Mapping, MutableMapping, Optional, Sequence

VARIABLE = "PYTHONHASHSEED"
VALUE = "0"  # any fixed value works; 0 also turns the salting off, as for a Python < 3.3
# first arguments after which nothing trains or samples: no reason to pay a second start-up
NO_RUN = frozenset({"-h", "--help", "--version", "list", "validate"})
HELP = frozenset({"-h", "--help"})  # anywhere: ``regrl train --help`` prints and exits


def needs_fixed_seed(args: Sequence[str], environ: Mapping[str, str]) -> bool:
    """True when ``regrl ARGS`` may train or evaluate and the hash seed is not set."""
    if VARIABLE in environ or not args:
        return False
    return args[0] not in NO_RUN and HELP.isdisjoint(args)


def ensure_fixed_hash_seed(
    args: Optional[Sequence[str]] = None,
    environ: Optional[MutableMapping[str, str]] = None,
    execve: Callable[..., None] = os.execve,
) -> None:
    """Re-execute this interpreter with ``PYTHONHASHSEED=0`` if :func:`needs_fixed_seed`
    (``args`` default ``sys.argv[1:]``, ``environ`` default ``os.environ``); otherwise return.
    The new process gets the same command line (``sys.orig_argv``) and environment plus the
    seed; ``execve`` keeps the process id, so signals and exit codes reach the caller as
    before."""
    args = sys.argv[1:] if args is None else list(args)
    environ = os.environ if environ is None else environ
    if not needs_fixed_seed(args, environ):
        return
    env = dict(environ, **{VARIABLE: VALUE})
    sys.stdout.flush()
    sys.stderr.flush()
    execve(sys.executable, list(sys.orig_argv), env)
