"""SIGTERM handled like Ctrl-C: checkpoint, one line, exit 143.

SIGTERM is how a run is asked to stop by Kubernetes (pod deletion, then SIGKILL after
``terminationGracePeriodSeconds``, default 30 s), Slurm (``scancel``, time limit; SIGKILL after
``KillWait``, default 30 s), spot/preemptible VMs and ``ray job stop`` (SIGKILL after
``RAY_JOB_STOP_WAIT_TIME_S``, default 3 s). Left to Ray, the driver's SIGTERM handler that
``ray.init`` installs kills the local raylet and GCS under the running iteration, and the
driver aborts with a C++ stack dump (exit 134) and no checkpoint.

:func:`sigterm_as_interrupt` replaces that handler while a run lives. A SIGTERM during the
iteration loop (:func:`deferred`) lets the running iteration finish, so the checkpoint holds a
whole iteration (a Ctrl-C interrupts it mid-update), for at most ``REGRL_SIGTERM_GRACE_S``
seconds (default :data:`DEFAULT_GRACE_S`); then, or at a second SIGTERM, it interrupts the
iteration as Ctrl-C does. Outside the loop (building actors, restoring) it interrupts at once.
Either way the harness saves the last completed iteration and raises :class:`Terminated`,
which the CLI turns into exit status :data:`EXIT_TERMINATED`. A loop that runs in other
processes (the offline kind's Ray Train workers) hears of the SIGTERM through :func:`relay`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from regrl.trainers.checks import ConfigError

GRACE_ENV = "REGRL_SIGTERM_GRACE_S"
DEFAULT_GRACE_S = 10.0
"""Seconds the running iteration may take to finish after SIGTERM: a third of the 30 s that
Kubernetes and Slurm allow before SIGKILL, leaving the rest to the checkpoint and Ray's
shutdown. Under ``ray job stop`` (3 s) set ``RAY_JOB_STOP_WAIT_TIME_S`` on the cluster, or 0
here to interrupt at once."""
EXIT_TERMINATED = 128 + int(signal.SIGTERM)
"""143: the shell's status of a process ended by SIGTERM, which schedulers read as 'stopped'."""


class Terminated(KeyboardInterrupt):
    """The run was stopped by SIGTERM (a KeyboardInterrupt, so every Ctrl-C path handles it:
    the harness checkpoints, the Ray session shuts down)."""


class _Watch:
    """The state of one run's SIGTERM handling (the handler is process-wide)."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self.deferring = False  # inside the iteration loop: finish the running iteration
        self.timer: Optional[threading.Timer] = None
        self.event = threading.Event()  # a SIGTERM came; :func:`relay`'s thread waits on it

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def handle(self, signum, frame) -> None:
        again = self.requested
        self.event.set()
        if again or not self.deferring or self.grace_s <= 0:
            raise Terminated
        print(
            f"\nSIGTERM: checkpointing after the running iteration "
            f"(at most {self.grace_s:g} s, {GRACE_ENV})",
            file=sys.stderr,
            flush=True,
        )
        # after the grace period a real SIGTERM to the main thread (it wakes a blocking call,
        # which _thread.interrupt_main does not), and this handler raises
        main = threading.main_thread().ident
        self.timer = threading.Timer(self.grace_s, signal.pthread_kill, (main, signal.SIGTERM))
        self.timer.daemon = True
        self.timer.start()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


_WATCH: Optional[_Watch] = None
RELAY_POLL_S = 0.1
"""How often :func:`relay`'s thread looks whether its block has ended (a SIGTERM itself wakes
it at once): short against the grace period, cheap for an idle thread."""


def grace_seconds() -> float:
    """``REGRL_SIGTERM_GRACE_S`` (seconds >= 0), or :data:`DEFAULT_GRACE_S`."""
    raw = os.environ.get(GRACE_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_GRACE_S
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ConfigError(f"{GRACE_ENV}={raw!r}: must be a number of seconds >= 0")
    return value


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (after the running iteration, see :func:`deferred`)
    inside the block; the previous handler (Ray's) is back afterwards. A no-op outside the
    main thread (a sweep trial), where Python cannot set signal handlers."""
    global _WATCH
    if threading.current_thread() is not threading.main_thread() or _WATCH is not None:
        yield
        return
    _WATCH = _Watch(grace_seconds())
    previous = signal.signal(signal.SIGTERM, _WATCH.handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _WATCH.cancel()
        _WATCH = None


@contextmanager
def deferred() -> Iterator[None]:
    """The iteration loop: a SIGTERM here waits for :func:`check` (or the grace period)."""
    watch = _WATCH
    if watch is None:
        yield
        return
    watch.deferring = True
    try:
        yield
    except KeyboardInterrupt as exc:
        # a blocking Ray call (ray.wait in RLlib's sampling) turns the exception our handler
        # raised into a KeyboardInterrupt: after a SIGTERM it is still a SIGTERM (exit 143)
        if watch.requested and not isinstance(exc, Terminated):
            raise Terminated from exc
        raise
    finally:
        watch.deferring = False


def requested() -> bool:
    """A SIGTERM came during the current run."""
    return _WATCH is not None and _WATCH.requested


def check() -> None:
    """Raise :class:`Terminated` if a SIGTERM came (the loop calls this between iterations)."""
    if _WATCH is not None and _WATCH.requested:
        _WATCH.cancel()
        raise Terminated


@contextmanager
def relay(notify: Callable[[], None]) -> Iterator[None]:
    """Call ``notify()`` once, from a helper thread, when a SIGTERM comes inside the block
    (also one that came before it). The helper thread, not the handler, makes the call: the
    handler runs in the main thread, which may be inside a blocking Ray call that ``notify``
    would re-enter. A failing ``notify`` is one line on stderr; the grace period then ends the
    run as Ctrl-C does. A no-op where SIGTERM is not handled (see :func:`sigterm_as_interrupt`)."""
    watch = _WATCH
    if watch is None:
        yield
        return
    done = threading.Event()

    def wait_and_notify() -> None:
        while not done.is_set():
            if watch.event.wait(RELAY_POLL_S):
                try:
                    notify()
                except Exception as exc:  # noqa: BLE001 - any failure: the grace period acts
                    print(f"SIGTERM: could not pass it on: {exc}", file=sys.stderr, flush=True)
                return

    thread = threading.Thread(target=wait_and_notify, name="regrl-sigterm-relay", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2 * RELAY_POLL_S)
