"""SIGTERM for a data-parallel group: the driver hears it, the Ray Train workers stop together.

Kubernetes, Slurm, spot preemption and ``ray job stop`` send SIGTERM to the driver only (the
process ``regrl train`` runs in); the Ray Train workers are other processes, often on other
nodes, and train on unless told. :class:`GroupStop` tells them: a Ray actor holding one bool.
The driver's SIGTERM handling (:func:`regrl.trainers.stop_signal.relay`) sets it; after each
epoch rank 0 reads it and an all-reduce hands rank 0's answer to every rank, so all ranks
leave the loop after the same epoch and write its checkpoint together (the offline kind's
checkpoint is a collective: every rank writes its plugin state between two barriers).

Why an actor, of the ways to reach Ray Train workers:

- Ray Train has no graceful stop for a running ``TorchTrainer.fit``: interrupting it tears
  the workers down mid-epoch, and nothing is saved.
- A flag file in the run directory needs every node to see the driver's write promptly; on a
  network file system attribute caching can hide it for seconds.
- An actor (``num_cpus=0``, so it fits any cluster and takes no worker's slot) is reached the
  same way from every node; reading it is one small ``ray.get`` per epoch, on rank 0 only.
  It lives as long as the driver's Ray session, which ends the workers too.
"""

from __future__ import annotations

from typing import Any


class _Flag:
    """The actor's body: set once by the driver, read by rank 0."""

    def __init__(self) -> None:
        self.value = False

    def set(self) -> None:
        self.value = True

    def get(self) -> bool:
        return self.value


class GroupStop:
    """A stop request shared by the driver and its data-parallel workers (picklable: it goes
    to the workers in Ray Train's loop config)."""

    def __init__(self, handle: Any):
        self.handle = handle

    @classmethod
    def start(cls) -> "GroupStop":
        """Start the flag actor in the current Ray session (the driver's)."""
        import ray  # lazy: data-parallel runs only

        return cls(ray.remote(num_cpus=0)(_Flag).remote())

    def set(self) -> None:
        """Ask the workers to stop after their running epoch (returns at once)."""
        self.handle.set.remote()

    def requested(self) -> bool:
        """Whether the driver asked to stop (a round trip to the actor)."""
        import ray  # lazy: data-parallel runs only

        return bool(ray.get(self.handle.get.remote()))
