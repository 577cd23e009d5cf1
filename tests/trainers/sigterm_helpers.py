"""What the end-to-end SIGTERM tests share: ``regrl train`` in a subprocess of its own process
group, sent SIGTERM (to the driver only, as Kubernetes or ``kill`` does) once it is ready, and
what it printed; the group is killed if the run outlives the test."""

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "regrl.trainers.cli"]
ENV = dict(
    os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"
)
START_S = 480.0
"""Longest wait for the run to become ready: Ray and Ray Train starting two workers took up
to 200 s before the first epoch on a 2-core machine shared with an experiment (20 s idle)."""
STOP_S = 120.0
"""Longest wait for the run to exit after the SIGTERM (the grace period is 10 s; the rest is
Ray's shutdown on a busy machine)."""
POLL_S = 0.05


@dataclass
class Stopped:
    """How the SIGTERM-ed run ended."""

    returncode: int
    out: str
    err: str
    seconds: float
    """From the SIGTERM to the process's exit."""


def first_row_logged(path: Path) -> bool:
    """``metrics.jsonl`` holds a whole row (its first iteration is logged)."""
    return path.is_file() and path.read_text().count("\n") >= 1


def sigterm_when_ready(args: Sequence[str], ready: Callable[[], bool]) -> Stopped:
    """Run ``regrl <args>``, SIGTERM it when ``ready()``, wait for its exit."""
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_S
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"exited {proc.returncode} before it was ready:\n{out}\n{err}")
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                pytest.fail(f"not ready after {START_S:g} s:\n{out[-3000:]}\n{err[-3000:]}")
            time.sleep(POLL_S)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=STOP_S)
        return Stopped(proc.returncode, out, err, time.monotonic() - sent)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


RAY_NOISE = re.compile(r"^(\x1b\[\d+m)?\(PlacementGroupCleaner pid=")
"""Ray Train's placement-group cleaner actor looks the cluster address up by itself and prints
a traceback when another Ray instance runs on the same machine (another test session): Ray's
noise, not this run's."""


def run_errors(err: str) -> str:
    """The stderr lines of the run, without :data:`RAY_NOISE`."""
    return "\n".join(line for line in err.splitlines() if not RAY_NOISE.match(line))
