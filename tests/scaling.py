"""Time bounds that hold on a busy machine: how a cost grows from n to 2n, never fixed seconds.

A fixed bound ("under 0.5 s") flakes when other processes share the cores, and it is loose
exactly where it should be tight. These helpers time the same call on an input of size n and
on one of size 2n and bound the ratio of the two: a capped cost stays flat (ratio ~1), a
linear one doubles, a quadratic one quadruples, an exponential one explodes.

Each time is the CPU time of this process (``time.process_time``: other processes on the
machine do not add to it) per call, the call repeated until a measurement lasts
:data:`MIN_SECONDS`; the two sizes are measured in alternation and the minimum of
:data:`ROUNDS` measurements of each is kept, with the garbage collector off.
"""

import gc
import time
from typing import Callable

MIN_SECONDS = 0.02
"""Shortest measurement: a call taking microseconds is repeated until the clock's resolution
and the loop's overhead are far below the time measured."""

ROUNDS = 5
"""Measurements of each size; the minimum is the least disturbed one."""

FLAT = 1.5
"""Bound on t(2n)/t(n) for a cost that a cap makes independent of n (a linear cost gives 2)."""

LINEAR = 3.0
"""Bound on t(2n)/t(n) for a linear cost (a quadratic one gives 4)."""


def _calls_for(fn: Callable[[], object]) -> int:
    """How many calls of ``fn`` last :data:`MIN_SECONDS`."""
    calls = 1
    while True:
        start = time.process_time()
        for _ in range(calls):
            fn()
        if time.process_time() - start >= MIN_SECONDS:
            return calls
        calls *= 2


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def growth(call: Callable[[object], object], small: object, large: object) -> float:
    """``t(call(large)) / t(call(small))``, each the minimum of :data:`ROUNDS` measurements."""
    run_small, run_large = (lambda: call(small)), (lambda: call(large))
    enabled = gc.isenabled()
    gc.disable()
    try:
        n_small, n_large = _calls_for(run_small), _calls_for(run_large)
        best_small = best_large = float("inf")
        for _ in range(ROUNDS):
            best_small = min(best_small, _per_call(run_small, n_small))
            best_large = min(best_large, _per_call(run_large, n_large))
    finally:
        if enabled:
            gc.enable()
    return best_large / best_small


def assert_flat(call: Callable[[object], object], small: object, large: object) -> None:
    """Doubling the input leaves the cost of ``call`` (nearly) unchanged."""
    ratio = growth(call, small, large)
    assert ratio < FLAT, f"doubling the input multiplied the time by {ratio:.2f} (bound {FLAT})"


def assert_linear(call: Callable[[object], object], small: object, large: object) -> None:
    """Doubling the input at most (about) doubles the cost of ``call``."""
    ratio = growth(call, small, large)
    assert ratio < LINEAR, f"doubling the input multiplied the time by {ratio:.2f} (bound {LINEAR})"
