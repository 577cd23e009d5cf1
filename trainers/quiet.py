"""Ray start-up lines that regrl cannot fix, silenced or explained in one place (issue 12 §4).

:func:`install` drops the messages of :data:`NOISE` with a ``logging.Filter`` on the exact
logger that emits each one. :func:`regrl.trainers.ray_session.init_ray` calls it in the driver
before ``ray.init`` and names :func:`quiet_worker` as the job's ``worker_process_setup_hook``, so
every Ray worker (env runners, learners, RLVR and Ray Train actors) installs the same filters
before it builds anything. Every other message, and these loggers' other messages, pass.

Explained, not silenced (C++, not Python logging, and it can be a real warning elsewhere):
``core_worker.cc: Actor with class name: 'SingleAgentEnvRunner' ... has constructor arguments
in the object store and max_restarts > 0 ... ray-project/ray/issues/53727``, once per env
runner. RLlib puts its config in the object store once (``EnvRunnerGroup.__init__``:
``ray.put``) and passes that reference to every env runner, and regrl sets ``max_restarts``
(``resources.max_env_runner_restarts``) so a lost runner comes back. The env runner group
holds the reference for the whole run, so the restart this line worries about works
(tests/cluster SIGKILLs a runner and sees it restart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Noise:
    logger: str
    """Name of the logger that emits the message."""
    text: str
    """A part of the message that identifies it."""
    why: str
    """Why it is noise for regrl users (and why regrl cannot fix its cause)."""


NOISE: Tuple[Noise, ...] = (
    Noise(
        "ray._common.deprecation",
        "`RLModule(config=[RLModuleConfig object])` has been deprecated",
        "RLlib 2.60's own RLModule.__init__ builds an RLModuleConfig (rl_module.py), for "
        "every module, however it is constructed: regrl's modules pass no config",
    ),
    Noise(
        "ray._private.authentication.authentication_token_setup",
        "Token authentication is enabled for this Ray cluster",
        "Ray 2.60's default for every local session, which Ray authenticates itself; the "
        "cluster guide (docs/cluster.md) says where a job client finds the token",
    ),
    Noise(
        "ray.tune.utils.util",
        "Install gputil for GPU system monitoring",
        "RLlib starts Tune's resource monitor; regrl does not use it, and GPU metrics come "
        "from the learners",
    ),
    Noise(
        "ray.rllib.algorithms.algorithm_config",
        "on the new API stack! This is the new default behavior",
        "regrl uses RLlib's new API stack on purpose (docs/architecture.md, Where Ray is used)",
    ),
)


class DropNoise(logging.Filter):
    """Drops the records whose message contains one of ``texts``."""

    def __init__(self, texts: Tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


def install() -> None:
    """Attach a :class:`DropNoise` to each logger of :data:`NOISE` (idempotent)."""
    for name in sorted({n.logger for n in NOISE}):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise(tuple(n.text for n in NOISE if n.logger == name)))


def quiet_worker() -> None:
    """Ray's ``worker_process_setup_hook``: the same filters in every worker process."""
    install()


WORKER_HOOK = "regrl.trainers.quiet.quiet_worker"
"""The hook as Ray wants it in a runtime_env (a module path: workers import it)."""
