"""The Ray session of a run: join a cluster or start a local single-node Ray, and shut down
what this process started. Every kind that uses Ray (rl, rlvr, offline data-parallel, the
sweep) goes through here; ``ray`` is imported when a session starts, not when this module
is imported, so a kind's config can be loaded and validated without Ray."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Optional

from regrl.trainers import quiet


def init_ray(address: Optional[str] = None) -> bool:
    """Join ``address`` (``auto`` or ``ray://host:port``) or start a local single-node Ray;
    True when this call started (or connected) a session, which its caller then owns.

    A local session binds to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); a cluster
    address keeps Ray's own networking.
    """
    import ray

    if ray.is_initialized():
        return False
    quiet.install()  # Ray's start-up noise regrl cannot fix; workers get it through the hook
    hook = {"worker_process_setup_hook": quiet.WORKER_HOOK}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=hook)
        return True
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # address="local": always a fresh single-node session, never an already running cluster
    # found through RAY_ADDRESS or /tmp/ray (use --address for that)
    ray.init(
        address="local",
        include_dashboard=False,
        logging_level=logging.WARNING,
        configure_logging=True,
        log_to_driver=True,
        runtime_env=hook,
    )
    return True


@contextmanager
def ray_session(address: Optional[str] = None):
    """``init_ray`` for the block; on leaving it (normal end, error or Ctrl-C) shut down the
    session this block started, so no raylet/GCS/agent processes of ours outlive the run
    (disconnects only from a cluster; a session someone else started is left alone)."""
    started = init_ray(address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()
